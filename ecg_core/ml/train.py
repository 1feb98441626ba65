"""Training job: dataset index -> group-aware split -> preprocessing cache -> tf.data -> Keras fit -> registry.

Run it as a subprocess (``python -m ecg_core train ...``, see :mod:`ecg_core.ml.jobs`) so that it survives page
reruns. It writes ``progress.jsonl`` (one JSON line per batch, at most ~2 per second, and one per epoch with
the epoch's training throughput: ``train_seconds``, ``train_images``, ``images_per_s``),
``history.csv``, ``checkpoints/best.keras`` (best validation loss, written atomically), and at the end
``model.keras``, ``predictions.csv`` and ``eval.json`` (held-out test split) into its run folder.

It stops cleanly when the file ``STOP`` appears in the run folder or on SIGTERM: the current batch finishes,
the best checkpoint becomes the model, the test split is evaluated and the run is marked ``stopped``.

Data honesty:

* the split is by duplicate group (:func:`ecg_core.ml.splits.split_by_group`), stratified by class;
* with ``dedupe`` (default) each duplicate group contributes one file, so copies do not weigh more;
* class balancing (oversampling by a balancing plan) and augmentation touch the training split only;
* early stopping and the learning-rate schedule watch the validation split; the test split is used once, at
  the end, for ``eval.json``.

Optional group-aware k-fold cross-validation (``kfold > 1``) trains one model per fold and stores the
out-of-fold predictions and their evaluation (``predictions_oof.csv``, ``eval_kfold.json``).

A dataset folder may describe itself in ``dataset_info.json`` (:func:`ecg_core.ml.train_data.read_dataset_info`):
what the trained model reads (``input_kind``), what to add to ``run.json`` (``run_meta``) and which of its files
inference needs beside the model (``copy_files``, copied into the run folder).

The options are :class:`ecg_core.ml.train_config.TrainConfig`; progress, stop requests and the Keras callbacks are in
:mod:`ecg_core.ml.progress`, the data pipeline in :mod:`ecg_core.ml.train_data`.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ecg_core.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from ecg_core.ml import registry
from ecg_core.ml.progress import ProgressWriter, StopFlag, StopRequested, job_guard, keep_best, training_callbacks
from ecg_core.ml.train_config import TrainConfig
from ecg_core.ml.train_data import (
    DatasetInfo,
    PreparedData,
    class_weights,
    make_dataset,
    predict_cached,
    prepare_data,
    read_dataset_info,
    training_rows,
)

__all__ = ["ACTIVATION_BUDGET_MIB", "choose_micro_batch", "run_training"]


#: forward activations one training pass may hold (MiB, float32, from the built model's layer outputs). Measured
#: here: the Custom CNN at 384x384x3 (78 MiB per image) peaks at 3.7 GB RSS with batches of 16 and 2.4-2.5 GB with
#: micro-batches of 8 (too close to a 2.5 GB budget), hence passes of 4; at the default 192x320x1 (32 MiB per
#: image) a batch of 16 fits whole.
ACTIVATION_BUDGET_MIB = 512

#: sub-folder of a run folder with its TensorBoard logs (``fold_<k>/`` inside it for the k-fold models)
TENSORBOARD_DIR = "tensorboard"


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
    stop: StopFlag,
    prefix: str = "",
    seed: int,
    tensorboard_dir: Path | None = None,
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
    class_weight = class_weights(train_labels, n_classes) if cfg.balance == "class_weights" else None
    cbs = training_callbacks(run_dir, writer, stop, cfg, steps, prefix=prefix, save_best=not prefix, batch_images=micro)
    cbs.append(_tensorboard_callback(tensorboard_dir or run_dir / TENSORBOARD_DIR))
    writer.write({"phase": f"{prefix}start", "epochs": cfg.epochs, "batches": steps, "micro_batch": micro,
                  "accumulation_steps": accumulate, "train_images": int(len(pos)), "val_images": int(len(val_pos))})
    history = built.model.fit(ds_train.repeat(), epochs=cfg.epochs, steps_per_epoch=steps, validation_data=ds_val,
                              class_weight=class_weight, callbacks=cbs, verbose=0, shuffle=False)
    epochs_run = len(history.history.get("loss", []))
    info = {"plan": plan, "epochs_run": epochs_run, "steps_per_epoch": steps, "micro_batch": micro,
            "accumulation_steps": accumulate, "train_images_per_epoch": int(steps * micro), "train_rows": int(len(pos)),
            "stopped_early": epochs_run < cfg.epochs}
    return built.model, info, built


def write_scalars(log_dir: str | Path, series: dict[str, dict[str, list[tuple[int, float]]]]) -> bool:
    """TensorBoard scalar events for runs without a Keras fit (a measurement model): ``series`` maps a writer
    (sub-folder of ``log_dir``, e.g. ``cv`` or ``train``) to tags and their (step, value) points, written like
    :func:`_tensorboard_callback`'s (``tf.summary.write`` with the scalars plugin). True when written; False when
    TensorFlow is unavailable or a write fails (the logs are optional: a training run never fails for them)."""
    try:
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2
    except ImportError:
        return False
    scalar = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    try:
        for run, tags in series.items():
            writer = tf.summary.create_file_writer(str(Path(log_dir) / run))
            with writer.as_default():
                for tag, points in tags.items():
                    for step, value in points:
                        tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step), metadata=scalar)
            writer.flush()
            writer.close()
    except (OSError, tf.errors.OpError):
        return False
    return True


def _tensorboard_callback(log_dir: Path) -> Any:
    """Epoch scalars for ``tensorboard --logdir <models folder>``, in the layout of
    ``keras.callbacks.TensorBoard(update_freq="epoch", profile_batch=0, histogram_freq=0)``: writers ``train/`` and
    ``validation/`` under ``log_dir``, tags ``epoch_loss``, ``epoch_accuracy``, ``epoch_learning_rate``, step = epoch.

    Not that callback itself: in TensorFlow 2.21 ``tf.summary.scalar`` lives in the ``tensorboard`` package, which only
    viewing the logs needs; this writes the same events with TensorFlow's own ``tf.summary.write``. A write that fails
    (e.g. a full disk) turns the logs off for the rest of the fit instead of failing the training run.
    """
    import keras
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    scalar = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))

    class EpochScalars(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.writers: dict[str, Any] = {}
            self.failed = False

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            values = dict(logs or {})
            if "learning_rate" not in values:
                try:
                    values["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                except Exception:  # optimizer without a plain learning rate (schedule)
                    pass
            try:
                for key, value in values.items():
                    if self.failed or not isinstance(value, int | float | np.floating | np.integer):
                        continue
                    run, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                    if run not in self.writers:
                        self.writers[run] = tf.summary.create_file_writer(str(log_dir / run))
                    with self.writers[run].as_default():
                        tf.summary.write(f"epoch_{tag}", tf.constant(float(value), tf.float32), step=epoch,
                                         metadata=scalar)
                for w in self.writers.values():
                    w.flush()
            except (OSError, tf.errors.OpError):
                self.failed = True

        def on_train_end(self, logs: dict | None = None) -> None:
            for w in self.writers.values():
                try:
                    w.close()
                except (OSError, tf.errors.OpError):
                    pass
            self.writers.clear()

    return EpochScalars()


def _input_kind(cfg: TrainConfig, info: DatasetInfo | None) -> str:
    """What the trained model will read: the dataset's ``input_kind`` (``dataset_info.json``), else the preset's
    input kind (stored in run.json so that pages offer the model only for fitting inputs)."""
    from ecg_core.core import labels

    if info is not None and info.input_kind:
        return info.input_kind
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
    from ecg_core.ml.evaluate import evaluate_predictions
    from ecg_core.ml.predictions import predictions_frame
    from ecg_core.ml.zoo import get_arch

    get_arch(cfg.arch)  # validate the architecture name before creating anything
    dataset_info = read_dataset_info(cfg.data_dir)  # a malformed dataset_info.json fails before the run exists
    run_id = registry.check_run_id(run_id or registry.new_run_id(cfg.arch))
    run_dir = registry.create_run(models_dir, run_id, {
        "arch": cfg.arch,
        "preset": cfg.preset,
        "input_kind": _input_kind(cfg, dataset_info),
        "data_dir": str(Path(cfg.data_dir).resolve()),
        "input_shape": list(cfg.preprocess.input_shape),
        "preprocess": cfg.preprocess.to_dict(),
        "train": cfg.to_dict(),
        "versions": registry.library_versions(),
    })
    with job_guard(run_dir, stopped_error="stopped before the first epoch finished: no model was kept",
                   traceback_file=True) as (writer, stop):
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
        atomic_write_text(
            run_dir / "split.csv",
            idx[["rel_path", "label", "class_name", "group", "sha256", "split"]
                + (["fold"] if "fold" in idx else [])].to_csv(index=False),
        )
        if dataset_info is not None:  # files inference needs beside the model, and what run.json should say
            for name in dataset_info.copy_files:
                atomic_write_bytes(run_dir / name, (Path(cfg.data_dir) / name).read_bytes())
            if dataset_info.run_meta:
                registry.update_run(run_dir, **dataset_info.run_meta)
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
        # the model we keep is the best checkpoint (EarlyStopping restored the same weights in memory)
        model = keep_best(model, run_dir, stopped)
        best = run_dir / "checkpoints" / "best.keras"  # moved into place as the run's model below

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
            atomic_write_text(run_dir / "predictions.csv", frame.to_csv(index=False))
            atomic_write_json(run_dir / "eval.json", rep.to_dict())
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


def _run_kfold(cfg: TrainConfig, data: PreparedData, *, run_dir: Path, writer: ProgressWriter,
               stop: StopFlag) -> None:
    """Group-aware k-fold CV over all usable groups; writes predictions_oof.csv and eval_kfold.json."""
    from ecg_core.ml.evaluate import evaluate_predictions
    from ecg_core.ml.predictions import predictions_frame

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
                                  stop=stop, prefix=f"fold{f + 1}_", seed=cfg.seed + 1000 * (f + 1),
                                  tensorboard_dir=run_dir / TENSORBOARD_DIR / f"fold_{f + 1}")
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
    atomic_write_text(run_dir / "predictions_oof.csv", frame.to_csv(index=False))
    atomic_write_json(run_dir / "eval_kfold.json", rep.to_dict())
    registry.update_run(run_dir, kfold={"k": cfg.kfold, "folds": per_fold, "accuracy": rep.accuracy,
                                        "macro_f1": rep.macro["f1"],
                                        "macro_f1_ci": list(rep.ci.get("macro_f1", (None, None)))})
