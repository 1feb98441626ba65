"""Issue 15 in a real browser: the Explain page opens on the shipped default, the measurement model
``cardiac4-mendeley-measure-lgbm``, and shows for each uploaded report what was computed for *that* report:
calibrated probabilities, which model spoke, and the per-lead contributions drawn on the report; a second report
in the same session replaces every figure (its own verdict and contributions).

The server is ``make run`` with a models folder holding the shipped measurement run and the CNN run (so the
default is chosen by the registry, as on a fresh install). Reports: the two demo reports in ``assets/demo`` (an
acute MI and a normal report). Screenshots: ``test-artifacts/e2e/measure-*.png``.
"""

from __future__ import annotations

import re
import shutil

import pytest

from e2e.helpers import REPO, STEP_TIMEOUT_MS, check_clean, serve, settle

pytestmark = pytest.mark.e2e
MEASURE_RUN = REPO / "models" / "cardiac4-mendeley-measure-lgbm"
CNN_RUN = REPO / "models" / "cardiac4-mendeley-custom_cnn"
REPORTS = [REPO / "assets" / "demo" / "myocardial_infarction.jpg", REPO / "assets" / "demo" / "normal.jpg"]


@pytest.fixture(scope="module")
def measure_url(chromium, artifacts, tmp_path_factory):
    if not MEASURE_RUN.is_dir() or not CNN_RUN.is_dir():
        pytest.skip(f"browser test skipped: the shipped runs {MEASURE_RUN.name} / {CNN_RUN.name} are missing")
    base = tmp_path_factory.mktemp("e2e-measure")
    for run in (MEASURE_RUN, CNN_RUN):
        shutil.copytree(run, base / "models" / run.name, ignore=shutil.ignore_patterns("checkpoints", ".*"))
    env = {"ECG_INSIGHT_HOME": str(base / "home"), "ECG_INSIGHT_MODELS": str(base / "models")}
    with serve(env, artifacts / "server-measure.log", start_s=180) as url:
        yield url


def _upload(page, main, path) -> str:
    uploader = main.locator('[data-testid="stFileUploader"]').first
    uploader.locator('input[type="file"]').set_input_files(str(path))
    settle(page, timeout=240_000)
    main.get_by_text("Model output:").wait_for()
    main.get_by_text("Explanation: contributions per lead").wait_for()
    return check_clean(page)


def _verdict(text: str) -> tuple[str, str]:
    m = re.search(r"Model output: (.+?) \((\d+)%\)", text)
    assert m, text[:3000]
    return m[1], m[2]


def test_explain_opens_on_the_measurement_default_and_follows_each_upload(browser, measure_url, artifacts):
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        page.goto(measure_url + "/explain")
        settle(page, timeout=240_000)
        main = page.locator('[data-testid="stMain"]')
        # the model select box shows the default (the first script run on a fresh server may still be drawing)
        main.get_by_text(MEASURE_RUN.name).first.wait_for()
        check_clean(page)
        main.locator('[data-testid="stRadio"]').get_by_text("Upload", exact=True).click()
        settle(page)
        with page.expect_file_chooser() as chooser:
            main.locator('[data-testid="stFileUploader"]').first.locator(
                '[data-testid="stFileUploaderDropzone"] button').click()
        chooser.value.set_files(str(REPORTS[0]))
        settle(page, timeout=240_000)
        main.get_by_text("Model output:").wait_for()
        first = check_clean(page)
        assert f"Model that spoke: {MEASURE_RUN.name}" in first and "calibrated" in first
        assert "Grad-CAM and the other heatmap methods explain CNN models only" in first
        assert "Input check: recognised as an ECG report" in first
        v1 = _verdict(first)
        page.screenshot(path=str(artifacts / "measure-1.png"), full_page=True)
        chart_1 = main.locator('[data-testid="stPlotlyChart"]').count()
        assert chart_1 >= 2  # class probabilities + per-lead contributions
        # the per-lead contributions drawn on the report: an image of the report with tinted lead boxes
        assert main.locator('[data-testid="stImage"]').count() >= 1

        second = _upload(page, main, REPORTS[1])
        page.screenshot(path=str(artifacts / "measure-2.png"), full_page=True)
        v2 = _verdict(second)
        assert f"Model that spoke: {MEASURE_RUN.name}" in second
        assert "ECG report image" in second and REPORTS[1].name in second
        # what the screen shows was computed for the second report: its own verdict (the two demo reports are
        # an acute MI and a normal report, which the model tells apart) and the explained class follows it
        assert v2 != v1, (v1, v2)
        explained = re.search(r"What each lead's measurements add to '(.+?)'", second)
        assert explained and explained[1] == v2[0], second[:3000]
    finally:
        context.close()
