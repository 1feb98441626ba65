"""Classification metrics, group-bootstrap confidence intervals, ROC and calibration for one evaluation run.

The single entry point is :func:`evaluate_predictions` (or :func:`evaluate_frame` on a ``predictions.csv``):

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

import io
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from ecg_core.core.errors import ConfigError

__all__ = [
    "CI_CLASS_METRICS",
    "ClassMetrics",
    "EvalReport",
    "Reliability",
    "RocCurve",
    "bootstrap_ci",
    "ci_key",
    "compare_frame",
    "compatible_class_sets",
    "evaluate_frame",
    "evaluate_predictions",
    "merge_confusion",
    "predictions_frame",
    "read_predictions",
    "reliability",
]

SCHEMA_VERSION = 1
CLASS_METRICS: tuple[str, ...] = ("precision", "recall", "specificity", "f1")
"""Threshold metrics computed per class, macro- and support-weighted-averaged."""
CI_CLASS_METRICS: tuple[str, ...] = CLASS_METRICS
"""Per-class metrics that get a bootstrap interval, under the key ``ci_key(metric, class_name)``."""
CI_GLOBAL_METRICS: tuple[str, ...] = (
    "accuracy",
    "error_rate",
    "macro_precision",
    "macro_recall",
    "macro_specificity",
    "macro_f1",
)
"""Whole-run metrics that get a bootstrap interval, under their own name."""
PREDICTION_COLUMNS: tuple[str, ...] = ("path", "true", "predicted", "correct", "group")
PROB_PREFIX = "prob_"
_ROW_SUM_TOL = 1e-2  # probabilities written to CSV with a few decimals still sum to 1 within this
_MAX_BOOT_CELLS = 2_000_000  # replicates x groups held in memory at once
_MAX_ROC_POINTS = 256  # ROC curve points stored per class (AUC is always computed on the full curve)


# --------------------------------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class ClassMetrics:
    """One-vs-rest metrics of one class. ``support`` = files of the class, ``n_predicted`` = files predicted as it."""

    name: str
    support: int
    n_predicted: int
    precision: float
    recall: float
    specificity: float
    f1: float
    roc_auc: float
    pr_auc: float


@dataclass(frozen=True)
class RocCurve:
    """One-vs-rest ROC curve of one class: scikit-learn's corner points (an evenly spaced subset of at most 256 of them,
    always including both ends); empty with ``auc`` NaN when undefined. ``auc`` is computed on the full curve."""

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    auc: float


@dataclass(frozen=True)
class Reliability:
    """Top-label reliability curve.

    ``edges`` has ``n_bins + 1`` entries; bin ``b`` holds confidences in ``(edges[b], edges[b + 1]]`` (the first bin
    also holds 0). ``confidence`` / ``accuracy`` are the mean confidence and the fraction of correct arg-max
    predictions per bin, NaN for empty bins.
    """

    edges: tuple[float, ...]
    count: tuple[int, ...]
    confidence: tuple[float, ...]
    accuracy: tuple[float, ...]

    @property
    def n(self) -> int:
        return int(sum(self.count))

    @property
    def ece(self) -> float:
        """Expected calibration error in [0, 1]; NaN when there are no files."""
        n = self.n
        if n == 0:
            return math.nan
        return float(
            sum(c / n * abs(a - p) for c, a, p in zip(self.count, self.accuracy, self.confidence, strict=True) if c)
        )


@dataclass(frozen=True)
class EvalReport:
    """Everything measured on one set of predictions; JSON-safe via :meth:`to_dict` / :meth:`from_dict`.

    ``macro`` / ``weighted`` map ``precision``, ``recall``, ``specificity``, ``f1``, ``roc_auc``, ``pr_auc`` to
    values; ``ci`` maps ``accuracy``, ``error_rate``, ``macro_*`` and ``ci_key(metric, class)`` to ``(lo, hi)``
    (empty when ``n_boot == 0``). ``confusion[i][j]`` counts files of true class ``i`` predicted as ``j``.
    Treat the dict fields as read-only.
    """

    n: int
    n_distinct: int
    class_names: tuple[str, ...]
    split: str
    accuracy: float
    error_rate: float
    macro: dict[str, float]
    weighted: dict[str, float]
    per_class: tuple[ClassMetrics, ...]
    confusion: tuple[tuple[int, ...], ...]
    ci: dict[str, tuple[float, float]]
    calibration: Reliability
    roc: dict[str, RocCurve]
    n_boot: int = 0
    seed: int = 0
    alpha: float = 0.05
    extra: dict[str, Any] = field(default_factory=dict)  # free-form JSON-safe metadata (run id, model name...)

    @property
    def ece(self) -> float:
        """Expected calibration error of the top-label confidence (see :class:`Reliability`)."""
        return self.calibration.ece

    @property
    def confusion_norm(self) -> tuple[tuple[float, ...], ...]:
        """Row-normalised confusion matrix (each row sums to 1; a row of a class with no files is all zeros)."""
        return tuple(tuple(float(v) for v in row) for row in _row_normalise(np.asarray(self.confusion, float)))

    def confusion_array(self, *, normalize: bool = False) -> np.ndarray:
        """Confusion matrix as an array of shape (k, k): int counts, or float rows summing to 1 when normalised."""
        cm = np.asarray(self.confusion, dtype=np.int64).reshape(len(self.class_names), len(self.class_names))
        return _row_normalise(cm.astype(float)) if normalize else cm

    def per_class_frame(self) -> pd.DataFrame:
        """Per-class metrics as a DataFrame, one row per class, with ``<metric>_lo`` / ``<metric>_hi`` CI columns."""
        rows = []
        for m in self.per_class:
            row: dict[str, Any] = {
                "class": m.name,
                "support": m.support,
                "n_predicted": m.n_predicted,
                "precision": m.precision,
                "recall": m.recall,
                "specificity": m.specificity,
                "f1": m.f1,
                "roc_auc": m.roc_auc,
                "pr_auc": m.pr_auc,
            }
            for metric in CI_CLASS_METRICS:
                lo, hi = self.ci.get(ci_key(metric, m.name), (math.nan, math.nan))
                row[f"{metric}_lo"], row[f"{metric}_hi"] = lo, hi
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN and infinities become ``None``); ``json.dumps(..., allow_nan=False)`` accepts it."""
        return json_safe(
            {
                "schema_version": SCHEMA_VERSION,
                "n": self.n,
                "n_distinct": self.n_distinct,
                "class_names": list(self.class_names),
                "split": self.split,
                "accuracy": self.accuracy,
                "error_rate": self.error_rate,
                "macro": dict(self.macro),
                "weighted": dict(self.weighted),
                "per_class": [vars(m) for m in self.per_class],
                "confusion": [list(r) for r in self.confusion],
                "confusion_norm": [list(r) for r in self.confusion_norm],
                "ci": {k: list(v) for k, v in self.ci.items()},
                "ece": self.ece,
                "calibration": {
                    "edges": list(self.calibration.edges),
                    "count": list(self.calibration.count),
                    "confidence": list(self.calibration.confidence),
                    "accuracy": list(self.calibration.accuracy),
                },
                "roc": {k: {"fpr": list(c.fpr), "tpr": list(c.tpr), "auc": c.auc} for k, c in self.roc.items()},
                "n_boot": self.n_boot,
                "seed": self.seed,
                "alpha": self.alpha,
                "extra": dict(self.extra),
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a loaded ``eval.json``); ``None`` becomes NaN.

        Derived entries (``confusion_norm``, ``ece``) are recomputed, not read.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"data must be a dict produced by EvalReport.to_dict(); received {type(data).__name__}")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"eval report schema_version must be {SCHEMA_VERSION}; received {version!r} "
                "(re-run the evaluation to regenerate eval.json)"
            )
        try:
            cal = data["calibration"]
            return cls(
                n=int(data["n"]),
                n_distinct=int(data["n_distinct"]),
                class_names=tuple(str(c) for c in data["class_names"]),
                split=str(data["split"]),
                accuracy=_f(data["accuracy"]),
                error_rate=_f(data["error_rate"]),
                macro={str(k): _f(v) for k, v in data["macro"].items()},
                weighted={str(k): _f(v) for k, v in data["weighted"].items()},
                per_class=tuple(
                    ClassMetrics(
                        name=str(m["name"]),
                        support=int(m["support"]),
                        n_predicted=int(m["n_predicted"]),
                        **{k: _f(m[k]) for k in (*CLASS_METRICS, "roc_auc", "pr_auc")},
                    )
                    for m in data["per_class"]
                ),
                confusion=tuple(tuple(int(v) for v in row) for row in data["confusion"]),
                ci={str(k): (_f(v[0]), _f(v[1])) for k, v in data["ci"].items()},
                calibration=Reliability(
                    edges=tuple(_f(v) for v in cal["edges"]),
                    count=tuple(int(v) for v in cal["count"]),
                    confidence=tuple(_f(v) for v in cal["confidence"]),
                    accuracy=tuple(_f(v) for v in cal["accuracy"]),
                ),
                roc={
                    str(k): RocCurve(tuple(_f(x) for x in c["fpr"]), tuple(_f(x) for x in c["tpr"]), _f(c["auc"]))
                    for k, c in data["roc"].items()
                },
                n_boot=int(data.get("n_boot", 0)),
                seed=int(data.get("seed", 0)),
                alpha=_f(data.get("alpha", 0.05)),
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ConfigError(
                f"data is not a valid EvalReport dict ({type(e).__name__}: {e}); expected the output of "
                "EvalReport.to_dict() — re-run the evaluation to regenerate eval.json"
            ) from e


# --------------------------------------------------------------------------------------------------- public API


def ci_key(metric: str, class_name: str) -> str:
    """Key of a per-class interval in :attr:`EvalReport.ci`, e.g. ``ci_key("recall", "Normal") == "recall[Normal]"``."""
    return f"{metric}[{class_name}]"


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
    yt, prob, names, codes, n_groups = _validate(y_true, y_prob, class_names=class_names, groups=groups)
    _check_options(split=split, n_boot=n_boot, seed=seed, alpha=alpha, n_bins=n_bins)
    k = len(names)
    labels = list(range(k))
    yp = prob.argmax(axis=1)

    cm = confusion_matrix(yt, yp, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
    mcm = multilabel_confusion_matrix(yt, yp, labels=labels)  # (k, 2, 2): [[tn, fp], [fn, tp]]
    tn, fp = mcm[:, 0, 0], mcm[:, 0, 1]
    specificity = _safe_div(tn, tn + fp, fill=0.0)
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
        _bootstrap_confusion_cis(yt, yp, codes, n_groups, names, n_boot=n_boot, seed=seed, alpha=alpha)
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


def bootstrap_ci(
    y_true: Sequence[Any] | np.ndarray,
    y_pred_or_prob: Sequence[Any] | np.ndarray,
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile ``(1 - alpha)`` interval of ``metric_fn(y_true[idx], y_pred_or_prob[idx])`` under a group bootstrap.

    Each replicate draws ``G`` group ids (``G`` = number of distinct groups) with replacement and takes all files of
    every drawn group (a group drawn twice contributes its files twice). ``groups=None`` is the i.i.d. bootstrap
    over files. Replicates where ``metric_fn`` returns NaN/inf (undefined metric) are dropped; ``(nan, nan)`` when
    none is left. With the same ``groups``, ``n_boot`` and ``seed`` the replicates are exactly those that
    :func:`evaluate_predictions` uses, so e.g. ``bootstrap_ci(y, y_hat, accuracy_score, ...)`` reproduces
    ``report.ci["accuracy"]``.

    Args:
        y_true: true labels, shape (n,).
        y_pred_or_prob: predictions, shape (n,) or (n, k); indexed along axis 0 together with ``y_true``.
        metric_fn: ``metric_fn(y_true_resampled, y_pred_resampled) -> float``.
        groups: duplicate-group id per file, shape (n,), or ``None``.
        n_boot: number of replicates (>= 1).
        seed: seed of NumPy's default generator.
        alpha: 1 - coverage, in (0, 1).
    """
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred_or_prob)
    if yt.ndim != 1 or len(yt) == 0:
        raise ConfigError(f"y_true must be a non-empty 1-D array; received shape {yt.shape}")
    if len(yp) != len(yt):
        raise ConfigError(
            f"y_pred_or_prob must have one row per entry of y_true ({len(yt)}); received {len(yp)} rows"
        )
    if not callable(metric_fn):
        raise ConfigError(f"metric_fn must be callable(y_true, y_pred) -> float; received {type(metric_fn).__name__}")
    _check_options(n_boot=n_boot, seed=seed, alpha=alpha, min_boot=1)
    codes, n_groups = _group_codes(groups, len(yt))
    values = np.empty(n_boot)
    i = 0
    for mult in _group_multiplicities(n_groups, n_boot=n_boot, seed=seed):
        weights = mult[:, codes]  # (chunk, n): how often each file is taken
        for w in weights:
            idx = np.repeat(np.arange(len(yt)), w)
            with np.errstate(divide="ignore", invalid="ignore"):
                values[i] = float(metric_fn(yt[idx], yp[idx]))
            i += 1
    return _percentile_ci(values, alpha)


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
        confidence=tuple(float(v) for v in _safe_div(sum_conf, count, fill=math.nan)),
        accuracy=tuple(float(v) for v in _safe_div(sum_acc, count, fill=math.nan)),
    )


def predictions_frame(
    paths: Sequence[str],
    y_true: Sequence[int] | np.ndarray,
    y_prob: Sequence[Sequence[float]] | np.ndarray,
    *,
    class_names: Sequence[str],
    groups: Sequence[Any] | np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per file: ``path, true, predicted, correct, group, prob_<class>...`` (the ``predictions.csv`` layout).

    ``true`` / ``predicted`` hold class names; the ``prob_<class>`` columns, in model-output order, are authoritative
    (``predicted`` is their arg-max). ``groups=None`` puts each file in its own group (its row number).
    """
    yt, prob, names, _, _ = _validate(y_true, y_prob, class_names=class_names, groups=groups, allow_empty=True)
    paths_list = [str(p) for p in paths]
    if len(paths_list) != len(yt):
        raise ConfigError(f"paths must have one entry per file ({len(yt)}); received {len(paths_list)}")
    yp = prob.argmax(axis=1) if len(yt) else np.zeros(0, dtype=int)
    name_arr = np.asarray(names, dtype=object)
    frame = pd.DataFrame(
        {
            "path": paths_list,
            "true": name_arr[yt] if len(yt) else np.asarray([], dtype=object),
            "predicted": name_arr[yp] if len(yt) else np.asarray([], dtype=object),
            "correct": yt == yp,
            "group": list(groups) if groups is not None else list(range(len(yt))),
        }
    )
    for j, name in enumerate(names):
        frame[PROB_PREFIX + name] = prob[:, j] if len(yt) else np.zeros(0)
    return frame


def read_predictions(source: str | os.PathLike[str] | io.IOBase) -> pd.DataFrame:
    """Read and check a ``predictions.csv`` written from :func:`predictions_frame`; pass the result to
    :func:`evaluate_frame`. ``group`` is read as text; a missing ``group`` column or cell makes the file its own group.
    """
    try:
        frame = pd.read_csv(source, dtype={"path": str, "true": str, "predicted": str, "group": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"predictions file {source!r} could not be read as CSV ({e}); expected columns "
            f"path, true, {PROB_PREFIX}<class>..."
        ) from e
    _prob_columns(frame)  # validates
    for col in ("path", "true"):
        if col not in frame.columns:
            raise ConfigError(
                f"predictions file {source!r} must have a {col!r} column; received columns {list(frame.columns)}"
            )
    if "group" not in frame.columns:
        frame["group"] = [f"row{i}" for i in range(len(frame))]
    missing = frame["group"].isna()
    if missing.any():
        frame.loc[missing, "group"] = [f"row{i}" for i in np.flatnonzero(missing.to_numpy())]
    return frame


def evaluate_frame(
    frame: pd.DataFrame,
    *,
    class_names: Sequence[str] | None = None,
    split: str = "test",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    n_bins: int = 10,
) -> EvalReport:
    """:func:`evaluate_predictions` on a predictions frame (see :func:`predictions_frame` / :func:`read_predictions`).

    ``class_names`` defaults to the ``prob_<class>`` columns in their order; when given, those columns are taken in
    that order. ``true`` may hold class names or int class ids.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"frame must be a pandas DataFrame; received {type(frame).__name__}")
    found = _prob_columns(frame)
    names = list(found) if class_names is None else [str(c) for c in class_names]
    missing = [c for c in names if c not in found]
    if missing:
        raise ConfigError(
            f"frame has no probability column for class(es) {missing}; expected columns "
            f"{[PROB_PREFIX + c for c in names]}, received {[PROB_PREFIX + c for c in found]}"
        )
    if "true" not in frame.columns:
        raise ConfigError(f"frame must have a 'true' column; received columns {list(frame.columns)}")
    prob = frame[[PROB_PREFIX + c for c in names]].to_numpy(dtype=float)
    y_true = _labels_to_ids(frame["true"], names)
    groups = frame["group"].to_numpy() if "group" in frame.columns else None
    return evaluate_predictions(
        y_true,
        prob,
        class_names=names,
        groups=groups,
        split=split,
        n_boot=n_boot,
        seed=seed,
        alpha=alpha,
        n_bins=n_bins,
    )


def compatible_class_sets(reports: Mapping[str, EvalReport] | Sequence[EvalReport]) -> tuple[bool, str]:
    """Whether the reports' confusion matrices can be summed: same class names in the same order.

    Returns ``(ok, reason)``; the reason names the first report that differs and how.
    """
    items = _labelled(reports)
    if not items:
        return False, "no reports given; pass at least one EvalReport"
    ref_label, ref = items[0]
    for label, rep in items[1:]:
        if tuple(rep.class_names) == tuple(ref.class_names):
            continue
        a, b = set(ref.class_names), set(rep.class_names)
        if a == b:
            return False, (
                f"{label!r} has the classes of {ref_label!r} in a different order "
                f"({list(rep.class_names)} vs {list(ref.class_names)}); its confusion matrix rows would not line up"
            )
        parts = []
        if b - a:
            parts.append(f"{sorted(b - a)} only in {label!r}")
        if a - b:
            parts.append(f"{sorted(a - b)} only in {ref_label!r}")
        return False, f"{label!r} and {ref_label!r} have different class sets: " + "; ".join(parts)
    return True, f"all {len(items)} reports share the classes {list(ref.class_names)}"


def merge_confusion(reports: Mapping[str, EvalReport] | Sequence[EvalReport]) -> np.ndarray:
    """Sum of the confusion-matrix counts of several reports (e.g. cross-validation folds), shape (k, k).

    Raises :class:`ConfigError` when :func:`compatible_class_sets` refuses them.
    """
    ok, reason = compatible_class_sets(reports)
    if not ok:
        raise ConfigError(f"cannot merge confusion matrices: {reason}")
    return np.sum([rep.confusion_array() for _, rep in _labelled(reports)], axis=0)


def compare_frame(reports: Mapping[str, EvalReport]) -> pd.DataFrame:
    """One row per run: n, n_distinct, accuracy, macro metrics, ECE and the CI bounds that exist (``<key>_lo/_hi``)."""
    rows = []
    for label, rep in _labelled(reports):
        row: dict[str, Any] = {"run": label, "split": rep.split, "n": rep.n, "n_distinct": rep.n_distinct}
        row["accuracy"] = rep.accuracy
        row.update({f"macro_{k}": v for k, v in rep.macro.items()})
        row["ece"] = rep.ece
        for key in CI_GLOBAL_METRICS:
            if key in rep.ci:
                row[f"{key}_lo"], row[f"{key}_hi"] = rep.ci[key]
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------- internals


def _validate(
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
    codes, n_groups = _group_codes(groups, len(yt))
    return yt, prob, names, codes, n_groups


def _check_options(
    *, split: str = "test", n_boot: int, seed: int, alpha: float, n_bins: int = 10, min_boot: int = 0
) -> None:
    if not isinstance(split, str) or not split:
        raise ConfigError(f"split must be a non-empty string such as 'test', 'oof' or 'external'; received {split!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < min_boot:
        raise ConfigError(f"n_boot must be an integer >= {min_boot}; received {n_boot!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0; received {seed!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, float | int) or not 0.0 < float(alpha) < 1.0:
        raise ConfigError(f"alpha must be a number in (0, 1), e.g. 0.05 for 95 % intervals; received {alpha!r}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ConfigError(f"n_bins must be an integer >= 1; received {n_bins!r}")


def _group_codes(groups: Any, n: int) -> tuple[np.ndarray, int]:
    """Dense group codes 0..G-1 per file; ``None`` -> one group per file."""
    if groups is None:
        return np.arange(n, dtype=np.int64), n
    arr = np.asarray(groups, dtype=object)
    if arr.ndim != 1 or len(arr) != n:
        raise ConfigError(f"groups must have one id per file ({n}); received shape {arr.shape}")
    codes, uniques = pd.factorize(pd.Series(arr))
    if (codes < 0).any():
        raise ConfigError(
            f"groups must not contain missing ids; received {int((codes < 0).sum())} missing "
            "(give each ungrouped file its own id, e.g. its path)"
        )
    return codes.astype(np.int64), len(uniques)


def _group_multiplicities(n_groups: int, *, n_boot: int, seed: int) -> Iterable[np.ndarray]:
    """Yield int arrays (chunk, n_groups): how often each group is drawn in each replicate, n_boot rows in total."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, _MAX_BOOT_CELLS // max(n_groups, 1)))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        draws = rng.integers(0, n_groups, size=(b, n_groups))
        offsets = (np.arange(b) * n_groups)[:, None]
        yield np.bincount((draws + offsets).ravel(), minlength=b * n_groups).reshape(b, n_groups)
        done += b


def _bootstrap_confusion_cis(
    yt: np.ndarray,
    yp: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    names: Sequence[str],
    *,
    n_boot: int,
    seed: int,
    alpha: float,
) -> dict[str, tuple[float, float]]:
    """All confusion-matrix metrics of every replicate at once: replicate matrix = multiplicities @ group cells."""
    k = len(names)
    cell = yt * k + yp
    group_cells = np.zeros((n_groups, k * k))
    np.add.at(group_cells, (codes, cell), 1.0)  # files of each group in each confusion cell
    parts = [
        (mult @ group_cells).reshape(-1, k, k) for mult in _group_multiplicities(n_groups, n_boot=n_boot, seed=seed)
    ]
    stats = _confusion_stats(np.concatenate(parts, axis=0))
    ci = {key: _percentile_ci(stats[key], alpha) for key in CI_GLOBAL_METRICS}
    for metric in CI_CLASS_METRICS:
        for c, name in enumerate(names):
            ci[ci_key(metric, name)] = _percentile_ci(stats[metric][:, c], alpha)
    return ci


def _confusion_stats(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of a stack of confusion matrices (B, k, k): per-class arrays (B, k) NaN where undefined,
    macro arrays (B,) with the zero_division=0 rule over present classes, accuracy (B,)."""
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    total = cm.sum(axis=(1, 2))[:, None]
    fp = predicted - tp
    fn = support - tp
    tn = total - tp - fp - fn
    per_class = {
        "precision": _safe_div(tp, predicted, fill=math.nan),
        "recall": _safe_div(tp, support, fill=math.nan),
        "specificity": _safe_div(tn, tn + fp, fill=math.nan),
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn, fill=math.nan),
    }
    present = (support > 0) | (predicted > 0)
    n_present = present.sum(axis=1)
    out: dict[str, np.ndarray] = dict(per_class)
    for m, v in per_class.items():
        out[f"macro_{m}"] = _safe_div(np.where(present, np.nan_to_num(v, nan=0.0), 0.0).sum(axis=1), n_present)
    out["accuracy"] = _safe_div(tp.sum(axis=1), total[:, 0], fill=math.nan)
    out["error_rate"] = 1.0 - out["accuracy"]
    return out


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


def _percentile_ci(values: np.ndarray, alpha: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _safe_div(num: np.ndarray, den: np.ndarray, *, fill: float = math.nan) -> np.ndarray:
    """``num / den`` with ``fill`` where ``den == 0``, without RuntimeWarnings."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, fill, dtype=float)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _row_normalise(cm: np.ndarray) -> np.ndarray:
    return _safe_div(cm, cm.sum(axis=1, keepdims=True), fill=0.0)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    total = float(np.sum(weights))
    return float(np.dot(values, weights) / total) if total > 0 else math.nan


def _f(value: Any) -> float:
    return math.nan if value is None else float(value)


def json_safe(obj: Any) -> Any:
    """NaN/inf -> None, NumPy scalars/arrays -> Python values, recursively (safe for ``json.dumps``)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    return obj


def _labelled(reports: Mapping[str, EvalReport] | Sequence[EvalReport]) -> list[tuple[str, EvalReport]]:
    if isinstance(reports, EvalReport):
        reports = [reports]
    if isinstance(reports, Mapping):
        items = [(str(k), v) for k, v in reports.items()]
    else:
        items = [(f"report {i + 1}", r) for i, r in enumerate(reports)]
    for label, rep in items:
        if not isinstance(rep, EvalReport):
            raise ConfigError(f"reports must hold EvalReport objects; {label!r} is a {type(rep).__name__}")
    return items


def _prob_columns(frame: pd.DataFrame) -> list[str]:
    names = [str(c)[len(PROB_PREFIX) :] for c in frame.columns if str(c).startswith(PROB_PREFIX)]
    if len(names) < 2:
        raise ConfigError(
            f"predictions must have one {PROB_PREFIX}<class> column per class (at least 2); "
            f"received columns {list(frame.columns)}"
        )
    for name in names:
        if not pd.api.types.is_numeric_dtype(frame[PROB_PREFIX + name]):
            raise ConfigError(f"column {PROB_PREFIX + name!r} must be numeric probabilities; found non-numbers")
    return names


def _labels_to_ids(values: pd.Series, names: Sequence[str]) -> np.ndarray:
    """Class names -> ids; falls back to int ids when the column holds numbers that are not class names."""
    index = {n: i for i, n in enumerate(names)}
    as_text = values.astype(str)
    if as_text.isin(index).all():
        return as_text.map(index).to_numpy(dtype=np.int64)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and (numeric == numeric.round()).all() and numeric.between(0, len(names) - 1).all():
        return numeric.to_numpy(dtype=np.int64)
    unknown = sorted(set(as_text[~as_text.isin(index)].tolist()))[:5]
    raise ConfigError(
        f"'true' must hold class names {list(names)} (or ids 0..{len(names) - 1}); received {unknown}"
    )
