"""The ``predictions.csv`` layout: one row per file with its true class, prediction and class probabilities.

:func:`predictions_frame` builds it, :func:`read_predictions` reads and checks a written file, and
:func:`evaluate_frame` evaluates one (:func:`ecg_core.ml.evaluate.evaluate_predictions` on its columns).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError
from ecg_core.ml.evaluate import evaluate_predictions, validate_inputs
from ecg_core.ml.report import EvalReport

__all__ = ["PREDICTION_COLUMNS", "PROB_PREFIX", "evaluate_frame", "predictions_frame", "read_predictions"]

PREDICTION_COLUMNS: tuple[str, ...] = ("path", "true", "predicted", "correct", "group")
PROB_PREFIX = "prob_"


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
    yt, prob, names, _, _ = validate_inputs(y_true, y_prob, class_names=class_names, groups=groups, allow_empty=True)
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


# --------------------------------------------------------------------------------------------------- internals


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
