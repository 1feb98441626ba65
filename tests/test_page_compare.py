"""AppTest for the Compare page: 0, 1 and 3 runs, different class sets, unusable runs, latency, the misclassified
gallery (navigation to Explain) and the leakage-demonstration section."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import _compare_runs

REPO = Path(__file__).resolve().parents[1]
PAGE = str(REPO / "pages" / "compare.py")
TIMEOUT = 120
ALL3 = ["leakdemo-file-t", "leakdemo-group-t", "arr3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> _compare_runs.CompareRuns:
    return _compare_runs.build(tmp_path_factory)


def _page(monkeypatch, models: Path) -> AppTest:
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    return AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()


def _text(at: AppTest, kind: str) -> str:
    return " ".join(el.value for el in getattr(at, kind))


def test_no_runs(monkeypatch, tmp_path):
    at = _page(monkeypatch, tmp_path / "empty")
    assert not at.exception, at.exception
    assert "No trained runs yet" in _text(at, "info")


def test_one_run(monkeypatch, runs, tmp_path):
    at = _page(monkeypatch, runs.models_with(tmp_path / "m", ["leakdemo-group-t"]))
    assert not at.exception, at.exception
    assert not at.error
    assert at.multiselect(key="compare_runs").value == ["leakdemo-group-t"]
    assert "leak-free" in _text(at, "success")
    assert len(at.dataframe) >= 1 and at.dataframe[0].value.shape[0] == 1
    assert "No demonstration in the registry yet" in _text(at, "caption")
    assert "PNG" in _text(at, "caption")


def test_three_runs_with_different_class_sets(monkeypatch, runs, tmp_path):
    at = _page(monkeypatch, runs.models_with(tmp_path / "m", ALL3))
    assert not at.exception, at.exception
    assert not at.error
    assert sorted(at.multiselect(key="compare_runs").value) == sorted(ALL3)
    table = at.dataframe[0].value
    assert sorted(table["run"]) == sorted(ALL3) and "macro-F1 (95% CI)" in table.columns
    warnings = _text(at, "warning")
    assert "not merged" in warnings and "different class sets" in warnings  # refuses and says why
    assert "LEAKY" in warnings  # the file-split run's badge
    assert "No pooled confusion matrix" in _text(at, "caption")
    # the leakage demonstration pair is found and explained in one sentence
    assert "percentage points" in _text(at, "info") or "scored no higher" in _text(at, "info")
    assert len(at.metric) >= 4


def test_compatible_runs_pool_confusion_and_measure_latency(monkeypatch, runs, tmp_path):
    at = _page(monkeypatch, runs.models_with(tmp_path / "m", ALL3[:2]))
    assert not at.exception and "not merged" not in _text(at, "warning")
    assert any("Pooled confusion matrix" in e.label for e in at.expander)
    at.multiselect(key="compare_runs").set_value(ALL3[1:2]).run()  # latency of one model keeps the test fast
    at.number_input(key="compare_latency_n").set_value(5).run()
    at.button(key="compare_latency_btn").click().run()
    assert not at.exception, at.exception
    assert "latency (ms, median)" in at.dataframe[0].value.columns
    assert any("median (ms)" in df.value.columns for df in at.dataframe)
    at.selectbox(key="compare_roc_class").set_value("Normal").run()
    at.multiselect(key="compare_runs").set_value([]).run()
    assert not at.exception and "Choose one or more runs" in _text(at, "info")


def test_unusable_runs_are_listed_with_reason(monkeypatch, runs, tmp_path):
    models = runs.models_with(tmp_path / "m", ["arr3"])
    (models / "broken").mkdir()
    (models / "broken" / "run.json").write_text("{nope")
    at = _page(monkeypatch, models)
    assert not at.exception
    assert any("1 run(s) cannot be compared" in e.label for e in at.expander)
    (models / "arr3" / "model.keras").unlink()
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "None of the runs" in _text(at, "warning")


def test_gallery_button_opens_explain(monkeypatch, runs, tmp_path):
    models = runs.models_with(tmp_path / "m", ["leakdemo-file-t"])
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.session_state["app_dataset_pick"] = "Other folder..."  # no demo dataset generation in the sidebar
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    buttons = [b for b in at.button if b.key and b.key.startswith("compare_explain_")]
    if not buttons:
        pytest.skip("this tiny run classified every test image correctly")
    buttons[0].click().run()
    assert not at.exception, at.exception
    assert at.session_state["explain_run"] == "leakdemo-file-t"
    assert Path(at.session_state["explain_path"]).is_file()
    assert at.title[0].value != "📊 Compare runs"  # now on the Explain page


def test_kfold_results_are_shown(monkeypatch, runs, tmp_path):
    import json

    models = runs.models_with(tmp_path / "m", ["leakdemo-group-t"])
    ev = json.loads((models / "leakdemo-group-t" / "eval.json").read_text())
    (models / "leakdemo-group-t" / "eval_kfold.json").write_text(json.dumps({**ev, "split": "oof"}))
    at = _page(monkeypatch, models)
    assert not at.exception, at.exception
    assert any("Cross-validation" in s.value for s in at.subheader)
    assert any("macro-F1 (95% CI)" in df.value.columns and len(df.value) == 1 for df in at.dataframe[1:])


# ------------------------------------------------------------------------- issue 19 item 6: readable, honest
def _charts(at: AppTest) -> dict[str, dict]:
    """Plotly charts of the page by their key (``compare_fig_<name>``), as figure dicts."""
    import json

    out = {}
    for el in at.get("plotly_chart"):
        key = el.proto.id.rsplit("-compare_fig_", 1)[-1] if "compare_fig_" in el.proto.id else el.proto.id
        out[key] = json.loads(el.proto.spec)
    return out


def _synthetic_copy(models: Path, src: str, dest: str) -> None:
    """A copy of run ``src`` that claims to be trained on another (synthetic) dataset."""
    import json
    import shutil

    shutil.copytree(models / src, models / dest)
    meta = json.loads((models / dest / "run.json").read_text())
    meta.update(run_id=dest, data_source="synthetic", data_fingerprint="ffffeeeeddddcccc", created="2000-01-01")
    (models / dest / "run.json").write_text(json.dumps(meta))


def test_mixed_datasets_are_grouped_warned_and_never_pooled(monkeypatch, runs, tmp_path):
    models = runs.models_with(tmp_path / "m", ALL3[:2])
    _synthetic_copy(models, "leakdemo-group-t", "synth-t")
    at = _page(monkeypatch, models)
    assert not at.exception, at.exception
    assert len(at.multiselect(key="compare_runs").value) == 3
    warnings = _text(at, "warning")
    assert "different datasets" in warnings and "synthetic data" in warnings and "real data" in warnings
    assert "synth-t" in warnings
    pooled = [e.label for e in at.expander if "Pooled confusion matrix" in e.label]
    assert pooled and all("real data" in p and "synthetic" not in p for p in pooled)  # the two real runs only
    assert "never summed" in _text(at, "caption")
    datasets = set(at.dataframe[0].value["dataset"])
    assert len(datasets) == 2 and "synthetic (ffffeeee)" in datasets


def test_confusion_matrices_readable_and_curves_one_class_at_a_time(monkeypatch, runs, tmp_path):
    models = runs.models_with(tmp_path / "m", ALL3[:2])
    _synthetic_copy(models, "leakdemo-group-t", "synth-t")
    at = _page(monkeypatch, models)
    assert not at.exception, at.exception
    charts = _charts(at)
    matrices = [k for k in charts if k.startswith("confusion-") and "pooled" not in k]
    assert len(matrices) == 3
    assert all(charts[k]["layout"].get("height", 0) >= 400 for k in matrices)  # not squeezed into strips
    # ROC and PR default to one class for every run: 3 curves (+ chance / prevalence lines), not 3 x 4
    assert at.selectbox(key="compare_roc_class").value != "all classes"
    roc = [t for t in charts["roc"]["data"] if t.get("name") not in ("chance", None)]
    assert len(roc) == 3, [t.get("name") for t in roc]
    pr = [t for t in charts["pr"]["data"] if t.get("showlegend") is not False]
    assert len(pr) == 3 and all("AP " in t["name"] for t in pr)
    # all classes: one run at a time
    at.selectbox(key="compare_roc_class").set_value("all classes").run()
    assert not at.exception, at.exception
    run = at.selectbox(key="compare_curve_run").value
    charts = _charts(at)
    roc = [t for t in charts["roc"]["data"] if t.get("name") != "chance"]
    assert 1 <= len(roc) <= 4 and all(run not in t["name"] for t in roc)  # one run: legend names classes only
    assert all("AP " in t["name"] for t in charts["pr"]["data"] if t.get("showlegend") is not False)
