"""Disk quotas, the age of uploads and the job limit: pure functions over folders and an environment mapping.

The app stores uploads in one folder per browser session under the uploads folder; :func:`clean_old` removes the
session folders not touched for ``max_age_s``; :func:`check_quota` refuses a write *before* it starts when it
would take a folder over its quota, so nothing already stored is lost and no half-written file is left.
:func:`limits_from_env` reads the limits (``ECG_INSIGHT_UPLOAD_QUOTA_MB``, ``ECG_INSIGHT_MODELS_QUOTA_MB``,
``ECG_INSIGHT_UPLOAD_MAX_AGE_H``, ``ECG_INSIGHT_MAX_JOBS``).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ecg_core.core.errors import ConfigError, EcgCoreError

__all__ = ["Limits", "QuotaError", "check_quota", "clean_old", "folder_size", "limits_from_env"]

UPLOAD_QUOTA_ENV = "ECG_INSIGHT_UPLOAD_QUOTA_MB"
MODELS_QUOTA_ENV = "ECG_INSIGHT_MODELS_QUOTA_MB"
UPLOAD_AGE_ENV = "ECG_INSIGHT_UPLOAD_MAX_AGE_H"
MAX_JOBS_ENV = "ECG_INSIGHT_MAX_JOBS"
MB = 1024 * 1024


class QuotaError(EcgCoreError):
    """A write would take a folder over its disk quota; nothing was written."""


@dataclass(frozen=True)
class Limits:
    """The server's limits: quotas in bytes, the age after which uploads are removed, concurrent training jobs."""

    upload_quota_bytes: int = 2048 * MB
    models_quota_bytes: int = 4096 * MB
    upload_max_age_s: float = 24 * 3600.0
    max_jobs: int = 1


def _number(env: Mapping[str, str], name: str, default: float, *, integer: bool = False) -> float:
    raw = str(env.get(name, "") or "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = -1
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} is not valid: set it to a positive {'whole ' if integer else ''}number "
                          f"(default {default:g}) or unset it.")
    return value


def limits_from_env(env: Mapping[str, str]) -> Limits:
    """The limits set in ``env`` (defaults: 2048 MB of uploads, 4096 MB of trained runs, uploads kept 24 h, one
    training job at a time). Raises :class:`ConfigError` for a value that is not a positive number."""
    d = Limits()
    return Limits(
        upload_quota_bytes=int(_number(env, UPLOAD_QUOTA_ENV, d.upload_quota_bytes / MB) * MB),
        models_quota_bytes=int(_number(env, MODELS_QUOTA_ENV, d.models_quota_bytes / MB) * MB),
        upload_max_age_s=_number(env, UPLOAD_AGE_ENV, d.upload_max_age_s / 3600) * 3600,
        max_jobs=int(_number(env, MAX_JOBS_ENV, d.max_jobs, integer=True)),
    )


def _walk(path: Path) -> Iterable[os.stat_result]:
    """lstat of ``path`` and of everything below it (links are not followed)."""
    try:
        st = path.lstat()
    except OSError:
        return
    yield st
    if stat.S_ISDIR(st.st_mode):
        try:
            children = list(path.iterdir())
        except OSError:
            return
        for child in children:
            yield from _walk(child)


def folder_size(folder: str | Path) -> int:
    """Bytes of the regular files under ``folder`` (0 when it does not exist; links are not followed)."""
    return sum(s.st_size for s in _walk(Path(folder)) if stat.S_ISREG(s.st_mode))


def clean_old(folder: str | Path, max_age_s: float, now: float, *, keep: Iterable[str | Path] = ()) -> list[Path]:
    """Remove each entry of ``folder`` (a session's upload folder) whose newest modification time, over the entry
    and everything below it, is more than ``max_age_s`` before ``now``; entries named in ``keep`` stay. Returns
    the removed paths (never raises for a folder that is missing or an entry removed meanwhile)."""
    folder = Path(folder)
    kept = {Path(k).name for k in keep}
    removed: list[Path] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name in kept:
            continue
        newest = max((s.st_mtime for s in _walk(entry)), default=now)
        if now - newest <= max_age_s:
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            continue
    return removed


def check_quota(folder: str | Path, incoming_bytes: int, quota_bytes: int, *, what: str, env_name: str,
                hint: str) -> int:
    """Refuse (:class:`QuotaError`) a write of ``incoming_bytes`` into ``folder`` when the folder's size plus it
    would exceed ``quota_bytes``; returns the bytes still free after it. ``what`` names the folder in the message
    (e.g. "uploads"), ``env_name`` the variable that sets the quota, ``hint`` what the user can do."""
    used = folder_size(folder)
    if used + max(0, int(incoming_bytes)) > quota_bytes:
        raise QuotaError(
            f"The {what} quota is reached: {used / MB:.1f} MB of {quota_bytes / MB:.0f} MB are used and this needs "
            f"{max(0, int(incoming_bytes)) / MB:.1f} MB more; nothing was written. {hint} (The administrator sets "
            f"the quota with {env_name}.)")
    return quota_bytes - used - max(0, int(incoming_bytes))
