"""ECG Insight core library (never imports streamlit).

Layered subpackages; a layer imports only the layers below it (``tests/test_architecture.py`` enforces it)::

    core      errors, paths, labels/presets, frozen-config base, atomic writes, hashing, formatting
    imaging   safe image loading, preprocessing (+ cache), augmentation presets and balancing plans
    ml        dataset index/audit/group splits, zoo, training jobs, registry, evaluation, comparison, model cards
    xai       attribution methods (Grad-CAM family, saliency), explainer, overlays, faithfulness
    reports   the 12-lead report: layout table, ECG check, lead detection, localisation scores, explain pipeline,
              batch prediction, PDF, synthetic reports     |  signals: records, beats/segments, spectral images,
                                                           |  arrhythmia inference (reports and signals never
                                                           |  import each other)
    viz       plotly figure builders
    cli       ``python -m ecg_core <command>`` / ``ecg-insight``

The names in ``__all__`` are the public API; they are imported lazily, so ``import ecg_core`` stays cheap and
TensorFlow loads only where a model is used. The flat module paths of release 0.1 (``ecg_core.explain``,
``ecg_core.registry``...) still import, as aliases of their new homes, for one release (see ``_OLD_PATHS``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from typing import Any

# public name -> module that defines it
_PUBLIC: dict[str, str] = {
    # core
    "EcgCoreError": "ecg_core.core.errors", "ConfigError": "ecg_core.core.errors",
    "ImageLoadError": "ecg_core.core.errors", "ModelLoadError": "ecg_core.core.errors",
    "get_preset": "ecg_core.core.labels", "PRESETS": "ecg_core.core.labels",
    # imaging
    "load_image": "ecg_core.imaging.loader", "PreprocessConfig": "ecg_core.imaging.preprocess",
    "preprocess": "ecg_core.imaging.preprocess", "preprocess_file": "ecg_core.imaging.preprocess",
    # ml
    "scan": "ecg_core.ml.dataset", "audit": "ecg_core.ml.dataset", "split_by_group": "ecg_core.ml.splits",
    "kfold_by_group": "ecg_core.ml.splits", "TrainConfig": "ecg_core.ml.train_config", "run_training": "ecg_core.ml.train",
    "list_runs": "ecg_core.ml.registry", "read_run": "ecg_core.ml.registry", "load_model": "ecg_core.ml.registry",
    "RunInfo": "ecg_core.ml.registry", "resolve_run": "ecg_core.ml.registry", "build_model": "ecg_core.ml.zoo",
    "evaluate_predictions": "ecg_core.ml.evaluate",
    # xai
    "Explainer": "ecg_core.xai.explainer", "ExplainerCache": "ecg_core.xai.explainer",
    "overlay": "ecg_core.xai.overlay", "deletion_insertion": "ecg_core.xai.faithfulness",
    # reports
    "ReportPipeline": "ecg_core.reports.pipeline", "check_ecg": "ecg_core.reports.ecg_check",
    "predict_files": "ecg_core.reports.batch", "build_report": "ecg_core.reports.pdf",
    "generate_dataset": "ecg_core.reports.synth", "make_report": "ecg_core.reports.synth",
    # signals
    "read_record": "ecg_core.signals.records", "load_record": "ecg_core.signals.sources",
    "ensure_demo_records": "ecg_core.signals.demo", "SegmentConfig": "ecg_core.signals.segments",
    "extract_segments": "ecg_core.signals.segments", "SpectralConfig": "ecg_core.signals.spectral",
    "build_spectral_dataset": "ecg_core.signals.spectral_dataset",
    "load_arrhythmia_model": "ecg_core.signals.arrhythmia", "record_segments": "ecg_core.signals.arrhythmia",
    "predict_segments": "ecg_core.signals.arrhythmia",
}

# 0.1 module path (ecg_core.<old>) -> its home now; kept importable for one release
_OLD_PATHS: dict[str, str] = {
    "errors": "ecg_core.core.errors", "paths": "ecg_core.core.paths", "labels": "ecg_core.core.labels",
    "io": "ecg_core.imaging.loader", "preprocess": "ecg_core.imaging.preprocess",
    "augment": "ecg_core.imaging.augment",
    "dataset": "ecg_core.ml.dataset", "zoo": "ecg_core.ml.zoo", "train": "ecg_core.ml.train",
    "registry": "ecg_core.ml.registry", "jobs": "ecg_core.ml.jobs", "evaluate": "ecg_core.ml.evaluate",
    "compare": "ecg_core.ml.compare", "modelcard": "ecg_core.ml.modelcard",
    "external_eval": "ecg_core.ml.external_eval",
    "explain": "ecg_core.xai.explainer",
    "ecg_check": "ecg_core.reports.ecg_check", "leads": "ecg_core.reports.leads",
    "pipeline": "ecg_core.reports.pipeline", "report": "ecg_core.reports.pdf", "synth": "ecg_core.reports.synth",
    "synth_render": "ecg_core.reports.synth_render",
    "spectral": "ecg_core.signals.spectral_dataset", "arrhythmia": "ecg_core.signals.arrhythmia",
    "viz_eval": "ecg_core.viz.evaluation", "viz_signals": "ecg_core.viz.signals",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name in _OLD_PATHS:
        return importlib.import_module(_OLD_PATHS[name])
    raise AttributeError(f"module 'ecg_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC) | set(_OLD_PATHS))


class _OldPathAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import ecg_core.<old>`` gives the module at its new home (the same object, so monkeypatching one patches
    the other)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        prefix, _, old = fullname.partition(".")
        if prefix == "ecg_core" and old in _OLD_PATHS:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        # the import system returns whatever sys.modules holds under the name after this call
        sys.modules[module.__name__] = importlib.import_module(_OLD_PATHS[module.__name__.partition(".")[2]])


if not any(isinstance(f, _OldPathAlias) for f in sys.meta_path):
    sys.meta_path.append(_OldPathAlias())
