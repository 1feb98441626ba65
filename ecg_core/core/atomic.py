"""The project's one way to write a file: atomically, durably, readable, with a typed error.

Every writer makes a temporary file in the target's folder, writes, flushes and fsyncs it, sets mode 0644 (``mkstemp``
creates 0600) and renames it over the target with ``os.replace``: a killed process never leaves a torn file, and a
reader sees the old or the new content, never a mix. A write that fails (full disk, read-only folder, a file in the
way) raises :class:`FileWriteError` (a :class:`~ecg_core.core.errors.ConfigError`) that says why, removes the
temporary file and leaves the previous file untouched.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ecg_core.core.errors import ConfigError
from ecg_core.core.formatting import json_safe

FILE_MODE = 0o644


class FileWriteError(ConfigError):
    """A file could not be written; the message names the file and the likely cause."""


def atomic_write_via(path: str | Path, write: Callable[[IO[bytes]], Any], *, suffix: str = ".tmp",
                     mode: int = FILE_MODE) -> Path:
    """Write ``path`` atomically by calling ``write(f)`` on a temporary binary file beside it. ``mode``: the final
    file's permissions (0600 for a secret: the temporary file is 0600 from the start, so it is never readable)."""
    p = Path(path)
    fd, tmp = _guarded(p, lambda: tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=_make_parent(p)))

    def fill() -> None:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())

    return _commit(p, Path(tmp), fill, mode)


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int = FILE_MODE) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write_via(path, lambda f: f.write(data), mode=mode)


def atomic_write_text(path: str | Path, text: str, *, mode: int = FILE_MODE) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 1) -> Path:
    """JSON with NaN/inf written as ``null`` and NumPy values as Python values."""
    return atomic_write_bytes(path, json.dumps(json_safe(obj), indent=indent).encode())


def atomic_write_to_path(path: str | Path, write: Callable[[Path], Any], *, suffix: str = "") -> Path:
    """For writers that need a file name (``model.save`` wants a ``.keras`` name): ``write(tmp_path)``, fsync,
    0644, rename. ``suffix`` is the temporary file's extension."""
    p = Path(path)
    _make_parent(p)
    tmp = p.with_name(f".{p.stem}.{secrets.token_hex(4)}.tmp{suffix}")

    def fill() -> None:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())

    return _commit(p, tmp, fill)


def _make_parent(p: Path) -> Path:
    _guarded(p, lambda: p.parent.mkdir(parents=True, exist_ok=True))
    return p.parent


def _guarded(p: Path, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except OSError as e:
        raise write_error(p, e) from e


def _commit(p: Path, tmp: Path, fill: Callable[[], None], mode: int = FILE_MODE) -> Path:
    """Fill the temporary file, set its mode (0644 by default) and rename it over ``p``; on any failure remove it
    and raise."""
    try:
        fill()
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except OSError as e:
        unlink_quietly(tmp)
        raise write_error(p, e) from e
    except BaseException:
        unlink_quietly(tmp)
        raise
    return p


def unlink_quietly(path: str | Path | None) -> None:
    if path is not None:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError:
            pass


def write_error(path: Path, e: OSError) -> FileWriteError:
    """A :class:`FileWriteError` that says why a write failed."""
    hint = {
        errno.ENOSPC: "the disk is full; free some space",
        errno.EDQUOT: "the disk quota is used up; free some space",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "the folder is not writable",
        errno.EPERM: "the folder is not writable",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EEXIST: "a part of the path is a file, not a folder",
    }.get(e.errno or 0)
    detail = f" ({hint}, or choose another folder with ECG_INSIGHT_MODELS / ECG_INSIGHT_HOME)" if hint else ""
    return FileWriteError(f"cannot write {str(path)!r}: {e.strerror or e}{detail}.")
