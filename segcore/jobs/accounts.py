"""Who a student is on a class server: a name and a secret, never the page address.

A student chooses a passphrase at the first visit; only a salted scrypt hash of it is kept (`runs/.accounts.json`,
readable by the server's user only). A teacher can instead hand out a one-time code (adding a name, or resetting a
forgotten passphrase): the student signs in with it once and chooses a passphrase. Signing in opens a session: a
random token the browser keeps in a cookie for SESSION_HOURS, stored here only as its hash, so a reload keeps the
student signed in and nothing on a projected screen (the address bar) carries a secret.

With a roster (SEGCORE_ROSTER, one name a line, or the teacher's switch "only names I added"), nobody can invent a
name: a student's extra names do not exist, so they cannot multiply a fair share. Without one, any new name may be
registered, and names only keep students' work apart.

A department may trust its single sign-on instead: an authenticating reverse proxy (e.g. oauth2-proxy) sets a header
named by SEGCORE_TRUSTED_USER_HEADER, and that identity needs no passphrase here (see README, "Serving a class").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ..base.atomic import atomic_write_json
from ..base.attempts import AttemptLimiter
from .names import WorkspaceError, check_name, display_name, name_key

logger = logging.getLogger(__name__)

ACCOUNTS_FILE = ".accounts.json"
FORMAT = 1
SESSION_HOURS = 12.0  # a school day: a reload keeps the sign-in, tomorrow asks again
MIN_SECRET_CHARS = 6
MAX_SECRET_CHARS = 200
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # read out by a teacher: no 0/O, 1/I/L
CODE_LENGTH = 6
CODE_HOURS = 24 * 7
SCRYPT = {"n": 2**15, "r": 8, "p": 1, "maxmem": 2**26, "dklen": 32}  # about 80 ms a check on a 2-core CPU
ROSTER_ENV = "SEGCORE_ROSTER"
TRUSTED_HEADER_ENV = "SEGCORE_TRUSTED_USER_HEADER"

# guesses: 5 per name or session, then a wait that doubles; 30 a minute across the server, then the same
GUESSES = AttemptLimiter(free=5, first_wait_s=2.0, max_wait_s=300.0)
SERVER_GUESSES = AttemptLimiter(free=30, first_wait_s=1.0, max_wait_s=60.0)


class SignInError(WorkspaceError):
    """A sign-in that did not succeed: wrong secret, a name the roster does not hold, too many tries."""


@dataclass(frozen=True)
class Account:
    key: str  # what decides identity: '<class key>/<name key>' (see names.name_key)
    name: str  # as first typed
    class_name: str | None
    has_secret: bool
    code_waiting: bool  # a teacher's one-time code is waiting to be used
    created: float
    single_sign_on: bool = False

    @property
    def owner(self) -> str:
        """What the student's runs record as their owner: 'class/name', or 'name' on a server with one class."""
        return f"{self.class_name}/{self.name}" if self.class_name else self.name


def account_key(name: str, class_name: str | None) -> str:
    return f"{name_key(class_name) if class_name else ''}/{name_key(name)}"


def _hash(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, **SCRYPT).hex()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def secret_problem(secret: str, name: str) -> str | None:
    """Why a chosen passphrase is too weak to keep classmates out (None when it will do)."""
    if len(secret) < MIN_SECRET_CHARS:
        return f"choose a passphrase of at least {MIN_SECRET_CHARS} characters"
    if len(secret) > MAX_SECRET_CHARS:
        return f"a passphrase may have at most {MAX_SECRET_CHARS} characters"
    if name_key(secret) in (name_key(name), name_key(name).replace(" ", "")):
        return "your passphrase cannot be your name"
    return None


def roster_names() -> set[str] | None:
    """Name keys from SEGCORE_ROSTER (one name a line; 'class/name' lines bind a name to a class), or None."""
    path = os.environ.get(ROSTER_ENV, "").strip()
    if not path:
        return None
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        logger.error("%s=%s cannot be read (%s): nobody can register until it is fixed", ROSTER_ENV, path, exc)
        return set()
    keys = set()
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        class_name, _, name = text.rpartition("/")
        keys.add(account_key(name, class_name or None) if class_name else f"*/{name_key(name)}")
    return keys


class Accounts:
    """The class's accounts and sessions, in runs_dir/.accounts.json (one writer at a time, by file lock)."""

    def __init__(self, runs_dir: str | Path) -> None:
        self.path = Path(runs_dir) / ACCOUNTS_FILE
        self._cache: tuple[tuple[int, int], dict] | None = None

    # -- the file --------------------------------------------------------------------------------------------
    def _read(self) -> dict:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {"format": FORMAT, "accounts": {}, "sessions": {}, "roster_only": False}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._cache and self._cache[0] == stamp:
            return self._cache[1]
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            # never start afresh over a damaged file: that would let anyone re-register every name
            raise WorkspaceError(
                f"the class's accounts ({self.path}) cannot be read ({exc}): ask whoever runs the server to restore it"
            ) from None
        if not isinstance(payload, dict) or not isinstance(payload.get("accounts"), dict):
            raise WorkspaceError(f"the class's accounts ({self.path}) are damaged: ask whoever runs the server")
        payload.setdefault("sessions", {})
        payload.setdefault("roster_only", False)
        self._cache = (stamp, payload)
        return payload

    def _update(self, change):
        """Apply change(payload) -> result under the lock and write the file whole; returns the result."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            self._cache = None
            payload = json.loads(json.dumps(self._read()))  # a private copy
            result = change(payload)
            now = time.time()
            payload["sessions"] = {k: v for k, v in payload["sessions"].items() if v.get("expires", 0) > now}
            atomic_write_json(self.path, payload)
            self._cache = None
            return result

    @staticmethod
    def _account(key: str, entry: dict) -> Account:
        return Account(
            key=key,
            name=entry["name"],
            class_name=entry.get("class"),
            has_secret=bool(entry.get("hash")),
            code_waiting=bool(entry.get("code_hash")) and entry.get("code_expires", 0) > time.time(),
            created=entry.get("created", 0.0),
            single_sign_on=bool(entry.get("sso")),
        )

    # -- reading ---------------------------------------------------------------------------------------------
    def get(self, name: str, class_name: str | None = None) -> Account | None:
        entry = self._read()["accounts"].get(account_key(name, class_name))
        return self._account(account_key(name, class_name), entry) if entry else None

    def all(self) -> list[Account]:
        return sorted(
            (self._account(key, entry) for key, entry in self._read()["accounts"].items()),
            key=lambda a: (a.class_name or "", a.name.casefold()),
        )

    @property
    def roster_only(self) -> bool:
        """Only names the teacher added (or SEGCORE_ROSTER holds) may sign in."""
        return bool(self._read().get("roster_only")) or roster_names() is not None

    def on_roster(self, name: str, class_name: str | None) -> bool:
        key = account_key(name, class_name)
        if key in self._read()["accounts"]:
            return True
        roster = roster_names()
        if roster is None:
            return not self._read().get("roster_only")
        return key in roster or f"*/{name_key(name)}" in roster

    # -- students --------------------------------------------------------------------------------------------
    def register(self, name: str, class_name: str | None, secret: str) -> str:
        """A new student's account with the passphrase they chose; returns a session token. Refused when the name
        (or a look-alike of it) is taken, the roster does not hold it, or the passphrase is too weak."""
        name = check_name(name, "student name")
        class_name = check_name(class_name, "class name") if class_name else None
        problem = secret_problem(secret, name)
        if problem:
            raise SignInError(problem)
        if not self.on_roster(name, class_name):
            raise SignInError(
                f"'{name}' is not on this class's list: ask your teacher to add you (Teacher page) and give you a code"
            )
        key = account_key(name, class_name)

        def create(payload: dict) -> str:
            if key in payload["accounts"]:
                raise SignInError(f"the name '{name}' is taken: sign in with its passphrase, or choose another name")
            salt = os.urandom(16)
            payload["accounts"][key] = {
                "name": name,
                "class": class_name,
                "salt": salt.hex(),
                "hash": _hash(secret, salt),
                "created": time.time(),
            }
            return self._new_session(payload, key)

        return self._update(create)

    def sign_in(self, name: str, class_name: str | None, secret: str, session_id: str = "") -> str:
        """A session token when `secret` is the account's passphrase; SignInError otherwise (and after too many
        wrong tries, a wait that grows: GUESSES, SERVER_GUESSES)."""
        key = account_key(name, class_name)
        keys = (f"name:{key}", f"session:{session_id}") if session_id else (f"name:{key}",)
        self._check_wait(keys)
        entry = self._read()["accounts"].get(key)
        if (
            entry
            and entry.get("hash")
            and hmac.compare_digest(_hash(secret, bytes.fromhex(entry["salt"])), entry["hash"])
        ):
            GUESSES.succeeded(*keys)
            return self._update(lambda payload: self._new_session(payload, key))
        GUESSES.failed(*keys, what=f"student sign-in as {display_name(name)!r}")
        SERVER_GUESSES.failed("server", what="sign-in")
        raise SignInError("that name and passphrase do not match (names are not case-sensitive)")

    def redeem_code(self, name: str, class_name: str | None, code: str, new_secret: str, session_id: str = "") -> str:
        """Sign in once with the teacher's code and choose a passphrase; returns a session token."""
        key = account_key(name, class_name)
        keys = (f"name:{key}", f"session:{session_id}") if session_id else (f"name:{key}",)
        self._check_wait(keys)
        entry = self._read()["accounts"].get(key)
        given = "".join(code.split()).upper()
        if not (
            entry
            and entry.get("code_hash")
            and entry.get("code_expires", 0) > time.time()
            and hmac.compare_digest(_hash(given, bytes.fromhex(entry["salt"])), entry["code_hash"])
        ):
            GUESSES.failed(*keys, what=f"teacher's code for {display_name(name)!r}")
            SERVER_GUESSES.failed("server", what="sign-in")
            raise SignInError("that is not the code your teacher gave for this name (or it has expired)")
        problem = secret_problem(new_secret, entry["name"])
        if problem:
            raise SignInError(problem)
        GUESSES.succeeded(*keys)

        def choose(payload: dict) -> str:
            stored = payload["accounts"][key]
            salt = os.urandom(16)
            stored.update(salt=salt.hex(), hash=_hash(new_secret, salt))
            stored.pop("code_hash", None)
            stored.pop("code_expires", None)
            return self._new_session(payload, key)

        return self._update(choose)

    def _check_wait(self, keys: tuple[str, ...]) -> None:
        wait = max(GUESSES.wait_s(*keys), SERVER_GUESSES.wait_s("server"))
        if wait > 0:
            raise SignInError(f"too many wrong tries: wait {wait:.0f} s and try again")

    # -- single sign-on ----------------------------------------------------------------------------------------
    def trusted(self, identity: str, class_name: str | None = None) -> str:
        """A session for an identity the platform vouches for (SEGCORE_TRUSTED_USER_HEADER); the account is made on
        first sight, without a passphrase."""
        name = check_name(identity, "user name from single sign-on")
        key = account_key(name, class_name)

        def open_session(payload: dict) -> str:
            payload["accounts"].setdefault(
                key,
                {"name": name, "class": class_name, "salt": os.urandom(16).hex(), "sso": True, "created": time.time()},
            )
            return self._new_session(payload, key)

        return self._update(open_session)

    # -- sessions --------------------------------------------------------------------------------------------
    @staticmethod
    def _new_session(payload: dict, key: str) -> str:
        token = secrets.token_urlsafe(32)
        payload["sessions"][_digest(token)] = {"key": key, "expires": time.time() + SESSION_HOURS * 3600}
        return token

    def session(self, token: str | None) -> Account | None:
        """The account a session token belongs to, while it has not expired and the account still exists."""
        if not isinstance(token, str) or not token or len(token) > 200:
            return None
        payload = self._read()
        entry = payload["sessions"].get(_digest(token))
        if not entry or entry.get("expires", 0) <= time.time():
            return None
        account = payload["accounts"].get(entry.get("key"))
        return self._account(entry["key"], account) if account else None

    def end_session(self, token: str | None) -> None:
        if isinstance(token, str) and token:
            self._update(lambda payload: payload["sessions"].pop(_digest(token), None))

    # -- the teacher -----------------------------------------------------------------------------------------
    def add(self, name: str, class_name: str | None = None) -> str:
        """A name the teacher adds, with a one-time code to hand to the student (they then choose a passphrase)."""
        name = check_name(name, "student name")
        class_name = check_name(class_name, "class name") if class_name else None
        key = account_key(name, class_name)

        def add_name(payload: dict) -> str:
            if key in payload["accounts"]:
                raise WorkspaceError(f"'{name}' is already on the list: reset their passphrase instead")
            payload["accounts"][key] = {
                "name": name,
                "class": class_name,
                "salt": os.urandom(16).hex(),
                "created": time.time(),
            }
            return self._new_code(payload, key)

        return self._update(add_name)

    def reset(self, key: str) -> str:
        """Forget an account's passphrase and end its sessions; returns a one-time code for the student."""

        def reset_secret(payload: dict) -> str:
            entry = payload["accounts"].get(key)
            if entry is None:
                raise WorkspaceError("no such student")
            entry.pop("hash", None)
            payload["sessions"] = {k: v for k, v in payload["sessions"].items() if v.get("key") != key}
            return self._new_code(payload, key)

        return self._update(reset_secret)

    def remove(self, key: str) -> None:
        """Remove a name: its account and sessions (its runs stay, until deleted)."""

        def remove_name(payload: dict) -> None:
            payload["accounts"].pop(key, None)
            payload["sessions"] = {k: v for k, v in payload["sessions"].items() if v.get("key") != key}

        self._update(remove_name)

    def set_roster_only(self, only: bool) -> None:
        self._update(lambda payload: payload.__setitem__("roster_only", bool(only)))

    @staticmethod
    def _new_code(payload: dict, key: str) -> str:
        entry = payload["accounts"][key]
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        entry["code_hash"] = _hash(code, bytes.fromhex(entry["salt"]))
        entry["code_expires"] = time.time() + CODE_HOURS * 3600
        return code


def trusted_header() -> str | None:
    """The request header an authenticating proxy sets (SEGCORE_TRUSTED_USER_HEADER), or None."""
    return os.environ.get(TRUSTED_HEADER_ENV, "").strip() or None
