"""AppTest for the foundation pages: every page renders without an exception, including with an empty folder
and with a folder of broken files."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import report_like, write_image

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
    assert metrics["files"] == "28" and metrics["distinct images"] == "25" and metrics["duplicate groups"] == "24"
    assert any("Leakage check passed" in s.value for s in at.success)


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


@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_page_renders(page, tiny_dataset):
    at = run_page(page, str(tiny_dataset))
    assert not at.exception, f"{page}: {at.exception}"


def test_home_has_disclaimer():
    at = run_page("home.py")
    assert any("Research and education use only" in w.value for w in at.warning)


def test_entry_script_navigation(tiny_dataset):
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.session_state["app_dataset_root"] = str(tiny_dataset)
    at.run()
    assert not at.exception
