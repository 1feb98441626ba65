"""Records the Arrhythmia page can open: the synthetic demo records, records of the shared data folder and uploads
(WFDB ``.hea`` + ``.dat`` [+ ``.atr``], or one CSV file), and reading them (:func:`load_record`)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ecg_core.core import paths
from ecg_core.core.atomic import FileWriteError, atomic_write_bytes
from ecg_core.core.errors import SignalLoadError
from ecg_core.signals.demo import ensure_demo_records
from ecg_core.signals.records import Record, read_csv_signal, read_record

UPLOAD_SUFFIXES: tuple[str, ...] = (".hea", ".dat", ".atr", ".csv", ".txt")
UPLOAD_MAX_BYTES = 200 * 1024 * 1024  # 200 MB over all files of one upload
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".txt")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,120}$")


@dataclass(frozen=True)
class RecordSource:
    """A record the page can open: ``label`` for the picker, ``path`` (WFDB record path without extension, or a
    CSV file), ``kind`` ``'demo'``, ``'shared'`` or ``'upload'``."""

    label: str
    path: Path
    kind: str


def demo_sources(dest_dir: str | Path | None = None) -> list[RecordSource]:
    """The synthetic demo records, generated on first use (:func:`ecg_core.signals.demo.ensure_demo_records`)."""
    return [RecordSource(f"demo · {p.name} (synthetic)", p, "demo") for p in ensure_demo_records(dest_dir)]


def shared_sources(root: str | Path | None = None) -> list[RecordSource]:
    """WFDB records under ``<root>/signals/<folder>/`` (``root`` defaults to
    :func:`ecg_core.core.paths.shared_data_dir`); empty when the folder is absent (a fresh clone). Labels read
    ``'<folder> · <record>'``; folders with annotations (``.atr``) come first."""
    base = Path(root) if root is not None else paths.shared_data_dir()
    sig = base / "signals"
    if not sig.is_dir():
        return []
    out = []
    folders = [d for d in sig.iterdir() if d.is_dir()]
    # annotated collections (beat labels to compare with) first, then by name
    for folder in sorted(folders, key=lambda d: (not any(d.glob("*.atr")), d.name)):
        for hea in sorted(folder.glob("*.hea")):
            out.append(RecordSource(f"{folder.name} · {hea.stem}", hea.with_suffix(""), "shared"))
    return out


def save_upload(files: Sequence[tuple[str, bytes]], dest_root: str | Path | None = None) -> Path:
    """Store uploaded files (``(file name, content)`` pairs) and return the path to open with :func:`load_record`.

    Accepted: one WFDB record — exactly one ``.hea`` header, its signal file(s) (``.dat``) and optionally the
    ``.atr`` annotations named like the header — or exactly one ``.csv`` / ``.txt`` file of samples. Files go to
    ``dest_root/signal-<content hash>/`` (``dest_root`` defaults to :func:`ecg_core.core.paths.uploads_dir`); the same
    upload twice reuses the folder. Returns the record path without extension (WFDB) or the CSV path.

    Raises :class:`SignalLoadError` for no files, unsafe or unsupported names, a mix of WFDB and CSV files, several
    headers, an annotation file of another record, or more than :data:`UPLOAD_MAX_BYTES` in total.
    """
    if not files:
        raise SignalLoadError(
            "save_upload: no file was given; expected a WFDB record (.hea + .dat [+ .atr]) or one CSV file."
        )
    named: dict[str, bytes] = {}
    total = 0
    for raw_name, data in files:
        name = Path(str(raw_name).replace("\\", "/")).name
        suffix = Path(name).suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise SignalLoadError(
                f"save_upload: {name!r} has an unsupported type; expected {', '.join(UPLOAD_SUFFIXES)} files."
            )
        if not _SAFE_NAME.match(name):
            raise SignalLoadError(
                f"save_upload: the file name {name!r} is not allowed; use letters, digits, '_', '-', '.' only."
            )
        total += len(data)
        named[name] = bytes(data)
    if total > UPLOAD_MAX_BYTES:
        raise SignalLoadError(
            f"save_upload: the upload is {total / 1e6:.0f} MB; the limit is {UPLOAD_MAX_BYTES / 1e6:.0f} MB. "
            "Cut the recording into shorter records."
        )
    headers = [n for n in named if n.lower().endswith(".hea")]
    tables = [n for n in named if n.lower().endswith(CSV_SUFFIXES)]
    if headers and tables:
        raise SignalLoadError(
            f"save_upload: received WFDB files and a CSV file ({tables[0]}); upload one record at a time."
        )
    if len(headers) > 1:
        raise SignalLoadError(
            f"save_upload: received {len(headers)} headers ({', '.join(sorted(headers))}); upload one record at a "
            "time (one .hea with its .dat and .atr)."
        )
    if not headers and len(tables) != 1:
        raise SignalLoadError(
            "save_upload: expected a WFDB header (.hea) with its signal file (.dat), or exactly one CSV file; "
            f"received {', '.join(sorted(named))}."
        )
    stem = Path(headers[0]).stem if headers else None
    if stem is not None:
        for n in named:
            if n.lower().endswith(".atr") and Path(n).stem != stem:
                raise SignalLoadError(
                    f"save_upload: the annotation file {n!r} does not belong to record {stem!r}; rename it "
                    f"{stem}.atr or leave it out."
                )
    digest = hashlib.sha256()
    for n in sorted(named):
        digest.update(n.encode() + b"\0" + hashlib.sha256(named[n]).digest())
    root = Path(dest_root) if dest_root is not None else paths.uploads_dir()
    dest = root / f"signal-{digest.hexdigest()[:16]}"
    if not dest.is_dir():
        tmp = root / f".signal-tmp-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(parents=True)
            for n, data in named.items():
                atomic_write_bytes(tmp / n, data)
            try:
                os.replace(tmp, dest)
            except OSError:  # another session stored the same upload first
                if not dest.is_dir():
                    raise
        except (OSError, FileWriteError) as e:
            reason = getattr(e, "strerror", None) or e
            raise SignalLoadError(f"save_upload: cannot store the upload in {root} ({reason}).") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest / stem if stem is not None else dest / tables[0]


def load_record(path: str | Path, *, fs: float | None = None) -> Record:
    """Read a WFDB record (path with or without extension) or a CSV / TXT file of samples (``fs`` in Hz is needed
    when the CSV has no time column). Raises :class:`SignalLoadError` on unreadable input."""
    p = Path(path)
    if p.suffix.lower() in CSV_SUFFIXES:
        return read_csv_signal(p, fs=fs)
    return read_record(p)


def record_key(path: str | Path) -> str:
    """A cache key for a record on disk: its path plus the sizes and modification times of its files."""
    p = Path(path)
    files = [p] if p.suffix.lower() in CSV_SUFFIXES else sorted(p.parent.glob(f"{p.name}.*"))
    parts = [str(p)]
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


__all__ = [
    "CSV_SUFFIXES",
    "UPLOAD_MAX_BYTES",
    "UPLOAD_SUFFIXES",
    "RecordSource",
    "demo_sources",
    "load_record",
    "record_key",
    "save_upload",
    "shared_sources",
]
