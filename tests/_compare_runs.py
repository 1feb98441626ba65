"""Tiny training runs shared by test_compare.py and test_page_compare.py (built once per test session).

* ``leaky``: 4 classes x 6 distinct report-like images, each saved 3 times (exact copies) -> 72 files, 24 groups.
* ``spectral``: a spectral-build-like folder for preset arrhythmia-6 (classes N, V, A only) with an ``index.csv``
  whose ``record`` column ties images to 15 records.
* runs: ``leakdemo-file-t`` / ``leakdemo-group-t`` (the leakage demo on ``leaky``), ``arr3`` (arrhythmia-6 on
  ``spectral``: a different class set). 48x64 inputs, one epoch.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from conftest import report_like, write_image
from ecg_core.imaging.preprocess import PreprocessConfig

SMALL = PreprocessConfig(height=48, width=64)
CARDIAC_FOLDERS = ("MI", "HB", "Normal", "PMI")
SPECTRAL_CLASSES = ("N", "V", "A")
_CACHE: dict[str, "CompareRuns"] = {}


@dataclass(frozen=True)
class CompareRuns:
    root: Path
    leaky: Path
    spectral: Path
    spectral_external: Path
    models: Path
    cache: Path
    summary: dict

    def models_with(self, dest: Path, run_ids: list[str]) -> Path:
        """A models folder holding copies of the named runs."""
        dest.mkdir(parents=True, exist_ok=True)
        for rid in run_ids:
            shutil.copytree(self.models / rid, dest / rid)
        return dest


def _leaky_dataset(root: Path) -> Path:
    seed = 500
    for ci, c in enumerate(CARDIAC_FOLDERS):
        for i in range(6):
            seed += 1
            img = report_like(seed, size=(200, 150))
            img[int(0.3 * 150):, :: 3 + ci] //= 2  # class-dependent stripes: learnable
            first = write_image(root / c / f"{c}_{i}.png", img)
            for k in range(2):
                (root / c / f"{c}_{i}_copy{k}.png").write_bytes(first.read_bytes())
    return root


def _spectral_dataset(root: Path, *, n_records: int, per_record: int, seed0: int) -> Path:
    rows = []
    seed = seed0
    for r in range(n_records):
        cls = SPECTRAL_CLASSES[r % len(SPECTRAL_CLASSES)]
        for j in range(per_record):
            seed += 1
            img = report_like(seed, size=(96, 64))
            img[:, :: 3 + r % 3] //= 2
            rel = f"{cls}/rec{r}_{j}.png"
            write_image(root / rel, img)
            rows.append({"path": rel, "label": cls, "record": f"rec{r}", "sample": j})
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    return root


def build(tmp_path_factory) -> CompareRuns:
    """Build (once per session) the datasets and runs described in the module docstring."""
    if "runs" in _CACHE:
        return _CACHE["runs"]
    from ecg_core.ml.leakage_demo import leakage_demo
    from ecg_core.ml.train import run_training
    from ecg_core.ml.train_config import TrainConfig

    root = tmp_path_factory.mktemp("compare")
    leaky = _leaky_dataset(root / "leaky")
    spectral = _spectral_dataset(root / "spectral", n_records=15, per_record=2, seed0=900)
    spectral_ext = _spectral_dataset(root / "spectral_ext", n_records=6, per_record=3, seed0=1900)
    models, cache = root / "models", root / "cache"
    summary = leakage_demo(leaky, models_dir=models, preprocess=SMALL, epochs=1, seed=0, patience=1, tag="t",
                           cache_root=cache, batch_size=8, val_frac=0.2, test_frac=0.2, augment="none")
    run_training(
        TrainConfig(data_dir=str(spectral), preset="arrhythmia-6", preprocess=SMALL, epochs=1, batch_size=8,
                    val_frac=0.2, test_frac=0.2, augment="none"),
        models_dir=models, run_id="arr3", cache_root=cache,
    )
    _CACHE["runs"] = CompareRuns(root, leaky, spectral, spectral_ext, models, cache, summary)
    return _CACHE["runs"]
