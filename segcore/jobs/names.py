"""People's names on a class server: what may be a name, and when two names are the same person.

A name is shown as typed (NFKC-normalised, spaces collapsed) but compared by its key: case-folded, with letters that
look alike across scripts mapped to one (Cyrillic 'а' and Latin 'a'), so 'Alice', 'alice', full-width 'ａｌｉｃｅ' and
'аlice' with a Cyrillic 'а' cannot stand beside each other as different students. A name that mixes the confusable
scripts (Latin, Cyrillic, Greek, …) in one word is refused outright: nobody's real name needs that, an impostor's does.
"""

from __future__ import annotations

import re
import unicodedata

from ..base.errors import SegcoreError

MAX_NAME_CHARS = 40
# scripts whose letters pass for each other's: a name may use one of them, not several
CONFUSABLE_SCRIPTS = {"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC"}
# lower-case letters of other scripts that look like a Latin letter (after case folding): the name's key uses the
# Latin one, so a whole-script look-alike ('раypal' typed in Cyrillic) is the same key as the Latin name
LOOK_ALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "ӏ": "l", "о": "o", "р": "p", "ԛ": "q",
        "ѕ": "s", "ԝ": "w", "х": "x", "у": "y", "ԁ": "d", "с": "c", "ԍ": "g",
        # Greek
        "α": "a", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "υ": "u", "χ": "x", "γ": "y", "ω": "w",
    }
)  # fmt: skip
ALLOWED_PUNCTUATION = " .'-_"


class WorkspaceError(SegcoreError):
    """A student or class name that cannot be used."""


def display_name(text: object) -> str:
    """The name as it is shown: NFKC (full-width letters become ordinary ones), spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", str(text)).split())


def name_key(text: object) -> str:
    """What decides whether two names are the same person: case-folded, look-alike letters made one."""
    return display_name(text).casefold().translate(LOOK_ALIKES)


def _script(character: str) -> str:
    try:
        return unicodedata.name(character).split()[0]
    except ValueError:
        return "UNKNOWN"


def name_problem(text: object, what: str = "name") -> str | None:
    """Why `text` cannot be a student or class name (None when it can), in words for the person typing it."""
    name = display_name(text)
    if not name:
        return f"a {what} cannot be empty"
    if len(name) > MAX_NAME_CHARS:
        return f"a {what} may have at most {MAX_NAME_CHARS} characters; this one has {len(name)}"
    if any(unicodedata.category(c)[0] == "C" for c in name):
        return f"a {what} cannot hold control or invisible characters"
    odd = sorted({c for c in name if not (c.isalnum() or c in ALLOWED_PUNCTUATION or unicodedata.category(c) == "Mn")})
    if odd:
        return f"a {what} may hold letters, digits, spaces and . ' - _ only, not {' '.join(odd)}"
    if not name[0].isalnum():
        return f"a {what} must start with a letter or a digit"
    scripts = {_script(c) for c in name if c.isalpha()} & CONFUSABLE_SCRIPTS
    if len(scripts) > 1:
        return (
            f"'{name}' mixes letters of the {' and '.join(sorted(s.title() for s in scripts))} alphabets, which look "
            f"alike: type the {what} in one alphabet"
        )
    if not re.search(r"\w", name):
        return f"a {what} needs at least one letter or digit"
    return None


def check_name(text: object, what: str = "name") -> str:
    """The name as it is shown, or WorkspaceError saying what is wrong with it."""
    problem = name_problem(text, what)
    if problem:
        shown = display_name(text)[:MAX_NAME_CHARS]
        raise WorkspaceError(f"'{shown}' cannot be a {what}: {problem}")
    return display_name(text)
