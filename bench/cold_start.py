"""Cold start: seconds from ``streamlit run streamlit_app.py`` to the landing page, and to "Default model ready".

Each repeat starts a fresh server (``python -m streamlit run streamlit_app.py --server.port <free port>
--server.headless true``) with a fresh temporary ``ECG_INSIGHT_HOME`` (so the first-run work, e.g. the demo
dataset, is included) and ``ECG_INSIGHT_WARMUP`` unset, then loads the page in headless Chromium (Playwright) and
measures, from the moment the server process is started,

* ``title_s``: the landing title "ECG Insight" is visible;
* ``ready_s``: the text "Default model ready" (the background warm-up of the default model finished) is visible.

``--reuse-demo`` copies a demo dataset made beforehand into each fresh home: a restart of an installed app rather
than its very first start (which creates the demo dataset, several seconds).

Target: median ``ready_s`` <= 10 s. Prints one JSON line per repeat, one with the medians, then the result line.
Exit 2 (cannot run) when Playwright or a Chromium is missing (``scripts/install_browser.sh`` installs Debian's).

    python bench/cold_start.py [--repeats 3] [--timeout 120] [--reuse-demo]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from _common import ROOT, cannot_run, emit, finish, machine

BENCH = "cold_start"
TARGET_S = 10.0
SYSTEM_CHROMIUM = os.environ.get("ECG_INSIGHT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FAILED_TEXTS = ("could not be loaded in the background", "No default model to load",
                "Background loading of the default model is off")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and everything it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}: {log.read_text()[-1500:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no HTTP 200 from {url}/_stcore/health in time: {log.read_text()[-1500:]}")


def _visible(locator) -> bool:
    try:
        return locator.count() > 0 and locator.first.is_visible()
    except Exception:  # noqa: BLE001 - the page is still being built
        return False


def _make_demo(workdir: Path) -> Path:
    """A home with the demo dataset made as the app makes it (to copy into fresh homes with --reuse-demo)."""
    home = workdir / "demo-home"
    code = ("from app_ui import common; from ecg_core.core import paths; from ecg_core.reports import synth; "
            "synth.generate_dataset(paths.demo_data_dir(), per_class=common.DEMO_PER_CLASS, seed=common.DEMO_SEED, "
            "image_format='jpg', overwrite=True)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "ECG_INSIGHT_HOME": str(home)},
                   check=True, capture_output=True, timeout=600)
    return home


def one_start(browser, timeout: float, workdir: Path, demo_home: Path | None = None) -> dict:
    """Start one server, load the page, measure; the server is always stopped."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=workdir))
    if demo_home is not None:
        shutil.copytree(demo_home, home, dirs_exist_ok=True)
    log = workdir / f"server-{home.name}.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ECG_INSIGHT_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("ECG_INSIGHT_WARMUP", None)
    env.pop("ECG_INSIGHT_TESTS_KEEP_HOME", None)
    cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    row: dict = {"port": port}
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = t0 + timeout
        _wait_healthy(url, proc, log, deadline)
        row["server_s"] = round(time.perf_counter() - t0, 2)
        page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
        title = page.get_by_role("heading", name="ECG Insight")
        ready = page.get_by_text("Default model ready")
        failed = [page.get_by_text(t) for t in FAILED_TEXTS]
        while time.perf_counter() < deadline:
            now = time.perf_counter() - t0
            if "title_s" not in row and _visible(title):
                row["title_s"] = round(now, 2)
            if _visible(ready):
                row["ready_s"] = round(now, 2)
                row.setdefault("title_s", round(now, 2))
                found = re.search(r"loaded in ([0-9.]+) s", ready.first.inner_text())
                if found:  # the warm-up's own time, from its thread start to the traced Grad-CAM
                    row["warmup_s"] = float(found[1])
                break
            bad = next((f for f in failed if _visible(f)), None)
            if bad is not None:
                row["error"] = bad.first.inner_text()[:500]
                break
            page.wait_for_timeout(50)
        else:
            row["error"] = f"'Default model ready' not visible within {timeout:.0f} s"
        row["ready"] = "ready_s" in row
    finally:
        context.close()
        _stop(proc)
    if not row["ready"]:
        row["server_log_tail"] = log.read_text(errors="replace")[-1500:]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="server starts to measure (default 3)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per start (default 120)")
    ap.add_argument("--reuse-demo", action="store_true",
                    help="copy a demo dataset made beforehand into each fresh home (a restart, not a first start)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        return cannot_run(BENCH, f"--repeats must be >= 1; received {args.repeats}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return cannot_run(BENCH, "the playwright package is missing (pip install -r requirements-dev.txt)")
    chromium = SYSTEM_CHROMIUM if os.path.isfile(SYSTEM_CHROMIUM) and os.access(SYSTEM_CHROMIUM, os.X_OK) else None
    workdir = Path(tempfile.mkdtemp(prefix="ecg-insight-cold-start-"))
    rows = []
    try:
        with sync_playwright() as p:
            try:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            except Exception as e:  # noqa: BLE001 - no browser: say so and how to get one
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
                return cannot_run(BENCH, f"no Chromium to drive: {SYSTEM_CHROMIUM} is missing and Playwright's own "
                                         f"browser cannot start ({first}); run scripts/install_browser.sh as root")
            try:
                demo_home = _make_demo(workdir) if args.reuse_demo else None
                for i in range(args.repeats):
                    try:
                        row = one_start(browser, args.timeout, workdir, demo_home)
                    except Exception as e:  # noqa: BLE001 - one failed start is a measurement, not a crash
                        row = {"ready": False, "error": f"{type(e).__name__}: {e}"[:1500]}
                    rows.append(emit(BENCH, repeat=i + 1, **row))
            finally:
                browser.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = [r for r in rows if r.get("ready")]
    if not ok:
        emit(BENCH, result=True, ratio=None, target=TARGET_S, passed=False,
             reason="'Default model ready' was never reached; see the error of each repeat", machine=machine())
        return 1
    title_s = statistics.median(r["title_s"] for r in ok)
    ready_s = statistics.median(r["ready_s"] for r in ok)
    emit(BENCH, median_title_s=round(title_s, 2), median_ready_s=round(ready_s, 2), repeats=len(rows),
         failed_repeats=len(rows) - len(ok), reuse_demo=args.reuse_demo)
    code = finish(BENCH, ratio=ready_s, target=TARGET_S, higher_is_better=False, seconds=round(ready_s, 2),
                  title_seconds=round(title_s, 2), unit="s", reuse_demo=args.reuse_demo)
    return code if len(ok) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
