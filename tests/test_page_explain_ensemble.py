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


def _explain_page(models: Path, tmp_path: Path, monkeypatch) -> AppTest:
    """The Explain page on ``models`` with the ensemble chosen and the upload source, after its first run."""
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    st.cache_data.clear()
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["explain_source"] = "Upload"
    at.session_state["explain_run"] = RUN_ID
    return at.run()


def test_ensemble_is_offered_and_shows_who_spoke_and_both_members(setup, monkeypatch, tmp_path) -> None:
    models, reports = setup
    at = _explain_page(models, tmp_path, monkeypatch)
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


def _batch_page(models: Path, folder: Path, tmp_path: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ECG_INSIGHT_DATA_ROOTS", str(folder))
    st.cache_data.clear()
    return AppTest.from_file(str(REPO / "pages" / "explain_batch.py"), default_timeout=TIMEOUT)


def test_batch_page_defaults_to_the_ensemble_and_matches_predict(setup, monkeypatch, tmp_path) -> None:
    """The Batch page opens on the shipped default (the ensemble) and its table is what ``predict`` computes:
    the same classes and probabilities as ``predict_files_ensemble``, one ``top[member]`` column per member."""
    from ecg_core.ml import registry
    from ecg_core.reports.ensemble import load_ensemble, predict_files_ensemble

    models, reports = setup
    folder = tmp_path / "batch"
    folder.mkdir()
    for name, data, _ in reports:
        (folder / name).write_bytes(data)
    (folder / "not_an_image.png").write_bytes(b"not an image")
    at = _batch_page(models, folder, tmp_path, monkeypatch).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="explain_run").value == registry.DEFAULT_RUN_ID == RUN_ID
    at.text_input(key="explain_batch_dir").set_value(str(folder)).run()
    at.button(key="explain_batch_run").click().run()
    assert not at.exception, at.exception
    shown = at.dataframe[0].value.set_index("path")
    files = sorted(folder.iterdir())
    want = predict_files_ensemble(load_ensemble(registry.read_run(models / RUN_ID)), files, root=folder)
    want = want.set_index("path")
    assert set(shown.index) == set(want.index) == {p.name for p in files}
    for name, _, expected in reports:
        assert shown.loc[name, "predicted"] == want.loc[name, "predicted"] == expected
        for c in [c for c in want.columns if c.startswith("prob_")]:
            assert shown.loc[name, c] == pytest.approx(want.loc[name, c], abs=1e-6)
        for m in MEMBERS:
            assert shown.loc[name, f"top[{m}]"] != ""
    assert shown.loc["not_an_image.png", "predicted"] == "" and shown.loc["not_an_image.png", "reason"]
    assert any("Every member of the ensemble predicts" in c.value for c in at.caption)


def test_batch_page_runs_a_per_lead_cnn(setup, monkeypatch, tmp_path) -> None:
    """A per-lead CNN run on the Batch page: its own predictions (``predict_files_perlead``) with the top leads."""
    from ecg_core.ml import registry
    from ecg_core.reports.perlead_predict import predict_files_perlead

    models, reports = setup
    folder = tmp_path / "batch"
    folder.mkdir()
    for name, data, _ in reports:
        (folder / name).write_bytes(data)
    at = _batch_page(models, folder, tmp_path, monkeypatch)
    at.session_state["explain_run"] = MEMBERS[1]
    at.run()
    assert not at.exception, at.exception
    at.text_input(key="explain_batch_dir").set_value(str(folder)).run()
    at.button(key="explain_batch_run").click().run()
    assert not at.exception, at.exception
    shown = at.dataframe[0].value.set_index("path")
    run = registry.read_run(models / MEMBERS[1])
    want = predict_files_perlead(registry.load_model(run), sorted(folder.iterdir()), class_names=run.class_names,
                                 root=folder).set_index("path")
    for name, _, _ in reports:
        assert shown.loc[name, "predicted"] == want.loc[name, "predicted"] != ""
        assert shown.loc[name, "top_leads"] == want.loc[name, "top_leads"] != ""
    assert any("not assessed for a per-lead CNN" in i.value for i in at.info)


def test_ensemble_pdf_report_carries_its_verdict_members_heatmap_and_reading(setup, monkeypatch, tmp_path) -> None:
    """The default model's Explain view offers a PDF: the ensemble's calibrated probabilities (those on the screen),
    which members spoke, the per-lead member's Grad-CAM of the top class with its attention per lead box, and the
    measurement member's reading; a second upload makes its own PDF."""
    from ecg_core.reports import pdf as report

    models, reports = setup
    contents: list = []
    real_build = report.build_report

    def recording(content):
        contents.append(content)
        return real_build(content)

    monkeypatch.setattr(report, "build_report", recording)
    at = _explain_page(models, tmp_path, monkeypatch)
    for i, (name, data, expected) in enumerate(reports):
        at.file_uploader(key="explain_upload").set_value((name, data, "image/png")).run()
        at.toggle(key="explain_ensemble_pdf_on").set_value(True).run()
        assert not at.exception, at.exception
        assert "explain_ensemble_pdf" in [b.key for b in at.get("download_button")]
        c = contents[-1]
        assert len(contents) == i + 1 and c.image_name == name
        assert c.class_names[int(np.argmax(c.probs))] == c.explained_class == expected
        shown = [m.value for m in at.markdown if m.value.startswith("**Model output:**")][0]
        assert f"({max(c.probs):.0%})" in shown  # the probabilities on the screen
        assert all(any(m in n for n in c.notes) for m in MEMBERS)
        assert MEMBERS[1] in c.method_title and not np.array_equal(c.overlay, c.image)
        assert c.lead_table is not None and len(c.lead_table) == 13 and c.measurement_tables is not None
        card = dict(report.model_card_lines(c.run_meta))
        assert card["members"].startswith(MEMBERS[0]) and "test macro-F1" not in card  # CV figures, no test split
        assert card["cross-validated macro-F1"] == f"{c.run_meta['metrics']['macro_f1']:.3f}"
        assert real_build(c).startswith(b"%PDF")
