"""AppTest of the Arrhythmia page: the shipped (synthetic) demo signals with a tiny arrhythmia-6 run (prediction and
Grad-CAM branch), without any model (a clear message), an uploaded WFDB record, and bad uploads (no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from _arrhythmia_run import RUN_ID, tiny_models  # noqa: F401  (session fixture)
from ecg_core.signals.demo import ensure_demo_records

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "arrhythmia.py")
TIMEOUT = 120


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private app home with the demo records already generated, and no shared data."""
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ECG_INSIGHT_SHARED_DATA", str(tmp_path / "no-shared-data"))
    ensure_demo_records(tmp_path / "home" / "demo-signals")
    return tmp_path / "home"


def _text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown) + " ".join(i.value for i in at.info)


def test_page_with_model_predicts_and_explains(home, tiny_models, monkeypatch) -> None:
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(tiny_models))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="arr_model").value == RUN_ID
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["segments"] == "35" and metrics["annotated beats"] == "35" and metrics["sampling rate"] == "360 Hz"
    text = _text(at)
    assert "Grad-CAM for" in text and "The model's evidence" in text
    assert "Look for:" in text  # teaching text of the predicted / annotated class
    assert len(at.get("plotly_chart")) == 4  # strip, spectral image + CAM, probabilities, CAM profiles
    at.selectbox(key="arr_cam_class").set_value("V").run()
    assert not at.exception and "Grad-CAM for V" in _text(at)
    at.selectbox(key="arr_filter").set_value("annotated V").run()
    at.slider(key="arr_beat").set_value(2).run()
    assert not at.exception and "annotated V" in at.subheader[0].value
    at.selectbox(key="arr_demo").set_value("demo · demo_vf (synthetic)").run()
    at.radio(key="arr_mode").set_value("windows").run()
    at.checkbox(key="arr_cleaned").uncheck().run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["segments"] == "84"


def test_page_without_model_says_so(home, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(tmp_path / "empty-models"))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert any("No trained arrhythmia-6 model" in i.value for i in at.info)
    assert not [s for s in at.selectbox if s.key == "arr_model"]
    assert len(at.get("plotly_chart")) == 2  # strip + spectral image, no prediction figures
    at.selectbox(key="arr_filter").set_value("annotated A").run()
    assert not at.exception and "annotated A" in at.subheader[0].value


def test_page_upload(home, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(tmp_path / "empty-models"))
    demo = home / "demo-signals"
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="arr_source").set_value("Upload a record").run()
    assert not at.exception and any("Upload the .hea and .dat" in i.value for i in at.info)
    files = [(f"demo_lbbb{e}", (demo / f"demo_lbbb{e}").read_bytes(), "application/octet-stream")
             for e in (".hea", ".dat", ".atr")]
    at.file_uploader(key="arr_upload").set_value(files).run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["annotated beats"] == "32"
    at.file_uploader(key="arr_upload").set_value([("a.hea", b"x", "text/plain"), ("b.hea", b"y", "text/plain")]).run()
    assert not at.exception and any("one record at a time" in e.value for e in at.error)
    lost = [("lost.hea", (demo / "demo_vf.hea").read_bytes(), "text/plain")]
    at.file_uploader(key="arr_upload").set_value(lost).run()
    assert not at.exception and any("signal file cannot be read" in e.value for e in at.error)
