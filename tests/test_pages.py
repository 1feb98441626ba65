"""AppTest for the foundation pages: every page renders without an exception, including with an empty folder
and with a folder of broken files."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import SHARED_DATA, report_like, write_image

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 120
ALL_PAGES = sorted(p.name for p in (REPO / "pages").glob("*.py"))


def run_page(page: str, dataset_root: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / page), default_timeout=TIMEOUT)
    if dataset_root is not None:
        at.session_state["app_dataset_root"] = dataset_root
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


@pytest.fixture
def broken_folder(tmp_path):
    root = tmp_path / "broken"
    (root / "Normal").mkdir(parents=True)
    (root / "Normal" / "a.jpg").write_bytes(b"")
    (root / "Normal" / "b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "MI").mkdir()
    (root / "MI" / "c.png").write_bytes(b"%PDF-1.4 renamed")
    return root


@pytest.mark.parametrize("page", ["data.py", "preprocess.py"])
def test_data_pages_with_dataset(page, tiny_dataset):
    at = run_page(page, str(tiny_dataset))
    assert not at.exception, at.exception
    assert not at.error


def test_data_page_shows_counts_and_leakage_check(tiny_dataset):
    at = run_page("data.py", str(tiny_dataset))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["files"] == "28" and metrics["distinct images"] == "25" and metrics["image groups"] == "24"
    assert any("Leakage check passed" in s.value for s in at.success)


def test_data_page_group_labels_and_few_images_warning(tiny_dataset):
    """Issue 19.11: single images were counted as "duplicate groups"; a split with very few images of a class
    (here 1 per class in validation and test) was not pointed out."""
    at = run_page("data.py", str(tiny_dataset))
    metrics = {m.label: m.value for m in at.metric}
    assert "duplicate groups" not in metrics
    assert metrics["image groups"] == "24" and metrics["duplicate groups (with copies)"] == "2"
    few = [w.value for w in at.warning if "Few distinct images" in w.value]
    assert len(few) == 1 and "**Normal**: 1 in val, 1 in test" in few[0] and "100 percentage points" in few[0]
    at.slider(key="data_val").set_value(0.0).run()
    at.slider(key="data_test").set_value(0.4).run()  # 2 of 6 images per class in test: still few
    few = [w.value for w in at.warning if "Few distinct images" in w.value]
    assert len(few) == 1 and "**Normal**: 2 in test" in few[0] and " in val" not in few[0]


def test_data_page_on_real_mendeley_counts(monkeypatch):
    root = SHARED_DATA / "mendeley-dev"
    if not root.is_dir():
        pytest.skip("real Mendeley reports not present in ../shared/data")
    at = run_page("data.py", str(root))
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["image groups"] == "343" and metrics["duplicate groups (with copies)"] == "180"
    few = next(w.value for w in at.warning if "Few distinct images" in w.value)
    assert "**Myocardial Infarction**: 3 in val, 3 in test" in few


@pytest.mark.parametrize("page", ["data.py", "preprocess.py"])
def test_pages_with_empty_folder(page, tmp_path):
    at = run_page(page, str(tmp_path))
    assert not at.exception
    assert any("No images were found" in w.value for w in at.warning)


def test_data_page_with_broken_files(broken_folder):
    at = run_page("data.py", str(broken_folder))
    assert not at.exception
    assert any("3 files could not be read" in e.label for e in at.expander)


def test_preprocess_page_with_broken_files(broken_folder):
    at = run_page("preprocess.py", str(broken_folder))
    assert not at.exception
    assert any("no readable image" in w.value for w in at.warning)


def test_data_page_missing_folder(tmp_path):
    at = run_page("data.py", str(tmp_path / "does-not-exist"))
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error)


def test_preprocess_page_sliders_change_output(tiny_dataset):
    at = run_page("preprocess.py", str(tiny_dataset))
    before = " ".join(str(el.proto) for el in at.get("image"))
    assert "cropped ·" in before
    at.selectbox(key="pre_crop_mode").set_value("none").run()
    assert not at.exception
    captions = " ".join(str(el.proto) for el in at.get("image"))
    assert "cropped ·" not in captions and "resized 320x192" in captions
    at.slider(key="pre_top").set_value(0.3).run()  # changing a crop fraction while crop mode is 'none'
    assert not at.exception


# st.error messages a page may show on the tiny dataset with no trained model (substrings); anything else is a
# failure. The pages' guards turn every exception into st.error + st.stop, so "no exception" alone would stay
# green while a page's model call raises.
ALLOWED_ERRORS: dict[str, tuple[str, ...]] = {}


def unexpected_errors(at: AppTest, page: str) -> list[str]:
    allowed = ALLOWED_ERRORS.get(page, ())
    return [e.value for e in at.error if not any(a in e.value for a in allowed)]


@pytest.fixture
def rendered_dataset(tmp_path: Path) -> Path:
    """4 Mendeley class folders of 2 rendered synthetic reports each: images the ECG check accepts (the tiny
    dataset's random walks on a grid are line charts, which the check refuses, as it should)."""
    from ecg_core.reports.synth import RenderOptions, SynthSpec, make_report

    classes = [("ECG Images of Myocardial Infarction Patients (240x12=2880)", "myocardial_infarction"),
               ("ECG Images of Patient that have abnormal heartbeat (233x12=2796)", "abnormal_heartbeat"),
               ("Normal Person ECG Images (284x12=3408)", "normal"),
               ("ECG Images of Patient that have History of MI (172x12=2064)", "history_of_mi")]
    for ci, (folder, cls) in enumerate(classes):
        for i in range(2):
            img = make_report(SynthSpec(cls, seed=100 + 10 * ci + i), RenderOptions(px_per_mm=3.0))[0]
            write_image(tmp_path / "rendered" / folder / f"r{i}.jpg", img)
    return tmp_path / "rendered"


@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_page_renders(page, tiny_dataset, rendered_dataset):
    """Planted bug: a page's model/core call raises (e.g. ``dataset.audit`` or ``zoo.list_archs`` throwing): the
    page's guard shows st.error + st.stop, so only the st.error check below fails. Explain gets rendered reports
    (a report the ECG check refuses stops before any model call)."""
    at = run_page(page, str(rendered_dataset if page == "explain.py" else tiny_dataset))
    assert not at.exception, f"{page}: {at.exception}"
    assert not unexpected_errors(at, page), f"{page}: {unexpected_errors(at, page)}"


def test_smoke_check_catches_a_call_that_raises(tiny_dataset, monkeypatch):
    """The planted bug of test_every_page_renders, here by monkeypatch: the data page's split call raises; the
    guard shows st.error, so at.exception stays empty and only the st.error check notices."""
    from ecg_core.ml import splits

    def broken(*a, **k):
        raise ValueError("planted failure")

    monkeypatch.setattr(splits, "split_by_group", broken)
    at = run_page("data.py", str(tiny_dataset))
    assert not at.exception
    assert any("planted failure" in e for e in unexpected_errors(at, "data.py"))


def test_home_has_disclaimer():
    at = run_page("home.py")
    assert any("Research and education use only" in w.value for w in at.warning)


def test_entry_script_navigation(tiny_dataset):
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.session_state["app_dataset_root"] = str(tiny_dataset)
    at.run()
    assert not at.exception
    assert not unexpected_errors(at, "home.py"), unexpected_errors(at, "home.py")  # the default page


def _shown(widget) -> object:
    """What the browser shows for a widget: the value the server sets, else the widget's own default."""
    p = widget.proto
    if widget.type == "select_slider":
        return p.raw_value[0] if p.set_value else p.options[int(p.default[0])]
    if widget.type == "slider":
        return p.value[0] if p.set_value else p.default[0]
    return p.value if p.set_value else p.default  # checkbox


def test_preprocess_sidebar_shows_the_applied_settings_after_an_upload(tiny_dataset):
    """Issue 19.4: after switching to Upload and uploading, the sidebar showed the defaults (crop top 0.18, median
    3) while the image was preprocessed with the settings chosen before (0.28, 7)."""
    import json

    at = run_page("preprocess.py", str(tiny_dataset))
    at.slider(key="pre_top").set_value(0.28).run()
    at.select_slider(key="pre_median").set_value(7).run()
    at.checkbox(key="pre_clahe").uncheck().run()
    at.radio(key="pre_source").set_value("Upload").run()
    assert not at.exception and at.slider(key="pre_top")  # the sidebar stays while no file is uploaded
    image = next((tiny_dataset).rglob("img0.png")).read_bytes()
    at.file_uploader(key="pre_upload").set_value(("report.png", image, "image/png")).run()
    assert not at.exception
    applied = json.loads(at.code[0].value)
    assert (applied["crop_top"], applied["median_ksize"], applied["clahe"]) == (0.28, 7, False)
    assert _shown(at.slider(key="pre_top")) == pytest.approx(0.28)
    assert _shown(at.select_slider(key="pre_median")) == "7"
    assert _shown(at.checkbox(key="pre_clahe")) is False
    assert at.session_state["app_preprocess"]["crop_top"] == 0.28  # the store the Train page reads
    at.button(key="pre_reset").click().run()
    applied = json.loads(at.code[0].value)
    assert (applied["crop_top"], applied["median_ksize"], applied["clahe"]) == (0.18, 3, True)
    assert _shown(at.slider(key="pre_top")) == pytest.approx(0.18)
