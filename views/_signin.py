"""Signing in: a name and a passphrase (or the teacher's one-time code), kept across reloads by a session cookie.

The page address never carries who someone is. The cookie holds only a random session token (segcore.jobs.accounts
keeps its hash); it is set from a one-pixel same-origin iframe, since a Streamlit page cannot set a cookie itself.
"""

from __future__ import annotations

import json
import secrets

import streamlit as st

from segcore.jobs.accounts import SESSION_HOURS, Account, Accounts, trusted_header
from segcore.jobs.classroom import offered_classes, workspace_id
from segcore.jobs.names import WorkspaceError
from views._text import escape_md

SESSION_COOKIE = "segcore_session"


def browser_session_id() -> str:
    """A random id for this browser session: wrong guesses are counted per session (and across the server)."""
    return st.session_state.setdefault("browser_session_id", secrets.token_hex(8))


def _cookie_script(value: str, max_age: float) -> None:
    # json.dumps quotes the token (URL-safe base64 already); SameSite=Strict: never sent by another site's page
    # st.iframe runs our own fixed script same-origin (the only HTML here; the token is URL-safe base64)
    st.iframe(
        "<script>document.cookie = "
        + json.dumps(f"{SESSION_COOKIE}={value}; path=/; SameSite=Strict; max-age={int(max_age)}")
        + ";</script>",
        height=1,
    )


def keep_session_cookie() -> None:
    """On every full run while signed in: make sure the browser holds this session's cookie (set after sign-in,
    cleared after sign-out)."""
    if st.session_state.pop("clear_cookie", False):
        _cookie_script("", 0)
    elif (
        st.session_state.get("session_token")
        and st.session_state.get("cookie_written") != st.session_state["session_token"]
    ):
        _cookie_script(st.session_state["session_token"], SESSION_HOURS * 3600)
        st.session_state["cookie_written"] = st.session_state["session_token"]


def _adopt(accounts: Accounts, token: str, account: Account) -> None:
    st.session_state.update(session_token=token, owner=account.owner, account_key=account.key)


def _cookie() -> str | None:
    value = st.context.cookies.get(SESSION_COOKIE)
    return value if isinstance(value, str) else None  # AppTest's context has no cookies


def current_account(accounts: Accounts) -> Account | None:
    """Who this browser session is: a trusted single sign-on header, else this session's (or the cookie's) token.
    A token the teacher ended (reset, removed name) signs the session out."""
    header = trusted_header()
    if header:
        identity = st.context.headers.get(header)
        if not identity:
            return None
        token = st.session_state.get("session_token")
        account = accounts.session(token)
        if account is None or account.name != identity:
            token = accounts.trusted(identity)
            account = accounts.session(token)
            _adopt(accounts, token, account)
        return account
    token = st.session_state.get("session_token") or _cookie()
    account = accounts.session(token)
    if account is None:
        for key in ("session_token", "owner", "account_key"):
            st.session_state.pop(key, None)
        return None
    if st.session_state.get("session_token") != token:
        _adopt(accounts, token, account)
        st.session_state["cookie_written"] = token  # it came from the cookie
    return account


def sign_out(accounts: Accounts) -> None:
    accounts.end_session(st.session_state.get("session_token"))
    keep = {"browser_session_id": browser_session_id()}
    st.session_state.clear()
    st.session_state.update(keep, clear_cookie=True)


def sign_in_gate(accounts: Accounts) -> None:
    """Ask who is there (name, class, passphrase or the teacher's code) and stop the page until they are known."""
    keep_session_cookie()
    if trusted_header():
        st.title("👋 Welcome to the Segmentation Transfer Workbench")
        st.error(
            "This server signs people in through the school's login, but your browser did not come through it: open "
            "the workbench from the school's address."
        )
        st.stop()
    st.title("👋 Welcome to the Segmentation Transfer Workbench")
    st.write(
        "Sign in so that your runs and uploads are yours alone. Your passphrase keeps classmates out of your work; "
        "nothing leaves this server."
    )
    pending = st.session_state.get("signin_pending")
    if pending is None:
        _ask_name()
    else:
        _ask_secret(accounts, *pending)
    st.stop()


def _ask_name() -> None:
    with st.form("sign_in_name"):
        name = st.text_input("Your name", key="signin_name")  # no max_chars: a long paste is kept and explained
        classes = offered_classes()
        class_name = st.selectbox("Your class", classes, key="signin_class") if classes else None
        if st.form_submit_button("Continue", type="primary"):
            try:
                workspace_id(name, class_name)
            except WorkspaceError as exc:
                st.error(escape_md(exc))
                return
            st.session_state["signin_pending"] = (name, class_name)
            st.rerun()


def _ask_secret(accounts: Accounts, name: str, class_name: str | None) -> None:
    account = accounts.get(name, class_name)
    shown = escape_md(f"{name} · {class_name}" if class_name else name)
    if account is None and not accounts.on_roster(name, class_name):
        st.error(f"{shown} is not on this class's list: ask your teacher to add you and give you a code.")
    elif account is not None and account.single_sign_on:
        st.error(f"{shown} signs in through the school's login, not with a passphrase here.")
    else:
        with st.form("sign_in_secret"):
            if account is None:
                st.markdown(f"**New here, {shown}?** Choose a passphrase you will remember (at least 6 characters).")
                secret = st.text_input("Choose a passphrase", type="password", key="signin_secret")
                again = st.text_input("Type it again", type="password", key="signin_secret_again")
                label = "Create my workspace"
            elif account.code_waiting and not account.has_secret:
                st.markdown(f"**{shown}**: type the code your teacher gave you, then choose a passphrase.")
                code = st.text_input("Code from your teacher", key="signin_code")
                secret = st.text_input("Choose a passphrase", type="password", key="signin_secret")
                again = st.text_input("Type it again", type="password", key="signin_secret_again")
                label = "Sign in"
            else:
                st.markdown(f"**Welcome back, {shown}.**")
                secret = st.text_input("Your passphrase", type="password", key="signin_secret")
                label = "Sign in"
            if st.form_submit_button(label, type="primary"):
                _submit(accounts, account, name, class_name, secret, locals().get("again"), locals().get("code"))
    if st.button("← Not you? Another name", key="signin_back", type="tertiary"):
        st.session_state.pop("signin_pending", None)
        st.rerun()


def _submit(accounts: Accounts, account: Account | None, name, class_name, secret, again, code) -> None:
    try:
        if again is not None and secret != again:
            st.error("The two passphrases differ: type the same one twice.")
            return
        if account is None:
            token = accounts.register(name, class_name, secret)
        elif code is not None:
            token = accounts.redeem_code(name, class_name, code, secret, browser_session_id())
        else:
            token = accounts.sign_in(name, class_name, secret, browser_session_id())
    except WorkspaceError as exc:
        st.error(escape_md(exc))
        return
    _adopt(accounts, token, accounts.session(token))
    st.session_state.pop("signin_pending", None)
    st.rerun()
