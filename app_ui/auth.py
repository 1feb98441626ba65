"""The login of the sharing mode (streamlit-authenticator) and the role checks of the pages.

``streamlit_app.py`` calls :func:`gate` before ``st.navigation``: in local mode it returns at once (no login, everyone
is an editor); in sharing mode (``ecg_core.core.auth.sharing_mode``) it shows the login form alone, or a message
when the auth file is missing or unusable, and runs a one-page hidden navigation so that no page of the app is
reachable; a logged-in user gets their name, role and **Log out** in the sidebar. What a session may see is
decided by :func:`ecg_core.core.auth.decide`, from the authenticator's session keys (``authentication_status``,
``username``) and the role the auth file gives that user (never a role the browser sends).

Pages use :func:`require_role` around controls that change the server (training, Stop, delete, dataset import):
a viewer sees a short message instead; the action itself calls :func:`ensure_role` (a refusal, checked on the
server, whatever the browser sent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import streamlit as st

from ecg_core.core import auth as core

if TYPE_CHECKING:
    from streamlit.navigation.page import StreamlitPage

LOGIN_FIELDS = {"Form name": "Log in to ECG Insight", "Username": "User name", "Password": "Password",
                "Login": "Log in"}
NEEDS_EDITOR = "needs the editor role"
EDITOR, VIEWER = core.EDITOR, core.VIEWER
COOKIE_PENDING = "app_auth_cookie_pending"  # the next run sets the login cookie (a new tab stays logged in)


def sharing() -> bool:
    """Sharing mode: the server listens beyond localhost (``server.address``) or ``ECG_INSIGHT_SHARE=1``."""
    return core.sharing_mode(st.get_option("server.address"))


def _config() -> core.AuthConfig | core.AuthConfigError:
    try:
        return core.load_auth_config()
    except core.AuthConfigError as e:
        return e


def _decide(cfg: core.AuthConfig | core.AuthConfigError) -> core.GateDecision:
    s = st.session_state
    return core.decide(True, cfg, s.get("authentication_status"), s.get("username"), s.get("name"))


def access() -> core.Access | None:
    """This session's access: local mode -> an editor; sharing mode -> the logged-in user, or ``None``."""
    if not sharing():
        return core.LOCAL_ACCESS
    return _decide(_config()).access


def can_edit() -> bool:
    a = access()
    return bool(a and a.allows(core.EDITOR))


def _refusal(role: str, what: str, a: core.Access | None) -> str:
    who = f"you are logged in as **{a.username}** ({a.role})" if a else "you are not logged in"
    return f"{what} {NEEDS_EDITOR if role == core.EDITOR else f'needs the {role} role'}: {who}."


def require_role(role: str = core.EDITOR, what: str = "This") -> bool:
    """``True`` when this session has ``role``; otherwise a short ``st.info`` and ``False`` (the caller then
    leaves out its controls)."""
    a = access()
    if a and a.allows(role):
        return True
    st.info(_refusal(role, what, a) + " Ask whoever runs this app for an editor login.", icon="🔒")
    return False


def ensure_role(role: str = core.EDITOR, what: str = "This action") -> None:
    """The server-side check at the start of an action: a refusal message and ``st.stop()`` without ``role``."""
    a = access()
    if not (a and a.allows(role)):
        st.error(_refusal(role, what, a))
        st.stop()


def page_guard() -> None:
    """First line of every page: a page never draws for a session without access. Streamlit runs a page script
    without the entry script (so without :func:`gate`) in its old ``pages/`` folder mode, which it uses for a
    server's first run until ``st.navigation`` is called; such a run is restarted in navigation mode, where the
    gate shows the login."""
    if access() is not None:
        return
    try:
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False  # what st.navigation sets; the rerun then runs the gate
    except (ImportError, AttributeError):  # pragma: no cover - another Streamlit: no rerun, the message below
        st.warning("Log in first: open the app's start page.")
        st.stop()
    st.rerun()


# ------------------------------------------------------------------------------------------------------ the gate
def _authenticator(cfg: core.AuthConfig):
    import streamlit_authenticator as stauth

    return stauth.Authenticate(cfg.credentials(), cfg.cookie_name, cfg.cookie_key, cfg.cookie_expiry_days,
                               auto_hash=False)


def _only(page, urls: Sequence[str]) -> None:
    """End the script with a hidden navigation whose every page is ``page`` (the login form or the auth-file
    message), one per URL of the app (``urls``; ``""`` is the start page): no page of the app is reachable, and a
    deep link (``/train``) shows the login, then, once logged in, its page."""
    pages = [st.Page(page, title="Log in", icon="🔒", default=True)]
    pages += [st.Page(page, title="Log in", icon="🔒", url_path=u) for u in dict.fromkeys(urls) if u]
    st.navigation(pages, position="hidden").run()
    st.stop()


def _user_box(authenticator, a: core.Access) -> bool:
    """Name, role and Log out in the sidebar; ``True`` when Log out was pressed (then the session is logged out)."""
    slot = st.sidebar.empty()
    with slot.container():
        st.markdown(f"👤 **{a.name}** · {a.role}")
        pressed = st.button("Log out", key="app_logout")
    if pressed:
        authenticator.logout(location="unrendered")  # clears the session keys, deletes the cookie
        slot.empty()
    return pressed


def gate(pages: Mapping[str, Sequence[StreamlitPage]] | Sequence[StreamlitPage] = ()) -> core.Access:
    """Local mode: the editor access, nothing drawn. Sharing mode: the logged-in user's access, with the sidebar
    user box; without a login, only the login form (or the auth-file message), at each of the URLs of ``pages``
    (the app's navigation), and the script ends here."""
    if not sharing():
        return core.LOCAL_ACCESS
    sections = pages.values() if isinstance(pages, Mapping) else [pages]
    urls = [p.url_path for section in sections for p in section]
    cfg = _config()
    if isinstance(cfg, core.AuthConfigError):
        def no_auth_file() -> None:
            st.title("🔒 ECG Insight: sharing mode")
            st.error(f"This app is shared on the network and needs a login, but {cfg}")
            st.caption("Ask whoever runs this app; until the auth file is fixed no page is shown.")

        _only(no_auth_file, urls)
    authenticator = _authenticator(cfg)  # draws the (invisible) cookie component
    decision = _decide(cfg)
    if decision.show == "app" and not _user_box(authenticator, decision.access):
        # the login cookie (a new tab stays logged in) is set by a browser-side component, which only acts once it
        # is mounted: a run cut short by a rerun or a click on another page before it mounted sets nothing (seen
        # in the browser test under load). So every run of a logged-in session sets it again (the 1-day expiry
        # slides with use); COOKIE_PENDING marks the first run after the login form.
        st.session_state.pop(COOKIE_PENDING, None)
        with st.sidebar:
            authenticator.cookie_controller.set_cookie()
        return decision.access

    def login() -> None:
        if st.session_state.get("authentication_status"):  # logged in as a user the auth file no longer has
            authenticator.logout(location="unrendered")
        authenticator.login(location="main", fields=LOGIN_FIELDS, key="app_login")  # or from a valid cookie
        if _decide(cfg).show == "app":  # logged in by this run's form: the app from the next run on
            st.session_state[COOKIE_PENDING] = True
            st.rerun()
        if st.session_state.get("authentication_status") is False:
            st.error("Wrong user name or password.")
        st.caption("This copy of ECG Insight is shared on the network: log in with the user name and password "
                   "you were given. Research and education use only.")

    _only(login, urls)
    raise AssertionError("unreachable")  # st.stop() ended the script
