"""Where the app keeps its files. No global state: every function reads the environment when called.

``ECG_INSIGHT_HOME`` (default: ``<repo>/.ecg_insight``) holds the generated demo dataset, the preprocessing
cache, uploads and job folders; ``ECG_INSIGHT_MODELS`` (default: ``<repo>/models``) is the model registry.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # ecg_core/core/paths.py -> the repository


def app_home() -> Path:
    return Path(os.environ.get("ECG_INSIGHT_HOME", REPO_ROOT / ".ecg_insight")).expanduser()


def models_dir() -> Path:
    return Path(os.environ.get("ECG_INSIGHT_MODELS", REPO_ROOT / "models")).expanduser()


def cache_dir() -> Path:
    return app_home() / "cache"


def demo_data_dir() -> Path:
    return app_home() / "demo-data"


def uploads_dir() -> Path:
    return app_home() / "uploads"


def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository (present for developers and CI; may be absent elsewhere)."""
    return Path(os.environ.get("ECG_INSIGHT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
