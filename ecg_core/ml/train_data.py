"""The data side of a training job: the split index and its preprocessing cache, patient-wise groups, the balancing
plan, the ``tf.data`` input pipeline, and what a dataset folder tells the run about itself (``dataset_info.json``).
"""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError
from ecg_core.imaging.preprocess import PreprocessCache, load_npy, preprocess_file
from ecg_core.ml.progress import StopRequested
from ecg_core.ml.train_config import TrainConfig

__all__ = ["DATASET_INFO_FILE", "DatasetInfo", "PreparedData", "apply_record_groups", "job_split", "make_dataset",
           "predict_cached", "prepare_data", "read_dataset_info", "training_rows"]

DATASET_INFO_FILE = "dataset_info.json"

_DATASET_INFO_KEYS = ("input_kind", "run_meta", "copy_files")
#: run files that training writes itself: a dataset cannot have them replaced
_RUN_FILES = frozenset({"run.json", "model.keras", "checkpoints", "split.csv", "history.csv", "progress.jsonl", "STOP",
                        "predictions.csv", "eval.json", "predictions_oof.csv", "eval_kfold.json", "traceback.txt",
                        "MODEL_CARD.md"})
#: run.json keys that training writes itself: ``run_meta`` cannot override them
_RUN_KEYS = frozenset({"run_id", "status", "created", "pid", "arch", "preset", "input_kind", "data_dir", "input_shape",
                       "preprocess", "train", "versions", "class_names", "data_source", "data_fingerprint", "split",
                       "kfold", "finished", "n_params", "last_conv_layer", "pretrained", "training", "metrics",
                       "error"})


# ------------------------------------------------------------------------------------------------- dataset info
@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset folder says about itself in ``dataset_info.json``, written by the builder that made it (e.g.
    :func:`ecg_core.signals.spectral_dataset.build_spectral_dataset`)::

        {"input_kind": "spectral_beat", "run_meta": {"spectral": {...}}, "copy_files": ["spectral_config.json"]}

    ``input_kind`` is what a model trained on the folder reads (empty: the preset's input kind); ``run_meta`` is
    merged into the run's ``run.json``; ``copy_files`` are files of the folder that inference needs beside the
    model, copied into the run folder. Every key is optional.
    """

    input_kind: str = ""
    run_meta: dict[str, Any] = field(default_factory=dict)
    copy_files: tuple[str, ...] = ()


def read_dataset_info(data_dir: str | Path) -> DatasetInfo | None:
    """The checked ``dataset_info.json`` of a dataset folder; None when it has none.

    Raises :class:`ConfigError` when the file is not a JSON object with the keys of :class:`DatasetInfo`, a
    ``run_meta`` key is one that training writes itself, or a ``copy_files`` entry is not a plain file name of a
    file in the folder (or names a file that training writes itself).
    """
    root = Path(data_dir)
    path = root / DATASET_INFO_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{str(path)!r} is not readable JSON ({e}); rebuild the dataset or remove the file") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{str(path)!r} must hold a JSON object with the keys {list(_DATASET_INFO_KEYS)}; "
                          f"received {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_DATASET_INFO_KEYS))
    if unknown:
        raise ConfigError(f"{str(path)!r} has unknown keys {unknown}; known: {list(_DATASET_INFO_KEYS)}")
    kind = raw.get("input_kind") or ""
    if not isinstance(kind, str):
        raise ConfigError(f"{str(path)!r}: input_kind must be a string; received {kind!r}")
    meta = raw.get("run_meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise ConfigError(f"{str(path)!r}: run_meta must be a JSON object; received {type(meta).__name__}")
    taken = sorted(set(meta) & _RUN_KEYS)
    if taken:
        raise ConfigError(f"{str(path)!r}: run_meta cannot set {taken}: training writes these run.json keys itself")
    files = raw.get("copy_files") or []
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ConfigError(f"{str(path)!r}: copy_files must be a list of file names; received {files!r}")
    for name in files:
        if not name or name != Path(name).name or name.startswith(".") or name in _RUN_FILES:
            raise ConfigError(f"{str(path)!r}: copy_files entry {name!r} must be the plain name of a file in the "
                              "folder, not one that training writes itself")
        if not (root / name).is_file():
            raise ConfigError(f"{str(path)!r} lists {name!r} in copy_files, but the folder has no such file")
    return DatasetInfo(input_kind=kind, run_meta=dict(meta), copy_files=tuple(files))


# --------------------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class PreparedData:
    """The split index (one row per used file) and the cache paths of the preprocessed arrays."""

    index: pd.DataFrame
    cache_paths: list[str]
    class_names: list[str]
    data_source: str
    fingerprint: str


def prepare_data(
    cfg: TrainConfig,
    *,
    cache_root: Path,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PreparedData:
    """Scan, split by group, optionally keep one file per group, and fill the preprocessing cache."""
    from ecg_core.ml import dataset, splits
    from ecg_core.core.labels import get_preset

    preset = get_preset(cfg.preset)
    index = dataset.scan(cfg.data_dir, preset=preset)
    usable = index[(index["error"] == "") & (index["label"] >= 0)]
    if usable.empty:
        raise ConfigError(f"no readable, labelled images in {cfg.data_dir!r} for preset {cfg.preset!r}")
    present = sorted(usable["label"].unique())
    if len(present) < 2:
        raise ConfigError(f"training needs at least 2 classes with images; found {len(present)} in {cfg.data_dir!r}")
    index = apply_record_groups(index)
    split = job_split(index, cfg)
    if (split["split"] == "train").sum() == 0 or (split["split"] == "val").sum() == 0:
        raise ConfigError("the dataset is too small for a train/validation split; add images or lower val_frac")
    leaks = splits.leakage(split)
    if not leaks.empty and cfg.split_by == "group":  # cannot happen with split_by_group; the check is kept on purpose
        raise ConfigError(f"{len(leaks)} duplicate groups straddle splits; refusing to train")
    cache = PreprocessCache(cache_root)
    paths: list[str] = []
    n = len(split)
    for i, (p, h) in enumerate(zip(split["path"], split["sha256"])):
        if should_stop():
            raise StopRequested()
        preprocess_file(p, cfg.preprocess, content_hash=h, cache=cache)
        paths.append(str(cache.path_for(h, cfg.preprocess)))
        if progress:
            progress(i + 1, n)
    root = Path(index.attrs.get("root", cfg.data_dir))
    source = "synthetic" if (root / "synth_manifest.json").exists() else "real"
    return PreparedData(split, paths, preset.class_names, source, dataset.fingerprint_of(index))


def job_split(index: pd.DataFrame, cfg: TrainConfig) -> pd.DataFrame:
    """The rows a training job uses, with their ``split`` (and ``fold``) column: the split of ``cfg`` (by group,
    or the leaky file split), rows outside every split dropped, and with ``cfg.dedupe`` one file per duplicate
    group (the first by ``rel_path``), so copies do not weigh more. ``index`` is a scan after
    :func:`apply_record_groups`. The Augment page shows the balancing plan of exactly these rows."""
    from ecg_core.ml import splits

    if cfg.split_by == "file":
        split = splits.random_file_split(index, val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=cfg.seed)
    else:
        split = splits.split_by_group(index, val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=cfg.seed)
    if cfg.kfold > 1:
        split["fold"] = splits.kfold_by_group(index, k=cfg.kfold, seed=cfg.seed)["fold"]
    split = split[split["split"] != ""].copy()
    if cfg.dedupe:
        split = split.sort_values("rel_path").drop_duplicates("group", keep="first")
    return split.sort_values(["split", "label", "rel_path"]).reset_index(drop=True)


def apply_record_groups(index: pd.DataFrame) -> pd.DataFrame:
    """Patient-wise grouping: when the dataset root has an ``index.csv`` with ``path`` and ``record`` columns
    (written by :func:`ecg_core.signals.spectral_dataset.build_spectral_dataset`), every image of one record joins one group, so
    splits and k-fold keep each record (patient) on one side. Otherwise the index is returned unchanged."""
    root = Path(index.attrs.get("root", ""))
    meta = root / "index.csv"
    if not meta.is_file() or index.empty:
        return index
    try:
        rec = pd.read_csv(meta, usecols=["path", "record"])
    except (ValueError, OSError):
        return index
    by_path = dict(zip(rec["path"].astype(str), rec["record"].astype(str)))
    records = index["rel_path"].map(lambda p: by_path.get(str(p).replace(os.sep, "/")))
    if records.isna().all():
        return index
    # images missing from index.csv keep their own duplicate group (offset so ids never collide)
    codes = {r: i for i, r in enumerate(sorted(records.dropna().unique()))}
    out = index.copy()
    out["record"] = records
    out["group"] = [codes[r] if isinstance(r, str) else len(codes) + int(g) if g >= 0 else -1
                    for r, g in zip(records, index["group"])]
    out.attrs = dict(index.attrs, grouped_by="record")
    return out


def training_rows(train: pd.DataFrame, cfg: TrainConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Rows the job trains on per epoch (after the balancing plan) and a description of the plan."""
    from ecg_core.imaging import augment

    train = train.assign(split="train")  # k-fold passes rows whose fixed split says val/test: here they train
    counts = train.groupby("class_name").size()
    if cfg.balance != "oversample":
        rows = train.assign(aug_copy=0)
        return rows, {"mode": cfg.balance, "before": counts.to_dict(), "after": counts.to_dict()}
    plan = augment.balancing_plan(counts, max_multiplier=cfg.max_multiplier)
    rows = augment.expand_with_plan(train, plan, split_col="split", label_col="class_name")
    after = rows.groupby("class_name").size().to_dict()
    return rows, {
        "mode": "oversample",
        "multipliers": {k: int(v) for k, v in plan.multipliers.items()},
        "before": {k: int(v) for k, v in plan.counts_before.items()},
        "after": {k: int(v) for k, v in after.items()},
    }


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    w = compute_class_weight("balanced", classes=present, y=labels)
    out = {int(c): 1.0 for c in range(n_classes)}
    out.update({int(c): float(x) for c, x in zip(present, w)})
    return out


def make_dataset(
    cache_paths: list[str],
    labels: np.ndarray,
    *,
    n_classes: int,
    batch_size: int,
    augment_name: str | None,
    aug_flags: np.ndarray | None = None,
    epochs: int = 1,
    seed: int = 0,
    shuffle: bool = False,
) -> tuple[Any, int]:
    """A ``tf.data.Dataset`` of (float32 image in [0, 1], one-hot label) batches and its steps per epoch.

    Arrays come from the preprocessing cache (uint8 ``.npy``), so the whole dataset is never held as float32.
    For training (``shuffle=True``) the element order and the augmentation seeds of every epoch are drawn up
    front from ``seed`` (deterministic), each epoch drops its last incomplete batch, and the dataset yields
    ``epochs * steps`` batches.
    """
    import tensorflow as tf

    from ecg_core.imaging import augment

    n = len(cache_paths)
    if n == 0:
        raise ConfigError("no images to feed")
    paths = np.asarray(cache_paths)
    onehot = np.eye(n_classes, dtype=np.float32)[labels]
    aug_cfg = None
    if augment_name and augment_name != "none":
        if augment_name not in augment.PRESETS:
            raise ConfigError(f"augment must be one of {', '.join(augment.PRESETS)}; got {augment_name!r}")
        aug_cfg = augment.PRESETS[augment_name]
    local = threading.local()  # albumentations pipelines are not thread-safe: one Augmenter per map thread
    flags = np.ones(n, bool) if aug_flags is None else np.asarray(aug_flags, bool)

    rng = np.random.default_rng(seed)
    if shuffle:
        steps = max(1, n // batch_size)
        order = np.concatenate([rng.permutation(n)[: steps * batch_size] if n >= batch_size
                                else rng.choice(n, batch_size) for _ in range(epochs)])
    else:
        steps = math.ceil(n / batch_size)
        order = np.arange(n)
    seeds = rng.integers(0, 2**31 - 1, size=len(order), dtype=np.int64)

    def load(i: np.int64, s: np.int64) -> tuple[np.ndarray, np.ndarray]:
        arr = load_npy(paths[i])  # np.load parses headers with ast: not thread-safe on CPython 3.11
        if aug_cfg is not None and flags[i]:
            if not hasattr(local, "aug"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    local.aug = augment.Augmenter(aug_cfg)
            squeezed = arr[:, :, 0] if arr.shape[2] == 1 else arr
            out = local.aug(squeezed, seed=int(s))
            arr = out[:, :, None] if arr.shape[2] == 1 else out
        return arr, onehot[i]  # still uint8: the Python side (holding the GIL) moves 1 byte per pixel, not 4

    h, w, c = load_npy(paths[0]).shape

    def tf_load(i: Any, s: Any) -> tuple[Any, Any]:
        x, y = tf.numpy_function(load, [i, s], [tf.uint8, tf.float32], stateful=False)
        x.set_shape((h, w, c))
        y.set_shape((n_classes,))
        return x, y

    def to_float(x: Any, y: Any) -> tuple[Any, Any]:  # one vectorised TF op per batch, same values as x / 255
        return tf.cast(x, tf.float32) / tf.constant(255.0, tf.float32), y

    ds = tf.data.Dataset.from_tensor_slices((order, seeds))
    ds = ds.map(tf_load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size).map(to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE), steps


def predict_cached(model: Any, cache_paths: list[str], *, batch_size: int = 16) -> np.ndarray:
    """Class probabilities (n, k) for preprocessed arrays in the cache."""
    ds, _ = make_dataset(cache_paths, np.zeros(len(cache_paths), int), n_classes=model.output_shape[-1],
                         batch_size=batch_size, augment_name=None)
    return model.predict(ds.map(lambda x, y: x), verbose=0)
