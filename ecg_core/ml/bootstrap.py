"""Cluster (group) bootstrap confidence intervals.

Intervals are percentile intervals of a **cluster bootstrap** over duplicate groups (Efron & Tibshirani 1993;
Field & Welsh 2007): each replicate draws as many group ids as there are groups, with replacement, and takes every
file of every drawn group. Copies of one image therefore move together and cannot make an interval look narrower
than the number of distinct images supports. Without ``groups`` every file is its own group (ordinary i.i.d.
bootstrap). Per-class replicates in which the metric is undefined (the class is absent from, or never predicted
in, the resample) are dropped; macro replicates follow the point-estimate rule of :mod:`ecg_core.ml.evaluate`.

:func:`bootstrap_ci` bootstraps any metric function; :func:`confusion_cis` computes the intervals of every
confusion-matrix metric of :func:`ecg_core.ml.evaluate.evaluate_predictions` at once, from the same replicates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError
from ecg_core.ml.report import CI_CLASS_METRICS, CI_GLOBAL_METRICS, ci_key, safe_div

__all__ = ["bootstrap_ci", "confusion_cis"]

_MAX_BOOT_CELLS = 2_000_000  # replicates x groups held in memory at once


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
    check_options(n_boot=n_boot, seed=seed, alpha=alpha, min_boot=1)
    codes, n_groups = group_codes(groups, len(yt))
    values = np.empty(n_boot)
    i = 0
    for mult in group_multiplicities(n_groups, n_boot=n_boot, seed=seed):
        weights = mult[:, codes]  # (chunk, n): how often each file is taken
        for w in weights:
            idx = np.repeat(np.arange(len(yt)), w)
            with np.errstate(divide="ignore", invalid="ignore"):
                values[i] = float(metric_fn(yt[idx], yp[idx]))
            i += 1
    return percentile_ci(values, alpha)


def check_options(
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


def group_codes(groups: Any, n: int) -> tuple[np.ndarray, int]:
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


def group_multiplicities(n_groups: int, *, n_boot: int, seed: int) -> Iterable[np.ndarray]:
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


def confusion_cis(
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
        (mult @ group_cells).reshape(-1, k, k) for mult in group_multiplicities(n_groups, n_boot=n_boot, seed=seed)
    ]
    stats = confusion_stats(np.concatenate(parts, axis=0))
    ci = {key: percentile_ci(stats[key], alpha) for key in CI_GLOBAL_METRICS}
    for metric in CI_CLASS_METRICS:
        for c, name in enumerate(names):
            ci[ci_key(metric, name)] = percentile_ci(stats[metric][:, c], alpha)
    return ci


def confusion_stats(cm: np.ndarray) -> dict[str, np.ndarray]:
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
        "precision": safe_div(tp, predicted, fill=math.nan),
        "recall": safe_div(tp, support, fill=math.nan),
        "specificity": safe_div(tn, tn + fp, fill=math.nan),
        "f1": safe_div(2 * tp, 2 * tp + fp + fn, fill=math.nan),
    }
    present = (support > 0) | (predicted > 0)
    n_present = present.sum(axis=1)
    out: dict[str, np.ndarray] = dict(per_class)
    for m, v in per_class.items():
        out[f"macro_{m}"] = safe_div(np.where(present, np.nan_to_num(v, nan=0.0), 0.0).sum(axis=1), n_present)
    out["accuracy"] = safe_div(tp.sum(axis=1), total[:, 0], fill=math.nan)
    out["error_rate"] = 1.0 - out["accuracy"]
    return out


def percentile_ci(values: np.ndarray, alpha: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)
