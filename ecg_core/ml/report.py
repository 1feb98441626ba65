"""The evaluation report: its data types, their JSON form (``eval.json``) and operations on several reports.

:class:`EvalReport` is what :func:`ecg_core.ml.evaluate.evaluate_predictions` returns; :meth:`EvalReport.to_dict` /
:meth:`EvalReport.from_dict` are the ``eval.json`` format. :func:`compatible_class_sets`, :func:`merge_confusion`
and :func:`compare_frame` combine the reports of several runs or folds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError
from ecg_core.core.formatting import json_safe

__all__ = [
    "CI_CLASS_METRICS",
    "CI_GLOBAL_METRICS",
    "ClassMetrics",
    "EvalReport",
    "Reliability",
    "RocCurve",
    "ci_key",
    "compare_frame",
    "compatible_class_sets",
    "merge_confusion",
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


def ci_key(metric: str, class_name: str) -> str:
    """Key of a per-class interval in :attr:`EvalReport.ci`, e.g. ``ci_key("recall", "Normal") == "recall[Normal]"``."""
    return f"{metric}[{class_name}]"


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


def safe_div(num: np.ndarray, den: np.ndarray, *, fill: float = math.nan) -> np.ndarray:
    """``num / den`` with ``fill`` where ``den == 0``, without RuntimeWarnings."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, fill, dtype=float)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _row_normalise(cm: np.ndarray) -> np.ndarray:
    return safe_div(cm, cm.sum(axis=1, keepdims=True), fill=0.0)


def _f(value: Any) -> float:
    return math.nan if value is None else float(value)


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
