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


def _keep_and_add(at: AppTest, files: list[tuple[str, bytes]]) -> None:
    """Drop more files on the uploader as a browser does: the files uploaded before stay (same ids), the new ones
    are appended (AppTest's own ``upload`` on a fresh element would start from an empty list)."""
    up = at.file_uploader(key="arr_upload")
    up._files = up._get_files_to_register()
    for name, data in files:
        up.upload(name, data)


def test_a_second_upload_replaces_the_first(home, tmp_path, monkeypatch) -> None:
    """Issue 19.8: the uploader kept demo_lbbb's files when demo_pvc's were added, then failed with "save_upload:
    received 2 headers"; now the set added last is opened and the earlier files are named as not used."""
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(tmp_path / "empty-models"))
    demo = home / "demo-signals"
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="arr_source").set_value("Upload a record").run()
    _keep_and_add(at, [(f"demo_lbbb{e}", (demo / f"demo_lbbb{e}").read_bytes()) for e in (".hea", ".dat", ".atr")])
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert {m.label: m.value for m in at.metric}["annotated beats"] == "32"
    _keep_and_add(at, [(f"demo_pvc{e}", (demo / f"demo_pvc{e}").read_bytes()) for e in (".hea", ".dat", ".atr")])
    at.run()
    assert len(at.file_uploader(key="arr_upload").value) == 6  # the widget still holds both sets
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert {m.label: m.value for m in at.metric}["annotated beats"] == "35"  # demo_pvc
    assert any("Earlier files are not used: demo_lbbb.hea" in i.value for i in at.info)


def _twelve_lead_100hz(demo: Path, out: Path) -> list[tuple[str, bytes]]:
    """demo_pvc resampled to 100 Hz and written as a 12-lead WFDB record without annotations."""
    import numpy as np
    import wfdb
    from scipy.signal import resample_poly

    from ecg_core.signals.records import read_record

    rec = read_record(demo / "demo_pvc")
    x = resample_poly(rec.signal[:, 0] if rec.signal.ndim == 2 else rec.signal, 5, 18)
    names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    sig = np.stack([x * (1 + 0.05 * k) for k in range(12)], axis=1)
    out.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp("ptb12", fs=100, units=["mV"] * 12, sig_name=names, p_signal=sig, fmt=["16"] * 12,
                write_dir=str(out))
    return [(f"ptb12{e}", (out / f"ptb12{e}").read_bytes()) for e in (".hea", ".dat")]


def test_a_100hz_12_lead_record_is_flagged(home, tiny_models, tmp_path, monkeypatch) -> None:
    """Issue 19.8: a 100 Hz 12-lead record got beat classes without a word about its rate or source; its detected
    beats were headed "annotated ? (None)"; the lead could not be chosen."""
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(tiny_models))
    files = _twelve_lead_100hz(home / "demo-signals", tmp_path / "rec")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="arr_source").set_value("Upload a record").run()
    _keep_and_add(at, files)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    warnings = [w.value for w in at.warning]
    assert any("sampled at 100 Hz" in w and "360 Hz" in w for w in warnings), warnings
    assert any("12-lead recording" in w for w in warnings), warnings
    assert "no annotation" in at.subheader[0].value and "None" not in at.subheader[0].value
    lead = [s for s in at.selectbox if s.label == "Lead"]
    assert len(lead) == 1 and lead[0].value == "II" and "V1" in lead[0].options
    lead[0].set_value("V1").run()
    assert not at.exception, at.exception
    assert any("Lead V1 is shown; the model was trained on lead MLII" in w.value for w in at.warning)


SHIPPED_GBM = Path(__file__).resolve().parents[1] / "models" / "arrhythmia6-lightgbm-ds1"


@pytest.mark.skipif(not SHIPPED_GBM.is_dir(), reason="the shipped gradient-boosting arrhythmia run is absent")
def test_page_defaults_to_the_shipped_gbm_and_shows_feature_contributions(home, monkeypatch) -> None:
    """Issue 17: the shipped models folder opens the LightGBM run by default; the page shows what drove the beat
    score (feature contributions, no Grad-CAM) and the held-out confusion per record from the run's files."""
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(SHIPPED_GBM.parent))
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="arr_model").value == SHIPPED_GBM.name
    text = _text(at)
    assert "What drove the beat score" in text and "Held-out confusion per record" in text
    assert "Grad-CAM for" not in text
    at.selectbox(key="arr_demo").set_value("demo · demo_vf (synthetic)").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.selectbox(key="arr_model").set_value("arrhythmia6-shallow_cnn-ds1").run()  # the CNN keeps its Grad-CAM
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Grad-CAM for" in _text(at)
