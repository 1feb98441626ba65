"""Issue 18 item 3 in a real browser: the app served by ``make share`` asks for a login before any page, a viewer
cannot start training (the Train page says it needs the editor role), an editor can.

Also: a deep link shows the login, then its page; the login cookie keeps a new tab logged in until Log out.

The server is ``make share HOST=127.0.0.1 PORT=<port>``: the real target (it creates or checks the auth file, then
serves with ``ECG_INSIGHT_SHARE=1``), bound to the loopback address so that the test exposes nothing on the
network. The auth file is prepared in a temporary folder (``ECG_INSIGHT_AUTH_FILE``) with a viewer and an editor
whose passwords the test knows. Screenshots: ``test-artifacts/e2e/share-*.png``; server log:
``test-artifacts/e2e/server-share.log``.
"""

from __future__ import annotations

import time

import pytest

from e2e.helpers import STEP_TIMEOUT_MS, check_clean, serve, settle

pytestmark = pytest.mark.e2e
USERS = {"ada": ("viewer", "ada-viewer-pw-1"), "bob": ("editor", "bob-editor-pw-2")}
SERVER_START_S = 180


@pytest.fixture(scope="module")
def share_url(chromium, app_dirs, artifacts, tmp_path_factory):
    from ecg_core.core import auth

    auth_file = tmp_path_factory.mktemp("share") / "auth.yaml"
    auth.create_auth_config(auth_file, {u: role for u, (role, _) in USERS.items()})
    for user, (role, password) in USERS.items():
        auth.set_user(auth_file, user, role, password)
    env = {"ECG_INSIGHT_HOME": str(app_dirs["home"]), "ECG_INSIGHT_MODELS": str(app_dirs["models"]),
           "ECG_INSIGHT_AUTH_FILE": str(auth_file)}
    log = artifacts / "server-share.log"
    with serve(env, log, start_s=SERVER_START_S, target="share", make_args=("HOST=127.0.0.1",)) as url:
        yield url, log


def _main(page):
    return page.locator('[data-testid="stMain"]')


def _log_in(page, user: str) -> None:
    page.get_by_role("textbox", name="User name").fill(user)
    page.get_by_role("textbox", name="Password").fill(USERS[user][1])
    page.get_by_role("button", name="Log in").click()
    settle(page)
    page.locator('[data-testid="stSidebar"]').get_by_text(f"{user} · {USERS[user][0]}").wait_for()


def _open_train(page) -> str:
    page.locator('a[data-testid="stSidebarNavLink"]:has(span[label="Train"])').click()
    settle(page)
    _main(page).get_by_text("New training job").first.wait_for()
    return check_clean(page)


def test_login_then_viewer_cannot_train_and_editor_can(browser, share_url, artifacts):
    url, log = share_url
    t0 = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        # a deep link to the Train page of a fresh server: the login form only
        page.goto(url + "/train")
        settle(page)
        page.get_by_role("button", name="Log in").wait_for()
        text = check_clean(page)
        assert "Log in to ECG Insight" in text
        assert "New training job" not in text and "Start training" not in text
        assert page.locator('a[data-testid="stSidebarNavLink"]').count() == 0  # no page is listed
        page.screenshot(path=str(artifacts / "share-login.png"))

        _log_in(page, "ada")
        text = _open_train(page)
        assert "Starting a training job needs the editor role" in text, text[:2000]
        assert page.get_by_role("button", name="Start training").count() == 0
        page.screenshot(path=str(artifacts / "share-viewer-train.png"))

        page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Log out").click()
        settle(page)
        page.get_by_role("button", name="Log in").wait_for()
        assert "New training job" not in check_clean(page)

        _log_in(page, "bob")
        text = _open_train(page)
        assert "needs the editor role" not in text
        page.get_by_role("button", name="Start training").wait_for()
        page.screenshot(path=str(artifacts / "share-editor-train.png"))

        # the login cookie: a new tab is logged in (and a deep link opens its page); after Log out it is not.
        # The browser-side component sets it once mounted: wait (bounded) until the browser holds it
        deadline = time.monotonic() + 60
        while not [c for c in context.cookies() if c["name"] == "ecg_insight_auth"]:
            assert time.monotonic() < deadline, "the login cookie was never set in the browser"
            page.wait_for_timeout(250)
        tab = context.new_page()
        tab.set_default_timeout(STEP_TIMEOUT_MS)  # a new page starts with Playwright's 30 s, too short under load
        tab.goto(url + "/compare")
        settle(tab)
        tab.locator('[data-testid="stSidebar"]').get_by_text("bob · editor").wait_for()
        tab.get_by_role("heading", name="Compare runs").wait_for()
        tab.locator('[data-testid="stSidebar"]').get_by_role("button", name="Log out").click()
        settle(tab)
        tab.get_by_role("button", name="Log in").wait_for()
        tab.wait_for_timeout(1000)  # the cookie is deleted by the browser-side component
        assert not [c for c in context.cookies() if c["name"] == "ecg_insight_auth"]
        fresh = context.new_page()
        fresh.set_default_timeout(STEP_TIMEOUT_MS)
        fresh.goto(url + "/train")
        settle(fresh)
        fresh.get_by_role("button", name="Log in").wait_for()
        assert "New training job" not in check_clean(fresh)
    finally:
        context.close()
    served = log.read_text(errors="replace")
    assert "auth file:" in served and "2 users" in served  # `make share` checked the prepared file, kept it
    assert "--server.address 127.0.0.1" in served
    print(f"share browser test: {time.monotonic() - t0:.1f} s after the server answered")
