"""Sharing mode: who may use the app and what they may change (no Streamlit here; the login widget is
``app_ui/auth.py``).

The app is in **sharing mode** when the server listens on more than the loopback interface (``server.address``
unset, ``0.0.0.0``, ``::`` or any non-loopback address) or when ``ECG_INSIGHT_SHARE=1``. In sharing mode every
session needs a login from the **auth file** (``ECG_INSIGHT_AUTH_FILE``, default ``<ECG_INSIGHT_HOME>/auth.yaml``),
a YAML file in streamlit-authenticator's format: a random cookie key and users with a bcrypt-hashed password and
one role, ``viewer`` (explain, compare, look at data) or ``editor`` (also train, stop and delete runs, import
datasets). The file is written atomically with mode 0600; plain-text passwords in it are refused, never hashed in
place. In local mode nobody logs in and everyone is an editor.

:func:`decide` is the gate's whole decision (what a session may see), testable without a browser.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecg_core.core import paths
from ecg_core.core.atomic import atomic_write_text
from ecg_core.core.errors import ConfigError

VIEWER, EDITOR = "viewer", "editor"
ROLES = (VIEWER, EDITOR)  # ordered: a role allows everything of the roles before it
AUTH_FILE_ENV = "ECG_INSIGHT_AUTH_FILE"
SHARE_ENV = "ECG_INSIGHT_SHARE"
FILE_MODE = 0o600
COOKIE_NAME = "ecg_insight_auth"
COOKIE_EXPIRY_DAYS = 1.0
PASSWORD_BYTES = 12  # secrets.token_urlsafe(12): 16 characters, 96 bits
_BCRYPT = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
HOW_TO_CREATE = ("Create it with `make share` (creates it on first use and prints the passwords) or "
                 "`python -m ecg_core auth init`; add or change a user with "
                 "`python -m ecg_core auth add-user NAME --role viewer|editor`.")


class AuthConfigError(ConfigError):
    """The auth file is missing or unusable; the message says how to fix it."""


@dataclass(frozen=True)
class Access:
    """What one session may do: ``mode`` ``"local"`` (no login, editor) or ``"sharing"`` (a logged-in user)."""

    mode: str
    role: str
    username: str = ""
    name: str = ""

    def allows(self, needed: str) -> bool:
        return role_allows(self.role, needed)


LOCAL_ACCESS = Access(mode="local", role=EDITOR)


@dataclass(frozen=True)
class GateDecision:
    """``show``: ``"app"`` (the pages, with ``access``), ``"login"`` (the login form only) or ``"no_config"``
    (a message only: ``message``)."""

    show: str
    access: Access | None = None
    message: str = ""


def role_allows(role: str | None, needed: str) -> bool:
    """``True`` when ``role`` is ``needed`` or a higher role (editor > viewer); unknown roles allow nothing."""
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


# ------------------------------------------------------------------------------------------------ sharing mode
def is_loopback(address: str | None) -> bool:
    """``True`` for an address that only this machine can reach (127.0.0.0/8, ::1, ``localhost``). Unset, empty,
    ``0.0.0.0`` and ``::`` mean every interface: not loopback."""
    a = (address or "").strip().strip("[]")
    if not a:
        return False
    if a.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(a).is_loopback
    except ValueError:
        return False  # a host name other than localhost: may resolve to a public interface


def sharing_mode(server_address: str | None, env: Mapping[str, str] | None = None) -> bool:
    """Sharing mode: ``ECG_INSIGHT_SHARE=1``, or a server that listens beyond the loopback interface."""
    env = os.environ if env is None else env
    if env.get(SHARE_ENV, "").strip() == "1":
        return True
    return not is_loopback(server_address)


def auth_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    p = env.get(AUTH_FILE_ENV, "").strip()
    return Path(p).expanduser() if p else paths.app_home() / "auth.yaml"


# ------------------------------------------------------------------------------------------------- passwords
def hash_password(password: str) -> str:
    """A bcrypt hash (the format streamlit-authenticator checks)."""
    import bcrypt

    if not password:
        raise AuthConfigError("a password cannot be empty.")
    if len(password.encode()) > 72:
        raise AuthConfigError("a password can have at most 72 bytes (bcrypt's limit).")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def verify_password(password: str, hashed: str) -> bool:
    import bcrypt

    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        return False


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


# ------------------------------------------------------------------------------------------------ the auth file
@dataclass(frozen=True)
class AuthConfig:
    path: Path
    cookie_name: str
    cookie_key: str
    cookie_expiry_days: float
    users: Mapping[str, Mapping[str, Any]]  # username -> {"name", "password" (hash), "roles": [role]}

    def role_of(self, username: str | None) -> str | None:
        user = self.users.get((username or "").lower())
        return None if user is None else user_role(user)

    def credentials(self) -> dict[str, Any]:
        """A fresh copy in streamlit-authenticator's ``credentials`` shape (it mutates what it gets)."""
        return {"usernames": {u: {"name": d.get("name") or u, "password": d["password"],
                                  "roles": list(d.get("roles") or []), "email": d.get("email") or ""}
                              for u, d in self.users.items()}}


def user_role(user: Mapping[str, Any]) -> str:
    roles = user.get("roles") or []
    return EDITOR if EDITOR in roles else VIEWER


def load_auth_config(path: str | Path | None = None) -> AuthConfig:
    """Read and check the auth file; :class:`AuthConfigError` says what is wrong and how to fix it."""
    import yaml

    p = Path(path) if path is not None else auth_file()
    if not p.is_file():
        raise AuthConfigError(f"no auth file at {str(p)!r}. {HOW_TO_CREATE}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise AuthConfigError(f"the auth file {str(p)!r} cannot be read as YAML: {str(e).splitlines()[0]}. "
                              f"{HOW_TO_CREATE}") from e
    where = f"the auth file {str(p)!r}"
    if not isinstance(data, dict):
        raise AuthConfigError(f"{where} is not a mapping with `cookie` and `credentials`. {HOW_TO_CREATE}")
    cookie = data.get("cookie")
    if not isinstance(cookie, dict) or not isinstance(cookie.get("key"), str) or len(cookie["key"]) < 32:
        raise AuthConfigError(f"{where} needs `cookie: key:` (a random string of at least 32 characters).")
    try:
        expiry = float(cookie.get("expiry_days", COOKIE_EXPIRY_DAYS))
    except (TypeError, ValueError):
        raise AuthConfigError(f"{where}: `cookie: expiry_days` must be a number.") from None
    users = ((data.get("credentials") or {}).get("usernames") if isinstance(data.get("credentials"), dict)
             else None)
    if not isinstance(users, dict) or not users:
        raise AuthConfigError(f"{where} has no users under `credentials: usernames:`. {HOW_TO_CREATE}")
    checked: dict[str, dict[str, Any]] = {}
    for name, user in users.items():
        uname = str(name).lower()
        if not _USERNAME.match(uname) or not isinstance(user, dict):
            raise AuthConfigError(f"{where}: user {name!r} is not a valid entry (a lower-case name with a "
                                  "`password` and `roles`).")
        if not isinstance(user.get("password"), str) or not _BCRYPT.match(user["password"]):
            raise AuthConfigError(f"{where}: the password of {name!r} is not a bcrypt hash (plain-text passwords "
                                  f"are refused); set it with `python -m ecg_core auth add-user {uname} --role "
                                  f"{user_role(user) if isinstance(user, dict) else VIEWER}`.")
        roles = user.get("roles")
        if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
            raise AuthConfigError(f"{where}: user {name!r} needs `roles: [viewer]` or `roles: [editor]` "
                                  f"(found {roles!r}).")
        checked[uname] = dict(user)
    return AuthConfig(path=p, cookie_name=str(cookie.get("name") or COOKIE_NAME), cookie_key=cookie["key"],
                      cookie_expiry_days=expiry, users=checked)


def _dump(path: Path, cookie: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]]) -> Path:
    import yaml

    body = yaml.safe_dump({"cookie": dict(cookie), "credentials": {"usernames": {u: dict(d) for u, d in
                                                                                 users.items()}}},
                          sort_keys=False, default_flow_style=False)
    head = ("# ECG Insight sharing-mode logins (streamlit-authenticator format). Keep this file private (mode 0600)\n"
            "# and out of version control. Change users with `python -m ecg_core auth add-user NAME --role\n"
            "# viewer|editor` (prints a new password) or `python -m ecg_core auth remove-user NAME`.\n")
    return atomic_write_text(path, head + body, mode=FILE_MODE)


def create_auth_config(path: str | Path | None = None,
                       users: Mapping[str, str] | None = None) -> dict[str, str]:
    """Write a new auth file (refuses to overwrite one) with ``users`` (username -> role; default one ``viewer``
    and one ``editor``), random passwords and a random cookie key. Returns username -> the plain password, which
    is shown once and stored nowhere."""
    p = Path(path) if path is not None else auth_file()
    if p.exists():
        raise AuthConfigError(f"an auth file already exists at {str(p)!r}; change users with "
                              "`python -m ecg_core auth add-user NAME --role viewer|editor`.")
    users = dict(users or {VIEWER: VIEWER, EDITOR: EDITOR})
    plain: dict[str, str] = {}
    entries: dict[str, dict[str, Any]] = {}
    for name, role in users.items():
        uname = _check_user(name, role)
        plain[uname] = new_password()
        entries[uname] = {"name": uname, "password": hash_password(plain[uname]), "roles": [role]}
    cookie = {"name": COOKIE_NAME, "key": secrets.token_hex(32), "expiry_days": COOKIE_EXPIRY_DAYS}
    _dump(p, cookie, entries)
    return plain


def set_user(path: str | Path | None, username: str, role: str, password: str | None = None) -> str:
    """Add a user, or change an existing user's role and password; returns the (new, random unless given)
    password. The file must exist and be valid."""
    cfg = load_auth_config(path)
    uname = _check_user(username, role)
    password = password or new_password()
    users = {u: dict(d) for u, d in cfg.users.items()}
    users[uname] = {**users.get(uname, {}), "name": users.get(uname, {}).get("name") or uname,
                    "password": hash_password(password), "roles": [role]}
    for d in users.values():  # runtime fields streamlit-authenticator may add; never stored by us
        d.pop("failed_login_attempts", None)
        d.pop("logged_in", None)
    _dump(cfg.path, {"name": cfg.cookie_name, "key": cfg.cookie_key, "expiry_days": cfg.cookie_expiry_days},
          users)
    return password


def remove_user(path: str | Path | None, username: str) -> None:
    cfg = load_auth_config(path)
    uname = username.lower()
    if uname not in cfg.users:
        raise AuthConfigError(f"no user {username!r} in {str(cfg.path)!r} (users: {', '.join(cfg.users)}).")
    if len(cfg.users) == 1:
        raise AuthConfigError(f"{username!r} is the last user of {str(cfg.path)!r}; add another one first.")
    users = {u: dict(d) for u, d in cfg.users.items() if u != uname}
    _dump(cfg.path, {"name": cfg.cookie_name, "key": cfg.cookie_key, "expiry_days": cfg.cookie_expiry_days},
          users)


def _check_user(username: str, role: str) -> str:
    uname = str(username).strip().lower()
    if not _USERNAME.match(uname):
        raise AuthConfigError(f"{username!r} is not a valid user name: 1-32 characters, letters, digits, `_`, "
                              "`.` or `-`, starting with a letter or digit.")
    if role not in ROLES:
        raise AuthConfigError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}.")
    return uname


# ------------------------------------------------------------------------------------------------------ the gate
def decide(sharing: bool, config: AuthConfig | AuthConfigError, authenticated: bool | None,
           username: str | None, name: str | None = None) -> GateDecision:
    """What a session may see. Local mode: the app, as an editor. Sharing mode: a message when the auth file is
    unusable; the login form until the authenticator says the user is logged in; then the app with the role the
    auth file gives that user (a user removed from the file meanwhile is back at the login)."""
    if not sharing:
        return GateDecision("app", LOCAL_ACCESS)
    if isinstance(config, AuthConfigError):
        return GateDecision("no_config", message=str(config))
    role = config.role_of(username) if authenticated else None
    if role is None:
        return GateDecision("login")
    uname = (username or "").lower()
    return GateDecision("app", Access(mode="sharing", role=role, username=uname,
                                      name=str(name or config.users[uname].get("name") or uname)))
