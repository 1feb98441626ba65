"""Tests of ecg_core.ml.evaluate and ecg_core.viz.evaluation.

Expected values in the hand-computed tests are written out from the confusion matrix in the comment above them,
not recomputed with the code under test. Every test runs with warnings turned into errors (module-level mark), so
no UndefinedMetricWarning / RuntimeWarning can slip through.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from ecg_core.viz import evaluation as viz_eval
from ecg_core.core.errors import ConfigError, EcgCoreError
from ecg_core.ml.bootstrap import bootstrap_ci
from ecg_core.ml.evaluate import evaluate_predictions, reliability
from ecg_core.ml.predictions import evaluate_frame, predictions_frame, read_predictions
from ecg_core.ml.report import EvalReport, ci_key, compare_frame, compatible_class_sets, merge_confusion

pytestmark = pytest.mark.filterwarnings("error")

NAMES = ["A", "B", "C"]
NB = 200  # bootstrap replicates in tests

# Hand-made 3-class example (rows = true, columns = predicted); class C is never predicted.
#            pred A  pred B  pred C   support
#   true A      3       1       0        4
#   true B      1       2       0        3
#   true C      1       2       0        3
#   predicted   5       5       0       n = 10
HAND_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
HAND_PRED = [0, 0, 0, 1, 0, 1, 1, 0, 1, 1]


def one_hot_prob(pred: list[int], k: int = 3, top: float = 0.8) -> np.ndarray:
    """Probabilities with ``top`` on the predicted class and the rest spread evenly."""
    prob = np.full((len(pred), k), (1 - top) / (k - 1))
    prob[np.arange(len(pred)), pred] = top
    return prob


def random_run(n: int, *, k: int = 3, seed: int = 0, signal: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += signal
    prob = np.exp(logits)
    return y, prob / prob.sum(axis=1, keepdims=True)


def width(ci: tuple[float, float]) -> float:
    return ci[1] - ci[0]


@pytest.fixture(scope="module")
def hand_report() -> EvalReport:
    return evaluate_predictions(HAND_TRUE, one_hot_prob(HAND_PRED), class_names=NAMES, n_boot=NB)


@pytest.fixture(scope="module")
def random_report() -> EvalReport:
    y, p = random_run(300, seed=1)
    groups = np.arange(300) // 2  # pairs of duplicates
    return evaluate_predictions(y, p, class_names=NAMES, groups=groups, n_boot=NB, seed=3)


# ------------------------------------------------------------------------------------ hand-computed metrics


def test_hand_example_counts_and_accuracy(hand_report: EvalReport) -> None:
    assert hand_report.confusion == ((3, 1, 0), (1, 2, 0), (1, 2, 0))
    assert hand_report.n == 10 and hand_report.n_distinct == 10
    assert hand_report.accuracy == pytest.approx(0.5)  # (3 + 2 + 0) / 10
    assert hand_report.error_rate == pytest.approx(0.5)
    assert [m.support for m in hand_report.per_class] == [4, 3, 3]
    assert [m.n_predicted for m in hand_report.per_class] == [5, 5, 0]


def test_hand_example_per_class(hand_report: EvalReport) -> None:
    a, b, c = hand_report.per_class
    # precision = TP / predicted: A 3/5, B 2/5, C never predicted -> 0 by convention
    assert (a.precision, b.precision, c.precision) == pytest.approx((0.6, 0.4, 0.0))
    # recall = TP / support: A 3/4, B 2/3, C 0/3
    assert (a.recall, b.recall, c.recall) == pytest.approx((0.75, 2 / 3, 0.0))
    # F1 = 2TP / (2TP + FP + FN): A 6/9, B 4/8, C 0/3
    assert (a.f1, b.f1, c.f1) == pytest.approx((2 / 3, 0.5, 0.0))
    # specificity = TN / (TN + FP): A negatives 6, FP 2 -> 4/6; B negatives 7, FP 3 -> 4/7; C negatives 7, FP 0 -> 1
    assert (a.specificity, b.specificity, c.specificity) == pytest.approx((4 / 6, 4 / 7, 1.0))


def test_hand_example_averages(hand_report: EvalReport) -> None:
    macro, weighted = hand_report.macro, hand_report.weighted
    assert macro["precision"] == pytest.approx((0.6 + 0.4 + 0.0) / 3)
    assert macro["recall"] == pytest.approx((0.75 + 2 / 3 + 0.0) / 3)
    assert macro["f1"] == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)  # 7/18
    assert macro["specificity"] == pytest.approx((4 / 6 + 4 / 7 + 1.0) / 3)  # 47/63
    assert weighted["precision"] == pytest.approx((4 * 0.6 + 3 * 0.4 + 3 * 0.0) / 10)  # 0.36
    assert weighted["recall"] == pytest.approx(0.5)  # weighted recall == accuracy
    assert weighted["f1"] == pytest.approx((4 * 2 / 3 + 3 * 0.5) / 10)
    assert weighted["specificity"] == pytest.approx((4 * 4 / 6 + 3 * 4 / 7 + 3 * 1.0) / 10)


def test_hand_example_normalised_confusion(hand_report: EvalReport) -> None:
    expected = [[0.75, 0.25, 0.0], [1 / 3, 2 / 3, 0.0], [1 / 3, 2 / 3, 0.0]]
    np.testing.assert_allclose(hand_report.confusion_norm, expected)
    np.testing.assert_allclose(hand_report.confusion_array(normalize=True), expected)


def test_hand_example_roc_auc(hand_report: EvalReport) -> None:
    # Class A scores: positives (true A) [.8, .8, .8, .1], negatives [.8, .8, .1, .1, .1, .1].
    # Pairs: 3 * (4 wins + 2 ties * 0.5) + 1 * (4 ties * 0.5) = 15 + 2 = 17 of 24.
    assert hand_report.per_class[0].roc_auc == pytest.approx(17 / 24)
    # Class C is never the top class: every score is 0.1 -> AUC 0.5, average precision = prevalence 3/10.
    assert hand_report.per_class[2].roc_auc == pytest.approx(0.5)
    assert hand_report.per_class[2].pr_auc == pytest.approx(0.3)
    # ROC curve corner points for class A (threshold inf, .8, .1): FPR 0, 2/6, 1; TPR 0, 3/4, 1.
    curve = hand_report.roc["A"]
    np.testing.assert_allclose(curve.fpr, [0, 2 / 6, 1])
    np.testing.assert_allclose(curve.tpr, [0, 0.75, 1])


def test_zero_support_row_normalises_to_zeros() -> None:
    # class C is absent from y_true: its confusion row is all zeros, not NaN
    report = evaluate_predictions([0, 1, 1], one_hot_prob([0, 1, 2]), class_names=NAMES, n_boot=0)
    assert report.confusion[2] == (0, 0, 0)
    np.testing.assert_array_equal(report.confusion_array(normalize=True)[2], [0.0, 0.0, 0.0])
    assert report.confusion_norm[0] == (1.0, 0.0, 0.0)


def test_no_warnings_for_degenerate_classes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # class C never predicted and class B absent from y_true; bootstrap resamples lose classes too
        report = evaluate_predictions(
            [0, 0, 2, 2, 0], one_hot_prob([0, 1, 0, 0, 1]), class_names=NAMES, n_boot=NB, seed=1
        )
        report.to_dict()
        report.per_class_frame()
    assert report.per_class[2].precision == 0.0  # never predicted
    assert report.per_class[1].recall == 0.0  # absent from y_true


def test_class_absent_from_y_true_gives_nan_auc() -> None:
    y = [0, 0, 1, 1, 0, 1]
    prob = np.array(
        [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.5, 0.1], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7]]
    )
    report = evaluate_predictions(y, prob, class_names=NAMES, n_boot=0)
    c = report.per_class[2]
    assert math.isnan(c.roc_auc) and math.isnan(c.pr_auc)
    assert report.roc["C"].fpr == () and math.isnan(report.roc["C"].auc)
    # macro AUC skips the undefined class: (AUC_A + AUC_B) / 2
    # A: positives [.7, .6, .3] vs negatives [.2, .4, .1] -> 8 of 9 pairs won (.3 loses to .4)
    # B: positives [.7, .5, .2] vs negatives [.2, .3, .6] -> .7: 3, .5: 2, .2: 0.5 tie -> 5.5 of 9
    assert report.per_class[0].roc_auc == pytest.approx(8 / 9)
    assert report.per_class[1].roc_auc == pytest.approx(5.5 / 9)
    assert report.macro["roc_auc"] == pytest.approx((8 / 9 + 5.5 / 9) / 2)
    # C was predicted once but has no support: it is in the macro label set with precision 0 and recall 0
    assert report.macro["recall"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_matches_sklearn_on_random_data(random_report: EvalReport) -> None:
    y, p = random_run(300, seed=1)
    pred = p.argmax(1)
    assert random_report.accuracy == pytest.approx(accuracy_score(y, pred))
    for avg in ("macro", "weighted"):
        assert getattr(random_report, avg)["f1"] == pytest.approx(f1_score(y, pred, average=avg, zero_division=0))
        assert getattr(random_report, avg)["precision"] == pytest.approx(
            precision_score(y, pred, average=avg, zero_division=0)
        )
    np.testing.assert_allclose(
        [m.recall for m in random_report.per_class], recall_score(y, pred, average=None, zero_division=0)
    )


# ------------------------------------------------------------------------------------ bootstrap


def test_ci_contains_point_estimate(random_report: EvalReport) -> None:
    r = random_report
    checks = {"accuracy": r.accuracy, "error_rate": r.error_rate, "macro_f1": r.macro["f1"]}
    for m in r.per_class:
        for metric in ("precision", "recall", "f1", "specificity"):
            checks[ci_key(metric, m.name)] = getattr(m, metric)
    for key, value in checks.items():
        lo, hi = r.ci[key]
        assert lo <= value <= hi, key
        assert 0 < hi - lo < 0.5, key


def test_ci_of_undefined_per_class_metric_is_nan(hand_report: EvalReport) -> None:
    # C is never predicted: its precision is 0 by convention but undefined in every replicate -> no interval
    assert all(math.isnan(v) for v in hand_report.ci[ci_key("precision", "C")])
    lo, hi = hand_report.ci[ci_key("recall", "C")]  # recall of C is 0 in every replicate where C occurs
    assert lo == hi == 0.0


def test_ci_is_seeded_and_reproducible() -> None:
    y, p = random_run(120, seed=4)
    a = evaluate_predictions(y, p, class_names=NAMES, n_boot=NB, seed=7)
    b = evaluate_predictions(y, p, class_names=NAMES, n_boot=NB, seed=7)
    c = evaluate_predictions(y, p, class_names=NAMES, n_boot=NB, seed=8)
    assert a.ci == b.ci
    assert a.ci["accuracy"] != c.ci["accuracy"]


def test_ci_wider_with_fewer_groups() -> None:
    y, p = random_run(400, seed=2)
    many = evaluate_predictions(y, p, class_names=NAMES, n_boot=NB)
    few = evaluate_predictions(y[:40], p[:40], class_names=NAMES, n_boot=NB)
    assert width(few.ci["accuracy"]) > 1.5 * width(many.ci["accuracy"])
    assert width(few.ci["macro_f1"]) > 1.5 * width(many.ci["macro_f1"])
    # same 400 files in 20 groups of 20 whose members share correctness: far fewer independent units
    pred = y.copy()
    grp = np.arange(400) // 20
    wrong_groups = grp % 3 == 0
    pred[wrong_groups] = (y[wrong_groups] + 1) % 3
    prob = one_hot_prob(pred.tolist())
    iid = evaluate_predictions(y, prob, class_names=NAMES, n_boot=NB)
    clustered = evaluate_predictions(y, prob, class_names=NAMES, groups=grp, n_boot=NB)
    assert clustered.n_distinct == 20
    assert width(clustered.ci["accuracy"]) > 2 * width(iid.ci["accuracy"])


def test_group_bootstrap_is_not_fooled_by_duplicates() -> None:
    y, p = random_run(100, seed=5)
    base = evaluate_predictions(y, p, class_names=NAMES, n_boot=NB, seed=0)
    # every image copied 5 times; the copies share a duplicate group
    y5, p5, g5 = np.repeat(y, 5), np.repeat(p, 5, axis=0), np.repeat(np.arange(100), 5)
    grouped = evaluate_predictions(y5, p5, class_names=NAMES, groups=g5, n_boot=NB, seed=0)
    naive = evaluate_predictions(y5, p5, class_names=NAMES, n_boot=NB, seed=0)  # i.i.d. over files
    assert grouped.n == 500 and grouped.n_distinct == 100
    assert grouped.accuracy == pytest.approx(base.accuracy)
    for key in ("accuracy", "macro_f1", ci_key("recall", "B")):
        # same group draws, every count multiplied by 5 -> exactly the same interval as the un-duplicated data
        assert grouped.ci[key] == pytest.approx(base.ci[key]), key
        assert width(naive.ci[key]) < 0.7 * width(grouped.ci[key]), key


def test_bootstrap_ci_reproduces_report_intervals(random_report: EvalReport) -> None:
    y, p = random_run(300, seed=1)
    pred = p.argmax(1)
    groups = np.arange(300) // 2
    kw = {"groups": groups, "n_boot": NB, "seed": 3}
    assert bootstrap_ci(y, pred, accuracy_score, **kw) == pytest.approx(random_report.ci["accuracy"])

    def macro_f1(t: np.ndarray, q: np.ndarray) -> float:
        return f1_score(t, q, average="macro", zero_division=0)

    assert bootstrap_ci(y, pred, macro_f1, **kw) == pytest.approx(random_report.ci["macro_f1"])

    def recall_b(t: np.ndarray, q: np.ndarray) -> float:
        return recall_score(t, q, labels=[1], average=None, zero_division=np.nan)[0]

    assert bootstrap_ci(y, pred, recall_b, **kw) == pytest.approx(random_report.ci[ci_key("recall", "B")])
    # probabilities can be resampled too (rows move with their labels)
    lo, hi = bootstrap_ci(y, p, lambda t, q: accuracy_score(t, q.argmax(1)), **kw)
    assert (lo, hi) == pytest.approx(random_report.ci["accuracy"])


def test_bootstrap_ci_drops_undefined_replicates() -> None:
    assert all(math.isnan(v) for v in bootstrap_ci([0, 1], [0, 1], lambda t, q: math.nan, n_boot=10))
    lo, hi = bootstrap_ci([0, 1, 1, 0], [0, 1, 0, 0], accuracy_score, groups=["a", "a", "b", "b"], n_boot=50)
    assert 0.5 <= lo <= hi <= 1.0  # group a is all correct, group b half correct


def test_n_boot_zero_disables_intervals() -> None:
    report = evaluate_predictions(HAND_TRUE, one_hot_prob(HAND_PRED), class_names=NAMES, n_boot=0)
    assert report.ci == {}
    assert report.per_class_frame()["recall_lo"].isna().all()


# ------------------------------------------------------------------------------------ calibration


def test_ece_zero_for_perfectly_calibrated_toy_data() -> None:
    # 8 files at confidence 0.75 of which 6 are right; 5 files at confidence 0.6 of which 3 are right
    y = [0] * 6 + [1] * 2 + [1] * 3 + [0] * 2
    prob = [[0.75, 0.25]] * 8 + [[0.4, 0.6]] * 5
    report = evaluate_predictions(y, prob, class_names=["x", "y"], n_boot=0)
    assert report.ece == pytest.approx(0.0, abs=1e-12)
    cal = report.calibration
    assert cal.count[7] == 8 and cal.count[5] == 5 and sum(cal.count) == 13  # bins (.7, .8] and (.5, .6]
    assert cal.accuracy[7] == pytest.approx(0.75) and cal.confidence[5] == pytest.approx(0.6)
    assert math.isnan(cal.accuracy[0])  # empty bin


def test_ece_small_for_calibrated_sample_and_large_when_overconfident() -> None:
    rng = np.random.default_rng(0)
    u = rng.uniform(size=20_000)
    y = (rng.uniform(size=u.size) < u).astype(int)  # P(class 1) = u exactly
    prob = np.column_stack([1 - u, u])
    assert reliability(y, prob).ece < 0.02
    # always 0.99 confident, right half the time: ECE = |0.5 - 0.99| = 0.49
    y2 = np.array([0, 1] * 50)
    prob2 = np.tile([0.99, 0.01], (100, 1))
    assert reliability(y2, prob2).ece == pytest.approx(0.49)


# ------------------------------------------------------------------------------------ serialisation, frames


def test_json_round_trip(random_report: EvalReport) -> None:
    data = random_report.to_dict()
    text = json.dumps(data, allow_nan=False)
    back = EvalReport.from_dict(json.loads(text))
    assert back.to_dict() == data
    assert back.ci == random_report.ci and back.per_class == random_report.per_class
    assert back.ece == pytest.approx(random_report.ece)


def test_json_round_trip_turns_nan_into_none() -> None:
    y = [0, 0, 1, 1]
    report = evaluate_predictions(y, one_hot_prob([0, 1, 1, 2]), class_names=NAMES, n_boot=NB)
    data = report.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["per_class"][2]["roc_auc"] is None
    back = EvalReport.from_dict(json.loads(json.dumps(data)))
    assert math.isnan(back.per_class[2].roc_auc)
    assert back.to_dict() == data


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.pop("confusion"), "confusion"),
        (lambda d: d.update(schema_version=99), "schema_version"),
        (lambda d: d.update(n="many"), "valid EvalReport"),
    ],
)
def test_from_dict_rejects_bad_input(hand_report: EvalReport, mutate, match: str) -> None:
    data = hand_report.to_dict()
    mutate(data)
    with pytest.raises(ConfigError, match=match):
        EvalReport.from_dict(data)


def test_predictions_csv_round_trip(tmp_path, random_report: EvalReport) -> None:
    y, p = random_run(300, seed=1)
    groups = np.arange(300) // 2
    paths = [f"img/{i}.png" for i in range(300)]
    frame = predictions_frame(paths, y, p, class_names=NAMES, groups=groups)
    assert list(frame.columns) == ["path", "true", "predicted", "correct", "group", "prob_A", "prob_B", "prob_C"]
    assert frame["correct"].mean() == pytest.approx(random_report.accuracy)
    assert set(frame["true"]) == set(NAMES)
    csv = tmp_path / "predictions.csv"
    frame.to_csv(csv, index=False)
    again = evaluate_frame(read_predictions(csv), n_boot=NB, seed=3)
    assert again.class_names == tuple(NAMES)
    assert again.n_distinct == 150
    assert again.accuracy == pytest.approx(random_report.accuracy)
    assert again.ci.keys() == random_report.ci.keys()
    for key, bounds in random_report.ci.items():  # same groups -> same draws -> same intervals
        assert again.ci[key] == pytest.approx(bounds), key
    assert again.macro == pytest.approx(random_report.macro)


def test_evaluate_frame_class_order_and_ids() -> None:
    frame = predictions_frame(
        ["a", "b", "c", "d"], [0, 1, 2, 1], one_hot_prob([0, 1, 2, 0]), class_names=NAMES, groups=None
    )
    # true A, B, C, B predicted A, B, C, A; columns are picked by name in the order given
    rep = evaluate_frame(frame, class_names=["C", "B", "A"], n_boot=0)
    assert rep.class_names == ("C", "B", "A")
    assert rep.confusion == ((1, 0, 0), (0, 1, 1), (0, 0, 1))
    frame["true"] = [0, 1, 2, 1]  # int ids (positions in the class order) are accepted too
    assert evaluate_frame(frame, n_boot=0).confusion == ((1, 0, 0), (1, 1, 0), (0, 0, 1))
    with pytest.raises(ConfigError, match="no probability column"):
        evaluate_frame(frame, class_names=["A", "B", "Z"], n_boot=0)


def test_read_predictions_fills_missing_groups(tmp_path) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("path,true,prob_A,prob_B,group\nx,A,0.9,0.1,g1\ny,B,0.2,0.8,\nz,B,0.3,0.7,g1\n")
    frame = read_predictions(csv)
    assert frame["group"].notna().all()
    assert evaluate_frame(frame, n_boot=0).n_distinct == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("path,true,score\nx,A,0.9\n")
    with pytest.raises(ConfigError, match="prob_"):
        read_predictions(bad)


def test_compatible_class_sets_and_merge(hand_report: EvalReport) -> None:
    other_order = evaluate_predictions([0, 1, 2], one_hot_prob([0, 1, 2]), class_names=["B", "A", "C"], n_boot=0)
    other_set = evaluate_predictions([0, 1, 2], one_hot_prob([0, 1, 2]), class_names=["A", "B", "D"], n_boot=0)
    ok, why = compatible_class_sets({"r1": hand_report, "r2": hand_report})
    assert ok and "share" in why
    ok, why = compatible_class_sets({"r1": hand_report, "r2": other_order})
    assert not ok and "order" in why and "'r2'" in why
    ok, why = compatible_class_sets([hand_report, other_set])
    assert not ok and "['D'] only in 'report 2'" in why and "['C'] only in 'report 1'" in why
    assert compatible_class_sets([]) == (False, "no reports given; pass at least one EvalReport")
    np.testing.assert_array_equal(merge_confusion([hand_report, hand_report]), 2 * hand_report.confusion_array())
    with pytest.raises(ConfigError, match="cannot merge"):
        merge_confusion([hand_report, other_set])
    table = compare_frame({"r1": hand_report, "r2": other_order})
    assert list(table["run"]) == ["r1", "r2"] and "accuracy_lo" in table.columns


# ------------------------------------------------------------------------------------ input errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"y_prob": np.ones(3) / 3}, r"y_prob must have shape \(n_files, 3\)"),
        ({"y_prob": np.full((3, 2), 0.5)}, r"received shape \(3, 2\)"),
        ({"y_true": [0, 1]}, "2 labels and 3 rows"),
        ({"y_true": [0, 1, 3]}, r"class ids in 0..2.*\[3\]"),
        ({"y_true": [0, 1, 1.5]}, "non-integer"),
        ({"y_true": ["A", "B", "C"]}, "int class ids"),
        ({"y_prob": np.full((3, 3), 0.5)}, "sum to 1"),
        ({"y_prob": np.array([[2.0, -1.0, 0.0]] * 3)}, "logits"),
        ({"y_prob": np.array([[np.nan, 0.5, 0.5]] * 3)}, "finite"),
        ({"class_names": ["A", "A", "C"]}, "unique"),
        ({"class_names": ["A"]}, "at least 2"),
        ({"groups": [1, 2]}, "one id per file"),
        ({"groups": [1, None, 2]}, "missing"),
        ({"n_boot": -1}, "n_boot must be an integer >= 0"),
        ({"alpha": 1.5}, r"alpha must be a number in \(0, 1\)"),
        ({"split": ""}, "split must be a non-empty string"),
        ({"y_true": [], "y_prob": np.zeros((0, 3))}, "at least one file"),
    ],
)
def test_input_errors(kwargs: dict, match: str) -> None:
    args = {"y_true": [0, 1, 2], "y_prob": np.eye(3), "class_names": NAMES, "n_boot": 0} | kwargs
    with pytest.raises(ConfigError, match=match) as info:
        evaluate_predictions(args.pop("y_true"), args.pop("y_prob"), **args)
    assert isinstance(info.value, EcgCoreError)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 4)), min_size=1, max_size=30),
)
def test_properties_hold_for_any_small_input(rows: list[tuple[int, int, int]]) -> None:
    y = [r[0] for r in rows]
    pred = [r[1] for r in rows]
    groups = [r[2] for r in rows]
    rep = evaluate_predictions(y, one_hot_prob(pred), class_names=NAMES, groups=groups, n_boot=20)
    cm = rep.confusion_array()
    assert cm.sum() == len(rows) and rep.accuracy == pytest.approx(np.trace(cm) / len(rows))
    sums = rep.confusion_array(normalize=True).sum(axis=1)
    assert all(s == pytest.approx(1.0) or s == 0.0 for s in sums)
    for lo, hi in rep.ci.values():
        assert (math.isnan(lo) and math.isnan(hi)) or 0.0 <= lo <= hi <= 1.0
    json.dumps(rep.to_dict(), allow_nan=False)


# ------------------------------------------------------------------------------------ figures


def _is_no_data(fig: go.Figure) -> bool:
    return any(a.text == "no data" for a in fig.layout.annotations)


@pytest.fixture(scope="module")
def degenerate_report() -> EvalReport:
    # a single class in y_true: every ROC undefined
    return evaluate_predictions([0, 0, 0], one_hot_prob([0, 1, 0]), class_names=NAMES, n_boot=NB)


HISTORY = pd.DataFrame(
    {
        "epoch": [0, 1, 2],
        "loss": [1.2, 0.8, 0.6],
        "val_loss": [1.3, 0.9, np.nan],
        "accuracy": [0.4, 0.6, 0.7],
        "val_accuracy": [0.35, 0.55, 0.6],
    }
)


def test_metric_bars(hand_report: EvalReport, random_report: EvalReport) -> None:
    fig = viz_eval.metrics_by_model({"hand": hand_report, "random": random_report})
    assert isinstance(fig, go.Figure) and len(fig.data) == 2 and not _is_no_data(fig)
    assert list(fig.data[0].x) == ["Accuracy", "Precision", "Recall (sensitivity)", "F1", "Specificity"]
    assert fig.data[0].error_y.array is not None  # macro intervals present
    fig = viz_eval.metrics_by_model(random_report, average="weighted", metrics=["accuracy", "roc_auc"])
    assert isinstance(fig, go.Figure)
    fig = viz_eval.metrics_by_class({"hand": hand_report, "random": random_report})
    assert isinstance(fig, go.Figure) and len(fig.data) == 8  # 2 runs x 4 metric panels
    with pytest.raises(ConfigError, match="metrics must be a list"):
        viz_eval.metrics_by_model(hand_report, metrics=["auc"])


def test_confusion_heatmap(hand_report: EvalReport) -> None:
    fig = viz_eval.confusion_heatmap(hand_report)
    heat = fig.data[0]
    assert isinstance(fig, go.Figure) and isinstance(heat, go.Heatmap)
    assert heat.text[0][0] == "3<br>75%" and heat.text[2][2] == "0<br>0%"
    assert fig.layout.xaxis.title.text == "Predicted" and fig.layout.yaxis.title.text == "True"
    fig = viz_eval.confusion_heatmap(merge_confusion([hand_report, hand_report]), class_names=NAMES)
    assert fig.data[0].text[0][0] == "6<br>75%"
    assert _is_no_data(viz_eval.confusion_heatmap(np.zeros((0, 0))))
    assert _is_no_data(viz_eval.confusion_heatmap(np.zeros((3, 3)), class_names=NAMES))


def test_roc_and_reliability(hand_report: EvalReport, random_report: EvalReport, degenerate_report) -> None:
    fig = viz_eval.roc_curves(random_report)
    assert isinstance(fig, go.Figure) and len(fig.data) == 4  # 3 classes + chance line
    fig = viz_eval.roc_curves({"a": hand_report, "b": random_report}, classes=["A"])
    assert len(fig.data) == 3
    assert _is_no_data(viz_eval.roc_curves(degenerate_report))
    fig = viz_eval.reliability_diagram({"a": hand_report, "b": random_report})
    assert isinstance(fig, go.Figure) and not _is_no_data(fig)
    assert any(isinstance(t, go.Bar) for t in fig.data)
    assert "ECE" in fig.data[0].name


def test_training_curves() -> None:
    fig = viz_eval.training_curves({"run1": HISTORY, "run2": HISTORY.drop(columns=["val_accuracy", "epoch"])})
    assert isinstance(fig, go.Figure) and len(fig.data) == 7 and not _is_no_data(fig)
    val_loss = next(t for t in fig.data if t.name == "run1 validation" and t.xaxis == "x")
    assert list(val_loss.x) == [0, 1]  # NaN epoch dropped


@pytest.mark.parametrize(
    "build",
    [
        lambda: viz_eval.metrics_by_model({}),
        lambda: viz_eval.metrics_by_class([]),
        lambda: viz_eval.roc_curves({}),
        lambda: viz_eval.reliability_diagram({}),
        lambda: viz_eval.training_curves({}),
        lambda: viz_eval.training_curves({"r": pd.DataFrame()}),
        lambda: viz_eval.training_curves({"r": pd.DataFrame({"epoch": [1, 2], "loss": [np.nan, np.nan]})}),
        lambda: viz_eval.confusion_heatmap([]),
    ],
)
def test_empty_inputs_give_no_data_figure(build) -> None:
    fig = build()
    assert isinstance(fig, go.Figure) and _is_no_data(fig)


def test_nan_metrics_are_skipped_or_give_no_data(degenerate_report: EvalReport) -> None:
    # macro PR-AUC is defined (class A: 1.0), macro ROC-AUC is NaN: the NaN bar is left empty
    fig = viz_eval.metrics_by_model(degenerate_report, metrics=["roc_auc", "pr_auc"])
    assert not _is_no_data(fig) and list(fig.data[0].y) == [None, 1.0]
    assert _is_no_data(viz_eval.metrics_by_class(degenerate_report, metrics=["roc_auc"]))
    assert _is_no_data(viz_eval.metrics_by_model(degenerate_report, metrics=["roc_auc"]))
