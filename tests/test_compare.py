"""ecg_core.ml.compare and ecg_core.ml.external_eval: run records, leakage (file vs group split), latency, the evaluate
and leakage-demo commands."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

import _compare_runs
from ecg_core.ml import compare, dataset, external_eval, leakage_demo, registry, splits
from ecg_core.cli import main
from ecg_core.core.errors import ConfigError, DatasetError
from ecg_core.ml.predictions import predictions_frame
from ecg_core.ml.report import EvalReport


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> _compare_runs.CompareRuns:
    return _compare_runs.build(tmp_path_factory)


# ------------------------------------------------------------------------------------------------ leakage logic
def test_file_split_leaks_copies_and_group_split_does_not(runs):
    index = dataset.scan(runs.leaky)
    assert len(index) == 72 and index["group"].nunique() == 24
    leaky = compare.split_overlap(splits.random_file_split(index, val_frac=0.2, test_frac=0.2, seed=0),
                                  split_by="file")
    honest = compare.split_overlap(splits.split_by_group(index, val_frac=0.2, test_frac=0.2, seed=0),
                                   split_by="group")
    assert leaky.n_test > 0 and leaky.n_test_exact_in_train > 0 and leaky.leaky
    assert leaky.n_test_distinct < leaky.n_test  # copies inside the test split too
    assert honest.n_test > 0 and honest.n_test_exact_in_train == 0 and honest.n_test_group_in_train == 0
    assert not honest.leaky


def test_split_overlap_hand_computed():
    frame = pd.DataFrame({
        "split": ["train", "train", "test", "test", "test", "val"],
        "group": [1, 2, 1, 3, 3, 2],
        "sha256": ["a", "b", "a2", "c", "c", "b"],
    })
    ov = compare.split_overlap(frame, split_by="file")
    assert (ov.n_train, ov.n_test, ov.n_test_distinct) == (2, 3, 2)
    assert ov.n_test_exact_in_train == 0 and ov.n_test_group_in_train == 1  # a near copy of group 1
    with pytest.raises(ConfigError, match="'split' and 'group'"):
        compare.split_overlap(frame.drop(columns="group"))


def test_leakage_demo_runs_and_summary(runs):
    s = runs.summary
    f, g = s["runs"]["file"], s["runs"]["group"]
    assert f["run_id"] == "leakdemo-file-t" and g["run_id"] == "leakdemo-group-t"
    assert f["split_by"] == "file" and g["split_by"] == "group"
    assert f["n_test_exact_in_train"] > 0 and g["n_test_exact_in_train"] == 0 and g["n_test_group_in_train"] == 0
    assert f["n_test_distinct"] < f["n_test"]
    for r in (f, g):
        assert 0 <= r["accuracy"] <= 1 and len(r["macro_f1_ci"]) == 2
    assert math.isclose(s["gap"]["accuracy"], f["accuracy"] - g["accuracy"])
    assert "test files" in s["explanation"] and s["explanation"].endswith(".")
    for rid in (f["run_id"], g["run_id"]):
        stored = json.loads((runs.models / rid / compare.LEAKDEMO_FILE).read_text())
        assert stored["runs"]["file"]["accuracy"] == pytest.approx(f["accuracy"])
    demos = leakage_demo.find_leakage_demos(registry.list_runs(runs.models))
    assert [d["tag"] for d in demos] == ["t"]
    recs = {rid: compare.load_run_record(runs.models / rid) for rid in (f["run_id"], g["run_id"])}
    assert recs["leakdemo-file-t"].badge.level == "leaky" and "LEAKY" in recs["leakdemo-file-t"].badge.text
    assert recs["leakdemo-group-t"].badge.level == "ok"


def test_leakage_demo_refuses_existing_runs_and_own_options(runs):
    with pytest.raises(ConfigError, match="already exist"):
        leakage_demo.leakage_demo(runs.leaky, models_dir=runs.models, tag="t")
    with pytest.raises(ConfigError, match="sets 'split_by' itself"):
        leakage_demo.leakage_demo(runs.leaky, models_dir=runs.models, tag="x", split_by="group")


def test_find_leakage_demos_without_stored_summary(runs, tmp_path):
    models = runs.models_with(tmp_path / "m", ["leakdemo-file-t", "leakdemo-group-t"])
    for rid in ("leakdemo-file-t", "leakdemo-group-t"):
        (models / rid / compare.LEAKDEMO_FILE).unlink()
    demos = leakage_demo.find_leakage_demos(registry.list_runs(models))
    assert len(demos) == 1 and demos[0]["runs"]["file"]["n_test_exact_in_train"] > 0


# --------------------------------------------------------------------------------------------------- records
def test_run_record_and_table(runs):
    rec = compare.load_run_record("arr3", models_dir=runs.models)
    assert rec.usable and rec.problem == "" and rec.split_by == "record"
    assert rec.report.split == "test" and rec.report.n == rec.overlap.n_test
    assert len(rec.class_names) == 6 and rec.n_params > 0 and rec.model_bytes > 0
    assert list(rec.history.columns[:3]) == ["epoch", "loss", "accuracy"]
    assert rec.badge.level == "ok" and "record" in rec.badge.text
    recs = [compare.load_run_record(runs.models / r) for r in ("leakdemo-file-t", "leakdemo-group-t", "arr3")]
    table = compare.compare_table(recs, latency_ms={"arr3": 1.5})
    assert list(table["run"]) == ["leakdemo-file-t", "leakdemo-group-t", "arr3"]
    assert list(table["leakage"]) == ["leaky", "ok", "ok"]
    for key in ("accuracy", "macro_f1", "macro_precision", "macro_recall", "macro_specificity"):
        assert {key, f"{key}_lo", f"{key}_hi"} <= set(table.columns)
        assert (table[f"{key}_lo"] <= table[key] + 1e-9).all() and (table[key] <= table[f"{key}_hi"] + 1e-9).all()
    assert table.loc[2, "latency_ms"] == 1.5 and math.isnan(table.loc[0, "latency_ms"])
    shown = compare.display_table(table)
    assert "accuracy (95% CI)" in shown.columns and "(" in shown.loc[0, "accuracy (95% CI)"]
    assert compare.compare_table(recs, split="oof").empty  # no k-fold in these runs


def test_damaged_runs_are_records_with_a_problem(runs, tmp_path):
    models = runs.models_with(tmp_path / "m", ["arr3"])
    no_eval = models / "no-eval"
    shutil.copytree(models / "arr3", no_eval)
    registry.update_run(no_eval, run_id="no-eval")
    (no_eval / "eval.json").unlink()
    rec = compare.load_run_record(no_eval)
    assert rec.usable  # recomputed from predictions.csv
    stored = EvalReport.from_dict(json.loads((models / "arr3" / "eval.json").read_text()))
    assert rec.report.accuracy == stored.accuracy and rec.report.ci["macro_f1"] == pytest.approx(stored.ci["macro_f1"])
    (no_eval / "predictions.csv").unlink()
    assert "no test evaluation" in compare.load_run_record(no_eval).problem
    bad = models / "bad-eval"
    shutil.copytree(models / "arr3", bad)
    (bad / "eval.json").write_text("{broken")
    (bad / "predictions.csv").unlink()
    assert "unreadable" in compare.load_run_record(bad).problem
    (models / "arr3" / "model.keras").unlink()
    assert "model.keras is missing" in compare.load_run_record(models / "arr3").problem


def test_resolve_run_errors(runs):
    with pytest.raises(ConfigError, match="not found.*known runs"):
        registry.resolve_run("nope", models_dir=runs.models)
    assert registry.resolve_run(str(runs.models / "arr3")).run_id == "arr3"


def test_misclassified_most_confident_first():
    frame = predictions_frame(["a", "b", "c", "d"], [0, 1, 1, 0],
                              [[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]], class_names=["x", "y"])
    wrong = compare.misclassified(frame)
    assert list(wrong["path"]) == ["b", "d"]  # 0.8 before 0.7
    assert list(wrong["predicted"]) == ["x", "y"] and wrong["p_true"].tolist() == pytest.approx([0.2, 0.3])
    assert compare.misclassified(frame.iloc[:0]).empty


def test_measure_latency_toy_model():
    import keras

    inp = keras.Input((8, 8, 1))
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp))
    lat = compare.measure_latency(keras.Model(inp, out), n=5, warmup=1)
    assert lat.n == 5 and lat.input_shape == (8, 8, 1) and 0 < lat.p10_ms <= lat.median_ms <= lat.p90_ms
    with pytest.raises(ConfigError, match="n must be an integer in 1..1000"):
        compare.measure_latency(keras.Model(inp, out), n=0)


# ---------------------------------------------------------------------------------------------- evaluate CLI
def test_evaluate_cli_without_data_recomputes_test_split(runs, capsys):
    rid = "leakdemo-group-t"
    assert main(["evaluate", rid, "--models", str(runs.models)]) == 0
    out = capsys.readouterr().out
    stored = EvalReport.from_dict(json.loads((runs.models / rid / "eval.json").read_text()))
    lo, hi = stored.ci["macro_f1"]
    assert f"accuracy  {stored.accuracy:.3f}" in out
    assert f"macro-F1  {stored.macro['f1']:.3f} (95% CI {lo:.3f}-{hi:.3f})" in out  # same seed: same interval
    assert f"{stored.n} files / {stored.n_distinct} distinct" in out
    for name in stored.class_names:
        assert name in out
    assert "specificity" in out


def test_evaluate_cli_with_external_data_skips_bad_file(runs, tmp_path, capsys):
    data = tmp_path / "ext"
    shutil.copytree(runs.leaky, data)
    (data / "MI" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (data / "notes.txt").write_text("not an image")
    out_dir = tmp_path / "out"
    rid = "leakdemo-group-t"
    assert main(["evaluate", str(runs.models / rid), "--data", str(data), "--out", str(out_dir),
                 "--batch-size", "16"]) == 0
    cap = capsys.readouterr()
    assert "image files: 73, evaluated: 72, skipped (unreadable): 1" in cap.out
    assert "broken.jpg" in cap.out and "non-image files ignored: 1" in cap.out
    assert "external split: 72 files / 24 distinct" in cap.out
    tag = external_eval.data_tag(data)
    preds = pd.read_csv(out_dir / f"predictions_external-{tag}.csv")
    ev = json.loads((out_dir / f"eval_external-{tag}.json").read_text())
    assert len(preds) == 72 and ev["n"] == 72 and ev["n_distinct"] == 24 and ev["split"] == "external"
    assert ev["extra"]["n_skipped"] == 1 and ev["extra"]["run_id"] == rid
    assert {"accuracy", "macro_f1", "macro_recall"} <= set(ev["ci"])
    assert not (runs.models / rid / f"eval_external-{tag}.json").exists()


def test_external_eval_on_spectral_folder_resamples_records(runs):
    res = external_eval.evaluate_on_folder("arr3", runs.spectral_external, models_dir=runs.models,
                                           cache_root=runs.cache, n_boot=200)
    assert res.grouped_by == "record" and res.report.n == 18 and res.report.n_distinct == 6
    assert res.report.class_names[:1] == ("Normal beat",) and res.n_skipped == 0
    assert res.predictions["group"].nunique() == 6


def test_external_eval_errors(runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "Unknown").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no readable image"):
        external_eval.evaluate_on_folder("leakdemo-group-t", empty, models_dir=runs.models, cache_root=runs.cache)
    assert main(["evaluate", "no-such-run", "--models", str(runs.models)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: run 'no-such-run' not found")
    assert main(["evaluate", "arr3", "--models", str(runs.models), "--oof"]) == 2
    assert "k-fold" in capsys.readouterr().err


def test_report_lines_hand_made():
    from ecg_core.ml.evaluate import evaluate_predictions

    rep = evaluate_predictions([0, 1, 1], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), class_names=["a", "b"],
                               n_boot=50)
    lines = external_eval.report_lines(rep)
    assert lines[0] == "test split: 3 files / 3 distinct" and lines[1].startswith("accuracy  0.667 (95% CI")
    assert any(line.startswith("b ") and line.split()[1] == "2" for line in lines)


def test_pr_curves_match_scikit_learn_and_dataset_groups():
    """Issue 19 item 6: precision-recall curves per class (AP in the legend) and grouping runs by dataset."""
    import pandas as pd
    from sklearn.metrics import average_precision_score

    from ecg_core.ml import compare
    from ecg_core.viz import evaluation as viz_eval

    frame = pd.DataFrame({"path": list("abcdef"), "true": ["A", "A", "B", "B", "C", "A"],
                          "prob_A": [0.9, 0.4, 0.2, 0.1, 0.3, 0.6], "prob_B": [0.05, 0.5, 0.7, 0.8, 0.1, 0.2],
                          "prob_C": [0.05, 0.1, 0.1, 0.1, 0.6, 0.2]})
    curves = compare.pr_curves(frame)
    assert set(curves) == {"A", "B", "C"}
    assert curves["A"].ap == pytest.approx(average_precision_score(frame["true"] == "A", frame["prob_A"]))
    assert curves["A"].prevalence == pytest.approx(0.5)
    fig = viz_eval.pr_curves({"r1": curves, "r2": curves}, classes=["B"])
    named = [t for t in fig.data if t.showlegend is not False]
    assert len(named) == 2 and all("AP " in t.name for t in named)
    recs = [compare.RunRecord(run_id=i, path="", status="completed", meta={"data_source": s, "data_fingerprint": f})
            for i, s, f in (("a", "real", "1234567890"), ("b", "synthetic", "abcdef0123"), ("c", "real", "1234567890"))]
    groups = compare.dataset_groups(recs)
    assert [[r.run_id for r in v] for v in groups.values()] == [["a", "c"], ["b"]]
    assert list(groups) == ["real data (fingerprint 12345678)", "synthetic data (fingerprint abcdef01)"]
