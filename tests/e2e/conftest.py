"""Fixtures of the browser test: the app served by the README's command (``make run`` with ``PORT``) in a
subprocess, with its folders in temporary directories, driven by Debian's headless Chromium through the
``playwright`` package (never a downloaded browser).

Skips, with the reason, where Chromium or playwright is missing (``scripts/install_browser.sh`` installs Chromium
as root; ``.ci/run`` calls it before ``make test``). Screenshots and the server log go to ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from e2e.helpers import STEP_TIMEOUT_MS, serve

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("ECG_INSIGHT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_S = 180  # `make run` may create .venv on a fresh machine; then the first page load


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: drives the real app in headless Chromium (deselect with -m 'not e2e')")


@pytest.fixture(scope="session")
def chromium() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"browser test skipped: no Chromium at {CHROMIUM}. Install Debian's package with "
                    "scripts/install_browser.sh (as root), or point ECG_INSIGHT_CHROMIUM to a Chromium binary.")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("browser test skipped: the playwright package is missing (pip install -r requirements-dev.txt)")
    if shutil.which("make") is None:
        pytest.skip("browser test skipped: `make` is not installed (the test starts the app with `make run`)")
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


def _usable_cardiac_runs(models: Path) -> list[Path]:
    from ecg_core.ml import registry

    # the CNN runs: the browser tests check the heatmap views, which a measurement model (the default since issue
    # 15, covered by tests/test_measure_model.py's AppTest) does not have
    return [r.path for r in registry.list_runs(models)
            if r.usable and r.meta.get("preset") == "cardiac-4" and r.meta.get("class_names") and not r.is_measurement]


def _train_tiny_run(models: Path, work: Path) -> None:
    """No usable shipped run: train a tiny one (1 epoch, 48x64) so that Explain and Compare have a model."""
    from conftest import report_like, write_image

    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml.train import run_training
    from ecg_core.ml.train_config import TrainConfig

    data = work / "train-data"
    for ci, c in enumerate(("MI", "HB", "Normal", "PMI")):
        for i in range(5):
            img = report_like(700 + 10 * ci + i, size=(320, 240))
            img[int(0.3 * 240):, :: 4 + ci] //= 2
            write_image(data / c / f"{c}_{i}.png", img)
    cfg = TrainConfig(data_dir=str(data), arch="custom_cnn", preprocess=PreprocessConfig(height=48, width=64),
                      epochs=1, batch_size=4, augment="none", val_frac=0.2, test_frac=0.2)
    run_training(cfg, models_dir=models, run_id="e2e-tiny-custom_cnn", cache_root=work / "cache")


@pytest.fixture(scope="session")
def app_dirs(tmp_path_factory) -> dict[str, Path]:
    """ECG_INSIGHT_HOME and ECG_INSIGHT_MODELS for the served app: the shipped cardiac runs are copied (read
    only by the app), or a tiny run is trained when none is usable."""
    base = tmp_path_factory.mktemp("e2e")
    dirs = {"home": base / "home", "models": base / "models", "work": base / "work"}
    for d in dirs.values():
        d.mkdir()
    for run in _usable_cardiac_runs(REPO / "models"):
        shutil.copytree(run, dirs["models"] / run.name, ignore=shutil.ignore_patterns("checkpoints", ".*"))
    if not _usable_cardiac_runs(dirs["models"]):
        _train_tiny_run(dirs["models"], dirs["work"])
    return dirs


@pytest.fixture(scope="session")
def app_url(chromium, app_dirs, artifacts) -> str:
    """The app started exactly as the README says (`PORT=<port> make run`), stopped at the end of the session."""
    env = {"ECG_INSIGHT_HOME": str(app_dirs["home"]), "ECG_INSIGHT_MODELS": str(app_dirs["models"])}
    with serve(env, artifacts / "server.log", start_s=SERVER_START_S) as url:
        yield url


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def page(browser, app_url):
    """One desktop-sized page per test module (1400 x 1200)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    pg = context.new_page()
    pg.set_default_timeout(STEP_TIMEOUT_MS)
    yield pg
    context.close()
