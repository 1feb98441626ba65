"""AppTest of the Explain page with the shipped ensemble run (issue 15, item 4): the model picker offers it; an
upload shows the averaged calibrated verdict (computed directly with ``ensemble.explain_probabilities``), which
models spoke, and both members' explanations under their subheaders; a second upload replaces all of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
PAGE = str(REPO / "pages" / "explain.py")
RUN_ID = "cardiac4-mendeley-ensemble"
MEMBERS = ["cardiac4-mendeley-measure-lgbm", "cardiac4-mendeley-perlead-pre"]
TIMEOUT = 300

pytestmark = pytest.mark.skipif(not all((REPO / "models" / r / "run.json").is_file() for r in [RUN_ID, *MEMBERS]),
                                reason="the ensemble run or its members are not shipped")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, list[tuple[str, bytes, str]]]:
    from ecg_core.imaging.loader import load_image
    from ecg_core.ml import registry
    from ecg_core.reports.ensemble import explain_probabilities, load_ensemble
    from ecg_core.reports.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("ensemble_page")
    models = tmp / "models"
    for r in [RUN_ID, *MEMBERS]:
        shutil.copytree(REPO / "models" / r, models / r, ignore=shutil.ignore_patterns("tensorboard"))
    generate_dataset(tmp / "synth", per_class=1, seed=3, px_per_mm=2.5, artifacts=False, image_format="png")
    ens = load_ensemble(registry.read_run(models / RUN_ID))
    reports = []
    for p in sorted((tmp / "synth").rglob("*.png")):
        data = p.read_bytes()
        prob, _ = explain_probabilities(ens, load_image(data).rgb)
        reports.append((p.name, data, ens.class_names[int(np.argmax(prob))]))
    distinct = {r[2]: r for r in reports}
    return models, (list(distinct.values())[:2] if len(distinct) >= 2 else reports[:2])


def test_ensemble_is_offered_and_shows_who_spoke_and_both_members(setup, monkeypatch, tmp_path) -> None:
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
    assert any(RUN_ID in o for o in picker.options) and picker.value == RUN_ID, picker.options
    for name, data, expected in reports:
        at.file_uploader(key="explain_upload").set_value((name, data, "image/png")).run()
        assert not at.exception, at.exception
        outputs = [m.value for m in at.markdown if m.value.startswith("**Model output:**")]
        assert len(outputs) == 3, outputs  # the ensemble's, then each member's own view
        assert outputs[0].removeprefix("**Model output:** ").rsplit(" (", 1)[0] == expected, name
        spoke = " ".join(m.value for m in at.markdown)
        for m in MEMBERS:
            assert f"{m} (weight 0.5): top class" in spoke and f", {expected} " in spoke
        heads = [h.value for h in at.subheader]
        assert "Ensemble" in heads and all(f"Member: {m}" in heads for m in MEMBERS), heads


def test_compare_shows_the_ensemble_out_of_fold_beside_its_members(setup, monkeypatch, tmp_path) -> None:
    models, _ = setup
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    st.cache_data.clear()
    at = AppTest.from_file(str(REPO / "pages" / "compare.py"), default_timeout=TIMEOUT)
    at.session_state["compare_runs"] = [RUN_ID, *MEMBERS]
    at.run()
    assert not at.exception, at.exception
    assert set(at.multiselect(key="compare_runs").value) == {RUN_ID, *MEMBERS}
    charts = " ".join(str(el.proto) for el in at.get("plotly_chart"))
    assert "Metrics by model (out-of-fold)" in charts and RUN_ID in charts
