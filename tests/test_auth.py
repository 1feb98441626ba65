"""Issue 18 item 3, the sharing mode with a login: the pure parts (``ecg_core.core.auth``: hashing, the auth file,
sharing-mode detection, the gate's decision, roles), the ``auth`` commands, ``make share``, and AppTests of the gate
(``app_ui.auth``): the login form alone in sharing mode, a message without an auth file, a viewer without the
training / delete / import controls, an editor with them. The browser test is ``tests/e2e/test_browser_share.py``."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from ecg_core.cli.app import main as cli_main
from ecg_core.core import auth

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300
PASSWORDS = {"ada": "viewer-pass-1", "bob": "editor-pass-2"}


@pytest.fixture(scope="module")
def auth_path(tmp_path_factory) -> Path:
    """An auth file with a viewer ``ada`` and an editor ``bob`` with known passwords."""
    p = tmp_path_factory.mktemp("auth") / "auth.yaml"
    auth.create_auth_config(p, {"ada": auth.VIEWER, "bob": auth.EDITOR})
    for user, password in PASSWORDS.items():
        auth.set_user(p, user, auth.VIEWER if user == "ada" else auth.EDITOR, password)
    return p


# ------------------------------------------------------------------------------------------------------ hashing
def test_hash_verifies_and_is_what_the_authenticator_checks():
    from streamlit_authenticator import Hasher

    h = auth.hash_password("s3cret-Pass")
    assert h.startswith("$2") and h != "s3cret-Pass"
    assert auth.verify_password("s3cret-Pass", h) and Hasher.check_pw("s3cret-Pass", h)
    assert not auth.verify_password("s3cret-pass", h)
    assert not auth.verify_password("x", "not a hash")
    assert auth.hash_password("s3cret-Pass") != h  # salted
    with pytest.raises(auth.AuthConfigError, match="empty"):
        auth.hash_password("")


# ------------------------------------------------------------------------------------------------ the auth file
def test_created_file_is_0600_with_both_roles_and_hashed_random_passwords(tmp_path):
    p = tmp_path / "home" / "auth.yaml"
    plain = auth.create_auth_config(p)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert sorted(p.parent.iterdir()) == [p]  # written atomically: no temporary file left
    text = p.read_text()
    cfg = auth.load_auth_config(p)
    assert {u: auth.user_role(d) for u, d in cfg.users.items()} == {"viewer": "viewer", "editor": "editor"}
    assert set(plain) == {"viewer", "editor"} and plain["viewer"] != plain["editor"]
    for user, password in plain.items():
        assert len(password) >= 16 and password not in text  # only the hash is stored
        assert auth.verify_password(password, cfg.users[user]["password"])
    assert len(cfg.cookie_key) >= 32 and cfg.cookie_key != auth.load_auth_config(_fresh(tmp_path)).cookie_key
    with pytest.raises(auth.AuthConfigError, match="already exists"):
        auth.create_auth_config(p)
    assert auth.load_auth_config(p).users == cfg.users  # untouched


def _fresh(tmp_path: Path) -> Path:
    p = tmp_path / "other" / "auth.yaml"
    auth.create_auth_config(p)
    return p


def test_set_user_changes_password_and_role_and_remove_user(tmp_path):
    p = tmp_path / "auth.yaml"
    auth.create_auth_config(p)
    new = auth.set_user(p, "Viewer", auth.EDITOR)  # names are case-insensitive, like the authenticator's
    cfg = auth.load_auth_config(p)
    assert cfg.role_of("viewer") == auth.EDITOR and auth.verify_password(new, cfg.users["viewer"]["password"])
    auth.set_user(p, "carol", auth.VIEWER, "carol-pass")
    assert auth.load_auth_config(p).role_of("carol") == auth.VIEWER
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    auth.remove_user(p, "carol")
    assert "carol" not in auth.load_auth_config(p).users
    auth.remove_user(p, "editor")
    with pytest.raises(auth.AuthConfigError, match="last user"):
        auth.remove_user(p, "viewer")
    with pytest.raises(auth.AuthConfigError, match="unknown role"):
        auth.set_user(p, "dan", "admin")
    with pytest.raises(auth.AuthConfigError, match="not a valid user name"):
        auth.set_user(p, "../x", auth.VIEWER)


GOOD = {"cookie": {"name": "c", "key": "k" * 40, "expiry_days": 1},
        "credentials": {"usernames": {"ada": {"name": "Ada", "password": "$2b$12$" + "a" * 53, "roles": ["viewer"]}}}}


def _with(**changes):
    import copy

    d = copy.deepcopy(GOOD)
    user = d["credentials"]["usernames"]["ada"]
    for k, v in changes.items():
        if k == "key":
            d["cookie"]["key"] = v
        elif k == "users":
            d["credentials"]["usernames"] = v
        else:
            user[k] = v
    return yaml.safe_dump(d)


@pytest.mark.parametrize("text, fragment", [
    (None, "no auth file"),
    ("cookie: [unclosed", "cannot be read as YAML"),
    ("- a list", "not a mapping"),
    (_with(key="short"), "at least 32 characters"),
    (_with(users={}), "no users"),
    (_with(password="plain-text-password"), "not a bcrypt hash"),
    (_with(roles=["admin"]), "roles: \\[viewer\\]"),
    (_with(roles=[]), "roles: \\[viewer\\]"),
], ids=["missing", "bad-yaml", "not-mapping", "short-cookie-key", "no-users", "plain-password", "unknown-role",
        "no-role"])
def test_bad_auth_file_gives_a_clear_error(tmp_path, text, fragment):
    p = tmp_path / "auth.yaml"
    if text is not None:
        p.write_text(text)
    with pytest.raises(auth.AuthConfigError, match=fragment) as e:
        auth.load_auth_config(p)
    assert str(p) in str(e.value)
    assert auth.load_auth_config(_write(tmp_path / "good.yaml", yaml.safe_dump(GOOD))).role_of("ADA") == "viewer"


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def test_auth_file_location(monkeypatch, tmp_path):
    monkeypatch.delenv(auth.AUTH_FILE_ENV, raising=False)
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    assert auth.auth_file() == tmp_path / "home" / "auth.yaml"
    monkeypatch.setenv(auth.AUTH_FILE_ENV, str(tmp_path / "elsewhere.yaml"))
    assert auth.auth_file() == tmp_path / "elsewhere.yaml"


# --------------------------------------------------------------------------------------- sharing mode, the gate
@pytest.mark.parametrize("address, share_env, sharing", [
    ("127.0.0.1", "", False), ("localhost", "", False), ("::1", "", False), ("[::1]", "", False),
    ("127.0.0.2", "", False),
    (None, "", True), ("", "", True), ("0.0.0.0", "", True), ("::", "", True), ("192.168.1.20", "", True),
    ("my-host.example", "", True),
    ("127.0.0.1", "1", True), ("127.0.0.1", "0", False),
])
def test_sharing_mode(address, share_env, sharing):
    assert auth.sharing_mode(address, {auth.SHARE_ENV: share_env}) is sharing


def test_decide(auth_path):
    cfg = auth.load_auth_config(auth_path)
    local = auth.decide(False, auth.AuthConfigError("x"), None, None)
    assert local.show == "app" and local.access == auth.LOCAL_ACCESS and local.access.allows(auth.EDITOR)
    missing = auth.decide(True, auth.AuthConfigError("no auth file at 'x'"), True, "ada")
    assert missing.show == "no_config" and missing.access is None and "no auth file" in missing.message
    for status in (None, False):
        assert auth.decide(True, cfg, status, "ada") == auth.GateDecision("login")
    assert auth.decide(True, cfg, True, "mallory").show == "login"  # not (or no longer) in the auth file
    viewer = auth.decide(True, cfg, True, "ada", "Ada L.").access
    assert (viewer.mode, viewer.role, viewer.username, viewer.name) == ("sharing", "viewer", "ada", "Ada L.")
    assert viewer.allows(auth.VIEWER) and not viewer.allows(auth.EDITOR)
    assert auth.decide(True, cfg, True, "bob").access.allows(auth.EDITOR)


@pytest.mark.parametrize("role, needed, ok", [
    ("editor", "editor", True), ("editor", "viewer", True), ("viewer", "viewer", True),
    ("viewer", "editor", False), (None, "viewer", False), ("admin", "viewer", False), ("editor", "root", False),
])
def test_role_allows(role, needed, ok):
    assert auth.role_allows(role, needed) is ok


# ------------------------------------------------------------------------------------- commands, make, git
def test_cli_init_add_user_list(tmp_path, capsys):
    p = tmp_path / "a" / "auth.yaml"
    assert cli_main(["auth", "init", "--file", str(p)]) == 0
    out = capsys.readouterr().out
    cfg = auth.load_auth_config(p)
    shown = dict(line.split() for line in out.splitlines() if line.startswith("  "))
    assert set(shown) == {"viewer", "editor"}
    assert all(auth.verify_password(shown[u], cfg.users[u]["password"]) for u in shown)
    assert "add-user NAME --role viewer|editor" in out
    assert cli_main(["auth", "init", "--if-missing", "--file", str(p)]) == 0  # kept
    assert auth.load_auth_config(p).users == cfg.users
    assert cli_main(["auth", "init", "--file", str(p)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["auth", "add-user", "carol", "--role", "editor", "--file", str(p)]) == 0
    pw = capsys.readouterr().out.split("password (shown only now): ")[1].strip()
    assert auth.verify_password(pw, auth.load_auth_config(p).users["carol"]["password"])
    assert cli_main(["auth", "list", "--file", str(p)]) == 0
    assert "carol        editor" in capsys.readouterr().out
    p.write_text("credentials: {usernames: {x: {password: plain, roles: [viewer]}}}\ncookie: {key: " + "k" * 40 + "}")
    assert cli_main(["auth", "init", "--if-missing", "--file", str(p)]) == 2  # an unusable file is not kept silently
    assert "not a bcrypt hash" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_share_creates_the_auth_file_then_serves_on_every_interface_with_the_login():
    out = subprocess.run(["make", "-n", "--no-print-directory", "share", "PORT=8599"], cwd=REPO, capture_output=True,
                         check=False, text=True, timeout=30).stdout
    lines = [ln for ln in out.splitlines() if "ecg_core auth" in ln or "run" in ln.split()]
    assert any("-m ecg_core auth init --if-missing" in ln for ln in lines), out
    assert any(ln.startswith("ECG_INSIGHT_SHARE=1") and "HOST=0.0.0.0" in ln and "PORT=8599" in ln
               for ln in lines), out
    local = subprocess.run(["make", "-n", "--no-print-directory", "share", "HOST=127.0.0.1"], cwd=REPO,
                           capture_output=True, check=False, text=True, timeout=30).stdout
    assert "HOST=127.0.0.1" in local and "ECG_INSIGHT_SHARE=1" in local


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_auth_files_are_never_committed():
    for rel in (".ecg_insight/auth.yaml", "auth.yaml", "elsewhere/class.auth.yaml"):
        r = subprocess.run(["git", "check-ignore", "-q", rel], check=False, cwd=REPO)
        assert r.returncode == 0, f"{rel} is not ignored by .gitignore"


# ------------------------------------------------------------------------------------------- AppTest of the gate
@pytest.fixture
def shared_app(monkeypatch, auth_path, tmp_path):
    """The entry script in sharing mode (ECG_INSIGHT_SHARE=1) with the module's auth file and an empty models
    folder."""
    monkeypatch.setenv(auth.SHARE_ENV, "1")
    monkeypatch.setenv(auth.AUTH_FILE_ENV, str(auth_path))
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(tmp_path / "models"))

    def make(**state) -> AppTest:
        at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=TIMEOUT)
        for k, v in state.items():
            at.session_state[k] = v
        return at.run()

    return make


def _logged_in(user: str) -> dict:
    """The session keys streamlit-authenticator sets after a successful login."""
    return {"authentication_status": True, "username": user, "name": user.title(), "logout": None}


def _labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button] + [b.label for b in at.sidebar.button]


def test_sharing_mode_shows_the_login_form_and_no_page(shared_app):
    at = shared_app()
    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["User name", "Password"] and "Log in" in _labels(at)
    assert not at.title and not at.sidebar.selectbox  # no page content, no dataset picker
    assert "Research and education use only" in " ".join(c.value for c in at.caption)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(str(REPO / "pages" / "train.py"))  # no page script of the app is reachable


def test_login_form_logs_in_a_viewer_and_refuses_a_wrong_password(shared_app):
    at = shared_app()
    at.text_input[0].input("ada")
    at.text_input[1].input("wrong")
    at.button[0].click().run()
    assert "Wrong user name or password." in [e.value for e in at.error] and not at.title
    at.text_input[0].input("ada")
    at.text_input[1].input(PASSWORDS["ada"])
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["🫀 ECG Insight"]
    assert "👤 **ada** · viewer" in [m.value for m in at.sidebar.markdown]
    assert "Log out" in _labels(at)


def test_without_auth_file_a_message_and_no_page(shared_app, monkeypatch, tmp_path):
    monkeypatch.setenv(auth.AUTH_FILE_ENV, str(tmp_path / "missing.yaml"))
    at = shared_app()
    assert not at.exception, at.exception
    msg = " ".join(e.value for e in at.error)
    assert "no auth file" in msg and "make share" in msg and "auth add-user" in msg
    assert not at.text_input and not at.sidebar.selectbox
    assert [t.value for t in at.title] == ["🔒 ECG Insight: sharing mode"]


def test_viewer_has_no_training_delete_or_import_controls(shared_app, tiny_dataset):
    at = shared_app(**_logged_in("ada"), app_dataset_pick="Upload a zip...")
    assert not at.exception, at.exception
    assert "👤 **Ada** · viewer" in [m.value for m in at.sidebar.markdown] and "Log out" in _labels(at)
    assert "Importing a dataset needs the editor role" in " ".join(i.value for i in at.sidebar.info)
    assert not at.get("file_uploader")
    at = shared_app(**_logged_in("ada"), app_dataset_root=str(tiny_dataset))
    at.switch_page(str(REPO / "pages" / "train.py")).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["🏋️ Train"]
    assert "Start training" not in _labels(at)
    infos = " ".join(i.value for i in at.info)
    assert "Starting a training job needs the editor role" in infos and "**ada** (viewer)" in infos


def test_editor_has_the_start_button(shared_app, tiny_dataset):
    at = shared_app(**_logged_in("bob"), app_dataset_root=str(tiny_dataset))
    at.switch_page(str(REPO / "pages" / "train.py")).run()
    assert not at.exception, at.exception
    assert "Start training" in _labels(at)
    assert "editor role" not in " ".join(i.value for i in at.info)


def test_editor_can_import_a_dataset(shared_app):
    at = shared_app(**_logged_in("bob"), app_dataset_pick="Upload a zip...")
    assert not at.exception, at.exception
    assert at.get("file_uploader") and "editor role" not in " ".join(i.value for i in at.sidebar.info)


def test_a_user_removed_from_the_auth_file_is_logged_out(shared_app, tmp_path, monkeypatch):
    p = tmp_path / "auth.yaml"
    auth.create_auth_config(p, {"ada": auth.VIEWER, "bob": auth.EDITOR})
    monkeypatch.setenv(auth.AUTH_FILE_ENV, str(p))
    at = shared_app(**_logged_in("bob"))
    assert [t.value for t in at.title] == ["🫀 ECG Insight"]
    auth.remove_user(p, "bob")
    at.run()
    assert not at.title and [t.label for t in at.text_input] == ["User name", "Password"]


def test_local_mode_has_no_login(monkeypatch):
    monkeypatch.delenv(auth.SHARE_ENV, raising=False)
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["🫀 ECG Insight"]
    assert "Log in" not in _labels(at) and "Log out" not in _labels(at)


def _import_as_viewer():
    import streamlit as st

    from app_ui import common

    st.session_state.update({"authentication_status": True, "username": "ada", "name": "Ada", "logout": None})
    st.session_state["result"] = common.import_zip(b"PK\x05\x06" + b"\0" * 18, "class.zip")


def test_import_zip_refuses_a_viewer_on_the_server(monkeypatch, auth_path, tmp_path):
    """The action itself checks the role (not only the hidden uploader)."""
    monkeypatch.setenv(auth.SHARE_ENV, "1")
    monkeypatch.setenv(auth.AUTH_FILE_ENV, str(auth_path))
    at = AppTest.from_function(_import_as_viewer, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert at.session_state["result"] == ""
    assert "Importing a dataset needs the editor role" in " ".join(e.value for e in at.sidebar.error)


def _actions_as(user: str):
    import streamlit as st

    from app_ui import auth as app_auth

    st.session_state.update({"authentication_status": True, "username": user, "name": user, "logout": None})
    st.write(f"can_edit={app_auth.can_edit()}")
    app_auth.ensure_role(app_auth.EDITOR, "Deleting a run")
    st.write("the action ran")


@pytest.mark.parametrize("user, runs", [("ada", False), ("bob", True), ("mallory", False)])
def test_ensure_role_stops_the_action_on_the_server(monkeypatch, auth_path, user, runs):
    monkeypatch.setenv(auth.SHARE_ENV, "1")
    monkeypatch.setenv(auth.AUTH_FILE_ENV, str(auth_path))
    at = AppTest.from_function(_actions_as, args=(user,), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    shown = [m.value for m in at.markdown]
    assert f"can_edit={runs}" in shown
    assert ("the action ran" in shown) is runs
    if not runs:
        assert "Deleting a run needs the editor role" in at.error[0].value
