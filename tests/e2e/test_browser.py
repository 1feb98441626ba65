"""The real app in a real browser: a deep link as the first visit -> landing -> Data -> Preprocess (uploads: a
broken file, then a good one) -> sidebar zip import (hostile archive) -> Explain (upload via the file chooser,
prediction and heatmap) -> Compare.

One browser page walks through the steps in order, like a user; every step asserts visible text, that no
traceback or Streamlit error box is shown, and saves a screenshot to ``test-artifacts/e2e/NN-step.png``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from test_bad_inputs import EVIL_TOKEN, traversal_zip, truncated_jpeg

from e2e.helpers import check_clean, settle

pytestmark = pytest.mark.e2e
STEP_TIMEOUT_MS = 120_000
CLASS_NAMES = ("Myocardial Infarction", "Abnormal Heartbeat", "Normal", "History of MI")
TIMINGS: dict[str, float] = {}
HEADLINES: dict[str, str] = {}  # "Model output: <class> (<p>%)" per sample, seen by one user alone (test_05)


# ------------------------------------------------------------------------------------------------------ helpers
def shot(page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def go(page, title: str) -> None:
    """Click a page in the sidebar navigation."""
    page.locator(f'a[data-testid="stSidebarNavLink"]:has(span[label="{title}"])').click()
    settle(page)


def main_area(page):
    return page.locator('[data-testid="stMain"]')


def timed(name: str):
    class _T:
        def __enter__(self):
            self.t0 = time.time()

        def __exit__(self, *exc):
            TIMINGS[name] = time.time() - self.t0

    return _T()


# -------------------------------------------------------------------------------------------------------- steps
def test_00_deep_link_on_a_fresh_server(page, artifacts, app_url):
    """The first visit after a start is a bookmark of the Data page: it must get the real app (navigation,
    dataset picker, disclaimer), not Streamlit's pages-folder fallback (see app_ui.common)."""
    with timed("deep link (first use: demo dataset generated)"):
        page.goto(app_url + "/data")
        settle(page, timeout=300_000)  # first use: the demo dataset is generated (sidebar spinner), then scanned
        main_area(page).get_by_text("Leakage check passed").wait_for()
    check_clean(page)
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert "Dataset" in sidebar and "Research and education use only" in sidebar, sidebar
    assert "streamlit app" not in sidebar.lower(), sidebar
    shot(page, artifacts, "00-deep-link-data")


def test_01_landing(page, artifacts, app_url):
    with timed("landing"):
        page.goto(app_url)
        page.get_by_text("Research and education use only").first.wait_for()
        settle(page)
    text = check_clean(page)
    assert "Explore, train and explain CNNs on 12-lead ECG report images" in text
    assert "demo-data" in page.locator('[data-testid="stSidebar"]').inner_text()
    shot(page, artifacts, "01-landing")


def test_02_data(page, artifacts):
    with timed("data"):
        go(page, "Data")
        main_area(page).get_by_text("Leakage check passed").wait_for()
    text = check_clean(page)
    for label in ("files", "distinct images", "duplicate groups", "Leak-free split"):
        assert label in text
    shot(page, artifacts, "02-data")


def _upload(page, locator, name: str, data: bytes, mime: str) -> None:
    locator.locator('input[type="file"]').set_input_files({"name": name, "mimeType": mime, "buffer": data})
    settle(page)


def test_03_preprocess_uploads(page, artifacts, app_dirs):
    with timed("preprocess"):
        go(page, "Preprocess")
        main_area(page).locator('[data-testid="stRadio"]').get_by_text("Upload", exact=True).click()
        settle(page)
        uploader = main_area(page).locator('[data-testid="stFileUploader"]')
        _upload(page, uploader, "truncated.jpg", truncated_jpeg(), "image/jpeg")
        error = main_area(page).locator('[data-testid="stAlertContentError"]')
        error.first.wait_for()
    assert "Loading the image failed: truncated.jpg: the image is damaged or truncated" in error.first.inner_text()
    check_clean(page)
    shot(page, artifacts, "03-preprocess-broken-upload")
    sample = _sample_report(app_dirs)
    _upload(page, uploader, sample.name, sample.read_bytes(), "image/jpeg")
    main_area(page).get_by_text("before:").first.wait_for()
    text = check_clean(page)
    assert "Every step" in text and "Loading the image failed" not in text
    shot(page, artifacts, "04-preprocess-good-upload")


def test_04_sidebar_zip_import(page, artifacts, app_dirs):
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.locator('[data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="Upload a zip...").click()
    settle(page)
    _upload(page, sidebar.locator('[data-testid="stFileUploader"]'), "traversal.zip", traversal_zip(),
            "application/zip")
    warning = sidebar.locator('[data-testid="stAlertContentWarning"]')
    warning.first.wait_for()
    assert "entries were not imported" in warning.first.inner_text()
    assert "unsafe path" in warning.first.inner_text()
    check_clean(page)
    home = app_dirs["home"]
    assert not [p for p in home.parent.rglob("*evil*")], "an escaping zip entry was written"
    assert not list(Path("/tmp").glob(f"{EVIL_TOKEN}*"))
    imported = sorted(p.relative_to(home).as_posix() for p in (home / "uploads").rglob("*.png"))
    assert len(imported) == 4 and all(re.match(r"uploads/s-[\w-]+/zip-", p) for p in imported), imported  # per session
    shot(page, artifacts, "05-sidebar-zip-import")
    # back to the demo dataset for the next steps
    sidebar.locator('[data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="Demo: synthetic reports").click()
    settle(page)


def _sample_report(app_dirs) -> Path:
    """A synthetic report (myocardial infarction) from the demo dataset the app generated on first use."""
    demo = app_dirs["home"] / "demo-data"
    samples = sorted(p for p in demo.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    assert samples, f"no demo report in {demo}"
    mi = [p for p in samples if "myocardial" in p.name.lower()]
    return (mi or samples)[0]


def _other_report(app_dirs) -> Path:
    """A report of another class (normal) from the demo dataset."""
    demo = app_dirs["home"] / "demo-data"
    return sorted(p for p in demo.rglob("*") if p.suffix.lower() in (".jpg", ".png") and p.parent.name == "normal")[0]


def test_05_explain(page, artifacts, app_dirs):
    with timed("explain"):
        go(page, "Explain")
        text = check_clean(page)
        assert "coming next" not in text, text[:2000]  # the Explain page, not a placeholder
        main = main_area(page)
        main.locator('[data-testid="stRadio"]').get_by_text("Upload", exact=True).click()  # key explain_source
        settle(page)
        uploader = main.locator('[data-testid="stFileUploader"]').first  # key explain_upload
        with page.expect_file_chooser() as chooser:
            uploader.locator('[data-testid="stFileUploaderDropzone"] button').click()
        chooser.value.set_files(str(_sample_report(app_dirs)))
        settle(page, timeout=240_000)
        main.get_by_text("Model output:").wait_for()
    text = check_clean(page)
    output = re.search(r"Model output: (.+?) \((\d+)%\)", text)
    assert output and output[1] in CLASS_NAMES, text[:3000]
    assert "Input check: recognised as an ECG report" in text
    assert "on the report (shown at" in text  # the heatmap overlay's caption
    assert main.locator('[data-testid="stImage"]').count() >= 1
    assert main.locator('[data-testid="stPlotlyChart"]').count() >= 1  # class probabilities
    shot(page, artifacts, "06-explain")
    overlay = main.locator('[data-testid="stImage"]').filter(has_text="on the report (shown at").first
    overlay.scroll_into_view_if_needed()
    assert overlay.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    shot(page, artifacts, "07-explain-heatmap")
    HEADLINES["a"] = output[0]
    # a second report in the same session (model cached): the reference for the two-user step below
    uploader.locator('input[type="file"]').set_input_files(str(_other_report(app_dirs)))
    settle(page, timeout=240_000)
    main.get_by_text("Model output:").wait_for()
    second = re.search(r"Model output: (.+?) \((\d+)%\)", check_clean(page))
    assert second and second[1] in CLASS_NAMES
    HEADLINES["b"] = second[0]


def test_05b_reading(page, artifacts):
    """The Reading view of the report still open on the Explain page: traces over the report, tables, criteria."""
    with timed("reading"):
        main = main_area(page)
        main.get_by_text("Read the traces and measure them", exact=False).click()  # key explain_reading
        settle(page, timeout=240_000)
        main.get_by_text("Criteria that fire").wait_for()
    text = check_clean(page)
    assert "traces pass the quality check" in text
    assert "traces read off the report" in text  # the image caption
    assert "Signals (WFDB zip)" in text and "Measurements (CSV)" in text
    assert main.locator('[data-testid="stDataFrame"]').count() >= 2
    shot(page, artifacts, "07b-explain-reading")


def test_06_compare(page, artifacts):
    with timed("compare"):
        go(page, "Compare")
        main_area(page).get_by_text("Runs to compare").first.wait_for()
    text = check_clean(page)
    assert "Compare runs" in text
    shot(page, artifacts, "08-compare")


def _explain_upload(page, app_url: str, sample: Path, *, wait: bool) -> None:
    page.goto(app_url + "/explain")
    settle(page)
    main = main_area(page)
    main.locator('[data-testid="stRadio"]').get_by_text("Upload", exact=True).click()
    settle(page)
    with page.expect_file_chooser() as chooser:
        main.locator('[data-testid="stFileUploader"]').first.locator('[data-testid="stFileUploaderDropzone"] button'
                                                                    ).click()
    chooser.value.set_files(str(sample))
    if wait:
        settle(page, timeout=240_000)


def test_07_two_users_explain_while_training(browser, app_url, app_dirs, artifacts):
    """Two browser sessions upload different reports at the same time while a training job runs in the same
    registry: each sees its own prediction, and the shared model files are only read."""
    import hashlib

    from conftest import report_like, write_image

    from ecg_core.ml import jobs

    if len(HEADLINES) < 2:
        pytest.skip("needs the single-user Explain step (test_05) as the reference")
    models = app_dirs["models"]
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in models.rglob("model.keras")}
    data = app_dirs["work"] / "busy-ds"
    for ci, c in enumerate(("MI", "HB", "Normal", "PMI")):
        for i in range(4):
            write_image(data / c / f"{i}.png", report_like(950 + 10 * ci + i, size=(320, 240)))
    args = jobs.train_args("e2e-busy", models, str(data), "custom_cnn", options={
        "height": 96, "width": 128, "epochs": 300, "batch_size": 2, "val": 0.25, "test": 0.25, "patience": 300})
    job = jobs.start_job(args, models / "e2e-busy", env={"ECG_INSIGHT_HOME": str(app_dirs["home"])})
    contexts = []
    try:
        samples = {"a": _sample_report(app_dirs), "b": _other_report(app_dirs)}
        pages = {}
        for k in samples:
            ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
            contexts.append(ctx)
            pages[k] = ctx.new_page()
            pages[k].set_default_timeout(STEP_TIMEOUT_MS)
        with timed("two users while training"):
            for k in samples:  # both uploads in flight at once
                _explain_upload(pages[k], app_url, samples[k], wait=False)
            for k in samples:
                settle(pages[k], timeout=240_000)
                main_area(pages[k]).get_by_text("Model output:").wait_for()
        for k, other in (("a", "b"), ("b", "a")):
            text = check_clean(pages[k])
            headline = re.search(r"Model output: .+? \(\d+%\)", text)
            assert headline and headline[0] == HEADLINES[k], (k, headline and headline[0], HEADLINES[k])
            chip = main_area(pages[k]).locator('[data-testid="stFileUploader"]').inner_text()
            assert samples[k].name[:6] in chip and samples[other].name[:6] not in chip, chip  # own upload only
            shot(pages[k], artifacts, f"09-concurrent-user-{k}")
        assert jobs.is_alive(job.pid), jobs.job_log(models / "e2e-busy")  # the job ran all along
    finally:
        for ctx in contexts:
            ctx.close()
        jobs.stop_job(models / "e2e-busy", wait=True, grace_s=5)
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in digest} == digest  # models only read


STEP_BUDGET_S = 300.0  # one step of the walk-through (first use included) slower than this is a hang, not a wait


def test_08_report_timings(artifacts):
    """Writes test-artifacts/e2e/timings.txt and checks that every step that ran was timed and none took
    STEP_BUDGET_S or more (a page that keeps the user waiting minutes is broken even when it ends well)."""
    (artifacts / "timings.txt").write_text("".join(f"{k}: {v:.1f} s\n" for k, v in TIMINGS.items()))
    if not TIMINGS:
        pytest.skip("no browser step ran in this session")
    slow = {k: round(v, 1) for k, v in TIMINGS.items() if not 0 < v < STEP_BUDGET_S}
    assert not slow, f"steps at or over {STEP_BUDGET_S:.0f} s: {slow}"
