"""Comparing training runs side by side.

What the Compare page (and the CLI) need about a run, read from its folder ``models/<run_id>/``:

>>> rec = load_run_record("20261122-063012-custom_cnn-3fa1")          # never raises for a damaged run
>>> rec.report.accuracy, rec.overlap.n_test_group_in_train, rec.problem
>>> table = compare_table([rec1, rec2])                                  # one row per run, CIs as _lo/_hi columns
>>> measure_latency(registry.load_model(rec.run_id)).median_ms

* :class:`RunRecord` — run.json, the held-out test report (``eval.json``), the k-fold out-of-fold report
  (``eval_kfold.json``) when there is one, the training history, the split overlap and the model size. A report
  missing from disk is recomputed from its ``predictions*.csv`` when that exists.
* :class:`SplitOverlap` / :func:`leakage_badge` — whether a run's test files have copies in its training split
  (read from ``split.csv``): a group- or record-aware split has none; a random file-level split usually has many.
* :func:`measure_latency` — median wall time of single-image forward passes (batch 1, CPU or GPU as available).

The leakage demonstration (a pair of runs that differ only in the split) is :mod:`ecg_core.ml.leakage_demo`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError, EcgCoreError
from ecg_core.core.formatting import finite_or_none, fmt_num, fmt_value_ci
from ecg_core.ml import registry
from ecg_core.ml.predictions import evaluate_frame, read_predictions
from ecg_core.ml.registry import RunInfo, resolve_run
from ecg_core.ml.report import EvalReport, compare_frame

__all__ = [
    "LEAKDEMO_FILE",
    "Latency",
    "LeakageBadge",
    "RunRecord",
    "SplitOverlap",
    "PRCurve",
    "compare_table",
    "dataset_groups",
    "dataset_key",
    "display_table",
    "leakage_badge",
    "load_history",
    "load_predictions",
    "load_report",
    "load_run_record",
    "measure_latency",
    "misclassified",
    "pr_curves",
    "run_signature",
    "run_split_overlap",
    "split_overlap",
]

EVAL_FILES: dict[str, str] = {"test": "eval.json", "oof": "eval_kfold.json"}
"""Report file of each split kind in a run folder."""
PREDICTION_FILES: dict[str, str] = {"test": "predictions.csv", "oof": "predictions_oof.csv"}
"""Predictions file of each split kind in a run folder."""
HISTORY_FILE = "history.csv"
SPLIT_FILE = "split.csv"
LEAKDEMO_FILE = "leakage_demo.json"
"""Summary of a leakage-demo pair in both run folders (written by :func:`ecg_core.ml.leakage_demo.leakage_demo`)."""
LEAK_FREE_SPLITS = ("group", "record")
_TABLE_METRICS = ("accuracy", "macro_f1", "macro_precision", "macro_recall", "macro_specificity")
_METRIC_TITLES = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "macro_precision": "macro precision",
    "macro_recall": "macro recall",
    "macro_specificity": "macro specificity",
}


# ------------------------------------------------------------------------------------------------------ data types
@dataclass(frozen=True)
class SplitOverlap:
    """How many test files of a run have a copy in its training split (from ``split.csv``).

    ``n_test_distinct`` counts distinct images (duplicate groups; records for spectral datasets) among the test
    files; ``n_test_exact_in_train`` counts test files whose exact bytes are also a training file;
    ``n_test_group_in_train`` counts test files with an exact *or near* copy (same group) in training.
    """

    split_by: str
    n_train: int
    n_test: int
    n_test_distinct: int
    n_test_exact_in_train: int
    n_test_group_in_train: int

    @property
    def leaky(self) -> bool:
        return self.n_test_group_in_train > 0 or self.n_test_exact_in_train > 0


@dataclass(frozen=True)
class LeakageBadge:
    """A one-line verdict on a run's split: ``level`` is ``'ok'`` (leak-free), ``'leaky'`` or ``'unknown'``."""

    level: str
    text: str


@dataclass(frozen=True)
class Latency:
    """Wall time of single-image forward passes, in milliseconds (``n`` timed passes after ``warmup``)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    n: int
    warmup: int
    input_shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"median_ms": self.median_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms, "n": self.n,
                "warmup": self.warmup, "input_shape": list(self.input_shape)}


@dataclass(frozen=True)
class RunRecord:
    """Everything the Compare page shows about one run; plain, picklable values (safe for ``st.cache_data``).

    ``problem`` is empty when the run can be compared (usable model and a test evaluation), else the reason.
    """

    run_id: str
    path: str
    status: str
    meta: dict[str, Any]
    report: EvalReport | None = None
    kfold_report: EvalReport | None = None
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    overlap: SplitOverlap | None = None
    model_bytes: int = 0
    problem: str = ""
    pr: dict[str, PRCurve] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return not self.problem and self.report is not None

    @property
    def data_source(self) -> str:
        return str(self.meta.get("data_source") or "unknown")

    @property
    def dataset(self) -> tuple[str, str]:
        """:func:`dataset_key` of the run."""
        return dataset_key(self.meta)

    @property
    def arch(self) -> str:
        return str(self.meta.get("arch", "?"))

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in self.meta.get("class_names", [])]

    @property
    def split_by(self) -> str:
        return str((self.meta.get("split") or {}).get("by", "unknown"))

    @property
    def n_params(self) -> int | None:
        v = self.meta.get("n_params")
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    @property
    def epochs_run(self) -> int | None:
        v = (self.meta.get("training") or {}).get("epochs_run")
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    @property
    def badge(self) -> LeakageBadge:
        return leakage_badge(self.meta, self.overlap)


@dataclass(frozen=True)
class PRCurve:
    """One-vs-rest precision-recall curve of one class (scikit-learn ``precision_recall_curve``), its average
    precision and the class prevalence (the precision of a classifier that guesses)."""

    precision: tuple[float, ...]
    recall: tuple[float, ...]
    ap: float
    prevalence: float


def pr_curves(predictions: pd.DataFrame | None) -> dict[str, PRCurve]:
    """Per-class one-vs-rest PR curves of a predictions frame (``true`` and ``prob_<class>`` columns); a class with
    no positive or no negative test file has no curve."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    if predictions is None or predictions.empty or "true" not in predictions.columns:
        return {}
    true = predictions["true"].astype(str).to_numpy()
    out: dict[str, PRCurve] = {}
    for col in (c for c in predictions.columns if str(c).startswith("prob_")):
        name = str(col)[len("prob_"):]
        y = true == name
        score = pd.to_numeric(predictions[col], errors="coerce").fillna(0.0).to_numpy(dtype=float)
        if y.all() or not y.any():
            continue
        prec, rec, _ = precision_recall_curve(y, score)
        out[name] = PRCurve(tuple(float(v) for v in prec), tuple(float(v) for v in rec),
                            float(average_precision_score(y, score)), float(y.mean()))
    return out


def dataset_key(meta: Mapping[str, Any]) -> tuple[str, str]:
    """What a run was trained and tested on: ``(data_source, data_fingerprint)`` from its ``run.json``
    (``'unknown'`` where missing). Runs with different keys were measured on different data: their numbers are not
    comparable and their confusion matrices must never be pooled."""
    return (str(meta.get("data_source") or "unknown"), str(meta.get("data_fingerprint") or "unknown"))


def dataset_groups(records: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    """Runs grouped by :func:`dataset_key`, labelled ``"real data (fingerprint 78db9e75)"``, in first-seen order."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for rec in records:
        groups.setdefault(rec.dataset, []).append(rec)
    return {f"{src} data (fingerprint {fp[:8]})": recs for (src, fp), recs in groups.items()}


# --------------------------------------------------------------------------------------------------- loading runs
def run_signature(run: RunInfo | str | os.PathLike[str]) -> str:
    """A cheap change detector for a run folder (modification times and sizes of its result files)."""
    path = run.path if isinstance(run, RunInfo) else Path(run)
    parts = []
    for name in (registry.RUN_JSON, registry.MODEL_FILE, HISTORY_FILE, SPLIT_FILE, LEAKDEMO_FILE,
                 *EVAL_FILES.values(), *PREDICTION_FILES.values()):
        try:
            st = (path / name).stat()
            parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append(f"{name}:-")
    return "|".join(parts)


def _run_seed(run: RunInfo) -> int:
    seed = (run.meta.get("train") or {}).get("seed", 0)
    return int(seed) if isinstance(seed, int) and seed >= 0 else 0


def load_predictions(run: RunInfo | str | os.PathLike[str], *, split: str = "test") -> pd.DataFrame | None:
    """The run's ``predictions.csv`` (``split='test'``) or ``predictions_oof.csv`` (``'oof'``); None when absent."""
    info = resolve_run(run)
    _check_split(split)
    path = info.path / PREDICTION_FILES[split]
    if not path.is_file():
        return None
    return read_predictions(path)


def load_report(run: RunInfo | str | os.PathLike[str], *, split: str = "test") -> EvalReport | None:
    """The run's stored report (``eval.json`` for ``'test'``, ``eval_kfold.json`` for ``'oof'``).

    When the report file is missing or unreadable but the predictions file exists, the report is recomputed from
    the predictions (same bootstrap seed as training). None when neither exists; :class:`ConfigError` when the
    report is damaged and there are no predictions to recompute it from.
    """
    info = resolve_run(run)
    _check_split(split)
    path = info.path / EVAL_FILES[split]
    problem = ""
    if path.is_file():
        try:
            return EvalReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:  # ConfigError is a ValueError
            problem = f"{path.name} is unreadable ({e})"
    frame = load_predictions(info, split=split)
    if frame is None:
        if problem:
            raise ConfigError(f"run {info.run_id!r}: {problem}, and there is no {PREDICTION_FILES[split]} to "
                              "recompute it from")
        return None
    names = info.class_names or None
    return evaluate_frame(frame, class_names=names, split=split, seed=_run_seed(info))


def load_history(run: RunInfo | str | os.PathLike[str]) -> pd.DataFrame:
    """The run's ``history.csv`` (epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds); empty when absent."""
    info = resolve_run(run)
    try:
        return pd.read_csv(info.path / HISTORY_FILE)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return pd.DataFrame()


def load_run_record(
    run: RunInfo | str | os.PathLike[str], *, models_dir: str | os.PathLike[str] | None = None
) -> RunRecord:
    """Read everything the Compare page shows about a run. Never raises for a damaged run: ``problem`` says why."""
    info = resolve_run(run, models_dir=models_dir)
    base = RunRecord(run_id=info.run_id, path=str(info.path), status=info.status, meta=dict(info.meta))
    model_file = info.path / registry.MODEL_FILE
    model_bytes = model_file.stat().st_size if model_file.is_file() else 0
    if not info.usable:
        why = info.problem or ("still training (status 'running')" if info.status == "running"
                               else f"its status is {info.status!r}")
        err = info.meta.get("error")
        return replace(base, model_bytes=model_bytes, problem=f"{why}{f' ({err})' if err else ''}")
    try:
        report = load_report(info, split="test")
    except EcgCoreError as e:
        return replace(base, model_bytes=model_bytes, problem=str(e))
    if report is None:
        return replace(base, model_bytes=model_bytes,
                       problem="no test evaluation: eval.json and predictions.csv are missing")
    try:
        kfold = load_report(info, split="oof")
    except EcgCoreError:
        kfold = None
    try:
        pr = pr_curves(load_predictions(info, split="test"))
    except (EcgCoreError, ValueError, OSError):
        pr = {}
    return replace(base, report=report, kfold_report=kfold, history=load_history(info),
                   overlap=run_split_overlap(info), model_bytes=model_bytes, pr=pr)


def _check_split(split: str) -> None:
    if split not in EVAL_FILES:
        raise ConfigError(f"split must be one of {list(EVAL_FILES)}; received {split!r}")


# ---------------------------------------------------------------------------------------------------------- leakage
def split_overlap(split: pd.DataFrame, *, split_by: str = "unknown") -> SplitOverlap:
    """Count the test files of a split frame (columns ``split``, ``group``, optional ``sha256``) that have a copy in
    the training split: exact (same ``sha256``) or exact-or-near (same duplicate ``group``)."""
    missing = {"split", "group"} - set(split.columns)
    if missing:
        raise ConfigError(
            f"split frame must have columns 'split' and 'group' (as in split.csv); missing {sorted(missing)}"
        )
    s = split["split"].astype(str)
    train, test = split[s == "train"], split[s == "test"]
    group_in_train = test["group"].astype(str).isin(set(train["group"].astype(str)))
    if "sha256" in split.columns:
        exact_in_train = int(test["sha256"].astype(str).isin(set(train["sha256"].astype(str))).sum())
    else:
        exact_in_train = 0
    return SplitOverlap(
        split_by=split_by,
        n_train=int(len(train)),
        n_test=int(len(test)),
        n_test_distinct=int(test["group"].nunique()),
        n_test_exact_in_train=exact_in_train,
        n_test_group_in_train=int(group_in_train.sum()),
    )


def run_split_overlap(run: RunInfo | str | os.PathLike[str]) -> SplitOverlap | None:
    """:func:`split_overlap` of the run's ``split.csv``; None when the file is missing or unreadable."""
    info = resolve_run(run)
    try:
        frame = pd.read_csv(info.path / SPLIT_FILE, dtype={"sha256": str})
        return split_overlap(frame, split_by=str((info.meta.get("split") or {}).get("by", "unknown")))
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None


def leakage_badge(meta: Mapping[str, Any], overlap: SplitOverlap | None = None) -> LeakageBadge:
    """A one-line verdict on a run's split, from run.json's ``split`` and, when known, the measured overlap."""
    split = meta.get("split") or {}
    by = str(split.get("by", "unknown"))
    counts = (split.get("counts") or {}).get("test") or {}
    distinct = overlap.n_test_distinct if overlap else counts.get("distinct")
    files = overlap.n_test if overlap else counts.get("files")
    unit = "test records (patients)" if by == "record" else "distinct test images"
    size = f"{distinct} {unit} in {files} test files" if distinct is not None else "test size unknown"
    if overlap is not None and overlap.leaky:
        return LeakageBadge(
            "leaky",
            f"LEAKY — split by {'file (random)' if by == 'file' else by}: {overlap.n_test_group_in_train} of "
            f"{overlap.n_test} test files have a copy in training ({overlap.n_test_exact_in_train} byte-identical); "
            f"{size}",
        )
    if by == "file":
        return LeakageBadge("leaky", f"LEAKY — random file-level split: copies of one image may sit in train and "
                                     f"test; {size}")
    if by in LEAK_FREE_SPLITS:
        what = "duplicate group" if by == "group" else "record (patient)"
        return LeakageBadge("ok", f"leak-free — split by {what}; {size}")
    return LeakageBadge("unknown", f"split unknown (run.json has no split description); {size}")


# ------------------------------------------------------------------------------------------------------ the table
def compare_table(
    records: Sequence[RunRecord],
    *,
    split: str = "test",
    latency_ms: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One row per run: metrics with their 95 % CI bounds (``<metric>_lo`` / ``_hi``), test size, split kind,
    leakage verdict, parameters, model size (MB) and, when given, the measured latency (ms).

    ``split='oof'`` uses the k-fold out-of-fold reports (runs without one are left out).
    """
    _check_split(split)
    rows: list[dict[str, Any]] = []
    for rec in records:
        rep = rec.report if split == "test" else rec.kfold_report
        if rep is None:
            continue
        metrics = compare_frame({rec.run_id: rep}).iloc[0].to_dict()
        row: dict[str, Any] = {
            "run": rec.run_id,
            "arch": rec.arch,
            "split": rep.split,
            "split_by": rec.split_by,
            "dataset": f"{rec.dataset[0]} ({rec.dataset[1][:8]})",
            "leakage": rec.badge.level,
            "test_files": rep.n,
            "test_distinct": rep.n_distinct,
        }
        for key in _TABLE_METRICS:
            row[key] = metrics.get(key, math.nan)
            row[f"{key}_lo"] = metrics.get(f"{key}_lo", math.nan)
            row[f"{key}_hi"] = metrics.get(f"{key}_hi", math.nan)
        row["ece"] = metrics.get("ece", math.nan)
        row["n_params"] = rec.n_params
        row["model_mb"] = round(rec.model_bytes / 1e6, 3) if rec.model_bytes else math.nan
        row["epochs_run"] = rec.epochs_run
        if latency_ms is not None:
            row["latency_ms"] = latency_ms.get(rec.run_id, math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The :func:`compare_table` for reading: each metric as ``0.812 (0.702–0.901)``, CI columns folded in."""
    if table.empty:
        return table
    out = table[["run", "arch", "dataset", "split_by", "leakage", "test_files", "test_distinct"]].copy()
    out = out.rename(columns={"split_by": "split by", "test_files": "test files", "test_distinct": "distinct test"})
    for key in _TABLE_METRICS:
        if key in table.columns:
            out[f"{_METRIC_TITLES[key]} (95% CI)"] = [
                fmt_value_ci(v, (lo, hi), label="", sep="–")
                for v, lo, hi in zip(table[key], table[f"{key}_lo"], table[f"{key}_hi"])
            ]
    out["ECE"] = [fmt_num(v) for v in table["ece"]]
    out["parameters"] = [f"{int(v):,}" if _finite(v) else "n/a" for v in table["n_params"]]
    out["model size (MB)"] = [fmt_num(v, 2) for v in table["model_mb"]]
    if "latency_ms" in table.columns:
        out["latency (ms, median)"] = [f"{v:.1f}" if _finite(v) else "—" for v in table["latency_ms"]]
    return out


def _finite(v: Any) -> bool:
    return finite_or_none(v) is not None


# ------------------------------------------------------------------------------------------------ misclassified
def misclassified(predictions: pd.DataFrame) -> pd.DataFrame:
    """Wrong predictions of a predictions frame, most confident first.

    Columns: ``path, true, predicted, confidence`` (probability of the predicted class), ``p_true`` (probability of
    the true class), ``group``.
    """
    if predictions is None or predictions.empty:
        return pd.DataFrame(columns=["path", "true", "predicted", "confidence", "p_true", "group"])
    probs = [c for c in predictions.columns if str(c).startswith("prob_")]
    names = [c[len("prob_"):] for c in probs]
    if len(probs) < 2 or "true" not in predictions.columns or "path" not in predictions.columns:
        raise ConfigError(
            f"predictions must have columns path, true and prob_<class>...; received {list(predictions.columns)}"
        )
    p = predictions[probs].to_numpy(dtype=float)
    pred_idx = p.argmax(axis=1)
    name_arr = np.asarray(names, dtype=object)
    true = predictions["true"].astype(str).to_numpy()
    index = {n: i for i, n in enumerate(names)}
    true_idx = np.array([index.get(t, -1) for t in true])
    wrong = true_idx != pred_idx
    out = pd.DataFrame({
        "path": predictions["path"].astype(str).to_numpy(),
        "true": true,
        "predicted": name_arr[pred_idx],
        "confidence": p[np.arange(len(p)), pred_idx],
        "p_true": np.where(true_idx >= 0, p[np.arange(len(p)), np.clip(true_idx, 0, None)], math.nan),
        "group": predictions["group"].astype(str).to_numpy() if "group" in predictions else "",
    })[wrong]
    return out.sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------------------- latency
def measure_latency(model: Any, *, n: int = 20, warmup: int = 3, seed: int = 0) -> Latency:
    """Median wall time of ``n`` forward passes of one random input of the model's input shape (batch 1).

    Args:
        model: a Keras model with a single image input, e.g. from :func:`ecg_core.ml.registry.load_model`.
        n: timed passes, 1..1000.
        warmup: untimed passes first (graph tracing, memory allocation), 0..100.
        seed: seed of the random input (float32 in [0, 1], like a preprocessed image).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1000:
        raise ConfigError(f"n must be an integer in 1..1000 (timed forward passes); received {n!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup <= 100:
        raise ConfigError(f"warmup must be an integer in 0..100; received {warmup!r}")
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) < 2 or any(d is None for d in shape[1:]):
        raise ConfigError(f"model must have one input of fixed shape (None, h, w, c); received {shape!r}")
    x = np.random.default_rng(seed).random((1, *shape[1:]), dtype=np.float32)

    def once() -> None:
        out = model(x, training=False)
        np.asarray(out)  # waits for the result (device -> host copy)

    for _ in range(warmup):
        once()
    times = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        once()
        times[i] = (time.perf_counter() - t0) * 1000.0
    return Latency(
        median_ms=float(np.median(times)),
        p10_ms=float(np.percentile(times, 10)),
        p90_ms=float(np.percentile(times, 90)),
        n=n,
        warmup=warmup,
        input_shape=tuple(int(d) for d in shape[1:]),
    )
