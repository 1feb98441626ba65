"""Build a run's OOD profile (:class:`ecg_core.reports.ood.OodProfile`) from its own training split.

``python -m ecg_core ood-profile RUN --data DIR`` and the end of ``python -m ecg_core train`` call
:func:`build_profile`: every file of the run's ``split.csv`` marked ``train`` (never ``val`` or ``test``) found under
``DIR`` is decoded like a prediction decodes it, described (:func:`ecg_core.reports.ood.describe_report`) and, for a
Keras model, embedded (:func:`ecg_core.reports.ood.embedding_model`). The feature-space threshold comes from
leave-fold-out distances: the training rows' ``fold`` column when ``split.csv`` has one (k-fold runs), else
:data:`N_FOLDS` folds of the duplicate groups; for each fold the PCA and the reference are fitted on the other folds
and the held-out fold's k-NN distances are kept; the threshold is their :data:`ecg_core.reports.ood.QUANTILE`
quantile.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError, EcgCoreError
from ecg_core.reports.ood import (
    K_NEIGHBOURS,
    PCA_DIM,
    QUANTILE,
    EmbeddingReference,
    OodProfile,
    ReportDescriptor,
    describe_report,
    embedding_layer,
    embedding_model,
    fit_pca,
    knn_distance,
    profile_from_descriptors,
    save_profile,
)

N_FOLDS = 5
EMBED_BATCH = 32  # training inputs embedded per pass: memory stays one batch, not the whole training set
EMBED_PIXELS = 32 * 224 * 224  # ... and fewer per pass for large inputs (a 384x384 CNN: 10), like training's micro-batches

ProgressFn = Callable[[int, int], None]


def training_files(run: Any, data_dir: str | Path) -> pd.DataFrame:
    """The run's training rows (``split == 'train'``) of ``split.csv`` whose file exists under ``data_dir``, with
    columns ``path``, ``group`` and ``fold``. A measurement run trained on every file by cross-validation (no
    ``split.csv``) lists them in ``predictions_oof.csv``: all of them are its training files."""
    split = Path(run.path) / "split.csv"
    oof = Path(run.path) / "predictions_oof.csv"
    root = Path(data_dir).expanduser()
    if split.is_file():
        df = pd.read_csv(split)
        if not {"rel_path", "split"} <= set(df.columns):
            raise ConfigError(f"{split.name} of run {run.run_id!r} lacks the rel_path/split columns")
        df = df[df["split"] == "train"].copy()
        df["path"] = [root / str(p) for p in df["rel_path"]]
    elif oof.is_file():
        df = pd.read_csv(oof)
        if "repeat" in df:
            df = df[df["repeat"] == df["repeat"].min()]
        # stored absolute: keep the part below the data folder's name, found again under data_dir
        df = df.copy()
        df["path"] = [_under(root, Path(str(p))) for p in df["path"]]
        df = df.drop_duplicates("path")
        if "fold" in df:
            df = df.drop(columns=["fold"])
    else:
        raise ConfigError(f"run {run.run_id!r} has neither split.csv nor predictions_oof.csv: its training files "
                          "are unknown")
    df = df[[p.is_file() for p in df["path"]]]
    if df.empty:
        raise ConfigError(f"none of the {run.run_id!r} training files (split.csv, split 'train') is under "
                          f"{str(root)!r}; pass the folder the run was trained on")
    if "group" not in df:
        df["group"] = np.arange(len(df))
    if "fold" not in df or df["fold"].nunique() < 2:
        df["fold"] = pd.Series(df["group"]).astype(int).to_numpy() % N_FOLDS
    return df.reset_index(drop=True)


def _under(root: Path, p: Path) -> Path:
    """``p`` (a path stored by another machine or folder) found under ``root``: its parts after the last one named
    like ``root``, else its last two parts (class folder and file)."""
    parts = p.parts
    if root.name in parts:
        i = len(parts) - 1 - parts[::-1].index(root.name)
        return root.joinpath(*parts[i + 1 :])
    return root.joinpath(*parts[-2:])


def _prepare(path: Path, cfg: Any, need_x: bool) -> tuple[ReportDescriptor, np.ndarray | None]:
    from ecg_core.imaging.loader import read_bytes
    from ecg_core.imaging.preprocess import preprocess
    from ecg_core.reports.pipeline import decode_for_model

    data = read_bytes(path)
    rgb, size = decode_for_model(data, path.name, cfg)
    desc = describe_report(rgb, original_size=size)
    x = preprocess(rgb, cfg, keep_steps=False).final if need_x else None
    return desc, x


def decode_config(run: Any) -> Any:
    """The run's :class:`~ecg_core.imaging.preprocess.PreprocessConfig` (a measurement run has none: the default
    one, which only sets how far a JPEG is decoded)."""
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml import registry

    if getattr(run, "is_measurement", False) or _reads_panels(run):
        return PreprocessConfig()
    return registry.preprocess_config_of(run)


def _reads_panels(run: Any) -> bool:
    """A per-lead CNN (``input_kind`` ``report_panels``): it reads the 13 lead panels, not a preprocessed page, so
    its profile has the descriptor part only (no feature space of a resized page)."""
    return getattr(run, "input_kind", "") == "report_panels"


def leave_fold_out(emb: np.ndarray, folds: np.ndarray, *, k: int = K_NEIGHBOURS, dim: int = PCA_DIM
                   ) -> np.ndarray:
    """k-NN distance of every embedding to the other folds' embeddings (PCA fitted on those folds)."""
    out = np.full(len(emb), np.nan)
    for f in np.unique(folds):
        held = folds == f
        if held.all():
            continue
        mean, comp = fit_pca(emb[~held], dim)
        ref = (emb[~held] - mean) @ comp.T
        out[held] = knn_distance((emb[held] - mean) @ comp.T, ref, k)
    return out


def build_profile(run: Any, data_dir: str | Path, *, progress: ProgressFn | None = None, embed: bool = True,
                  k: int = K_NEIGHBOURS, quantile: float = QUANTILE, dim: int = PCA_DIM, write: bool = True
                  ) -> tuple[OodProfile, dict[str, Any]]:
    """Build (and with ``write`` store in the run folder) the run's OOD profile; returns it and a summary (files
    used, skipped, held-out-fold distances and rate)."""
    from ecg_core.ml import registry

    if not 0.5 <= float(quantile) < 1.0:
        raise ConfigError(f"quantile must be in [0.5, 1); received {quantile!r}")
    cfg = decode_config(run)
    rows = training_files(run, data_dir)
    model = None
    notes: list[str] = []
    if getattr(run, "is_measurement", False):
        notes.append("no feature space: a measurement model (descriptor part only: layout, paper, size)")
        embed = False
    elif _reads_panels(run):
        notes.append("no feature space: a per-lead CNN reads lead panels (descriptor part only: layout, paper, size)")
        embed = False
    if embed:
        try:
            import keras

            model = registry.load_model(run)
            if not isinstance(model, keras.Model):
                notes.append("no feature space: the model is not a Keras network (descriptor part only)")
                model = None
        except EcgCoreError as e:
            notes.append(f"no feature space: the model could not be loaded ({e})")
            model = None
    descs: list[ReportDescriptor] = []
    xs: list[np.ndarray] = []  # at most EMBED_BATCH model inputs at a time: embedded, then dropped
    embs: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[str] = []
    two = None
    per_pass = EMBED_BATCH
    if model is not None:
        layer = embedding_layer(model)
        two = embedding_model(model, layer)
        h, w = (int(v or 1) for v in tuple(model.input_shape)[1:3])
        per_pass = max(1, min(EMBED_BATCH, EMBED_PIXELS // max(1, h * w)))

    def flush() -> None:
        if two is not None and xs:
            out = two.predict_on_batch(np.stack(xs))
            embs.append(np.asarray(out[1], dtype=np.float32).reshape(len(xs), -1))
            xs.clear()

    for i, p in enumerate(rows["path"]):
        try:
            d, x = _prepare(Path(p), cfg, model is not None)
        except (EcgCoreError, ValueError) as e:
            skipped.append(f"{Path(p).name}: {e}")
        else:
            descs.append(d)
            kept.append(i)
            if x is not None:
                xs.append(x)
                if len(xs) >= per_pass:
                    flush()
        if progress is not None:
            progress(i + 1, len(rows))
    flush()
    n_emb = sum(len(e) for e in embs)
    if not descs:
        raise ConfigError(f"no training file of {run.run_id!r} could be read: {skipped[:3]}")
    summary: dict[str, Any] = {"n_files": len(rows), "n_used": len(descs), "skipped": skipped}
    emb_ref = None
    if model is not None and n_emb < 3:
        notes.append(f"no feature space: {n_emb} training reports are too few (at least 3)")
    if model is not None and n_emb >= 3:
        k = max(1, min(int(k), n_emb // 2))  # a tiny training split: fewer neighbours than the other folds hold
        emb = np.concatenate(embs)
        folds = rows["fold"].to_numpy()[kept]
        # one PCA size for the held-out folds and the final reference: distances in fewer dimensions are shorter,
        # so a threshold from smaller projections would flag the training reports themselves
        _, fold_sizes = np.unique(folds, return_counts=True)
        dim = max(1, min(int(dim), len(emb) - int(fold_sizes.max()) - 1, emb.shape[1]))
        held = leave_fold_out(emb, folds, k=k, dim=dim)
        ok = np.isfinite(held)
        thr = float(np.quantile(held[ok], quantile))
        mean, comp = fit_pca(emb, dim)
        emb_ref = EmbeddingReference(layer, mean, comp, ((emb - mean) @ comp.T).astype(np.float32), int(k),
                                     round(thr, 4), float(quantile), len(np.unique(folds)), int(ok.sum()),
                                     round(float(np.mean(held[ok] <= thr)), 4))
        summary.update({"heldout_distances": held[ok].tolist(), "threshold": thr})
    src = f"{len(descs)} training reports of {Path(data_dir).name}"
    profile = profile_from_descriptors(run.run_id, descs, embedding=emb_ref, source=src, notes=notes)
    if write:
        save_profile(profile, run.path)
    return profile, summary


def add_ood_columns(df: pd.DataFrame, files: list[Path], profile: OodProfile | None, *,
                    cache_root: str | Path | None = None) -> pd.DataFrame:
    """``in_distribution`` and ``ood_reason`` for a prediction table made without them (rows in the order of
    ``files``; e.g. ``bench/ood_rates.py``): the descriptor of every predicted file (decoded again, ~40 ms, or read
    from the descriptor cache under ``cache_root``), no feature space. A measurement model's ``predict`` gets the
    columns from :func:`ecg_core.reports.measure_predict.predict_files_measure` itself (``ood=``), which describes
    the image it already decoded."""
    from ecg_core.core.hashing import file_hash
    from ecg_core.imaging.loader import read_bytes
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.reports.ood import DescriptorCache, assess, verdict_columns
    from ecg_core.reports.pipeline import decode_for_model

    cache = DescriptorCache(Path(cache_root) / "ood_descriptor") if cache_root is not None else None
    cfg = PreprocessConfig()
    ind, why = [], []
    for f, predicted in zip(files, df["predicted"]):
        if predicted == "":
            ind.append("")
            why.append("")
            continue
        desc = None
        try:
            data = read_bytes(f)
            h = file_hash(data) if cache is not None else ""
            desc = cache.get(h) if cache is not None else None
            if desc is None:
                rgb, size = decode_for_model(data, Path(f).name, cfg)
                desc = describe_report(rgb, original_size=size)
                if cache is not None:
                    cache.put(h, desc)
        except (EcgCoreError, ValueError):
            desc = None
        cols = verdict_columns(assess(desc, profile))
        ind.append(cols["in_distribution"])
        why.append(cols["ood_reason"])
    out = df.copy()
    out["in_distribution"] = ind
    out["ood_reason"] = why
    return out
