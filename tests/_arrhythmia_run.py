"""A tiny arrhythmia-6 run for tests, trained once per session by the real job on synthetic demo records.

Nine records (three renamed copies of each synthetic demo record) -> 32x32 STFT images (build_spectral_dataset) ->
``run_training`` (shallow_cnn, one epoch). The run folder therefore carries what a real spectral run carries:
``run.json`` with ``spectral``, ``spectral_config.json`` and a record-wise ``split.csv``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ecg_core.signals.demo import DEMO_RECORD_NAMES, ensure_demo_records

RUN_ID = "tiny-arrhythmia6"
SIZE = (32, 32)  # the image loader of the training job needs >= 32 px per side
_CACHE: dict[str, Path] = {}


def renamed_demo_records(demo_dir: Path, out: Path, copies: int = 3) -> list[Path]:
    """Copies of the demo records under new record names (header text and file names rewritten)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in DEMO_RECORD_NAMES:
        for k in range(1, copies + 1):
            new = f"{name}{k}"
            hea = (demo_dir / f"{name}.hea").read_text().replace(name, new)
            (out / f"{new}.hea").write_text(hea)
            for ext in (".dat", ".atr"):
                (out / f"{new}{ext}").write_bytes((demo_dir / f"{name}{ext}").read_bytes())
            paths.append(out / new)
    return paths


def make_tiny_run(root: Path) -> Path:
    """Train the tiny run under ``root``; returns the models folder holding ``RUN_ID``."""
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.signals.spectral import SpectralConfig
    from ecg_core.signals.spectral_dataset import build_spectral_dataset
    from ecg_core.ml.train import run_training
    from ecg_core.ml.train_config import TrainConfig

    demo = ensure_demo_records(root / "demo")
    records = renamed_demo_records(demo[0].parent, root / "records")
    spec = root / "spectral"
    build_spectral_dataset(records, spec, spec_cfg=SpectralConfig(size=SIZE), split_by=None,
                           max_per_class_per_record=10, seed=0)
    pre = PreprocessConfig(crop_mode="none", clahe=False, median_ksize=0, height=SIZE[0], width=SIZE[1], channels=1)
    cfg = TrainConfig(data_dir=str(spec), arch="shallow_cnn", preset="arrhythmia-6", preprocess=pre, epochs=1,
                      batch_size=8, augment="none", balance="class_weights", dedupe=False, val_frac=0.3,
                      test_frac=0.3, patience=1)
    models = root / "models"
    run_training(cfg, models_dir=models, run_id=RUN_ID, cache_root=root / "cache")
    return models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models folder with the tiny arrhythmia-6 run (trained once per test session)."""
    if "models" not in _CACHE:
        _CACHE["models"] = make_tiny_run(tmp_path_factory.mktemp("arrhythmia-run"))
    return _CACHE["models"]
