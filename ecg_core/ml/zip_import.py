"""Safe import of a zip archive of class folders (uploads): path, link, size and zip-bomb guards.

:func:`extract_zip` extracts the images and JSON sidecars into a new folder; every file is written through
:mod:`ecg_core.core.atomic`, into a temporary folder that becomes the target only when the import is complete.
"""

from __future__ import annotations

import errno
import lzma
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from ecg_core.core.atomic import FileWriteError, atomic_write_via
from ecg_core.core.config import FrozenConfig
from ecg_core.core.errors import ConfigError, DatasetError
from ecg_core.imaging.loader import IMAGE_EXTENSIONS
from ecg_core.ml.dataset import SIDECAR_EXTENSIONS, SKIP_DIRS

__all__ = ["ZipImport", "ZipLimits", "declared_size", "extract_zip"]


@dataclass(frozen=True)
class ZipLimits(FrozenConfig):
    """Guards for archive import: entry count, total and per-file uncompressed size, compression ratio."""

    max_entries: int = 20_000
    max_total_bytes: int = 2 * 1024**3
    max_file_bytes: int = 200 * 1024**2
    max_ratio: float = 200.0

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_total_bytes", "max_file_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ZipLimits.{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_ratio <= 1:
            raise ConfigError(f"ZipLimits.max_ratio must be > 1, got {self.max_ratio!r}")


@dataclass(frozen=True)
class ZipImport:
    """Result of :func:`extract_zip`: the extracted root, the files written and the entries refused."""

    root: Path
    extracted: list[str]
    skipped: list[tuple[str, str]]


def _safe_member_name(name: str) -> str | None:
    """The member's relative POSIX path, or None when it is absolute or escapes the target folder."""
    if not name or "\x00" in name:
        return None
    norm = name.replace("\\", "/")
    pp = PurePosixPath(norm)
    if pp.is_absolute() or norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return None
    parts = [p for p in pp.parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _open_zip(source: str | Path | bytes) -> zipfile.ZipFile:
    import io as _io

    try:
        return zipfile.ZipFile(_io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DatasetError(f"not a readable zip archive ({e}); upload a .zip of class folders.") from e


def declared_size(source: str | Path | bytes) -> int:
    """Bytes the archive's entries declare once extracted (what a quota is checked against before extraction;
    :func:`extract_zip` stops an archive that writes more than its limits). Raises :class:`DatasetError` when it is
    not a readable zip."""
    with _open_zip(source) as zf:
        try:
            return sum(max(i.file_size, 0) for i in zf.infolist())
        except Exception as e:  # pragma: no cover - corrupted central directory
            raise DatasetError(f"the zip archive is damaged ({e})") from e


def extract_zip(
    source: str | Path | bytes, dest: str | Path, *, limits: ZipLimits = ZipLimits()
) -> ZipImport:
    """Extract the images (and JSON sidecars) of a zip archive into the new folder ``dest``, safely.

    Refused entries (paths with ``..`` or absolute paths, links, non-image files, oversized or over-compressed
    entries) are listed in ``skipped``; the archive as a whole is refused with :class:`DatasetError` when it is
    not a zip, holds too many entries, or would expand beyond ``limits.max_total_bytes`` (zip bomb). Extraction
    happens in a temporary folder that is renamed to ``dest`` only when complete.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DatasetError(f"target folder {str(dest)!r} already exists and is not empty")
    zf = _open_zip(source)
    with zf:
        try:
            infos = zf.infolist()
        except Exception as e:  # pragma: no cover - corrupted central directory
            raise DatasetError(f"the zip archive is damaged ({e})") from e
        if len(infos) > limits.max_entries:
            raise DatasetError(f"the archive holds {len(infos)} entries; the limit is {limits.max_entries}.")
        declared = sum(max(i.file_size, 0) for i in infos)
        if declared > limits.max_total_bytes:
            raise DatasetError(
                f"the archive would expand to {declared / 1e6:.0f} MB; the limit is "
                f"{limits.max_total_bytes / 1e6:.0f} MB (possible zip bomb)."
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".zipimport-", dir=dest.parent))
        extracted: list[str] = []
        skipped: list[tuple[str, str]] = []
        written_total = 0
        try:
            for info in infos:
                if info.filename.endswith("/"):  # a folder (not info.is_dir(): it fails on an empty name)
                    continue
                name = _safe_member_name(info.filename)
                if name is None:
                    skipped.append((info.filename, "unsafe path (absolute or containing '..'), refused"))
                    continue
                mode = (info.external_attr >> 16) & 0o170000
                if mode == stat.S_IFLNK:
                    skipped.append((info.filename, "symbolic link, refused"))
                    continue
                parts = name.split("/")
                if any(p.startswith(".") or p in SKIP_DIRS for p in parts):
                    continue
                ext = PurePosixPath(name).suffix.lower()
                if ext not in IMAGE_EXTENSIONS and ext not in SIDECAR_EXTENSIONS:
                    skipped.append((name, f"not an image file ({ext or 'no extension'})"))
                    continue
                if info.file_size > limits.max_file_bytes:
                    skipped.append((name, f"too large ({info.file_size / 1e6:.0f} MB)"))
                    continue
                if info.compress_size > 0 and info.file_size / info.compress_size > limits.max_ratio:
                    skipped.append((name, f"compression ratio {info.file_size / info.compress_size:.0f}:1 is "
                                          "suspicious (zip bomb), refused"))
                    continue
                target = tmp / name
                try:
                    inside = tmp.resolve() in target.resolve().parents
                except (OSError, RuntimeError, ValueError):  # e.g. a name too long for the file system
                    inside = False
                if not inside:
                    skipped.append((info.filename, "unsafe or unusable path, refused"))
                    continue
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    n = _copy_limited(zf, info, target, limit=min(limits.max_file_bytes, info.file_size))
                except _TooLarge:
                    skipped.append((name, "expands beyond its declared size (zip bomb), refused"))
                    continue
                except OSError as e:
                    if e.errno in _FATAL_ERRNOS:  # the target disk, not the archive: stop the whole import
                        raise DatasetError(
                            f"cannot extract the archive into {str(dest.parent)!r}: {e.strerror}; free some disk "
                            "space or set ECG_INSIGHT_HOME to a writable folder."
                        ) from e
                    if e.errno is None:  # raised by a decompressor (bz2): damaged data
                        skipped.append((name, f"damaged entry ({e})"))
                    elif e.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                        skipped.append((name, "clashes with another entry (a file and a folder of the same name), "
                                              "refused"))
                    else:
                        skipped.append((name, f"cannot be written ({e.strerror or e}), refused"))
                    continue
                except _DAMAGED_ENTRY_ERRORS as e:
                    skipped.append((name, f"damaged entry ({e})"))
                    continue
                written_total += n
                if written_total > limits.max_total_bytes:
                    raise DatasetError("the archive expands beyond the size limit (zip bomb); import stopped.")
                extracted.append(name)
            if not extracted:
                raise DatasetError("the archive contains no images (JPEG, PNG, BMP or TIFF).")
            try:
                if dest.exists():
                    dest.rmdir()
                tmp.rename(dest)
            except OSError as e:  # e.g. the same archive imported at the same moment by another session
                raise DatasetError(f"cannot create {str(dest)!r} ({e.strerror or e}); try again.") from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return ZipImport(root=dest, extracted=extracted, skipped=skipped)


class _TooLarge(Exception):
    pass


# errors of a damaged archive entry (zipfile, zlib, bz2 and lzma raise all of these on hostile data)
_DAMAGED_ENTRY_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError, ValueError,
                         NotImplementedError, zlib.error, lzma.LZMAError)
# errors of the target file system that no later entry can avoid
_FATAL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _copy_limited(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, *, limit: int) -> int:
    """Stream one entry into ``target`` atomically (a failed entry leaves no file); at most ``limit`` bytes.

    Raises :class:`_TooLarge` beyond the limit, and the ``OSError`` itself (not the atomic writer's
    :class:`FileWriteError`) when the file system or a decompressor (bz2: ``errno`` None) fails, so that
    :func:`extract_zip` can tell a full disk from a damaged entry.
    """
    written = 0

    def write(out: IO[bytes]) -> None:
        nonlocal written
        with zf.open(info) as src:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise _TooLarge()
                out.write(chunk)

    try:
        atomic_write_via(target, write)
    except FileWriteError as e:
        if isinstance(e.__cause__, OSError):
            raise e.__cause__ from None
        raise
    return written
