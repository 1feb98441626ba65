"""The Arrhythmia page in a real browser (issue 19.8): the uploader keeps the files dropped before, so a second
record dropped after a first one must replace it (no "save_upload: received 2 headers"); a 100 Hz 12-lead record
is flagged (rate, source), its detected beats read "no annotation", and the lead can be chosen.

Also the Explain page's faithfulness checks (issue 19.7): one coloured verdict per test with its rule, and an
overall line that is green only when every test passed.

Own server and folders (the shipped arrhythmia and cardiac runs copied into a temporary models folder), so that it
neither depends on nor disturbs ``test_browser.py``'s session; screenshots go to ``test-artifacts/arrhythmia/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from e2e.helpers import serve, settle

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-artifacts" / "arrhythmia"
RUN = REPO / "models" / "arrhythmia6-shallow_cnn-ds1"
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def arr_app(chromium, tmp_path_factory):
    """``make run`` on a free port with a private home and a models folder holding the shipped arrhythmia run."""
    if not (RUN / "model.keras").is_file():
        pytest.skip(f"the shipped arrhythmia run {RUN.name} is missing")
    base = tmp_path_factory.mktemp("e2e-arr")
    models = base / "models"
    for run in [RUN, *sorted((REPO / "models").glob("cardiac4-*"))]:
        if (run / "model.keras").is_file():
            shutil.copytree(run, models / run.name, ignore=shutil.ignore_patterns("checkpoints", ".*"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    env = {"ECG_INSIGHT_HOME": str(base / "home"), "ECG_INSIGHT_MODELS": str(models),
           "ECG_INSIGHT_SHARED_DATA": str(base / "no-shared-data"), "ECG_INSIGHT_WARMUP": "0"}
    with serve(env, SHOTS / "server.log", start_s=180) as url:
        yield url, base


def _clean(page) -> str:
    text = page.inner_text('[data-testid="stMain"]')
    assert "Traceback" not in text and page.locator('[data-testid="stException"]').count() == 0, text[-2000:]
    return text


def test_upload_twice_then_a_100hz_12_lead_record(browser, arr_app):
    from test_page_arrhythmia import _twelve_lead_100hz  # tests/ is on sys.path (tests/conftest.py)

    from ecg_core.signals.demo import ensure_demo_records

    url, base = arr_app
    demo = ensure_demo_records(base / "demo")[0].parent
    twelve = _twelve_lead_100hz(demo, base / "ptb")
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(url + "/arrhythmia")
        settle(page)
        page.get_by_text("Upload a record").click()
        settle(page)
        chooser = page.locator('[data-testid="stFileUploader"] input[type="file"]')
        chooser.set_input_files([str(demo / f"demo_pvc{e}") for e in (".hea", ".dat", ".atr")])
        settle(page)
        text = _clean(page)
        assert "failed" not in text, text[:2000]
        assert "35" in page.locator('[data-testid="stMetric"]').all_inner_texts()[-1]  # annotated beats
        # a second record dropped on the same uploader: the browser keeps the first one's files
        chooser.set_input_files([{"name": n, "mimeType": "application/octet-stream", "buffer": b} for n, b in twelve])
        settle(page)
        page.get_by_text("Earlier files are not used").wait_for()
        text = _clean(page)
        assert "save_upload" not in text and "2 headers" not in text and "failed" not in text, text[:2000]
        assert "sampled at 100 Hz" in text and "12-lead recording" in text
        assert "no annotation" in text and "(None)" not in text
        page.screenshot(path=str(SHOTS / "01-12lead-100hz-warned.png"), full_page=True)
        # the lead selector: II by default, V1 on request (with its own warning)
        lead = page.locator('[data-testid="stSelectbox"]').filter(has_text="Lead").first
        lead.click()
        page.get_by_role("option", name="V1", exact=True).click()
        settle(page)
        assert "Lead V1 is shown" in _clean(page)
        page.screenshot(path=str(SHOTS / "02-lead-v1.png"), full_page=True)
        # the segment heading and the Grad-CAM profiles with their band labels (one line each, inside the panel)
        heading = page.locator('[data-testid="stHeading"]').filter(has_text="no annotation").first
        heading.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "03-no-annotation-heading.png"))
        charts = page.locator('[data-testid="stPlotlyChart"]')
        charts.last.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        charts.last.screenshot(path=str(SHOTS / "04-cam-profile-labels.png"))
    finally:
        context.close()


def test_faithfulness_verdicts_are_explicit(browser, arr_app):
    """Issue 19.7: the curves' numbers above a green "sanity check passed" box, whatever deletion and insertion
    said; now each test has its own pass / fail / inconclusive box with the rule that decided it."""
    url, _ = arr_app
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(url + "/explain")
        settle(page)
        page.get_by_text("Model output:").first.wait_for()
        page.get_by_role("button", name="Run the faithfulness checks").click()
        settle(page)
        page.get_by_text("faithfulness tests passed").wait_for()
        text = _clean(page)
        for test in ("Deletion vs random: ", "Insertion vs random: ", "Model-randomisation sanity check: "):
            assert test in text, text[-3000:]
        assert text.count("Rule: ") >= 3
        overall = page.locator('[data-testid="stAlert"]').filter(has_text="faithfulness tests passed")
        overall.evaluate("el => el.scrollIntoView({block: 'end'})")  # the verdicts above it, on one screen
        page.wait_for_timeout(500)
        page.screenshot(path=str(SHOTS / "05-explain-faithfulness-verdicts.png"))
    finally:
        context.close()
