"""Records the Arrhythmia page can open: the synthetic demo records, records of the shared data folder and uploads
(WFDB ``.hea`` + ``.dat`` [+ ``.atr``], or one CSV file), and reading them (:func:`load_record`)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
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


def save_upload(files: Sequence[tuple[str, bytes]], dest_root: str | Path | None = None, *,
                before_write: Callable[[int], object] | None = None) -> Path:
    """Store uploaded files (``(file name, content)`` pairs) and return the path to open with :func:`load_record`.

    Accepted: one WFDB record — exactly one ``.hea`` header, its signal file(s) (``.dat``) and optionally the
    ``.atr`` annotations named like the header — or exactly one ``.csv`` / ``.txt`` file of samples. Files go to
    ``dest_root/signal-<content hash>/`` (``dest_root`` defaults to :func:`ecg_core.core.paths.uploads_dir`); the same
    upload twice reuses the folder. Returns the record path without extension (WFDB) or the CSV path.
    ``before_write(total_bytes)`` is called before a new folder is written (e.g. a quota check that raises).

    Raises :class:`SignalLoadError` for no files, unsafe or unsupported names, a mix of WFDB and CSV files, several
    headers, an annotation file of another record, or more than :data:`UPLOAD_MAX_BYTES` in total.
    """
    if not files:
        raise SignalLoadError(
            "Nothing to open: no file was uploaded. Upload one WFDB record (its .hea and .dat files, and .atr "
            "for annotations) or one CSV file."
        )
    named: dict[str, bytes] = {}
    total = 0
    for raw_name, data in files:
        name = Path(str(raw_name).replace("\\", "/")).name
        suffix = Path(name).suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise SignalLoadError(
                f"{name} has an unsupported type: upload {', '.join(UPLOAD_SUFFIXES)} files only."
            )
        if not _SAFE_NAME.match(name):
            raise SignalLoadError(
                f"The file name {name!r} is not allowed: rename it with letters, digits, '_', '-' and '.' only."
            )
        total += len(data)
        named[name] = bytes(data)
    if total > UPLOAD_MAX_BYTES:
        raise SignalLoadError(
            f"The upload is {total / 1e6:.0f} MB; the limit is {UPLOAD_MAX_BYTES / 1e6:.0f} MB. "
            "Cut the recording into shorter records."
        )
    headers = [n for n in named if n.lower().endswith(".hea")]
    tables = [n for n in named if n.lower().endswith(CSV_SUFFIXES)]
    if headers and tables:
        raise SignalLoadError(
            f"These files mix WFDB files and a CSV file ({tables[0]}): upload one record at a time."
        )
    if len(headers) > 1:
        raise SignalLoadError(
            f"These files hold {len(headers)} headers ({', '.join(sorted(headers))}), that is {len(headers)} "
            "records: upload one record at a time (one .hea with its .dat, and its .atr for annotations)."
        )
    if not headers and len(tables) != 1:
        raise SignalLoadError(
            "This upload has no record header: expected a WFDB header (.hea) with its signal file (.dat), or "
            f"exactly one CSV file; received {', '.join(sorted(named))}."
        )
    stem = Path(headers[0]).stem if headers else None
    if stem is not None:
        for n in named:
            if n.lower().endswith(".atr") and Path(n).stem != stem:
                raise SignalLoadError(
                    f"The annotation file {n} does not belong to record {stem!r}: rename it {stem}.atr or leave "
                    "it out."
                )
    digest = hashlib.sha256()
    for n in sorted(named):
        digest.update(n.encode() + b"\0" + hashlib.sha256(named[n]).digest())
    root = Path(dest_root) if dest_root is not None else paths.uploads_dir()
    dest = root / f"signal-{digest.hexdigest()[:16]}"
    if not dest.is_dir():
        if before_write is not None:
            before_write(total)
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
            raise SignalLoadError(f"The upload cannot be stored on the server ({reason}); try again later.") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest / stem if stem is not None else dest / tables[0]


@dataclass(frozen=True)
class UploadChoice:
    """Which uploaded files make the record to open (:func:`choose_upload`): ``use`` the file ids, in upload order;
    ``ignored`` the names of the earlier files left out; ``seen`` every file id seen so far (pass the choice back
    on the next call)."""

    use: tuple[str, ...]
    ignored: tuple[str, ...]
    seen: tuple[str, ...]


def _upload_stem(name: str) -> str:
    return Path(name).stem


def choose_upload(files: Sequence[tuple[str, str]], previous: UploadChoice | None = None) -> UploadChoice:
    """The files of the record to open, from everything an upload widget holds (``(file id, name)`` pairs in upload
    order; a browser's multi-file uploader keeps the earlier files when more are dropped).

    The files added since ``previous`` replace the record opened before, except when they all belong to it (the
    same file stem as its header, e.g. its ``.atr`` added afterwards): then they join it. Without new files the
    record opened before stays (what is left of it); when it was removed, the record last uploaded is used: the
    last header or CSV file in upload order and the files named like it. On the first call every file is new.
    """
    ids = [str(i) for i, _ in files]
    names = {str(i): Path(str(n).replace("\\", "/")).name for i, n in files}
    seen = set(previous.seen) if previous is not None else set()
    current = [i for i in (previous.use if previous is not None else ()) if i in names]
    new = [i for i in ids if i not in seen]
    heads = [i for i in current if names[i].lower().endswith((".hea", *CSV_SUFFIXES))]
    stem = _upload_stem(names[heads[-1]]) if heads else None
    if new:
        joins = stem is not None and all(_upload_stem(names[i]) == stem for i in new)
        use = current + new if joins else new
    elif current:
        use = current
    else:
        primary = [i for i in ids if names[i].lower().endswith((".hea", *CSV_SUFFIXES))]
        if primary:
            last = primary[-1]
            use = [last] if names[last].lower().endswith(CSV_SUFFIXES) else [
                i for i in ids if _upload_stem(names[i]) == _upload_stem(names[last])]
        else:
            use = list(ids)
    # a later file of the same name replaces the earlier one
    by_name: dict[str, str] = {}
    for i in sorted(use, key=ids.index):
        by_name[names[i]] = i
    use = sorted(by_name.values(), key=ids.index)
    ignored = tuple(names[i] for i in ids if i not in use)
    return UploadChoice(tuple(use), ignored, tuple(ids))


_FUNC_PREFIX = re.compile(r"^(?:read_record|read_csv_signal|save_upload|load_record)\s*:\s*")
_PATH_ARG = re.compile(r"path='[^']*'(?::\s*|\s+)")
_DEV_HINTS: tuple[tuple[str, str], ...] = (
    (" (or use read_csv_signal for CSV files)", ""),
    ("Pass the record path without extension and keep", "Keep"),
    ("received fs=None and no time column. Pass fs=<Hz> or add a 'time' column in seconds.",
     "the file has no time column: enter its sampling rate, or add a 'time' column in seconds."),
    ("re-export the record with wfdb.wrsamp", "re-export the record"),
    ("the limit is max_bytes=", "the limit is "),
)


def user_message(message: object) -> str:
    """A reader's error or warning in the words of the page's user: no function names, no argument syntax."""
    msg = _PATH_ARG.sub("", _FUNC_PREFIX.sub("", str(message).strip()))
    for dev, plain in _DEV_HINTS:
        msg = msg.replace(dev, plain)
    return msg[:1].upper() + msg[1:]


def load_record(path: str | Path, *, fs: float | None = None) -> Record:
    """Read a WFDB record (path with or without extension) or a CSV / TXT file of samples (``fs`` in Hz is needed
    when the CSV has no time column). Raises :class:`SignalLoadError` on unreadable input; its message and the
    warnings are worded for the page's user (:func:`user_message`)."""
    import warnings

    p = Path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rec = read_csv_signal(p, fs=fs) if p.suffix.lower() in CSV_SUFFIXES else read_record(p)
        except SignalLoadError as e:
            raise SignalLoadError(user_message(e)) from e
    for w in caught:
        warnings.warn(user_message(w.message), w.category, stacklevel=2)
    return rec


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
    "UploadChoice",
    "choose_upload",
    "demo_sources",
    "load_record",
    "record_key",
    "save_upload",
    "shared_sources",
    "user_message",
]
