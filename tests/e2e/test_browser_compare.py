"""Issue 19 items 5 and 6 in a real browser: the Compare page with several runs (real and synthetic data) shows
readable confusion matrices, warns about mixing datasets, draws ROC / precision-recall curves for one class at a
time (screenshot: ``test-artifacts/compare.png``); the Train page's Runs table shows every run whole and picks up
runs that appear while it is open (no reload).

Uses the fixtures of ``conftest.py`` (the app served by ``make run``, the shipped cardiac runs copied to a temporary
models folder). The runs this module adds to that folder are removed at its end.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from e2e.helpers import check_clean, settle

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "compare.png"
STEP_TIMEOUT_MS = 120_000
MIN_MATRIX_PX = 420  # a 4-class matrix with its labels and colour bar is readable from about this width


def main_area(page):
    return page.locator('[data-testid="stMain"]')


def _compare_runs(models: Path) -> list:
    from ecg_core.ml import registry

    return [r for r in registry.list_runs(models) if r.usable]


def test_compare_several_runs_real_and_synthetic(page, app_url, app_dirs):
    runs = _compare_runs(app_dirs["models"])
    sources = {r.run_id: r.data_source for r in runs}
    if len(runs) < 2 or len(set(sources.values())) < 2:
        pytest.skip(f"needs usable runs on real and on synthetic data in the models folder; found {sources}")
    page.goto(app_url + "/compare")
    settle(page)
    main = main_area(page)
    main.get_by_text("Runs to compare").first.wait_for()
    default = list(sources)[:3]
    if len({sources[r] for r in default}) < 2:  # add a run of the other dataset with the multiselect
        other = next(r for r in sources if sources[r] != sources[default[0]] and r not in default)
        box = main.locator('[data-testid="stMultiSelect"]').first
        box.locator("input").fill(other)
        page.keyboard.press("Enter")
        settle(page)
        page.keyboard.press("Escape")
        settle(page)
    text = check_clean(page)
    assert "different datasets" in text, text[:3000]
    assert "never summed" in text
    # several readable confusion matrices (two per row), not strips
    matrices = main.locator('[class*="st-key-compare_fig_confusion-"]:not([class*="pooled"])')
    n = matrices.count()
    assert n >= 3, n
    boxes = [matrices.nth(i).bounding_box() for i in range(n)]
    assert all(b["width"] >= MIN_MATRIX_PX and b["height"] >= 400 for b in boxes), boxes
    # ROC and precision-recall: one class for every run by default (one legend entry per run + chance)
    for key in ("roc", "pr"):
        chart = main.locator(f'[class*="st-key-compare_fig_{key}"]').first
        chart.scroll_into_view_if_needed()
        chart.locator(".legend").first.wait_for()
        entries = chart.locator(".legend .traces").count()
        assert 1 <= entries <= n + 1, (key, entries)
    assert "AP " in main.locator('[class*="st-key-compare_fig_pr"]').first.inner_text()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    _whole_page_shot(page, SCREENSHOT)


def _whole_page_shot(page, path: Path) -> None:
    """Streamlit scrolls inside its main area, so a "full page" screenshot is only the window: make the window as
    tall as the page for the shot, then restore it."""
    size = page.viewport_size
    height = page.evaluate("Math.max(...Array.from(document.querySelectorAll('[data-testid=stMain], "
                           "[data-testid=stMainBlockContainer], [data-testid=stAppViewContainer]'))"
                           ".map(e => e.scrollHeight))")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 50, 12_000)})
    page.wait_for_timeout(1500)  # charts re-lay out
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def _fake_failed_run(models: Path, run_id: str, created: str) -> None:
    """A run folder that lists in the registry (status failed, no model: nothing else can pick it up)."""
    d = models / run_id
    d.mkdir()
    (d / "run.json").write_text(json.dumps({"run_id": run_id, "status": "failed", "created": created,
                                            "arch": "custom_cnn",
                                            "error": "made by the browser test: this run appeared while the Train "
                                                     "page was open"}))


def test_train_runs_table_whole_and_refreshed_without_reload(page, app_url, app_dirs):
    models = app_dirs["models"]
    made = [f"e2e-fake-{i:02d}" for i in range(12)]
    try:
        page.goto(app_url + "/train")
        settle(page)
        main = main_area(page)
        main.get_by_text("Running jobs").first.wait_for()
        check_clean(page)
        for i, rid in enumerate(made):  # runs appear (e.g. queued jobs finish) while the page is open
            _fake_failed_run(models, rid, f"2099-01-01T00:00:{i:02d}")
        from ecg_core.ml import registry

        n_rows = len(registry.list_runs(models))
        table = main.locator('[data-testid="stDataFrame"]').last
        deadline = time.time() + 30
        height = 0.0
        while height < 35 * (n_rows + 1) - 5:  # redrawn without a reload, every row shown (no inner scrolling)
            assert time.time() < deadline, (f"the Runs table shows {height:.0f} px for {n_rows} runs: not redrawn "
                                            "with the new runs, or cut off")
            page.wait_for_timeout(500)
            height = table.bounding_box()["height"]
        settle(page)
        text = check_clean(page)
        assert all(f"{rid} (failed)" in text for rid in made)
        _whole_page_shot(page, REPO / "test-artifacts" / "train-runs.png")
    finally:
        for rid in made:
            shutil.rmtree(models / rid, ignore_errors=True)
