"""Training job: dataset index -> group-aware split -> preprocessing cache -> tf.data -> Keras fit -> registry.

Run it as a subprocess (``python -m ecg_core train ...``, see :mod:`ecg_core.ml.jobs`) so that it survives page
reruns. It writes ``progress.jsonl`` (one JSON line per batch, at most ~2 per second, and one per epoch with
the epoch's training throughput: ``train_seconds``, ``train_images``, ``images_per_s``),
``history.csv``, ``checkpoints/best.keras`` (best validation loss, written atomically), and at the end
``model.keras``, ``predictions.csv`` and ``eval.json`` (held-out test split) into its run folder.

It stops cleanly when the file ``STOP`` appears in the run folder or on SIGTERM: the current batch finishes,
the best checkpoint becomes the model, the test split is evaluated and the run is marked ``stopped``.

Data honesty:

* the split is by duplicate group (:func:`ecg_core.ml.dataset.split_by_group`), stratified by class;
* with ``dedupe`` (default) each duplicate group contributes one file, so copies do not weigh more;
* class balancing (oversampling by a balancing plan) and augmentation touch the training split only;
* early stopping and the learning-rate schedule watch the validation split; the test split is used once, at
  the end, for ``eval.json``.

Optional group-aware k-fold cross-validation (``kfold > 1``) trains one model per fold and stores the
out-of-fold predictions and their evaluation (``predictions_oof.csv``, ``eval_kfold.json``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import threading
import time
import warnings
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.ml import registry
from ecg_core.core.errors import ConfigError, EcgCoreError
from ecg_core.imaging.preprocess import PreprocessCache, PreprocessConfig, load_npy, preprocess_file

BALANCE_MODES = ("oversample", "class_weights", "none")
STRATEGIES = ("default", "mirrored")
SPLIT_MODES = ("group", "file")  # "file" is the leaky random file-level split, for the leakage demonstration only
STOP_FILE = "STOP"
PROGRESS_FILE = "progress.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training job needs; stored in ``run.json`` under ``train``."""

    data_dir: str
    arch: str = "custom_cnn"
    preset: str = "cardiac-4"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    val_frac: float = 0.15
    test_frac: float = 0.15
    kfold: int = 0
    split_by: str = "group"
    dedupe: bool = True
    balance: str = "oversample"
    max_multiplier: int = 12
    augment: str = "light"
    patience: int = 8
    reduce_lr_patience: int = 3
    pretrained: bool = False
    trainable_top_n: int = 0
    bn_momentum: float = 0.9
    label_smoothing: float = 0.0
    strategy: str = "default"
    mixed_precision: bool = False
    steps_per_epoch: int = 0
    #: images per forward/backward pass; 0 = automatic (the whole batch unless its activations exceed
    #: ACTIVATION_BUDGET_MIB, then the largest divisor of batch_size that fits, the gradients of
    #: batch_size / micro_batch passes averaged before each update: same effective batch, less memory)
    micro_batch: int = 0

    def __post_init__(self) -> None:
        if not self.data_dir:
            raise ConfigError("data_dir is empty; pass the dataset folder (one sub-folder per class)")
        if self.balance not in BALANCE_MODES:
            raise ConfigError(f"balance must be one of {', '.join(BALANCE_MODES)}; got {self.balance!r}")
        if self.split_by not in SPLIT_MODES:
            raise ConfigError(f"split_by must be one of {', '.join(SPLIT_MODES)}; got {self.split_by!r}")
        if self.split_by == "file" and self.dedupe:
            raise ConfigError("split_by='file' (the leaky demonstration split) needs dedupe=False")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}")
        for name, lo in (("epochs", 1), ("batch_size", 1), ("patience", 1), ("reduce_lr_patience", 1),
                         ("max_multiplier", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or v < lo:
                raise ConfigError(f"{name} must be an integer >= {lo}; got {v!r}")
        if isinstance(self.micro_batch, bool) or not isinstance(self.micro_batch, int) or self.micro_batch < 0 or (
                self.micro_batch and self.batch_size % self.micro_batch):
            raise ConfigError(f"micro_batch must be 0 (automatic) or a divisor of batch_size={self.batch_size}; "
                              f"got {self.micro_batch!r}")
        if self.kfold not in (0, 1) and not 2 <= self.kfold <= 20:
            raise ConfigError(f"kfold must be 0 (off) or 2..20; got {self.kfold!r}")
        if not 0 < self.lr < 1:
            raise ConfigError(f"lr must be in (0, 1); got {self.lr!r}")
        if not isinstance(self.preprocess, PreprocessConfig):
            raise ConfigError("preprocess must be a PreprocessConfig")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown TrainConfig keys {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        if isinstance(d.get("preprocess"), dict):
            d["preprocess"] = PreprocessConfig.from_dict(d["preprocess"])
        return cls(**d)


class StopRequested(Exception):
    """Raised inside the job when a stop was requested before any model existed."""


# ------------------------------------------------------------------------------------------------------- progress
class ProgressWriter:
    """Appends JSON lines to ``progress.jsonl`` (each line is flushed; readers skip a torn last line)."""

    def __init__(self, run_dir: Path, *, min_interval_s: float = 0.5) -> None:
        self.path = Path(run_dir) / PROGRESS_FILE
        self.min_interval_s = min_interval_s
        self._last = 0.0

    def write(self, event: dict[str, Any], *, force: bool = True) -> None:
        now = time.time()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        line = json.dumps({"t": round(now, 3), **_finite(event)})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.floating, float)):
            v = float(v)
            out[k] = v if math.isfinite(v) else None
        elif isinstance(v, np.integer):
            out[k] = int(v)
        else:
            out[k] = v
    return out


def read_progress(run_dir: str | Path) -> list[dict[str, Any]]:
    """All complete lines of a run's ``progress.jsonl`` (a torn last line is skipped)."""
    p = Path(run_dir) / PROGRESS_FILE
    try:
        text = p.read_text(encoding="utf-8")
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


class _StopFlag:
    """Set by SIGTERM or by the presence of the run's STOP file."""

    def __init__(self, run_dir: Path) -> None:
        self.stop_file = run_dir / STOP_FILE
        self.signalled = False

    def __call__(self) -> bool:
        return self.signalled or self.stop_file.exists()


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
    from ecg_core.ml import dataset
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
    if cfg.split_by == "file":
        split = dataset.random_file_split(index, val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=cfg.seed)
    else:
        split = dataset.split_by_group(index, val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=cfg.seed)
    if cfg.kfold > 1:
        split["fold"] = dataset.kfold_by_group(index, k=cfg.kfold, seed=cfg.seed)["fold"]
    split = split[split["split"] != ""].copy()
    if cfg.dedupe:
        split = split.sort_values("rel_path").drop_duplicates("group", keep="first")
    split = split.sort_values(["split", "label", "rel_path"]).reset_index(drop=True)
    if (split["split"] == "train").sum() == 0 or (split["split"] == "val").sum() == 0:
        raise ConfigError("the dataset is too small for a train/validation split; add images or lower val_frac")
    leaks = dataset.leakage(split)
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


def apply_record_groups(index: pd.DataFrame) -> pd.DataFrame:
    """Patient-wise grouping: when the dataset root has an ``index.csv`` with ``path`` and ``record`` columns
    (written by :func:`ecg_core.signals.spectral.build_spectral_dataset`), every image of one record joins one group, so
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


def _class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
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


# ------------------------------------------------------------------------------------------------------ callbacks
def _callbacks(run_dir: Path, writer: ProgressWriter, stop: _StopFlag, cfg: TrainConfig, steps: int,
               *, prefix: str = "", save_best: bool = True, batch_images: int | None = None) -> list[Any]:
    per_batch = int(batch_images or cfg.batch_size)
    import keras

    class Progress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.t0 = time.time()
            self.best = math.inf
            self.rows: list[dict[str, Any]] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch
            self.t_epoch = time.time()
            self.t_fit = time.perf_counter()
            self.t_train_end = self.t_fit
            self.n_batches = 0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.t_train_end = time.perf_counter()
            self.n_batches = batch + 1
            logs = logs or {}
            writer.write({"phase": f"{prefix}train", "epoch": self.epoch + 1, "epochs": cfg.epochs,
                          "batch": batch + 1, "batches": steps, "loss": logs.get("loss"),
                          "accuracy": logs.get("accuracy")}, force=False)
            if stop():
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = dict(logs or {})
            lr = logs.get("learning_rate", logs.get("lr"))
            if lr is None:
                try:
                    lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                except Exception:  # optimizer without a plain learning rate (schedule)
                    lr = None
            row = {"epoch": epoch + 1, "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
                   "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
                   "lr": float(lr) if lr is not None else None, "seconds": round(time.time() - self.t_epoch, 2)}
            self.rows.append(row)
            if not prefix:
                registry.atomic_write_bytes(run_dir / "history.csv", pd.DataFrame(self.rows).to_csv(index=False).encode())
            vl = logs.get("val_loss")
            improved = vl is not None and math.isfinite(vl) and vl < self.best
            if improved:
                self.best = vl
                if save_best:
                    registry.save_model_atomic(self.model, run_dir / "checkpoints" / f"{prefix}best.keras")
            # training throughput of this epoch: from its start to the end of its last training batch (the
            # validation pass and the checkpoint are not counted); the first epoch includes graph tracing
            train_s = self.t_train_end - self.t_fit
            n_images = self.n_batches * per_batch
            writer.write({"phase": f"{prefix}epoch", "epochs": cfg.epochs, "best": improved, **row,
                          "train_seconds": round(train_s, 3), "train_images": n_images,
                          "images_per_s": round(n_images / train_s, 2) if train_s > 0 else None})
            if stop():
                self.model.stop_training = True

    return [
        Progress(),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=cfg.reduce_lr_patience,
                                          min_lr=1e-6),
    ]


# ------------------------------------------------------------------------------------------------------ the job
#: forward activations one training pass may hold (MiB, float32, from the built model's layer outputs). Measured
#: here: the Custom CNN at 384x384x3 (78 MiB per image) peaks at 3.7 GB RSS with batches of 16 and 2.4-2.5 GB with
#: micro-batches of 8 (too close to a 2.5 GB budget), hence passes of 4; at the default 192x320x1 (32 MiB per
#: image) a batch of 16 fits whole.
ACTIVATION_BUDGET_MIB = 512


def choose_micro_batch(batch_size: int, bytes_per_sample: int, *, requested: int = 0,
                       budget_mib: float = ACTIVATION_BUDGET_MIB) -> int:
    """Images per pass: ``requested`` when set, else the largest divisor of ``batch_size`` whose activations
    (``bytes_per_sample`` each) fit ``budget_mib`` (at least 1)."""
    if requested:
        return int(requested)
    for m in range(batch_size, 0, -1):
        if batch_size % m == 0 and m * bytes_per_sample <= budget_mib * 2**20:
            return m
    return 1


def _strategy(cfg: TrainConfig) -> Any:
    import tensorflow as tf

    if cfg.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _fit_one(
    cfg: TrainConfig,
    data: PreparedData,
    train_mask: np.ndarray,
    val_mask: np.ndarray,
    *,
    run_dir: Path,
    writer: ProgressWriter,
    stop: _StopFlag,
    prefix: str = "",
    seed: int,
) -> tuple[Any, dict[str, Any], Any]:
    """Build, compile and fit one model; returns (model with best weights, info, BuildResult)."""
    from ecg_core.ml import zoo

    idx = data.index
    n_classes = len(data.class_names)
    train = idx[train_mask].assign(_pos=np.flatnonzero(train_mask))
    rows, plan = training_rows(train, cfg)
    pos = rows["_pos"].to_numpy()
    train_paths = [data.cache_paths[p] for p in pos]
    train_labels = idx["label"].to_numpy()[pos]
    flags = np.ones(len(pos), bool) if cfg.augment != "none" else np.zeros(len(pos), bool)
    with _strategy(cfg).scope():
        built = zoo.build_model(cfg.arch, input_shape=cfg.preprocess.input_shape, n_classes=n_classes,
                                pretrained=cfg.pretrained, trainable_top_n=cfg.trainable_top_n, seed=seed,
                                bn_momentum=cfg.bn_momentum)
        micro = choose_micro_batch(cfg.batch_size, zoo.activation_bytes_per_sample(built.model),
                                   requested=cfg.micro_batch)
        accumulate = cfg.batch_size // micro
        zoo.compile_model(built.model, lr=cfg.lr, label_smoothing=cfg.label_smoothing,
                          gradient_accumulation_steps=accumulate)
    ds_train, steps = make_dataset(train_paths, train_labels, n_classes=n_classes, batch_size=micro,
                                   augment_name=cfg.augment, aug_flags=flags, epochs=cfg.epochs, seed=seed,
                                   shuffle=True)
    steps = max(accumulate, steps // accumulate * accumulate)  # whole effective batches per epoch
    if cfg.steps_per_epoch:
        steps = min(steps, cfg.steps_per_epoch * accumulate)
    val_pos = np.flatnonzero(val_mask)
    ds_val, _ = make_dataset([data.cache_paths[p] for p in val_pos], idx["label"].to_numpy()[val_pos],
                             n_classes=n_classes, batch_size=micro, augment_name=None)
    class_weight = _class_weights(train_labels, n_classes) if cfg.balance == "class_weights" else None
    cbs = _callbacks(run_dir, writer, stop, cfg, steps, prefix=prefix, save_best=not prefix, batch_images=micro)
    writer.write({"phase": f"{prefix}start", "epochs": cfg.epochs, "batches": steps, "micro_batch": micro,
                  "accumulation_steps": accumulate, "train_images": int(len(pos)), "val_images": int(len(val_pos))})
    history = built.model.fit(ds_train.repeat(), epochs=cfg.epochs, steps_per_epoch=steps, validation_data=ds_val,
                              class_weight=class_weight, callbacks=cbs, verbose=0, shuffle=False)
    epochs_run = len(history.history.get("loss", []))
    info = {"plan": plan, "epochs_run": epochs_run, "steps_per_epoch": steps, "micro_batch": micro,
            "accumulation_steps": accumulate, "train_images_per_epoch": int(steps * micro), "train_rows": int(len(pos)),
            "stopped_early": epochs_run < cfg.epochs}
    return built.model, info, built


def predict_cached(model: Any, cache_paths: list[str], *, batch_size: int = 16) -> np.ndarray:
    """Class probabilities (n, k) for preprocessed arrays in the cache."""
    ds, _ = make_dataset(cache_paths, np.zeros(len(cache_paths), int), n_classes=model.output_shape[-1],
                         batch_size=batch_size, augment_name=None)
    return model.predict(ds.map(lambda x, y: x), verbose=0)


def _input_kind(cfg: TrainConfig) -> str:
    """What the trained model will read: a spectral beat image for a folder written by the spectral builder, else the
    preset's input kind (stored in run.json so that pages offer the model only for fitting inputs)."""
    from ecg_core.core import labels

    if (Path(cfg.data_dir) / "spectral_config.json").is_file():
        return labels.INPUT_SPECTRAL_BEAT
    return labels.get_preset(cfg.preset).input_kind


def run_training(
    cfg: TrainConfig,
    *,
    models_dir: str | Path,
    run_id: str | None = None,
    cache_root: str | Path | None = None,
) -> Path:
    """Run a whole training job into ``models_dir/run_id`` and return the run folder."""
    from ecg_core.core import paths
    from ecg_core.ml.evaluate import evaluate_predictions, predictions_frame
    from ecg_core.ml.zoo import get_arch

    get_arch(cfg.arch)  # validate the architecture name before creating anything
    run_id = registry.check_run_id(run_id or registry.new_run_id(cfg.arch))
    run_dir = registry.create_run(models_dir, run_id, {
        "arch": cfg.arch,
        "preset": cfg.preset,
        "input_kind": _input_kind(cfg),
        "data_dir": str(Path(cfg.data_dir).resolve()),
        "input_shape": list(cfg.preprocess.input_shape),
        "preprocess": cfg.preprocess.to_dict(),
        "train": cfg.to_dict(),
        "versions": registry.library_versions(),
    })
    writer = ProgressWriter(run_dir)
    stop = _StopFlag(run_dir)
    old_handler = None
    try:
        old_handler = signal.signal(signal.SIGTERM, lambda *_: setattr(stop, "signalled", True))
    except ValueError:  # not the main thread (e.g. tests); the STOP file still works
        pass
    try:
        import keras

        if cfg.mixed_precision:
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                keras.mixed_precision.set_global_policy("mixed_float16")
            else:
                writer.write({"phase": "note", "message": "mixed precision ignored: no GPU"})
        writer.write({"phase": "preprocess", "done": 0, "total": 0})
        data = prepare_data(
            cfg, cache_root=Path(cache_root) if cache_root else paths.cache_dir() / "preprocess",
            progress=lambda i, n: writer.write({"phase": "preprocess", "done": i, "total": n}, force=i == n),
            should_stop=stop,
        )
        idx = data.index
        registry.atomic_write_bytes(
            run_dir / "split.csv",
            idx[["rel_path", "label", "class_name", "group", "sha256", "split"]
                + (["fold"] if "fold" in idx else [])].to_csv(index=False).encode(),
        )
        spectral_json = Path(cfg.data_dir) / "spectral_config.json"
        if spectral_json.is_file():  # a spectral beat-image set: inference needs its segment + spectral configs
            registry.atomic_write_bytes(run_dir / "spectral_config.json", spectral_json.read_bytes())
            registry.update_run(run_dir, spectral=json.loads(spectral_json.read_text()))
        split_counts = {s: {"files": int((idx["split"] == s).sum()), "distinct": int(idx.loc[idx["split"] == s, "group"].nunique())}
                        for s in ("train", "val", "test")}
        registry.update_run(run_dir, class_names=data.class_names, data_source=data.data_source,
                            data_fingerprint=data.fingerprint,
                            split={"by": "record" if "record" in idx else cfg.split_by, "seed": cfg.seed, "val_frac": cfg.val_frac,
                                   "test_frac": cfg.test_frac, "dedupe": cfg.dedupe, "counts": split_counts})

        if cfg.kfold > 1:
            _run_kfold(cfg, data, run_dir=run_dir, writer=writer, stop=stop)

        is_train = (idx["split"] == "train").to_numpy()
        is_val = (idx["split"] == "val").to_numpy()
        model, info, built = _fit_one(cfg, data, is_train, is_val, run_dir=run_dir, writer=writer, stop=stop,
                                      seed=cfg.seed)
        stopped = stop()
        best = run_dir / "checkpoints" / "best.keras"
        if not best.exists():
            if stopped:
                raise StopRequested()
            registry.save_model_atomic(model, best)
        # the model we keep is the best checkpoint (EarlyStopping restored the same weights in memory)
        model = keras.models.load_model(str(best), compile=False, safe_mode=True)

        writer.write({"phase": "evaluate"})
        test = np.flatnonzero((idx["split"] == "test").to_numpy())
        metrics: dict[str, Any] = {}
        if len(test):
            probs = predict_cached(model, [data.cache_paths[i] for i in test], batch_size=cfg.batch_size)
            y = idx["label"].to_numpy()[test]
            groups = idx["group"].to_numpy()[test]
            rep = evaluate_predictions(y, probs, class_names=data.class_names, groups=groups, split="test",
                                       seed=cfg.seed)
            frame = predictions_frame(idx["path"].to_numpy()[test], y, probs, class_names=data.class_names,
                                      groups=groups)
            registry.atomic_write_bytes(run_dir / "predictions.csv", frame.to_csv(index=False).encode())
            registry.atomic_write_json(run_dir / "eval.json", rep.to_dict())
            metrics = {"split": "test", "n": rep.n, "n_distinct": rep.n_distinct, "accuracy": rep.accuracy,
                       "macro_f1": rep.macro["f1"], "macro_f1_ci": list(rep.ci.get("macro_f1", (None, None))),
                       "accuracy_ci": list(rep.ci.get("accuracy", (None, None)))}
        os.replace(best, run_dir / registry.MODEL_FILE)
        try:
            best.parent.rmdir()  # the checkpoint folder is empty now
        except OSError:
            pass
        status = "stopped" if stopped else "completed"
        registry.update_run(run_dir, status=status, finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                            n_params=int(model.count_params()), last_conv_layer=built.last_conv_layer,
                            pretrained={"requested": built.pretrained_requested, "loaded": built.pretrained_loaded,
                                        "message": built.message},
                            training=info, metrics=metrics)
        writer.write({"phase": "done", "status": status, **{k: v for k, v in metrics.items() if not isinstance(v, list)}})
        return run_dir
    except StopRequested:
        registry.update_run(run_dir, status="stopped", finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                            error="stopped before the first epoch finished: no model was kept")
        writer.write({"phase": "done", "status": "stopped", "message": "stopped before any model existed"})
        return run_dir
    except EcgCoreError as e:
        registry.update_run(run_dir, status="failed", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), error=str(e))
        writer.write({"phase": "done", "status": "failed", "message": str(e)})
        raise
    except BaseException as e:
        registry.update_run(run_dir, status="failed", finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                            error=f"{type(e).__name__}: {e}")
        writer.write({"phase": "done", "status": "failed", "message": f"{type(e).__name__}: {e}"})
        (run_dir / "traceback.txt").write_text(traceback.format_exc())
        raise
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)


def _run_kfold(cfg: TrainConfig, data: PreparedData, *, run_dir: Path, writer: ProgressWriter,
               stop: _StopFlag) -> None:
    """Group-aware k-fold CV over all usable groups; writes predictions_oof.csv and eval_kfold.json."""
    from ecg_core.ml.evaluate import evaluate_predictions, predictions_frame

    idx = data.index
    folds = idx["fold"].to_numpy()
    probs = np.full((len(idx), len(data.class_names)), np.nan, dtype=np.float64)
    rng = np.random.default_rng(cfg.seed)
    per_fold = []
    for f in range(cfg.kfold):
        if stop():
            raise StopRequested()
        held = folds == f
        rest = np.flatnonzero(~held)
        # early-stopping data for this fold: a share of the remaining *groups*, never the held-out fold
        groups = np.unique(idx["group"].to_numpy()[rest])
        val_groups = set(rng.choice(groups, size=max(1, int(round(len(groups) * cfg.val_frac))), replace=False))
        is_val = np.isin(idx["group"].to_numpy(), list(val_groups)) & ~held
        is_train = ~held & ~is_val
        model, info, _ = _fit_one(replace(cfg, kfold=0), data, is_train, is_val, run_dir=run_dir, writer=writer,
                                  stop=stop, prefix=f"fold{f + 1}_", seed=cfg.seed + 1000 * (f + 1))
        pos = np.flatnonzero(held)
        probs[pos] = predict_cached(model, [data.cache_paths[i] for i in pos], batch_size=cfg.batch_size)
        per_fold.append({"fold": f + 1, "n": int(len(pos)), "epochs_run": info["epochs_run"]})
        writer.write({"phase": "fold_done", "fold": f + 1, "folds": cfg.kfold})
    y = idx["label"].to_numpy()
    rep = evaluate_predictions(y, probs, class_names=data.class_names, groups=idx["group"].to_numpy(), split="oof",
                               seed=cfg.seed)
    frame = predictions_frame(idx["path"].to_numpy(), y, probs, class_names=data.class_names,
                              groups=idx["group"].to_numpy())
    frame["fold"] = folds
    registry.atomic_write_bytes(run_dir / "predictions_oof.csv", frame.to_csv(index=False).encode())
    registry.atomic_write_json(run_dir / "eval_kfold.json", rep.to_dict())
    registry.update_run(run_dir, kfold={"k": cfg.kfold, "folds": per_fold, "accuracy": rep.accuracy,
                                        "macro_f1": rep.macro["f1"],
                                        "macro_f1_ci": list(rep.ci.get("macro_f1", (None, None)))})


def config_digest(cfg: TrainConfig) -> str:
    return hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
