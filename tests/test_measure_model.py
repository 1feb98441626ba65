"""The measurement model (issue 15): report features, the model's text/JSON round trip, the registry run, the predict
CLI and the Explain page with a measurement run. All on tiny synthetic data."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecg_core.core.errors import ModelLoadError
from ecg_core.core.labels import LEADS
from ecg_core.ml import measure_model as mm
from ecg_core.ml import registry

warnings.filterwarnings("ignore", category=DeprecationWarning)
CLASSES = ["Myocardial Infarction", "Abnormal Heartbeat", "Normal", "History of MI"]
REPO = Path(__file__).resolve().parents[1]


def _synthetic_mi():
    from ecg_core.reports.synth import RenderOptions, random_spec, render_report, synth_signals

    sig = synth_signals(random_spec("myocardial_infarction", np.random.default_rng(3), territory="anterior"))
    image, sidecar = render_report(sig, RenderOptions(), seed=3)
    return sig, image, sidecar


def test_features_of_a_synthetic_anterior_mi():
    from ecg_core.reports.reading.digitize import digitize
    from ecg_core.reports.reading.features import feature_leads, feature_names, report_features

    sig, image, sidecar = _synthetic_mi()
    f = report_features(digitize(image, sidecar=sidecar))
    assert list(f) == feature_names() and len(set(f)) == len(f)
    true_mm = {lead: 10.0 * v for lead, v in sig.st_deviation_mv.items()}
    elevated = [lead for lead, v in true_mm.items() if v >= 1.0]
    assert elevated, true_mm
    for lead in elevated:  # the true ST elevation is read as such, within 0.5 mm
        assert f[f"st60_{lead}"] > 0.5 and abs(f[f"st60_{lead}"] - true_mm[lead]) < 0.5, (lead, f[f"st60_{lead}"])
    flat = [lead for lead, v in true_mm.items() if abs(v) < 0.2 and lead != "aVR"]
    assert all(abs(f[f"st60_{lead}"]) < 0.6 for lead in flat), {lead: f[f"st60_{lead}"] for lead in flat}
    assert f["n_st_elev"] >= 2 and f["crit_ste"] == 1.0 and f["max_st"] >= 1.0
    # features 1.1: the elevation two contiguous leads share, on the anterior / septal leads that carry it
    from ecg_core.reports.reading.features import report_leads

    assert f["ste2_60"] >= 1.0 and f["stemi_60"] >= f["ste2_60"] and f["ste_consist"] > 0.5
    assert set(report_leads("ste2_60", f)) <= {"V1", "V2", "V3", "V4", "V5"}, report_leads("ste2_60", f)
    assert feature_leads("st60_V2") == ("V2",) and feature_leads("terr_inferior_st") == ("II", "III", "aVF")
    assert feature_leads("hr_bpm") == () and feature_leads("qtc_ms") == ()


def _toy(n: int = 80, d: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    X = rng.normal(size=(n, d)) + y[:, None] * np.linspace(0.5, 1.5, d)
    X[rng.random(X.shape) < 0.1] = np.nan  # missing measurements
    return X, y, [f"f{j}_V{j % 6 + 1}" for j in range(d)]


@pytest.mark.parametrize("kind", ["lgbm", "logreg"])
def test_model_round_trips_through_text_and_json(tmp_path, kind):
    X, y, names = _toy()
    fit = mm.fit_lgbm if kind == "lgbm" else mm.fit_logreg
    kw = {"rounds": 20} if kind == "lgbm" else {}
    m = fit(X, y, feature_names=names, class_names=CLASSES, **kw)
    m.temperature = 1.7
    m.save(tmp_path)
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.pickle"))
    back = mm.MeasureModel.load(tmp_path)
    np.testing.assert_array_equal(back.predict_proba(X), m.predict_proba(X))
    p = back.predict_proba(X)
    assert np.allclose(p.sum(axis=1), 1.0) and back.temperature == 1.7
    # contributions add up to the class margin (plus a constant bias per class)
    c = back.contributions(X, 2)
    gap = back.margins(X)[:, 2] - c.sum(axis=1)
    assert c.shape == X.shape and np.ptp(gap) < 1e-6
    assert (p.argmax(1) == y).mean() > 0.5


def test_temperature_calibrates_overconfident_margins():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    z = rng.normal(size=(400, 4))
    z[np.arange(400), y] += 1.0
    t = mm.fit_temperature(5.0 * z, y)  # margins five times too large
    assert 3.0 < t < 8.0


def test_repeated_group_cv_keeps_groups_in_one_fold():
    X, y, names = _toy(n=120)
    groups = np.arange(120) // 3  # copies of one image
    seen: dict[int, set] = {}

    def fit(x, yy):
        return mm.fit_logreg(x, yy, feature_names=names, class_names=CLASSES)

    marg = mm.repeated_group_cv(X, y, groups, fit, folds=4, repeats=2)
    assert marg.shape == (2, 120, 4) and np.isfinite(marg).all()
    from sklearn.model_selection import StratifiedGroupKFold

    for tr, te in StratifiedGroupKFold(n_splits=4, shuffle=True, random_state=0).split(X, y, groups):
        assert not set(groups[tr]) & set(groups[te])
        seen.setdefault(0, set()).update(te)
    assert len(seen[0]) == 120


@pytest.fixture(scope="module")
def measure_run(tmp_path_factory):
    """(models folder with a tiny measurement run trained on synthetic reports, the dataset folder)."""
    from ecg_core.reports.measure_train import train_measure
    from ecg_core.reports.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("measure")
    data = tmp / "synth"
    generate_dataset(data, per_class=3, seed=31, px_per_mm=4.0, artifacts=False, image_format="png", vary_grid=False)
    run_dir = train_measure(data, tmp / "models", run_id="tiny-measure", kind="lgbm",
                            params={"rounds": 20, "min_data_in_leaf": 2}, folds=2, repeats=1, n_boot=50,
                            cache_root=tmp / "cache")
    return tmp / "models", data, run_dir


def test_trained_run_is_listed_usable_and_loads_without_keras(measure_run):
    models, _, run_dir = measure_run
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "completed" and meta["model_kind"] == "measurement"
    assert meta["class_names"] == CLASSES and meta["input_kind"] == "report_image"
    assert meta["feature_names"] and (run_dir / "model.txt").is_file() and not (run_dir / "model.keras").exists()
    from ecg_core.reports.measure_train import DEFAULTS
    from ecg_core.reports.reading.features import feature_set

    assert meta["feature_names"] == feature_set(DEFAULTS["lgbm"].get("features", "all"))  # the default's columns
    assert json.loads((run_dir / "measure.json").read_text())["feature_names"] == meta["feature_names"]
    for name in ("eval.json", "eval_kfold.json", "predictions_oof.csv", "MODEL_CARD.md", "progress.jsonl"):
        assert (run_dir / name).is_file(), name
    phases = [json.loads(line)["phase"] for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    assert phases[0] == "start" and "preprocess" in phases and "fold_done" in phases and phases[-1] == "done"
    info = registry.read_run(run_dir)
    assert info.usable and info.is_measurement and not info.problem
    model = registry.load_model(info)
    assert isinstance(model, mm.MeasureModel) and model.class_names == CLASSES
    from ecg_core.ml.compare import load_run_record

    rec = load_run_record(run_dir)
    assert not rec.problem and rec.kfold_report is not None


def test_damaged_measurement_model_is_refused(measure_run, tmp_path):
    import shutil

    _, _, run_dir = measure_run
    bad = tmp_path / "models" / "bad"
    shutil.copytree(run_dir, bad)
    (bad / "model.txt").write_text("this is not a LightGBM model")
    info = registry.read_run(bad)
    assert not info.usable and "model.txt" in info.problem
    with pytest.raises(ModelLoadError):
        registry.load_model(info)
    (bad / "model.txt").unlink()
    assert "missing" in registry.read_run(bad).problem


def test_predict_cli_with_a_measurement_run(measure_run, tmp_path):
    import shutil

    from ecg_core.cli.app import main

    models, data, _ = measure_run
    folder = tmp_path / "in"
    folder.mkdir()
    imgs = sorted(data.rglob("*.png"))[:3]
    for p in imgs:
        shutil.copy(p, folder / p.name)
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    out = tmp_path / "preds.csv"
    assert main(["predict", "tiny-measure", str(folder), "--out", str(out), "--models", str(models)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 4
    bad = df[df["path"] == "broken.jpg"].iloc[0]
    assert bad["predicted"] == "" and bad["reason"].startswith("unreadable")
    good = df[df["path"] != "broken.jpg"]
    assert (good["predicted"].isin(CLASSES)).all() and (good["reason"] == "").all()
    probs = good[[f"prob_{c}" for c in CLASSES]].astype(float).to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_lead_contributions_group_per_lead(measure_run):
    from ecg_core.reports.measure_predict import feature_matrix, lead_contributions

    _, _, run_dir = measure_run
    model = mm.MeasureModel.load(run_dir)
    feats = {n: 0.5 for n in model.feature_names}
    per, table = lead_contributions(model, feats, 0)
    assert set(per) == {*LEADS, "global"}
    total = model.contributions(feature_matrix([feats], model.feature_names), 0).sum()
    assert math.isclose(sum(per.values()), float(total), rel_tol=1e-9, abs_tol=1e-9)
    assert list(table.columns) == ["feature", "value", "contribution", "leads"]


def test_explain_page_with_a_measurement_model(measure_run, monkeypatch, tmp_path):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    models, data, _ = measure_run
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ECG_INSIGHT_WARMUP", "0")
    st.cache_data.clear()
    image = sorted(data.rglob("*.png"))[0]
    at = AppTest.from_file(str(REPO / "pages" / "explain.py"), default_timeout=300)
    at.session_state["explain_path"] = str(image)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    text = " ".join(str(m.value) for m in at.markdown) + " ".join(str(c.value) for c in at.caption) + \
        " ".join(str(i.value) for i in at.info)
    assert "Model output:" in text and "measurement model" in text
    assert "Grad-CAM" in text and "CNN models only" in text
    assert any("contributions" in str(s.value).lower() for s in at.subheader)


def test_a_report_the_reader_chokes_on_gets_a_reason_not_a_crash(measure_run, tmp_path, monkeypatch):
    import shutil

    from ecg_core.reports import measure_predict

    models, data, run_dir = measure_run
    img = sorted(data.rglob("*.png"))[0]
    shutil.copy(img, tmp_path / "a.png")

    def boom(*_a, **_k):
        raise KeyError("lead box")

    monkeypatch.setattr(measure_predict, "read_features", boom)
    df = measure_predict.predict_files_measure(mm.MeasureModel.load(run_dir), [tmp_path / "a.png"], root=tmp_path)
    assert df.loc[0, "predicted"] == "" and "could not read the traces" in df.loc[0, "reason"]
    assert df.loc[0, "reason"].startswith("unreadable")


def test_train_command_with_a_measurement_arch_writes_progress(measure_run, tmp_path, monkeypatch):
    """What the Train page's job runs (``train --arch measure_lgbm`` with the CNN options it always passes)."""
    from ecg_core.cli.app import main

    _, data, _ = measure_run
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    models = tmp_path / "models"
    rc = main(["train", "--data", str(data), "--arch", "measure_lgbm", "--run-id", "job", "--models", str(models),
               "--epochs", "3", "--batch-size", "8", "--kfold", "0", "--folds", "2", "--repeats", "1",
               "--n-boot", "20", "--params", '{"rounds": 10, "min_data_in_leaf": 2}'])
    assert rc == 0
    from ecg_core.ml.jobs import job_state

    state = job_state(models / "job")
    assert state.status == "completed" and registry.read_run(models / "job").usable
    # like a CNN run, the finished run knows its training reports' layout / paper / size (outside-data check)
    profile = json.loads((models / "job" / "ood_profile.json").read_text())
    assert profile["n_reports"] > 0 and profile.get("embedding") is None
    # TensorBoard logs like the Keras runs' (issue 15.6): the CV figures and the boosting curve
    tags = _event_tags(models / "job" / "tensorboard")
    meta = registry.read_run(models / "job").meta
    assert tags["cv"]["oof_macro_f1"] == [(0, pytest.approx(meta["metrics"]["macro_f1"], abs=1e-6))]
    assert [s for s, _ in tags["cv"]["repeat_macro_f1"]] == [0]
    assert [s for s, _ in tags["train"]["round_multi_logloss"]] == list(range(1, 11))  # one point per round
    curve = [v for _, v in tags["train"]["round_multi_logloss"]]
    assert curve[-1] < curve[0]  # the training loss falls
    assert main(["train-measure", "--data", str(data), "--models", str(models), "--params", "[1, 2]"]) != 0


def _event_tags(log_dir) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{writer: {tag: [(step, value)]}} of the TensorBoard event files under ``log_dir``."""
    import tensorflow as tf

    out: dict[str, dict[str, list]] = {}
    for f in sorted(log_dir.rglob("*tfevents*")):
        for e in tf.compat.v1.train.summary_iterator(str(f)):
            for v in e.summary.value:
                value = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
                out.setdefault(f.parent.name, {}).setdefault(v.tag, []).append((int(e.step), value))
    return out


def test_summary_features_are_drawn_on_the_leads_that_made_them():
    from ecg_core.reports.reading.features import report_leads

    f = {f"st60_{lead}": 0.0 for lead in LEADS} | {"st60_V2": 2.0, "st60_V3": 3.0, "st60_V4": 1.2, "st60_II": -1.0}
    assert set(report_leads("n_st_elev", f)) == {"V2", "V3", "V4"}
    assert report_leads("max_st", f) == ("V3",) and report_leads("min_st", f) == ("II",)
    assert report_leads("ste_terr_max", f) == ("V3", "V4") and report_leads("hr_bpm", f) == ()


def _lead_values(**st: float) -> dict[str, float]:
    """A feature dict of a report whose leads have ST60 (mm) ``st`` (0 elsewhere), flat QRS 1 mV, T 0.2 mV."""
    from ecg_core.reports.reading.features import feature_names

    f = dict.fromkeys(feature_names(), math.nan)
    for lead in LEADS:
        for off in (40, 60, 80):
            f[f"st{off}_{lead}"] = st.get(lead, 0.0)
        f[f"r_{lead}"], f[f"s_{lead}"], f[f"t_{lead}"] = 1.0, 0.0, 0.2
    return f


def test_acute_mi_summaries_need_two_contiguous_leads_and_see_the_reciprocal_depression():
    from ecg_core.reports.reading.features import _mi_summaries, report_leads

    lone = _lead_values(V3=3.0)  # one elevated lead: no contiguous elevation
    _mi_summaries(lone, {})
    assert lone["ste2_60"] == 0.0 and lone["st_2nd"] == 0.0 and lone["recip_60"] == 0.0
    inferior = _lead_values(II=2.0, III=2.5, aVF=2.2, I=-1.0, aVL=-1.5)
    _mi_summaries(inferior, {"III": [2.5, 2.4, 0.1, 2.6], "aVF": [2.2, 2.1, 2.3, 2.0]})
    assert inferior["ste2_60"] == pytest.approx(2.2) and set(report_leads("ste2_60", inferior)) == {"III", "aVF"}
    assert inferior["recip_60"] == pytest.approx(-1.5) and inferior["stemi_60"] == pytest.approx(3.7)
    assert set(report_leads("recip_60", inferior)) == {"I", "aVL"}
    assert inferior["ste_consist"] == pytest.approx(0.75)  # III elevated in 3 of 4 beats, aVF in all
    assert inferior["ste_qrs_max"] == pytest.approx(0.25 / 1.2) and inferior["st_neg_sum"] == pytest.approx(-2.5)
    anterior = _lead_values(V2=3.0, V3=3.5, V4=2.0, II=-1.0)
    _mi_summaries(anterior, {})
    assert anterior["ste2_60"] == pytest.approx(3.0) and anterior["recip_60"] == pytest.approx(-1.0)


def test_feature_sets_are_ordered_subsets_and_an_unknown_one_is_refused():
    from ecg_core.core.errors import ConfigError
    from ecg_core.reports.reading.features import FEATURE_SETS, MI_FEATURES, feature_names, feature_set

    names = feature_names()
    assert feature_set("all") == names and len(feature_set("v1.0")) == 215
    for name in FEATURE_SETS:
        sub = feature_set(name)
        assert sub == [n for n in names if n in set(sub)] and len(set(sub)) == len(sub), name
    assert set(MI_FEATURES) <= set(feature_set("st+mi")) <= set(feature_set("st+mi+qrs"))
    assert not any(n.startswith("quality") for n in feature_set("st+mi+qrs"))
    with pytest.raises(ConfigError, match="feature set"):
        feature_set("nope")


def test_default_prefers_the_measurement_run_then_the_cnn(measure_run, tmp_path):
    import shutil
    import time as _time

    _, _, run_dir = measure_run
    models = tmp_path / "models"
    for name, created in ((registry.FALLBACK_RUN_IDS[0], "2020-01-01T00:00:00"), ("newer", "2030-01-01T00:00:00"),
                          (registry.DEFAULT_RUN_ID, "2019-01-01T00:00:00")):
        shutil.copytree(run_dir, models / name)
        meta = json.loads((models / name / "run.json").read_text())
        (models / name / "run.json").write_text(json.dumps({**meta, "run_id": name, "created": created}))
    assert registry.default_run(models).run_id == registry.DEFAULT_RUN_ID  # the oldest, but preferred
    shutil.rmtree(models / registry.DEFAULT_RUN_ID)
    _time.sleep(0.01)
    assert registry.default_run(models).run_id == registry.FALLBACK_RUN_IDS[0]  # the first fallback, before "newer"
    assert registry.default_run(models, preferred="missing").run_id == "newer"


def test_stop_request_ends_the_job_as_stopped_without_a_model(measure_run, tmp_path, monkeypatch):
    from ecg_core.reports import measure_train

    _, data, _ = measure_run

    class AlwaysStop:
        def __init__(self, run_dir):
            self.signalled = False

        def __call__(self):
            return True

    from ecg_core.ml import progress

    monkeypatch.setattr(progress, "StopFlag", AlwaysStop)  # the flag every job gets from progress.job_guard
    run_dir = measure_train.train_measure(data, tmp_path / "models", run_id="stopped", folds=2, repeats=1,
                                          cache_root=tmp_path / "cache")
    info = registry.read_run(run_dir)
    assert info.status == "stopped" and not info.usable
    last = json.loads((run_dir / "progress.jsonl").read_text().splitlines()[-1])
    assert last["phase"] == "done" and last["status"] == "stopped"


def test_evaluate_command_on_a_folder_with_a_measurement_run(measure_run, tmp_path, capsys):
    from ecg_core.cli.app import main

    models, data, _ = measure_run
    assert main(["evaluate", "tiny-measure", "--data", str(data), "--models", str(models), "--boot", "20",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "external data" in out and "macro-F1" in out
    assert list(tmp_path.glob("eval_external-*.json")) and list(tmp_path.glob("predictions_external-*.csv"))


def test_the_model_list_calls_a_measurement_runs_figure_cross_validation(measure_run):
    """The select box showed 'test macro-F1 0.82' for the shipped measurement run, which has no test split: the
    figure is its repeated group CV."""
    info = registry.read_run(measure_run[2])
    assert info.is_measurement
    if isinstance((info.meta.get("metrics") or {}).get("macro_f1"), (int, float)):
        assert " CV macro-F1 " in info.label and "test macro-F1" not in info.label
    shipped = registry.read_run(REPO / "models" / "cardiac4-mendeley-measure-lgbm") if (
        REPO / "models" / "cardiac4-mendeley-measure-lgbm").is_dir() else None
    if shipped is not None:  # the bar (macro-F1 >= 0.82), read off the label the select box shows
        import re

        found = re.search(r"CV macro-F1 (0\.\d+)", shipped.label)
        assert found and float(found.group(1)) >= 0.82, shipped.label
        assert shipped.meta["metrics"]["mi_recall"] >= 0.70  # and acute-MI recall >= 0.7 (issue 15)


def test_stored_decision_weights_are_applied_by_load_and_predict(tmp_path):
    """A decision rule stored in measure.json (per-class weights on the calibrated probabilities, renormalised)
    is applied by MeasureModel.load + predict_proba, so every arg-max over it (CLI predict, Batch, Explain) uses it;
    a damaged rule is refused."""
    X, y, names = _toy()
    m = mm.fit_lgbm(X, y, feature_names=names, class_names=CLASSES, rounds=20)
    m.save(tmp_path / "plain")
    plain = mm.MeasureModel.load(tmp_path / "plain").predict_proba(X)
    m.decision_weights = [50.0, 1.0, 1.0, 1.0]
    m.save(tmp_path / "ruled")
    assert json.loads((tmp_path / "ruled" / "measure.json").read_text())["decision_weights"][0] == 50.0
    ruled = mm.MeasureModel.load(tmp_path / "ruled").predict_proba(X)
    q = plain * np.array([50.0, 1, 1, 1])
    np.testing.assert_allclose(ruled, q / q.sum(axis=1, keepdims=True))
    assert np.allclose(ruled.sum(axis=1), 1.0)
    assert (ruled.argmax(1) == 0).sum() > (plain.argmax(1) == 0).sum()
    meta = json.loads((tmp_path / "ruled" / "measure.json").read_text())
    meta["decision_weights"] = [1.0, -1.0]
    (tmp_path / "ruled" / "measure.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="decision_weights"):
        mm.MeasureModel.load(tmp_path / "ruled")


def test_predict_cli_applies_the_stored_decision_rule(measure_run, tmp_path):
    import shutil

    from ecg_core.cli.app import main

    _, data, run_dir = measure_run
    models = tmp_path / "models"
    ruled = models / "tiny-ruled"
    shutil.copytree(run_dir, ruled)
    meta = json.loads((ruled / "measure.json").read_text())
    meta["decision_weights"] = [1e5, 1.0, 1.0, 1.0]
    (ruled / "measure.json").write_text(json.dumps(meta))
    run = json.loads((ruled / "run.json").read_text())
    run["run_id"] = "tiny-ruled"
    (ruled / "run.json").write_text(json.dumps(run))
    folder = tmp_path / "in"
    folder.mkdir()
    for p in sorted(data.rglob("*.png"))[:4]:
        shutil.copy(p, folder / p.name)
    out = tmp_path / "preds.csv"
    assert main(["predict", "tiny-ruled", str(folder), "--out", str(out), "--models", str(models)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 4 and (df["predicted"] == CLASSES[0]).all()


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_selection_rule_prefers_candidates_that_meet_both_bars():
    """scripts/measure_select.py: 'bars' takes the best sum among candidates with macro-F1 >= 0.82 and MI recall
    >= 0.70 (falling back to the best sum), 'f1' the best macro-F1."""
    from ecg_core.reports.reading.features import feature_names

    sel = _script("measure_select")
    scores = {"a": (0.86, 0.60), "b": (0.83, 0.72), "c": (0.80, 0.95)}
    assert sel.pick(scores, "bars") == "b" and sel.pick(scores, "f1") == "a"
    assert sel.pick({"a": (0.86, 0.60), "c": (0.80, 0.95)}, "bars") == "c"  # none meets both: the best sum
    assert set(sel.CANDIDATES) <= set(_script("measure_cv").candidates(feature_names()))


def test_external_out_of_fold_probabilities_are_aligned_by_content_and_repeat(tmp_path):
    """scripts/measure_cv.py --ensemble: another model's OOF CSV (p_<class> columns, some repeats missing) is
    aligned with the feature rows by sha256 and repeat; what it lacks stays NaN."""
    cv = _script("measure_cv")
    df = pd.DataFrame({"sha256": ["h1", "h2", "h3"], "path": ["a", "b", "c"]})
    rows = [{"sha256": h, "repeat": 0, **{f"p_{c}": float(i == k) for k, c in enumerate(CLASSES)}}
            for i, h in ((1, "h2"), (3, "h1"))]
    pd.DataFrame(rows).to_csv(tmp_path / "oof.csv", index=False)
    ext = cv.external_oof(df, tmp_path / "oof.csv")
    assert ext.shape == (3, 3, 4) and np.isnan(ext[1:]).all() and np.isnan(ext[0, 2]).all()
    assert ext[0, 0].argmax() == 3 and ext[0, 1].argmax() == 1


def test_train_measure_refuses_an_unknown_feature_set_before_any_work(tmp_path):
    from ecg_core.core.errors import ConfigError
    from ecg_core.reports.measure_train import train_measure

    with pytest.raises(ConfigError, match="feature set"):
        train_measure(tmp_path / "no-data", tmp_path / "models", params={"features": "nope"})
    assert not (tmp_path / "models").exists()
