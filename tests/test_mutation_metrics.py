"""Tests that pin down the per-class metrics, macro/weighted averages, calibration, ROC curves and the eval.json
round trip (ecg_core.ml.evaluate / ecg_core.ml.report), written from the mutants that survived `make mutate`
(issue 20; docs/MUTATION.md). Expected values are worked out by hand in the comments, not taken from scikit-learn.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ecg_core.core.errors import ConfigError
from ecg_core.ml.bootstrap import _MAX_BOOT_CELLS, group_multiplicities
from ecg_core.ml.evaluate import evaluate_predictions, reliability
from ecg_core.ml.report import EvalReport, compare_frame, compatible_class_sets

NAMES = ["A", "B", "C", "D"]
# true A A A B B C, predicted A A B B C C; D is neither true nor predicted
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]


def _probs(pred: list[int], k: int = 4, top: float = 0.7) -> np.ndarray:
    p = np.full((len(pred), k), (1 - top) / (k - 1))
    p[np.arange(len(pred)), pred] = top
    return p


def _report() -> EvalReport:
    """The hand example (a function, not a fixture: mutmut links a test to the code its body calls)."""
    return evaluate_predictions(Y_TRUE, _probs(Y_PRED), class_names=NAMES, groups=[0, 1, 2, 3, 4, 5], n_boot=200,
                                seed=3)


def test_hand_example_per_class_metrics() -> None:
    """Planted bugs: precision and recall swapped, specificity from the wrong cells, absent class not 0."""
    report = _report()
    # A: tp 2 fp 0 fn 1 tn 3 | B: tp 1 fp 1 fn 1 tn 3 | C: tp 1 fp 1 fn 0 tn 4 | D: all tn
    want = {
        "A": dict(support=3, n_predicted=2, precision=1.0, recall=2 / 3, specificity=1.0, f1=0.8),
        "B": dict(support=2, n_predicted=2, precision=0.5, recall=0.5, specificity=0.75, f1=0.5),
        "C": dict(support=1, n_predicted=2, precision=0.5, recall=1.0, specificity=0.8, f1=2 / 3),
        "D": dict(support=0, n_predicted=0, precision=0.0, recall=0.0, specificity=1.0, f1=0.0),
    }
    got = {m.name: m for m in report.per_class}
    for name, metrics in want.items():
        for key, value in metrics.items():
            assert getattr(got[name], key) == pytest.approx(value), (name, key)
    assert report.accuracy == pytest.approx(4 / 6) and report.error_rate == pytest.approx(2 / 6)


def test_hand_example_macro_over_present_classes_weighted_over_support() -> None:
    """Planted bug: macro-F1 averaged over all 4 classes (D, absent everywhere, would pull it down)."""
    report = _report()
    assert report.macro["precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert report.macro["recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert report.macro["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report.macro["specificity"] == pytest.approx((1 + 0.75 + 0.8) / 3)
    assert report.weighted["precision"] == pytest.approx((3 * 1 + 2 * 0.5 + 1 * 0.5) / 6)
    assert report.weighted["recall"] == pytest.approx(4 / 6)
    assert report.weighted["f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)


def test_ranking_averages_skip_classes_without_positives() -> None:
    """Planted bugs: the pr_auc average stored under another key, the weighted ROC/PR averages lost. D has no
    positives, so its AUCs are NaN and the averages run over A, B, C (weighted by their support 3, 2, 1)."""
    report = _report()
    auc = {m.name: (m.roc_auc, m.pr_auc) for m in report.per_class}
    assert math.isnan(auc["D"][0]) and math.isnan(auc["D"][1])
    for i, metric in enumerate(("roc_auc", "pr_auc")):
        vals = [auc[c][i] for c in "ABC"]
        assert np.isfinite(vals).all()
        assert report.macro[metric] == pytest.approx(sum(vals) / 3)
        assert report.weighted[metric] == pytest.approx((3 * vals[0] + 2 * vals[1] + vals[2]) / 6)


def test_class_seen_once_and_never_predicted_counts_in_the_macro_average() -> None:
    """Planted bug: only classes with 2+ files (or predictions) counted. True A A B, all predicted A: recall of B
    is 0, so macro recall = (1 + 0) / 2."""
    rep = evaluate_predictions([0, 0, 1], [[0.9, 0.1]] * 3, class_names=["A", "B"], n_boot=0)
    assert rep.macro["recall"] == pytest.approx(0.5) and rep.macro["precision"] == pytest.approx((2 / 3 + 0) / 2)


def test_specificity_without_negatives_is_zero() -> None:
    """Convention (module docstring): undefined threshold metrics are 0. Every file is class A, so A has no
    negatives and its specificity is undefined -> 0 (not NaN, not 1); B's is 1/2 (one A file is predicted B)."""
    rep = evaluate_predictions([0, 0], [[0.9, 0.1], [0.3, 0.7]], class_names=["A", "B"], n_boot=0)
    assert rep.per_class[0].specificity == 0.0 and rep.per_class[1].specificity == 0.5
    assert rep.macro["specificity"] == pytest.approx(0.25)


def test_weighted_average_of_a_single_file() -> None:
    """Planted bug: the weighted mean refused a total weight of 1 (one file) and gave NaN."""
    rep = evaluate_predictions([1], [[0.2, 0.8]], class_names=["x", "y"], n_boot=0)
    assert rep.weighted["recall"] == 1.0 and rep.weighted["precision"] == 1.0 and rep.weighted["f1"] == 1.0


def test_roc_auc_is_defined_for_a_class_with_one_positive() -> None:
    """Planted bug: ROC-AUC needed two positives. One positive scored above 2 of the 3 negatives: AUC = 2/3."""
    y = [0, 0, 0, 1]
    p1 = [0.1, 0.3, 0.9, 0.6]
    rep = evaluate_predictions(y, [[1 - v, v] for v in p1], class_names=["neg", "pos"], n_boot=0)
    assert rep.per_class[1].roc_auc == pytest.approx(2 / 3)
    assert rep.roc["pos"].auc == pytest.approx(2 / 3) and len(rep.roc["pos"].fpr) >= 2


def test_long_roc_curves_keep_256_points_including_both_ends() -> None:
    """Planted bugs: the ROC subset not taken (eval.json grows with n), taken without the last point, or not a
    subset of the full curve."""
    from sklearn.metrics import roc_curve  # only to list the full curve's corner points

    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 1000)
    p1 = np.clip(rng.normal(0.45 + 0.1 * y, 0.2), 0.001, 0.999)
    rep = evaluate_predictions(y, np.c_[1 - p1, p1], class_names=["neg", "pos"], n_boot=0)
    fpr, tpr, _ = roc_curve(y == 1, p1)
    assert len(fpr) > 300  # the full curve is long
    curve = rep.roc["pos"]
    assert len(curve.fpr) == len(curve.tpr) == 256
    assert (curve.fpr[0], curve.tpr[0]) == (fpr[0], tpr[0]) and (curve.fpr[-1], curve.tpr[-1]) == (1.0, 1.0)
    full = set(zip(fpr.tolist(), tpr.tolist()))
    assert all(pt in full for pt in zip(curve.fpr, curve.tpr))
    assert np.all(np.diff(curve.fpr) >= 0) and np.all(np.diff(curve.tpr) >= 0)


# --------------------------------------------------------------------------------------------- reliability


def test_reliability_defaults_to_ten_bins_and_accepts_one_bin() -> None:
    """Planted bugs: another default bin count; n_bins=1 refused."""
    y, p = [0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]
    rel = reliability(y, p)
    assert len(rel.edges) == 11 and len(rel.count) == 10
    one = reliability(y, p, n_bins=1)
    assert one.edges == (0.0, 1.0) and one.count == (3,)
    assert one.confidence[0] == pytest.approx((0.9 + 0.8 + 0.6) / 3) and one.accuracy[0] == pytest.approx(2 / 3)


def test_reliability_bins_are_left_open_right_closed() -> None:
    """Bins are (lo, hi]; the first also holds its lower edge. Planted bugs: nothing allowed in the first bin,
    the top bin folded into the one below it."""
    assert reliability([0], [[0.5, 0.5]], n_bins=2).count == (1, 0)  # 0.5 is the first bin's upper edge
    assert reliability([0], [[0.51, 0.49]], n_bins=2).count == (0, 1)
    top = reliability([0, 1], [[0.95, 0.05], [0.0, 1.0]])
    assert top.count[9] == 2 and sum(top.count) == 2
    assert top.confidence[9] == pytest.approx(0.975) and top.accuracy[9] == 1.0


@pytest.mark.parametrize("n_bins", [0, -1, True, 2.5, "3"])
def test_reliability_refuses_bad_bin_counts(n_bins) -> None:
    with pytest.raises(ConfigError, match=r"n_bins must be an integer >= 1; received"):
        reliability([0], [[0.9, 0.1]], n_bins=n_bins)


def test_reliability_of_no_files_is_empty_not_an_error() -> None:
    rel = reliability([], [], n_bins=4)
    assert rel.edges == (0.0, 0.25, 0.5, 0.75, 1.0) and rel.count == (0, 0, 0, 0)
    assert len(rel.confidence) == len(rel.accuracy) == 4
    assert all(math.isnan(v) for v in rel.confidence + rel.accuracy)
    assert rel.n == 0 and math.isnan(rel.ece)


@pytest.mark.parametrize("y, p", [
    ([], [[0.5, 0.5]]),  # labels missing
    ([0], np.empty((0, 2))),  # probabilities missing
    ([0, 1, 0], [[0.9, 0.1], [0.2, 0.8]]),  # different lengths
    ([0, 1], [0.9, 0.8]),  # probabilities not (n, k)
    ([[0], [1]], [[0.9, 0.1], [0.2, 0.8]]),  # labels not (n,)
])
def test_reliability_refuses_mismatched_shapes(y, p) -> None:
    with pytest.raises(ConfigError, match=r"reliability needs y_true of shape \(n,\) and y_prob of shape \(n, k\)"):
        reliability(y, p)


# --------------------------------------------------------------------------------------------- report tables


def test_per_class_frame_columns_and_intervals() -> None:
    """Planted bugs: a renamed column, the per-class intervals looked up under the wrong key (all NaN)."""
    report = _report()
    frame = report.per_class_frame()
    metrics = ["precision", "recall", "specificity", "f1"]
    assert list(frame.columns) == ["class", "support", "n_predicted", *metrics, "roc_auc", "pr_auc",
                                   *[f"{m}_{end}" for m in metrics for end in ("lo", "hi")]]
    assert frame["class"].tolist() == NAMES and frame["support"].tolist() == [3, 2, 1, 0]
    assert frame["n_predicted"].tolist() == [2, 2, 2, 0]
    assert frame["recall"].tolist() == pytest.approx([2 / 3, 0.5, 1.0, 0.0])
    assert frame["roc_auc"].tolist()[:3] == pytest.approx([m.roc_auc for m in report.per_class[:3]])
    assert frame["pr_auc"].tolist()[:3] == pytest.approx([m.pr_auc for m in report.per_class[:3]])
    for metric in metrics:
        lo, hi = frame.loc[0, f"{metric}_lo"], frame.loc[0, f"{metric}_hi"]
        assert (lo, hi) == report.ci[f"{metric}[A]"] and np.isfinite([lo, hi]).all()


def test_compare_frame_columns_and_values() -> None:
    """Planted bugs: compare_frame's columns renamed or left empty (the Compare page reads them by name)."""
    report = _report()
    other = evaluate_predictions(Y_TRUE, _probs(Y_TRUE), class_names=NAMES, n_boot=0, split="external")
    frame = compare_frame({"first": report, "second": other})
    row = frame.iloc[0].to_dict()
    assert frame["run"].tolist() == ["first", "second"] and frame["split"].tolist() == ["test", "external"]
    assert row["n"] == 6 and row["n_distinct"] == 6 and row["accuracy"] == pytest.approx(4 / 6)
    assert row["macro_f1"] == pytest.approx(report.macro["f1"]) and row["ece"] == pytest.approx(report.ece)
    assert (row["accuracy_lo"], row["accuracy_hi"]) == report.ci["accuracy"]
    assert frame.iloc[1]["accuracy"] == 1.0 and math.isnan(frame.iloc[1]["accuracy_lo"])  # no intervals there


def test_compatible_class_sets_checks_every_report_and_names_both_sides() -> None:
    """Planted bug: the loop stopped at the first matching report, so a later mismatch was missed."""
    report = _report()
    other = evaluate_predictions([0, 1], [[0.9, 0.1], [0.2, 0.8]], class_names=["A", "E"], n_boot=0)
    ok, why = compatible_class_sets([report, report, other])
    assert not ok and "'report 3' and 'report 1' have different class sets" in why
    assert "['E'] only in 'report 3'; ['B', 'C', 'D'] only in 'report 1'" in why
    assert compatible_class_sets(report) == (True, f"all 1 reports share the classes {NAMES}")  # one report alone


def test_reports_must_be_eval_reports() -> None:
    with pytest.raises(ConfigError, match=r"reports must hold EvalReport objects; 'x' is a int"):
        compare_frame({"x": 3})


# --------------------------------------------------------------------------------------------- eval.json


def test_eval_json_keys_and_a_round_trip_keep_every_setting() -> None:
    """Planted bugs: a renamed eval.json key, or alpha / extra / n_boot / seed lost on reading it back."""
    report = _report()
    rep = EvalReport.from_dict({**report.to_dict(), "alpha": 0.1, "extra": {"run_id": "r7"}})
    data = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert data["schema_version"] == 1 and data["alpha"] == 0.1 and data["extra"] == {"run_id": "r7"}
    assert data["ece"] == pytest.approx(report.ece)
    assert data["confusion_norm"][0] == pytest.approx([2 / 3, 1 / 3, 0, 0])
    back = EvalReport.from_dict(data)
    assert (back.alpha, back.extra, back.n_boot, back.seed) == (0.1, {"run_id": "r7"}, 200, 3)


def test_eval_json_without_optional_keys_gets_the_defaults() -> None:
    """Older eval.json files lack schema_version, n_boot, seed, alpha and extra: they still load, with defaults."""
    report = _report()
    data = report.to_dict()
    for key in ("schema_version", "n_boot", "seed", "alpha", "extra"):
        del data[key]
    back = EvalReport.from_dict(data)
    assert (back.n_boot, back.seed, back.alpha, back.extra) == (0, 0, 0.05, {})
    assert back.macro == pytest.approx(report.macro)


def test_eval_json_errors_tell_what_to_do() -> None:
    report = _report()
    with pytest.raises(ConfigError, match=r"data must be a dict produced by EvalReport\.to_dict\(\); received list"):
        EvalReport.from_dict([1, 2])
    with pytest.raises(ConfigError, match=r"received 2 \(re-run the evaluation to regenerate eval\.json\)$"):
        EvalReport.from_dict({**report.to_dict(), "schema_version": 2})
    broken = report.to_dict()
    del broken["accuracy"]
    with pytest.raises(ConfigError, match=r"not a valid EvalReport dict \(KeyError: 'accuracy'\); expected the output "
                                          r"of EvalReport\.to_dict\(\) — re-run the evaluation to regenerate eval\.json"):
        EvalReport.from_dict(broken)


# --------------------------------------------------------------------------------------------- bootstrap draws


def test_bootstrap_draws_stay_within_the_memory_cap_for_huge_group_counts() -> None:
    """Planted bug: at least 2 replicates per chunk, so with more groups than the cap a chunk is twice the cap.
    Each replicate still draws exactly n_groups groups, n_boot replicates in all."""
    n_groups = _MAX_BOOT_CELLS + 1
    chunks = list(group_multiplicities(n_groups, n_boot=2, seed=0))
    assert sum(len(c) for c in chunks) == 2
    assert all(c.shape == (1, n_groups) for c in chunks)  # one replicate at a time: cells <= max(cap, n_groups)
    assert all(int(row.sum()) == n_groups for c in chunks for row in c)


# --------------------------------------------------------------------------------------------- input checks


def test_duplicate_class_names_are_named() -> None:
    """Planted bugs: the duplicates listed wrongly (none, or every class)."""
    with pytest.raises(ConfigError, match=r"class_names must be unique; received duplicates \['A'\]$"):
        evaluate_predictions([0], [[0.5, 0.25, 0.25]], class_names=["A", "B", "A"])


def test_non_numeric_probabilities_get_a_clear_message() -> None:
    with pytest.raises(ConfigError, match=r"y_prob must be numeric probabilities of shape \(n_files, 2\); could not"):
        evaluate_predictions([0], [["high", "low"]], class_names=["A", "B"])


def test_no_files_is_refused_by_evaluation_but_gives_an_empty_predictions_table() -> None:
    """Planted bugs: an empty 1-D y_prob not read as (0, k), so the wrong error (or a crash) comes first."""
    from ecg_core.ml.predictions import predictions_frame

    with pytest.raises(ConfigError, match=r"^y_true must contain at least one file; received an empty array$"):
        evaluate_predictions([], [], class_names=["A", "B"])
    frame = predictions_frame([], [], [], class_names=["A", "B"])
    assert frame.empty and list(frame.columns) == ["path", "true", "predicted", "correct", "group", "prob_A",
                                                   "prob_B"]


def test_evaluation_uses_the_requested_calibration_bins() -> None:
    """Planted bug: n_bins not passed on, so the reliability curve always had 10 bins."""
    rep = evaluate_predictions(Y_TRUE, _probs(Y_PRED), class_names=NAMES, n_boot=0, n_bins=4)
    assert rep.calibration.edges == (0.0, 0.25, 0.5, 0.75, 1.0) and rep.calibration.count == (0, 0, 6, 0)


def test_float_labels_that_are_whole_numbers_are_accepted() -> None:
    """Planted bugs: whole-number float labels (e.g. read from a CSV) refused as non-integer, or lost."""
    rep = evaluate_predictions(np.array([0.0, 1.0, 1.0]), [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], class_names=["A", "B"],
                               n_boot=0)
    assert rep.confusion == ((1, 0), (1, 1))


@pytest.mark.parametrize(("y_true", "match"), [
    ([0.5, 1.0], r"^y_true must hold int class ids 0\.\.1; received non-integer values$"),
    ([math.nan, 1.0], r"^y_true must hold int class ids 0\.\.1; received non-integer values$"),
    (["MI", "N", "MI", "N"], r"^y_true must hold int class ids 0\.\.1; received values such as \['MI', 'N', 'MI'\] "
                             r"\(map class names to ids first, or use evaluate_frame\)$"),
    ([[0, 1, 0, 1]], r"^y_true must be a 1-D array of int class ids; received shape \(1, 4\)$"),
])
def test_bad_labels_are_explained(y_true, match) -> None:
    with pytest.raises(ConfigError, match=match):
        evaluate_predictions(y_true, [[0.5, 0.5]] * (4 if len(y_true) != 2 else 2), class_names=["A", "B"])


@pytest.mark.parametrize(("y_prob", "match"), [
    ([[1.5, 0.0]], r"^y_prob must hold probabilities in \[0, 1\] \(softmax output, not logits\); received values "
                   r"in \[0, 1\.5\]$"),
    ([[math.nan, 0.5], [0.5, math.inf], [0.5, 0.5]], r"^y_prob must be finite; received NaN/inf in 2 rows$"),
    ([[0.5, 0.5], [0.7, 0.7], [0.2, 0.2]], r"^y_prob rows must sum to 1 \(±0\.01\); received 2 rows that do not, "
                                           r"e\.g\. row 1 sums to 1\.4$"),
])
def test_bad_probabilities_are_explained(y_prob, match) -> None:
    """Planted bugs: logits above 1 let through (``and`` for ``or``, bound 2), the bad rows miscounted, the
    example row or its sum taken from the wrong row."""
    with pytest.raises(ConfigError, match=match):
        evaluate_predictions([0] * len(y_prob), y_prob, class_names=["A", "B"], n_boot=0)


def test_group_ids_are_compared_as_given() -> None:
    """Planted bug: the ids turned into one NumPy dtype first, so the number 1 and the text '1' became one group."""
    from ecg_core.ml.bootstrap import group_codes

    codes, n = group_codes([1, "1", 1], 3)
    assert n == 2 and codes.tolist() == [0, 1, 0]


def test_reliability_reads_probabilities_given_as_text() -> None:
    """Probabilities read from a CSV as text are converted like evaluate_predictions does. Planted bug: the
    float conversion dropped (NumPy then compares strings)."""
    rel = reliability([0, 1], [["0.9", "0.1"], ["0.3", "0.7"]], n_bins=2)
    assert rel.count == (0, 2) and rel.confidence[1] == pytest.approx(0.8)


def test_safe_div_broadcasts_and_fills_with_any_number() -> None:
    """``num / den`` with ``fill`` where ``den == 0``, broadcasting like ``/``. Planted bugs: the output shape
    taken from ``num`` alone, the output dtype taken from ``fill`` (an int fill then breaks the division)."""
    from ecg_core.ml.report import safe_div

    out = safe_div(1.0, np.array([0, 2, 4]))
    assert out.shape == (3,) and math.isnan(out[0]) and out[1:].tolist() == [0.5, 0.25]
    assert safe_div([1, 1], [0, 2], fill=0).tolist() == [0.0, 0.5]


def test_the_report_records_its_bootstrap_settings_and_defaults() -> None:
    """Planted bugs: n_boot / seed / alpha not stored in the report (eval.json would not say how its intervals
    were made), or other defaults than the documented 1000 replicates, seed 0, 95 % intervals."""
    rep = evaluate_predictions(Y_TRUE, _probs(Y_PRED), class_names=NAMES, n_boot=50, seed=4, alpha=0.1)
    assert (rep.n_boot, rep.seed, rep.alpha) == (50, 4, 0.1)
    default = evaluate_predictions(Y_TRUE, _probs(Y_PRED), class_names=NAMES)
    assert (default.n_boot, default.seed, default.alpha) == (1000, 0, 0.05)


@pytest.mark.parametrize("class_names", ["AB", 5, None])
def test_class_names_must_be_a_list(class_names) -> None:
    with pytest.raises(ConfigError, match=r"^class_names must be a list of class names; received "):
        evaluate_predictions([0, 1], [[0.9, 0.1], [0.2, 0.8]], class_names=class_names)


def test_bootstrap_ci_lets_no_numpy_warning_escape_from_an_undefined_metric() -> None:
    """A metric that divides by zero in some replicates (x / 0, 0 / 0) gives inf / NaN there, which are dropped,
    and no RuntimeWarning reaches the caller. Planted bugs: the ``divide`` or ``invalid`` warning left on."""
    import warnings

    from ecg_core.ml.bootstrap import bootstrap_ci

    y = np.array([0, 1, 0, 1, 1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lo, hi = bootstrap_ci(y, y, lambda t, p: np.float64(t.sum()) / np.float64(0.0), n_boot=20)
        assert math.isnan(lo) and math.isnan(hi)  # every replicate is +inf: none is left
        lo, hi = bootstrap_ci(y, y, lambda t, p: np.float64(0.0) / np.float64((t == 2).sum()), n_boot=20)
        assert math.isnan(lo) and math.isnan(hi)


def test_bootstrap_macro_counts_a_class_predicted_once() -> None:
    """In a replicate, a class that is absent from the labels but predicted once still counts in the macro
    average (precision 0). Planted bug: only classes predicted twice or more counted."""
    from ecg_core.ml.bootstrap import confusion_stats

    cm = np.array([[[1, 1], [0, 0]]])  # A: 2 files, 1 predicted A, 1 predicted B; B: no files
    stats = confusion_stats(cm)
    assert stats["macro_precision"][0] == pytest.approx((1.0 + 0.0) / 2)
    assert stats["macro_recall"][0] == pytest.approx((0.5 + 0.0) / 2)
