"""AppTest of the Explain page with the shipped per-lead CNN (input ``report_panels``, issue 15): the model picker
offers it beside the report-image / measurement runs; an uploaded report shows the class, the attention per lead
(bar chart + caption) and the Grad-CAM overlay; a second upload replaces the verdict with its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
PAGE = str(REPO / "pages" / "explain.py")
RUN_ID = "cardiac4-mendeley-perlead-pre"
SHIPPED = REPO / "models" / RUN_ID
FULLRES = SHARED_DATA / "mendeley-fullres-samples"
TIMEOUT = 300

pytestmark = pytest.mark.skipif(not (SHIPPED / "model.keras").is_file(), reason=f"{SHIPPED} is not shipped")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, list[tuple[str, bytes, str]]]:
    """(models folder: the per-lead run and the shipped measurement run, two reports with their expected class
    computed directly with ``perlead_predict.explain_report``; reports predicted differently when there are)."""
    from ecg_core.imaging.loader import load_image
    from ecg_core.ml import registry
    from ecg_core.reports.perlead_predict import explain_report

    tmp = tmp_path_factory.mktemp("perlead_page")
    models = tmp / "models"
    shutil.copytree(SHIPPED, models / RUN_ID)
    other = REPO / "models" / "cardiac4-mendeley-measure-lgbm"
    if other.is_dir():
        shutil.copytree(other, models / other.name)
    if FULLRES.is_dir():
        files = [p for p in sorted(FULLRES.rglob("*.jpg")) if p.name in ("MI(1).jpg", "Normal(1).jpg")]
    else:
        from ecg_core.reports.synth import generate_dataset

        generate_dataset(tmp / "synth", per_class=1, seed=5, px_per_mm=2.5, artifacts=False, image_format="png")
        files = sorted((tmp / "synth").rglob("*.png"))
    run = registry.read_run(models / RUN_ID)
    model = registry.load_model(run)
    reports = []
    for p in files:
        data = p.read_bytes()
        res = explain_report(model, load_image(data).rgb, gradcam=False)
        reports.append((p.name, data, run.class_names[int(np.argmax(res.probs))]))
    distinct = {c: r for r in reports for c in [r[2]]}
    picked = list(distinct.values())[:2] if len(distinct) >= 2 else reports[:2]
    return models, picked


def _top_class(at: AppTest) -> str:
    out = [m.value for m in at.markdown if m.value.startswith("**Model output:**")]
    assert out, "no model output shown"
    return out[0].removeprefix("**Model output:** ").rsplit(" (", 1)[0]


def _charts(at: AppTest) -> str:
    return " ".join(str(el.proto) for el in at.get("plotly_chart"))


def test_per_lead_run_is_offered_and_explains_each_upload(setup, monkeypatch, tmp_path) -> None:
    models, reports = setup
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    st.cache_data.clear()
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["explain_source"] = "Upload"
    at.session_state["explain_run"] = RUN_ID
    at.run()
    assert not at.exception, at.exception
    picker = at.selectbox(key="explain_run")
    assert any(RUN_ID in o for o in picker.options), picker.options
    if (models / "cardiac4-mendeley-measure-lgbm").is_dir():  # offered beside the other report models
        assert any("cardiac4-mendeley-measure-lgbm" in o for o in picker.options), picker.options
    assert picker.value == RUN_ID
    for name, data, expected in reports:
        at.file_uploader(key="explain_upload").set_value((name, data, "image/png")).run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        assert _top_class(at) == expected, name  # the verdict of this upload, not of the previous one
        assert "Attention per lead (model weights)" in _charts(at)
        assert any("pooling weights over the 13 panels" in c.value for c in at.caption)
    # the Grad-CAM of another class is computed on request, without error
    sel = [s for s in at.selectbox if s.label == "Explain class"][0]
    sel.set_value((sel.value + 1) % len(sel.options)).run()
    assert not at.exception, at.exception
