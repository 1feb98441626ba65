"""Typed errors of ecg_core.

Every failure that a user can cause (a bad file, a wrong folder, an invalid option) is raised as a subclass of
:class:`EcgCoreError` whose message says what was expected, what came in and how to fix it. The UI shows the
message, never a traceback.
"""

from __future__ import annotations


class EcgCoreError(Exception):
    """Base class of every error that ecg_core raises on purpose."""


class ConfigError(EcgCoreError, ValueError):
    """An option or configuration value is invalid."""


class ImageLoadError(EcgCoreError):
    """An image could not be read safely (unreadable, unsupported, too large, too small...)."""


class DatasetError(EcgCoreError):
    """A dataset folder or archive is unusable (missing, empty, unsafe archive...)."""


class SignalLoadError(EcgCoreError):
    """An ECG signal record could not be read."""


class ModelLoadError(EcgCoreError):
    """A model file or run folder cannot be loaded safely."""
