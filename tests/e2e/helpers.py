"""What every browser test shares: waiting for a script run to end, the no-traceback check, and serving the app with
the README's command (``PORT=<port> make run``) for as long as a ``with`` block lasts."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEP_TIMEOUT_MS = 120_000


def settle(page, timeout: int = STEP_TIMEOUT_MS, *, after_ms: int = 300) -> None:
    """Wait until the script run triggered by the last action has finished."""
    page.wait_for_timeout(400)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    page.wait_for_timeout(after_ms)


def check_clean(page) -> str:
    """The page's text, after asserting that it shows no traceback and no Streamlit exception."""
    text = page.inner_text("body")
    assert "Traceback" not in text, text[-2000:]
    assert "This app has encountered an error" not in text, text[-2000:]
    assert page.locator('[data-testid="stException"]').count() == 0
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_200(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"`make run` exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"no HTTP 200 from {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def serve(env: Mapping[str, str], log: Path, *, start_s: float, target: str = "run",
          make_args: tuple[str, ...] = ()) -> Iterator[str]:
    """``PORT=<port> make run`` (or ``make <target> <make_args>``) with ``env`` added to this process's
    environment; yields the URL once the app answers, and stops the whole process group at the end."""
    port = free_port()
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **env, "PORT": str(port)}
    full.pop("ECG_INSIGHT_TESTS_KEEP_HOME", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(["make", target, f"PORT={port}", *make_args], cwd=REPO, env=full, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_200(url + "/_stcore/health", proc, log, start_s)
        wait_http_200(url + "/", proc, log, 30)
        yield url
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
