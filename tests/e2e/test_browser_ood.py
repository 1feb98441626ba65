"""Issue 16 in a real browser: the Explain page says when an uploaded report lies outside the training data.

The server is ``make run`` with a models folder holding the shipped default, the measurement model
``cardiac4-mendeley-measure-lgbm`` (trained on the Mendeley 3x4 + rhythm strip reports; its OOD profile beside it).
Uploads, rendered here by the synthetic renderer (``ecg_core.reports.synth``, fixed seeds):

1. a **6x2 phone photo** (pink paper on a desk, perspective, shadows, JPEG): the page straightened, its rows read
   as 6x2 (``ecg_core.reports.leads.photo_layout``) — the warning names the layout ("This report's layout (6x2)
   differs from the reports this model was trained on ...");
2. a **3x4 + rhythm strip scan** on a grey grid at about the Mendeley resolution: the warning is gone
   (the screen shows what was computed for the current upload).

Screenshots: ``test-artifacts/e2e/ood-*.png``.
"""

from __future__ import annotations

import shutil

import pytest

from e2e.helpers import REPO, STEP_TIMEOUT_MS, check_clean, serve, settle

pytestmark = pytest.mark.e2e
MEASURE_RUN = REPO / "models" / "cardiac4-mendeley-measure-lgbm"
LAYOUT_WARNING = "This report's layout (6x2) differs from the reports this model was trained on"
UNRELIABLE = "treat the prediction as unreliable"


def _render(path, layout: str, paper: str, *, photo: bool, seed: int, ppm: float):
    import cv2

    from ecg_core.reports.synth import make_report, variant_options
    from ecg_core.reports.synth_spec import SynthSpec

    img, _ = make_report(SynthSpec(cls="normal", seed=seed), variant_options(layout, paper, photo=photo,
                                                                             px_per_mm=ppm))
    cv2.imwrite(str(path), img[:, :, ::-1])
    return path


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e-ood-reports")
    return (_render(d / "phone_photo_6x2.png", "6x2", "pink", photo=True, seed=2, ppm=6.0),
            _render(d / "scan_3x4.png", "3x4+1", "grey", photo=False, seed=1, ppm=4.0))


@pytest.fixture(scope="module")
def ood_url(chromium, artifacts, tmp_path_factory):
    if not (MEASURE_RUN / "ood_profile.json").is_file():
        pytest.skip(f"browser test skipped: the shipped run {MEASURE_RUN.name} or its OOD profile is missing")
    base = tmp_path_factory.mktemp("e2e-ood")
    shutil.copytree(MEASURE_RUN, base / "models" / MEASURE_RUN.name, ignore=shutil.ignore_patterns("checkpoints", ".*"))
    env = {"ECG_INSIGHT_HOME": str(base / "home"), "ECG_INSIGHT_MODELS": str(base / "models")}
    with serve(env, artifacts / "server-ood.log", start_s=180) as url:
        yield url


def test_reports_are_what_the_test_says():
    """Outside the browser: the verdicts the page must show (so that a browser failure is the page's)."""
    import tempfile
    from pathlib import Path

    import cv2

    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.reports import ood
    from ecg_core.reports.ecg_check import check_ecg
    from ecg_core.reports.pipeline import decode_for_model

    profile = ood.load_profile(MEASURE_RUN)
    if profile is None:
        pytest.skip(f"{MEASURE_RUN.name} has no OOD profile")
    with tempfile.TemporaryDirectory() as d:
        photo = _render(Path(d) / "p.png", "6x2", "pink", photo=True, seed=2, ppm=6.0)
        scan = _render(Path(d) / "s.png", "3x4+1", "grey", photo=False, seed=1, ppm=4.0)
        verdicts, checks = [], []
        for p in (photo, scan):
            rgb, size = decode_for_model(p.read_bytes(), p.name, PreprocessConfig())
            verdicts.append(ood.assess(ood.describe_report(rgb, original_size=size), profile))
            checks.append(check_ecg(cv2.imread(str(p))[:, :, ::-1].copy()).is_ecg)
    assert verdicts[0].in_distribution is False and verdicts[0].message.startswith(LAYOUT_WARNING)
    assert verdicts[1].in_distribution is True and verdicts[1].message == ""
    assert checks == [True, True]  # both pass the input check (else the page shows no prediction to warn about)


def _upload(page, main, path) -> str:
    uploader = main.locator('[data-testid="stFileUploader"]').first
    uploader.locator('input[type="file"]').set_input_files(str(path))
    settle(page, timeout=240_000)
    main.get_by_text("Model output:").first.wait_for()
    return check_clean(page)


def test_explain_warns_on_a_6x2_photo_and_not_on_a_3x4_scan(browser, ood_url, reports, artifacts):
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        page.goto(ood_url + "/explain")
        settle(page, timeout=240_000)
        main = page.locator('[data-testid="stMain"]')
        main.get_by_text(MEASURE_RUN.name).first.wait_for()
        check_clean(page)
        main.locator('[data-testid="stRadio"]').get_by_text("Upload", exact=True).click()
        settle(page)
        first = _upload(page, main, reports[0])
        page.screenshot(path=str(artifacts / "ood-1-photo-6x2.png"), full_page=True)
        warnings = main.locator('[data-testid="stAlert"]').all_inner_texts()
        assert any(LAYOUT_WARNING in w and UNRELIABLE in w for w in warnings), (warnings, first[:3000])
        assert reports[0].name in first

        second = _upload(page, main, reports[1])
        main.get_by_text(LAYOUT_WARNING).wait_for(state="detached")  # the first report's warning goes away
        settle(page)
        second = check_clean(page)
        page.screenshot(path=str(artifacts / "ood-2-scan-3x4.png"), full_page=True)
        assert reports[1].name in second
        assert LAYOUT_WARNING not in second and UNRELIABLE not in second, second[:3000]
    finally:
        context.close()
