"""Classification metrics, group-bootstrap confidence intervals, ROC and calibration for one evaluation run.

The single entry point is :func:`evaluate_predictions` (or :func:`ecg_core.ml.predictions.evaluate_frame` on a
``predictions.csv``); the report it returns is an :class:`ecg_core.ml.report.EvalReport`, its intervals come from
:mod:`ecg_core.ml.bootstrap`:

>>> report = evaluate_predictions(y_true, y_prob, class_names=["MI", "HB", "N", "PMI"], groups=groups)
>>> report.accuracy, report.ci["accuracy"], report.per_class_frame()

Conventions (the same in the point estimates and in every bootstrap replicate):

* The predicted class is the arg-max of ``y_prob`` (ties go to the lower class id).
* Per-class precision / recall / specificity / F1 that are undefined (zero denominator) are **0** in the point
  estimate (scikit-learn's ``zero_division=0``). Macro averages run over the classes that occur in ``y_true`` or
  in the predictions (scikit-learn's default label set); weighted averages are weighted by support.
* ROC-AUC and PR-AUC (average precision) are one-vs-rest per class and **NaN** where undefined: ROC-AUC needs
  positives and negatives of the class, PR-AUC needs positives. Their macro/weighted averages skip NaN classes.
* Calibration is top-label calibration (Guo et al., 2017, "On Calibration of Modern Neural Networks"): the
  confidence is ``max(y_prob)``, bins are ``(lo, hi]`` on ``[0, 1]``, ECE = sum over bins of
  ``count / n * |accuracy - mean confidence|``.
* Confidence intervals are percentile intervals of a **cluster bootstrap** over duplicate groups (Efron &
  Tibshirani 1993; Field & Welsh 2007): each replicate draws as many group ids as there are groups, with
  replacement, and takes every file of every drawn group. Copies of one image therefore move together and cannot
  make an interval look narrower than the number of distinct images supports. Without ``groups`` every file is
  its own group (ordinary i.i.d. bootstrap). Per-class replicates in which the metric is undefined (the class is
  absent from, or never predicted in, the resample) are dropped; macro replicates follow the point-estimate rule.

No scikit-learn ``UndefinedMetricWarning`` and no NumPy ``RuntimeWarning`` escapes from this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from ecg_core.core.errors import ConfigError
from ecg_core.ml.bootstrap import check_options, confusion_cis, group_codes
from ecg_core.ml.report import ClassMetrics, EvalReport, Reliability, RocCurve, safe_div

__all__ = ["evaluate_predictions", "reliability"]

_ROW_SUM_TOL = 1e-2  # probabilities written to CSV with a few decimals still sum to 1 within this
_MAX_ROC_POINTS = 256  # ROC curve points stored per class (AUC is always computed on the full curve)


def evaluate_predictions(
    y_true: Sequence[int] | np.ndarray,
    y_prob: Sequence[Sequence[float]] | np.ndarray,
    *,
    class_names: Sequence[str],
    groups: Sequence[Any] | np.ndarray | None = None,
    split: str = "test",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    n_bins: int = 10,
) -> EvalReport:
    """Evaluate class probabilities against true labels.

    Args:
        y_true: int class ids, shape (n,), each in ``0..k-1``.
        y_prob: probabilities, shape (n, k), rows summing to 1 (softmax output); column ``j`` is ``class_names[j]``.
        class_names: the k class names in model-output order.
        groups: duplicate-group id per file, shape (n,) (files that are copies of one image share an id); ``None``
            makes every file its own group.
        split: which data this is (``'test'``, ``'oof'``, ``'external'``...), stored in the report.
        n_boot: bootstrap replicates for the confidence intervals (0 disables them).
        seed: seed of the bootstrap.
        alpha: 1 - coverage of the intervals (0.05 -> 95 % intervals).
        n_bins: equal-width confidence bins of the reliability curve.
    """
    yt, prob, names, codes, n_groups = validate_inputs(y_true, y_prob, class_names=class_names, groups=groups)
    check_options(split=split, n_boot=n_boot, seed=seed, alpha=alpha, n_bins=n_bins)
    k = len(names)
    labels = list(range(k))
    yp = prob.argmax(axis=1)

    cm = confusion_matrix(yt, yp, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
    mcm = multilabel_confusion_matrix(yt, yp, labels=labels)  # (k, 2, 2): [[tn, fp], [fn, tp]]
    tn, fp = mcm[:, 0, 0], mcm[:, 0, 1]
    specificity = safe_div(tn, tn + fp, fill=0.0)
    n_predicted = cm.sum(axis=0)
    roc_auc, pr_auc, roc = _ranking_metrics(yt, prob, names)

    present = (support > 0) | (n_predicted > 0)  # scikit-learn's default label set for macro averages
    threshold = {"precision": precision, "recall": recall, "specificity": specificity, "f1": f1}
    macro = {m: _mean(v[present]) for m, v in threshold.items()}
    weighted = {m: _weighted_mean(v, support) for m, v in threshold.items()}
    for m, v in (("roc_auc", roc_auc), ("pr_auc", pr_auc)):
        defined = ~np.isnan(v)
        macro[m] = _mean(v[defined])
        weighted[m] = _weighted_mean(v[defined], support[defined])

    per_class = tuple(
        ClassMetrics(
            name=names[c],
            support=int(support[c]),
            n_predicted=int(n_predicted[c]),
            precision=float(precision[c]),
            recall=float(recall[c]),
            specificity=float(specificity[c]),
            f1=float(f1[c]),
            roc_auc=float(roc_auc[c]),
            pr_auc=float(pr_auc[c]),
        )
        for c in labels
    )
    accuracy = float(np.trace(cm) / cm.sum())
    ci = (
        confusion_cis(yt, yp, codes, n_groups, names, n_boot=n_boot, seed=seed, alpha=alpha)
        if n_boot
        else {}
    )
    return EvalReport(
        n=len(yt),
        n_distinct=n_groups,
        class_names=tuple(names),
        split=split,
        accuracy=accuracy,
        error_rate=1.0 - accuracy,
        macro=macro,
        weighted=weighted,
        per_class=per_class,
        confusion=tuple(tuple(int(v) for v in row) for row in cm),
        ci=ci,
        calibration=reliability(yt, prob, n_bins=n_bins),
        roc=roc,
        n_boot=int(n_boot),
        seed=int(seed),
        alpha=float(alpha),
    )


def reliability(
    y_true: Sequence[int] | np.ndarray, y_prob: Sequence[Sequence[float]] | np.ndarray, *, n_bins: int = 10
) -> Reliability:
    """Top-label reliability curve of probabilities ``y_prob`` (n, k) against int labels ``y_true`` (n,)."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ConfigError(f"n_bins must be an integer >= 1; received {n_bins!r}")
    yt = np.asarray(y_true)
    prob = np.asarray(y_prob, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    if yt.size == 0 and prob.size == 0:
        empty = tuple(math.nan for _ in range(n_bins))
        return Reliability(tuple(float(e) for e in edges), (0,) * n_bins, empty, empty)
    if prob.ndim != 2 or yt.ndim != 1 or len(prob) != len(yt):
        raise ConfigError(
            f"reliability needs y_true of shape (n,) and y_prob of shape (n, k); received {yt.shape} and {prob.shape}"
        )
    conf = prob.max(axis=1)
    correct = (prob.argmax(axis=1) == yt).astype(float)
    b = np.clip(np.searchsorted(edges[1:-1], conf, side="left"), 0, n_bins - 1)  # (lo, hi] bins
    count = np.bincount(b, minlength=n_bins)
    sum_conf = np.bincount(b, weights=conf, minlength=n_bins)
    sum_acc = np.bincount(b, weights=correct, minlength=n_bins)
    return Reliability(
        edges=tuple(float(e) for e in edges),
        count=tuple(int(c) for c in count),
        confidence=tuple(float(v) for v in safe_div(sum_conf, count, fill=math.nan)),
        accuracy=tuple(float(v) for v in safe_div(sum_acc, count, fill=math.nan)),
    )


# --------------------------------------------------------------------------------------------------- internals


def validate_inputs(
    y_true: Any, y_prob: Any, *, class_names: Sequence[str], groups: Any, allow_empty: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, int]:
    """Convert and check inputs; return (y_true int64 (n,), y_prob float (n, k), names, group codes (n,), G)."""
    if isinstance(class_names, str) or not isinstance(class_names, Iterable):
        raise ConfigError(f"class_names must be a list of class names; received {class_names!r}")
    names = [str(c) for c in class_names]
    k = len(names)
    if k < 2:
        raise ConfigError(f"class_names must name at least 2 classes; received {names}")
    if len(set(names)) != k:
        dupes = sorted({c for c in names if names.count(c) > 1})
        raise ConfigError(f"class_names must be unique; received duplicates {dupes}")
    try:
        prob = np.asarray(y_prob, dtype=float)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"y_prob must be numeric probabilities of shape (n_files, {k}); {e}") from e
    if prob.ndim == 1 and prob.size == 0:
        prob = prob.reshape(0, k)
    if prob.ndim != 2 or prob.shape[1] != k:
        raise ConfigError(
            f"y_prob must have shape (n_files, {k}) — one column per class in class_names; "
            f"received shape {prob.shape}"
        )
    yt_raw = np.asarray(y_true)
    if yt_raw.ndim != 1:
        raise ConfigError(f"y_true must be a 1-D array of int class ids; received shape {yt_raw.shape}")
    if len(yt_raw) != len(prob):
        raise ConfigError(
            f"y_true and y_prob must describe the same files; received {len(yt_raw)} labels and {len(prob)} rows"
        )
    if len(yt_raw) == 0 and not allow_empty:
        raise ConfigError("y_true must contain at least one file; received an empty array")
    if yt_raw.dtype.kind not in "iub" and len(yt_raw):
        try:
            as_float = yt_raw.astype(float)
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"y_true must hold int class ids 0..{k - 1}; received values such as {yt_raw[:3].tolist()} "
                "(map class names to ids first, or use evaluate_frame)"
            ) from e
        if not np.all(np.isfinite(as_float)) or not np.all(as_float == np.round(as_float)):
            raise ConfigError(f"y_true must hold int class ids 0..{k - 1}; received non-integer values")
        yt_raw = as_float
    yt = yt_raw.astype(np.int64)
    bad = (yt < 0) | (yt >= k)
    if bad.any():
        raise ConfigError(
            f"y_true must hold class ids in 0..{k - 1} (one per class name); received {sorted(set(yt[bad].tolist()))}"
        )
    if not np.all(np.isfinite(prob)):
        raise ConfigError(f"y_prob must be finite; received NaN/inf in {int((~np.isfinite(prob)).any(1).sum())} rows")
    if len(prob) and (prob.min() < 0 or prob.max() > 1):
        raise ConfigError(
            f"y_prob must hold probabilities in [0, 1] (softmax output, not logits); "
            f"received values in [{prob.min():.3g}, {prob.max():.3g}]"
        )
    if len(prob):
        sums = prob.sum(axis=1)
        off = np.abs(sums - 1.0) > _ROW_SUM_TOL
        if off.any():
            raise ConfigError(
                f"y_prob rows must sum to 1 (±{_ROW_SUM_TOL}); received {int(off.sum())} rows that do not, "
                f"e.g. row {int(np.flatnonzero(off)[0])} sums to {sums[off][0]:.4g}"
            )
    codes, n_groups = group_codes(groups, len(yt))
    return yt, prob, names, codes, n_groups


def _ranking_metrics(
    yt: np.ndarray, prob: np.ndarray, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, RocCurve]]:
    """One-vs-rest ROC-AUC, average precision and ROC curves; NaN / empty where a class makes them undefined."""
    k = len(names)
    roc_auc = np.full(k, math.nan)
    pr_auc = np.full(k, math.nan)
    curves: dict[str, RocCurve] = {}
    for c, name in enumerate(names):
        pos = yt == c
        n_pos = int(pos.sum())
        if n_pos:
            pr_auc[c] = average_precision_score(pos, prob[:, c])
        if 0 < n_pos < len(yt):
            roc_auc[c] = roc_auc_score(pos, prob[:, c])
            fpr, tpr, _ = roc_curve(pos, prob[:, c])
            if len(fpr) > _MAX_ROC_POINTS:  # keep eval.json small: an evenly spaced subset of the corner points
                keep = np.unique(np.linspace(0, len(fpr) - 1, _MAX_ROC_POINTS).round().astype(int))
                fpr, tpr = fpr[keep], tpr[keep]
            curves[name] = RocCurve(tuple(map(float, fpr)), tuple(map(float, tpr)), float(roc_auc[c]))
        else:
            curves[name] = RocCurve((), (), math.nan)
    return roc_auc, pr_auc, curves


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    total = float(np.sum(weights))
    return float(np.dot(values, weights) / total) if total > 0 else math.nan
