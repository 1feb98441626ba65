"""ECG Insight core library (never imports streamlit).

Modules (imported lazily, so ``import ecg_core`` stays cheap and TensorFlow loads only where needed):

========== ==========================================================================================
labels     class presets (cardiac-4, arrhythmia-6), folder-name mapping, clinical descriptions
io         safe image loading (formats, size limits, EXIF, typed errors)
dataset    dataset index, audit, duplicate groups, group-aware splits and k-fold, zip import
preprocess PreprocessConfig, pipeline with every step, on-disk cache
synth      synthetic 12-lead signals and report images with ground truth
augment    albumentations presets and class-balancing plans
zoo        architectures as flat functional Keras graphs
train      training job (tf.data, callbacks, progress file, stop), k-fold
registry   run folders, atomic writes, safe model loading
jobs       subprocess jobs: start, poll, stop
evaluate   metrics with group-bootstrap confidence intervals
compare    run comparison (reports, leakage badge, latency), leakage demo; external_eval: re-evaluation
viz        plotly figures (viz_eval: evaluation figures)
signals    ECG signal records, beats and rhythm segments
spectral   2-D spectral images of beats and the spectral dataset builder
arrhythmia Arrhythmia page logic: per-beat prediction, Grad-CAM in time and frequency (viz_signals: figures)
========== ==========================================================================================
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "augment", "compare", "dataset", "errors", "evaluate", "external_eval", "io", "jobs", "labels", "paths",
    "preprocess", "registry",
    "signals", "spectral", "synth", "train", "viz", "viz_eval", "zoo",
    "arrhythmia", "viz_signals",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return importlib.import_module(f"ecg_core.{name}")
    raise AttributeError(f"module 'ecg_core' has no attribute {name!r}")
