"""Every training run writes TensorBoard logs (epoch scalars) into its run folder: ``tensorboard/train`` and
``tensorboard/validation`` for the final model, ``tensorboard/fold_<k>/...`` for each k-fold model (issue 15
item 6). Written with TensorFlow alone: the ``tensorboard`` package is only needed to view them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import report_like, write_image
from ecg_core.imaging.preprocess import PreprocessConfig
from ecg_core.ml import registry
from ecg_core.ml.train import TENSORBOARD_DIR, run_training
from ecg_core.ml.train_config import TrainConfig

CLASSES = ("MI", "HB", "Normal", "PMI")


def _scalars(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} of every events file in ``folder`` (read back with TensorFlow's own record reader)."""
    import tensorflow as tf

    out: dict[str, dict[int, float]] = {}
    files = sorted(folder.glob("events.out.tfevents.*"))
    for f in files:
        for raw in tf.data.TFRecordDataset(str(f)):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            for v in event.summary.value:
                assert v.metadata.plugin_data.plugin_name == "scalars", v.tag  # shown in TensorBoard's Scalars tab
                out.setdefault(v.tag, {})[int(event.step)] = float(tf.make_ndarray(v.tensor))
    return out


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tb") / "ds"
    for ci, c in enumerate(CLASSES):
        for i in range(5):
            img = report_like(500 + 10 * ci + i, size=(160, 120))
            img[40:, :: 4 + ci] //= 2
            write_image(root / c / f"{c}_{i}.png", img)
    return root


def test_training_run_writes_epoch_scalars_for_the_model_and_each_fold(tiny_set, tmp_path):
    """Planted bug this catches: the callback not attached (no tensorboard/ folder), logs of the k-fold models
    written over the final model's (no fold_<k>/), or validation values logged under the training run."""
    cfg = TrainConfig(data_dir=str(tiny_set), arch="custom_cnn", preprocess=PreprocessConfig(height=32, width=48),
                      epochs=1, batch_size=4, steps_per_epoch=1, augment="none", val_frac=0.25, test_frac=0.25,
                      kfold=2)
    run = run_training(cfg, models_dir=tmp_path / "models", run_id="tb1", cache_root=tmp_path / "cache")
    assert registry.read_run(run).status == "completed"
    history = pd.read_csv(run / "history.csv")
    tb = run / TENSORBOARD_DIR
    train, val = _scalars(tb / "train"), _scalars(tb / "validation")
    assert set(train["epoch_loss"]) == {0} and set(val["epoch_loss"]) == {0}  # one epoch, step = epoch index
    # the values are the epoch's own numbers: the same as history.csv, and validation is not a copy of training
    assert train["epoch_loss"][0] == pytest.approx(history["loss"][0], rel=1e-5)
    assert val["epoch_loss"][0] == pytest.approx(history["val_loss"][0], rel=1e-5)
    assert "epoch_accuracy" in train and "epoch_learning_rate" in train
    assert train["epoch_learning_rate"][0] == pytest.approx(cfg.lr)
    for k in (1, 2):
        fold = _scalars(tb / f"fold_{k}" / "train")
        assert set(fold["epoch_loss"]) == {0}, k
        assert _scalars(tb / f"fold_{k}" / "validation")["epoch_loss"], k
    # the logs are part of the run folder: deleting the run removes them with it
    registry.delete_run(tmp_path / "models", "tb1")
    assert not run.exists()
