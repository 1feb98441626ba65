"""AppTest for the Train and Augment pages, including a real Stop of a subprocess job from the Train page."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import report_like, write_image
from ecg_core.ml import jobs, registry

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pt") / "ds"
    seed = 500
    for ci, c in enumerate(("MI", "HB", "Normal", "PMI")):
        for i in range(6 + 2 * ci):
            seed += 1
            write_image(root / c / f"{i}.png", report_like(seed, size=(320, 240)))
    return root


def _page(name: str, data: Path, models: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    at = AppTest.from_file(str(REPO / "pages" / name), default_timeout=120)
    at.session_state["app_dataset_root"] = str(data)
    return at


def test_augment_page_grid_plan_and_hflip_warning(small_set, tmp_path, monkeypatch):
    at = _page("augment.py", small_set, tmp_path / "m", monkeypatch).run()
    assert not at.exception
    captions = " ".join(str(i.proto) for i in at.get("image"))
    assert "original (untouched)" in captions and "variant 8" in captions
    table = at.dataframe[0].value
    assert list(table["after balancing"]) == [
        b * int(m[1:]) for b, m in zip(table["training images"], table["multiplier"])]
    assert not at.warning
    at.checkbox(key="aug_hflip").check().run()
    assert any("reverses time" in w.value for w in at.warning)


def test_train_page_renders_without_runs(small_set, tmp_path, monkeypatch):
    at = _page("train.py", small_set, tmp_path / "m", monkeypatch).run()
    assert not at.exception
    assert any("No runs yet" in i.value for i in at.info)


def test_train_page_stop_button_stops_subprocess(small_set, tmp_path, monkeypatch):
    models = tmp_path / "models"
    args = jobs.train_args("live", models, str(small_set), "custom_cnn", options={
        "height": 96, "width": 128, "epochs": 200, "batch_size": 2, "patience": 50, "val": 0.2, "test": 0.2})
    h = jobs.start_job(args, models / "live", env={"ECG_INSIGHT_HOME": str(tmp_path / "home")})
    deadline = time.time() + 240
    while not (models / "live" / "checkpoints" / "best.keras").exists():
        assert time.time() < deadline, jobs.job_log(models / "live")
        time.sleep(0.3)
    at = _page("train.py", small_set, models, monkeypatch).run()
    assert not at.exception
    assert any("live" in m.value for m in at.markdown)  # leaving and returning shows the running job
    t0 = time.time()
    at.button(key="train_stop_live").click().run()
    assert not at.exception
    while jobs.is_alive(h.pid):
        jobs._reap(h.pid)
        assert time.time() - t0 < 30, "the job did not stop"
        time.sleep(0.2)
    info = registry.read_run(models / "live")
    assert info.status == "stopped" and info.usable
