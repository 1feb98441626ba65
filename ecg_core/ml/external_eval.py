"""Evaluate a trained run again: from its stored test predictions, or on another dataset folder (external test).

>>> rep = recompute_report("my-run")                                   # held-out test split, from predictions.csv
>>> res = evaluate_on_folder("my-run", "/data/other-hospital")         # external test set
>>> res.report.accuracy, res.report.ci["macro_f1"], res.skipped
>>> write_external(res, out_dir)                                        # predictions_external-<hash>.csv + eval_...json

An external evaluation preprocesses every file exactly as the run did (the :class:`PreprocessConfig` stored in
``run.json``), labels it with the run's class preset, and evaluates with the files' **duplicate groups** as
bootstrap clusters — or, for a spectral-image folder whose ``index.csv`` has a ``record`` column, with the
records (:func:`ecg_core.ml.train_data.apply_record_groups`), so the intervals resample patients, not beats.
Unreadable files are skipped and listed; files in folders that match no class are counted and ignored.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.atomic import atomic_write_json, atomic_write_text
from ecg_core.core.errors import ConfigError, DatasetError, EcgCoreError
from ecg_core.core.formatting import fmt_ci
from ecg_core.ml import registry
from ecg_core.ml.compare import load_predictions, load_report
from ecg_core.ml.evaluate import evaluate_predictions
from ecg_core.ml.predictions import evaluate_frame
from ecg_core.ml.predictions import predictions_frame as make_predictions_frame
from ecg_core.ml.registry import RunInfo, resolve_run
from ecg_core.ml.report import CI_CLASS_METRICS, EvalReport, ci_key

__all__ = [
    "ExternalEvaluation",
    "data_tag",
    "evaluate_on_folder",
    "recompute_report",
    "report_lines",
    "write_external",
]

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; phases ``'scanning'`` and ``'predicting'``."""


@dataclass(frozen=True)
class ExternalEvaluation:
    """Result of :func:`evaluate_on_folder`.

    ``predictions`` has the ``predictions.csv`` layout (:func:`ecg_core.ml.predictions.predictions_frame`);
    ``skipped`` lists ``(relative path, reason)`` of image files that could not be read or preprocessed;
    ``n_unlabelled`` counts readable images in folders that match no class of the run's preset;
    ``n_ignored`` counts non-image files; ``grouped_by`` is ``'duplicate group'`` or ``'record'``.
    """

    run_id: str
    data_dir: str
    report: EvalReport
    predictions: pd.DataFrame
    n_files: int
    skipped: tuple[tuple[str, str], ...]
    n_unlabelled: int
    n_ignored: int
    grouped_by: str

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)


def data_tag(data_dir: str | os.PathLike[str]) -> str:
    """A short hash (8 hex digits) of the resolved folder path, used in output file names."""
    return hashlib.sha1(str(Path(data_dir).expanduser().resolve()).encode()).hexdigest()[:8]


def recompute_report(
    run: RunInfo | str | os.PathLike[str],
    *,
    split: str = "test",
    models_dir: str | os.PathLike[str] | None = None,
    n_boot: int = 1000,
) -> EvalReport:
    """Recompute a run's report from its predictions file (``predictions.csv`` for ``'test'``, ``predictions_oof.csv``
    for ``'oof'``) with the run's seed, so the intervals match the stored ``eval.json``."""
    info = resolve_run(run, models_dir=models_dir)
    frame = load_predictions(info, split=split)
    if frame is None:
        stored = load_report(info, split=split) if split == "test" else None
        if stored is not None:
            return stored
        raise ConfigError(
            f"run {info.run_id!r} has no {'predictions.csv' if split == 'test' else 'predictions_oof.csv'}; "
            + ("train it with k-fold (--kfold K) for out-of-fold results" if split == "oof"
               else "it was never evaluated (did training finish?)")
        )
    seed = (info.meta.get("train") or {}).get("seed", 0)
    rep = evaluate_frame(frame, class_names=info.class_names or None, split=split, n_boot=n_boot,
                         seed=int(seed) if isinstance(seed, int) and seed >= 0 else 0)
    return _with_extra(rep, run_id=info.run_id, source=str(info.path / ("predictions.csv" if split == "test"
                                                                          else "predictions_oof.csv")))


def _with_extra(rep: EvalReport, **extra: Any) -> EvalReport:
    from dataclasses import replace

    return replace(rep, extra={**rep.extra, **extra})


def evaluate_on_folder(
    run: RunInfo | str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    models_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
    cache_root: str | os.PathLike[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: ProgressFn | None = None,
    model: Any = None,
) -> ExternalEvaluation:
    """Evaluate a run's model on another folder-per-class dataset (external test set).

    Args:
        run: run id (in ``models_dir``), run folder, or :class:`RunInfo`.
        data_dir: dataset folder with one sub-folder per class of the run's preset.
        batch_size: images per forward pass (1..1024).
        cache_root: preprocessing cache folder (default: the app's cache); arrays are keyed by content and config.
        n_boot, seed: bootstrap of the confidence intervals (clusters = duplicate groups, or records).
        progress: ``progress(phase, done, total)`` callback.
        model: an already loaded model of this run (default: loaded safely from the run folder).
    """
    from ecg_core.core import paths
    from ecg_core.ml import dataset
    from ecg_core.core.labels import get_preset
    from ecg_core.imaging.preprocess import PreprocessCache, preprocess_file
    from ecg_core.ml.train_data import apply_record_groups

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 1024:
        raise ConfigError(f"batch_size must be an integer in 1..1024; received {batch_size!r}")
    info = resolve_run(run, models_dir=models_dir)
    preset_name = str(info.meta.get("preset", "cardiac-4"))
    preset = get_preset(preset_name)
    if info.class_names and list(info.class_names) != list(preset.class_names):
        raise ConfigError(
            f"run {info.run_id!r} lists classes {info.class_names} but its preset {preset_name!r} has "
            f"{preset.class_names}; the folder labels cannot be mapped to the model's outputs"
        )
    cfg = registry.preprocess_config_of(info)
    net = model if model is not None else registry.load_model(info)

    scan_progress = (lambda i, n: progress("scanning", i, n)) if progress else None
    index = apply_record_groups(dataset.scan(data_dir, preset=preset, progress=scan_progress))
    grouped_by = "record" if index.attrs.get("grouped_by") == "record" else "duplicate group"
    unreadable = index[index["error"] != ""]
    skipped: list[tuple[str, str]] = [(str(r), str(e)) for r, e in zip(unreadable["rel_path"], unreadable["error"])]
    readable = index[index["error"] == ""]
    n_unlabelled = int((readable["label"] < 0).sum())
    rows = readable[readable["label"] >= 0].sort_values("rel_path").reset_index(drop=True)
    if rows.empty:
        raise DatasetError(
            f"no readable image in {str(data_dir)!r} sits in a folder of a class of the run's preset "
            f"{preset_name!r} ({', '.join(c.key for c in preset.classes)}); "
            f"{len(index)} image files found, {len(unreadable)} unreadable, {n_unlabelled} in other folders"
        )

    cache = PreprocessCache(Path(cache_root) if cache_root else paths.cache_dir() / "preprocess")
    kept: list[int] = []
    probs: list[np.ndarray] = []
    n = len(rows)
    for start in range(0, n, batch_size):
        batch, batch_rows = [], []
        for i in range(start, min(start + batch_size, n)):
            try:
                arr = preprocess_file(rows.at[i, "path"], cfg, content_hash=rows.at[i, "sha256"], cache=cache)
            except EcgCoreError as e:
                skipped.append((str(rows.at[i, "rel_path"]), str(e)))
                continue
            batch.append(arr)
            batch_rows.append(i)
        if batch:
            x = np.stack(batch).astype(np.float32) / 255.0  # (b, h, w, c) in [0, 1], as in training
            probs.append(np.asarray(net.predict_on_batch(x), dtype=np.float64))
            kept += batch_rows
        if progress:
            progress("predicting", min(start + batch_size, n), n)
    if not kept:
        raise DatasetError(f"none of the {n} labelled images in {str(data_dir)!r} could be preprocessed")

    used = rows.loc[kept].reset_index(drop=True)
    p = np.concatenate(probs, axis=0)
    p = p / p.sum(axis=1, keepdims=True)  # float32 softmax rows can miss 1 by a few ulp
    names = list(info.class_names or preset.class_names)
    y = used["label"].to_numpy(dtype=np.int64)
    groups = used["group"].astype(str).to_numpy()
    rep = evaluate_predictions(y, p, class_names=names, groups=groups, split="external", n_boot=n_boot, seed=seed)
    rep = _with_extra(rep, run_id=info.run_id, data_dir=str(Path(data_dir).expanduser().resolve()),
                      preset=preset_name, grouped_by=grouped_by, n_skipped=len(skipped),
                      skipped=[list(s) for s in skipped[:200]], n_unlabelled=n_unlabelled,
                      preprocess_hash=cfg.config_hash())
    frame = make_predictions_frame(used["path"].to_numpy(), y, p, class_names=names, groups=groups)
    return ExternalEvaluation(
        run_id=info.run_id,
        data_dir=str(Path(data_dir).expanduser().resolve()),
        report=rep,
        predictions=frame,
        n_files=int(len(index)),
        skipped=tuple(skipped),
        n_unlabelled=n_unlabelled,
        n_ignored=len(index.attrs.get("skipped", [])),
        grouped_by=grouped_by,
    )


def write_external(result: ExternalEvaluation, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``predictions_external-<tag>.csv`` and ``eval_external-<tag>.json`` (tag = :func:`data_tag` of the data
    folder) into ``out_dir``, atomically; returns both paths."""
    out = Path(out_dir)
    tag = data_tag(result.data_dir)
    pred_path = out / f"predictions_external-{tag}.csv"
    eval_path = out / f"eval_external-{tag}.json"
    atomic_write_text(pred_path, result.predictions.to_csv(index=False))  # a failed write raises FileWriteError
    atomic_write_json(eval_path, result.report.to_dict())
    return pred_path, eval_path


def report_lines(report: EvalReport) -> list[str]:
    """A plain-text summary: accuracy and macro-F1 with their CI, files / distinct, per-class metrics."""
    pct = round(100 * (1 - report.alpha))

    def ci(key: str) -> str:
        text = fmt_ci(report.ci.get(key))
        return f" ({pct}% CI {text})" if text != "n/a" else ""

    lines = [
        f"{report.split} split: {report.n} files / {report.n_distinct} distinct",
        f"accuracy  {report.accuracy:.3f}{ci('accuracy')}",
        f"macro-F1  {report.macro['f1']:.3f}{ci('macro_f1')}",
        f"macro precision {report.macro['precision']:.3f}, recall {report.macro['recall']:.3f}, "
        f"specificity {report.macro['specificity']:.3f}; ECE {report.ece:.3f}",
        "",
        f"{'class':<34}{'n':>6}{'precision':>11}{'recall':>9}{'F1':>8}{'specificity':>13}",
    ]
    for m in report.per_class:
        vals = "".join(
            f"{getattr(m, k):>{w}.3f}" for k, w in (("precision", 11), ("recall", 9), ("f1", 8), ("specificity", 13))
        )
        lines.append(f"{m.name[:33]:<34}{m.support:>6}{vals}")
    if report.n_boot and any(ci_key(k, report.class_names[0]) in report.ci for k in CI_CLASS_METRICS):
        lines.append(f"(intervals: cluster bootstrap over distinct images, {report.n_boot} replicates)")
    return lines


def evaluate_folder_by_files(info: RunInfo, data_dir: str | os.PathLike[str], predict: Callable[..., pd.DataFrame],
                             class_names: list[str], *, n_boot: int = 1000, seed: int = 0,
                             progress: Callable[[str, int, int], None] | None = None) -> ExternalEvaluation:
    """``evaluate RUN --data DIR`` for a run that predicts files, not tensors (a measurement model, a per-lead CNN):
    every labelled image of a folder-per-class dataset is given to ``predict(paths, progress=...)`` (a frame with
    ``predicted`` — ``''`` for a file it could not read — ``reason`` and ``prob_<class>``), then evaluated with
    group-bootstrap intervals over duplicate groups. Unreadable and unpredicted files are listed as skipped."""
    from ecg_core.core.labels import get_preset
    from ecg_core.ml import dataset

    preset = get_preset(str(info.meta.get("preset", "cardiac-4")))
    index = dataset.scan(data_dir, preset=preset,
                         progress=(lambda i, n: progress("scanning", i, n)) if progress else None)
    readable = index[index["error"] == ""]
    skipped = [(str(r), str(e)) for r, e in zip(index.loc[index["error"] != "", "rel_path"],
                                                index.loc[index["error"] != "", "error"])]
    rows = readable[readable["label"] >= 0].sort_values("rel_path").reset_index(drop=True)
    if rows.empty:
        raise DatasetError(f"no readable image in {str(data_dir)!r} sits in a folder of a class of the run's preset")
    df = predict(rows["path"].tolist(), progress=(lambda i, n: progress("predicting", i, n)) if progress else None)
    ok = (df["predicted"] != "").to_numpy()
    skipped += [(str(r), str(w)) for r, w in zip(rows.loc[~ok, "rel_path"], df.loc[~ok, "reason"])]
    if not ok.any():
        raise DatasetError(f"none of the {len(rows)} labelled images in {str(data_dir)!r} could be read")
    names = list(class_names)
    p = df.loc[ok, [f"prob_{c}" for c in names]].to_numpy(dtype=np.float64)
    used = rows[ok].reset_index(drop=True)
    y, groups = used["label"].to_numpy(dtype=np.int64), used["group"].astype(str).to_numpy()
    rep = evaluate_predictions(y, p, class_names=names, groups=groups, split="external", n_boot=n_boot, seed=seed)
    return ExternalEvaluation(
        run_id=info.run_id, data_dir=str(Path(data_dir).expanduser().resolve()), report=rep,
        predictions=make_predictions_frame(used["path"].to_numpy(), y, p, class_names=names, groups=groups),
        n_files=len(index), skipped=tuple(skipped), n_unlabelled=int((readable["label"] < 0).sum()),
        n_ignored=len(index.attrs.get("skipped", [])), grouped_by="duplicate group")
