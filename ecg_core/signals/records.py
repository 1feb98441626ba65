"""ECG records in and out: WFDB records and CSV signals, their channels and units.

Units everywhere in :mod:`ecg_core.signals`: time in seconds (``*_s``), sampling rates in Hz (``fs``), amplitudes in
millivolts (mV), sample indices as integers at the rate named next to them (a
:class:`~ecg_core.signals.segments.Segment`'s ``sample`` is always an index at the *record's own* rate, so it points
back into the original file).

* :func:`read_record` reads a WFDB record (``.hea`` + signal file, optional ``.atr`` annotations) with ``wfdb``;
  :func:`read_csv_signal` / :func:`write_csv_signal` read and write plain CSV signals.

The rest of the signal path: :mod:`ecg_core.signals.filters` (resampling, cleaning, R peaks),
:mod:`ecg_core.signals.segments` (beats and rhythm windows) and :mod:`ecg_core.signals.demo` (the synthetic demo
records).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ecg_core.core.atomic import atomic_write_text
from ecg_core.core.errors import ConfigError, SignalLoadError

#: Every WFDB symbol that marks a beat (wfdb.io.annotation.is_qrs minus nothing): used to decide whether a record
#: carries beat annotations at all.
WFDB_BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?!")

CSV_MAX_BYTES = 100 * 1024 * 1024  # 100 MB: ~1 h of one lead at 1 kHz written as text
_TIME_COLUMN = re.compile(r"^(time|times|t|sec|secs|seconds|time_s|time_sec|timestamp|elapsed)(\s*\(s\))?$", re.I)
_TIME_MS_COLUMN = re.compile(r"^(time_ms|ms|msec|milliseconds|time\s*\(ms\))$", re.I)
_WFDB_SUFFIXES = (".hea", ".dat", ".atr", ".mat", ".xyz", ".qrs")


@dataclass(frozen=True, eq=False)
class Annotations:
    """Annotations of a record: ``sample`` int64 (k,) indices at the record's rate, one ``symbol`` and one ``aux``
    note (trailing NULs stripped, ``''`` when none) per annotation."""

    sample: np.ndarray
    symbol: tuple[str, ...]
    aux: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.sample.shape[0])

    @classmethod
    def empty(cls) -> Annotations:
        return cls(np.zeros(0, dtype=np.int64), (), ())

    @property
    def has_beats(self) -> bool:
        """True when at least one annotation is a beat (a QRS symbol)."""
        return any(s in WFDB_BEAT_SYMBOLS for s in self.symbol)


@dataclass(frozen=True, eq=False)
class Record:
    """One ECG record.

    ``signal`` is float64 in mV, shape (n,) for one channel or (n, ch); ``fs`` in Hz; ``channel_names`` has one
    name per channel; ``source`` is the path it was read from (``''`` when built in memory).
    """

    record_id: str
    fs: float
    signal: np.ndarray
    channel_names: tuple[str, ...]
    annotations: Annotations = field(default_factory=Annotations.empty)
    source: str = ""

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])

    @property
    def n_channels(self) -> int:
        return 1 if self.signal.ndim == 1 else int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def channel(self, which: int | str) -> np.ndarray:
        """One channel as float64 (n,) in mV, by index or by name (case-insensitive)."""
        idx = _channel_index(self.channel_names, which, what=f"record {self.record_id}")
        return self.signal if self.signal.ndim == 1 else self.signal[:, idx]


def read_record(
    path: str | Path,
    *,
    channel: int | str | None = None,
    annotator: str = "atr",
) -> Record:
    """Read a WFDB record with ``wfdb``.

    ``path`` is the record path with or without an extension (``data/101``, ``data/101.hea``, ``data/101.dat``).
    ``channel`` selects one channel (index or name, case-insensitive) and gives a 1-D signal; ``None`` keeps all
    channels, shape (n, ch). Signals are converted to mV (``uV`` / ``V`` units are rescaled; missing units are
    taken as mV). NaN samples (WFDB "invalid") are linearly interpolated. Annotations come from
    ``<record>.<annotator>``; a missing annotation file gives empty annotations.

    Raises :class:`SignalLoadError` when the header or signal file is missing or unreadable.
    """
    import wfdb

    base = _record_base(path)
    hea = base.with_suffix(".hea") if base.suffix == "" else Path(str(base) + ".hea")
    if not hea.is_file():
        raise SignalLoadError(
            f"read_record: path={str(path)!r}: expected a WFDB header {hea.name!r} next to the signal file, "
            "but it does not exist. Pass the record path without extension and keep the .hea and .dat files "
            "together (or use read_csv_signal for CSV files)."
        )
    try:
        header = wfdb.rdheader(str(base))
    except Exception as e:  # wfdb raises many types for a malformed header
        raise SignalLoadError(
            f"read_record: {hea.name}: the WFDB header cannot be parsed ({type(e).__name__}: {e}). "
            "Expected a PhysioNet-style .hea file; re-export the record with wfdb.wrsamp."
        ) from e
    names = tuple(str(n) for n in (header.sig_name or []))
    channels = None
    if channel is not None:
        channels = [_channel_index(names, channel, what=f"record {base.name}", error=SignalLoadError)]
    try:
        rec = wfdb.rdrecord(str(base), channels=channels)
    except Exception as e:
        raise SignalLoadError(
            f"read_record: {base.name}: the signal file cannot be read ({type(e).__name__}: {e}). "
            "Check that the .dat/.mat file named in the header is present, complete and matches the header."
        ) from e
    if rec.p_signal is None or rec.p_signal.size == 0:
        raise SignalLoadError(f"read_record: {base.name}: the record has no samples; expected at least one.")
    sig = np.asarray(rec.p_signal, dtype=np.float64)
    for j, unit in enumerate(rec.units or []):
        sig[:, j] *= _to_mv_factor(unit)
    sig = _fill_nan(sig, what=f"record {base.name}")
    sel_names = tuple(str(n) for n in rec.sig_name)
    if channel is not None:
        sig = sig[:, 0]
    return Record(
        record_id=base.name,
        fs=float(rec.fs),
        signal=sig,
        channel_names=sel_names,
        annotations=_read_annotations(base, annotator),
        source=str(base),
    )


def _record_base(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix.lower() in _WFDB_SUFFIXES else p


def _read_annotations(base: Path, annotator: str) -> Annotations:
    import wfdb

    if not Path(f"{base}.{annotator}").is_file():
        return Annotations.empty()
    try:
        ann = wfdb.rdann(str(base), annotator)
    except Exception as e:
        raise SignalLoadError(
            f"read_record: {base.name}.{annotator}: the annotation file cannot be read ({type(e).__name__}: {e}). "
            "Expected a WFDB annotation file; remove it to load the signal without annotations."
        ) from e
    n = len(ann.sample)
    aux = ann.aux_note if ann.aux_note is not None else [""] * n
    return Annotations(
        sample=np.asarray(ann.sample, dtype=np.int64),
        symbol=tuple(str(s) for s in ann.symbol),
        aux=tuple(str(a or "").rstrip("\x00").strip() for a in aux),
    )


def _to_mv_factor(unit: str | None) -> float:
    u = (unit or "mV").strip().replace("µ", "u").replace("μ", "u").lower()
    return {"mv": 1.0, "uv": 1e-3, "v": 1e3}.get(u, 1.0)  # unknown units are kept as they are


def _channel_index(
    names: tuple[str, ...], which: int | str, *, what: str, error: type[Exception] = ConfigError
) -> int:
    if isinstance(which, (int, np.integer)) and not isinstance(which, bool):
        if not 0 <= int(which) < max(len(names), 1):
            raise error(
                f"channel={which!r}: {what} has {len(names)} channel(s) ({', '.join(names)}); "
                f"expected an index 0..{len(names) - 1} or a channel name."
            )
        return int(which)
    lowered = [n.lower() for n in names]
    if str(which).lower() not in lowered:
        raise error(
            f"channel={which!r}: {what} has no such channel; expected one of {', '.join(names)} or an index."
        )
    return lowered.index(str(which).lower())


def _fill_nan(sig: np.ndarray, *, what: str) -> np.ndarray:
    """Interpolate NaNs linearly along axis 0 (in place for float arrays); all-NaN channels are an error."""
    bad = np.isnan(sig)
    if not bad.any():
        return sig
    cols = sig.reshape(sig.shape[0], -1)
    for j in range(cols.shape[1]):
        m = np.isnan(cols[:, j])
        if m.all():
            raise SignalLoadError(f"{what}: channel {j} contains no valid samples (all NaN); expected numbers.")
        if m.any():
            idx = np.arange(cols.shape[0])
            cols[m, j] = np.interp(idx[m], idx[~m], cols[~m, j])
    warnings.warn(
        f"{what}: {int(bad.sum())} missing samples (NaN) were linearly interpolated.", UserWarning, stacklevel=3
    )
    return sig


def read_csv_signal(
    path: str | Path,
    *,
    fs: float | None = None,
    channel: int | str | None = None,
    max_bytes: int = CSV_MAX_BYTES,
) -> Record:
    """Read a signal from a CSV file (comma, semicolon or tab separated) as a :class:`Record`.

    Values are taken as mV. A header row is optional. A column named ``time`` / ``t`` / ``seconds`` (seconds) or
    ``time_ms`` / ``ms`` (milliseconds) gives the sampling rate (it must be uniform within 1 %); otherwise ``fs``
    (Hz) is required. When both are given, ``fs`` wins and a mismatch > 1 % warns. Every other column is a channel;
    ``channel`` keeps one (index or header name) and returns a 1-D signal. The record has no annotations.

    Raises :class:`SignalLoadError` for a missing, empty, too large or non-numeric file, or when the rate is unknown.
    """
    p = Path(path)
    if not p.is_file():
        raise SignalLoadError(
            f"read_csv_signal: path={str(p)!r} does not exist or is not a file; expected a CSV file of samples."
        )
    size = p.stat().st_size
    if size == 0:
        raise SignalLoadError(f"read_csv_signal: {p.name} is empty; expected rows of numbers (one column per lead).")
    if size > max_bytes:
        raise SignalLoadError(
            f"read_csv_signal: {p.name} is {size / 1e6:.0f} MB; the limit is max_bytes={max_bytes / 1e6:.0f} MB. "
            "Cut the recording into shorter files."
        )
    try:
        with p.open("r", encoding="utf-8-sig", errors="strict") as fh:
            first = fh.readline()
    except (UnicodeDecodeError, OSError) as e:
        raise SignalLoadError(
            f"read_csv_signal: {p.name} is not a UTF-8 text file ({e}); expected a CSV file of numbers."
        ) from e
    sep = max((",", ";", "\t"), key=first.count)
    sep = sep if first.count(sep) else ","
    header = 0 if any(not _is_number(tok) for tok in first.strip().split(sep) if tok.strip()) else None
    try:
        df = pd.read_csv(p, sep=sep, header=header, encoding="utf-8-sig", skipinitialspace=True)
    except Exception as e:
        raise SignalLoadError(f"read_csv_signal: {p.name} cannot be parsed as CSV ({type(e).__name__}: {e}).") from e
    if header is None:
        df.columns = [f"ch{j}" for j in range(df.shape[1])]
    df.columns = [str(c).strip() for c in df.columns]
    df = df.loc[:, [c for c in df.columns if not c.lower().startswith("unnamed")]]
    if len(df) < 2 or df.shape[1] == 0:
        raise SignalLoadError(
            f"read_csv_signal: {p.name} has {len(df)} row(s) and {df.shape[1]} column(s); expected at least 2 rows "
            "of samples and one signal column."
        )
    time_col = next((c for c in df.columns if _TIME_COLUMN.match(c) or _TIME_MS_COLUMN.match(c)), None)
    values = df.apply(pd.to_numeric, errors="coerce")
    bad_cols = [c for c in df.columns if values[c].isna().all()]
    if bad_cols:
        raise SignalLoadError(
            f"read_csv_signal: {p.name}: column(s) {', '.join(map(repr, bad_cols))} hold no numbers; expected "
            "numeric samples in mV (and optionally a 'time' column in seconds)."
        )
    fs_file = None
    if time_col is not None:
        t = values[time_col].to_numpy(dtype=np.float64)
        if _TIME_MS_COLUMN.match(time_col):
            t = t / 1000.0
        dt = np.diff(t)
        if np.isnan(dt).any() or (dt <= 0).any():
            raise SignalLoadError(
                f"read_csv_signal: {p.name}: time column {time_col!r} must increase strictly on every row."
            )
        med = float(np.median(dt))
        if np.abs(dt - med).max() > 0.01 * med:
            raise SignalLoadError(
                f"read_csv_signal: {p.name}: time column {time_col!r} is not uniformly sampled (steps from "
                f"{dt.min():.6g} to {dt.max():.6g} s); resample to a constant rate first."
            )
        fs_file = (len(t) - 1) / (t[-1] - t[0])  # over the whole span: robust to rounded time stamps
        if abs(fs_file - round(fs_file)) < 1e-4 * fs_file:
            fs_file = float(round(fs_file))  # snap 359.99997 Hz (6-decimal time stamps) to 360 Hz
        values = values.drop(columns=[time_col])
        if values.shape[1] == 0:
            raise SignalLoadError(f"read_csv_signal: {p.name}: only a time column was found; expected signal columns.")
    if fs is None and fs_file is None:
        raise SignalLoadError(
            f"read_csv_signal: {p.name}: the sampling rate is unknown; received fs=None and no time column. "
            "Pass fs=<Hz> or add a 'time' column in seconds."
        )
    if fs is not None:
        _check_positive("fs", fs, error=SignalLoadError)
        if fs_file is not None and abs(fs_file - fs) > 0.01 * fs:
            warnings.warn(
                f"read_csv_signal: {p.name}: fs={fs} Hz was given but the time column says {fs_file:.4g} Hz; "
                f"using fs={fs}.",
                UserWarning,
                stacklevel=2,
            )
    rate = float(fs if fs is not None else fs_file)
    sig = _fill_nan(values.to_numpy(dtype=np.float64), what=p.name)
    names = tuple(str(c) for c in values.columns)
    if np.nanmedian(np.abs(sig)) > 50:
        warnings.warn(
            f"read_csv_signal: {p.name}: the median absolute value is {np.median(np.abs(sig)):.0f}; values are "
            "read as mV and this looks like µV or ADC units. Divide by the gain before loading.",
            UserWarning,
            stacklevel=2,
        )
    if channel is not None:
        j = _channel_index(names, channel, what=p.name, error=SignalLoadError)
        sig, names = sig[:, j], (names[j],)
    elif sig.shape[1] == 1:
        sig = sig[:, 0]
    return Record(record_id=p.stem, fs=rate, signal=sig, channel_names=names, source=str(p))


def write_csv_signal(record: Record, path: str | Path, *, time_column: bool = True) -> Path:
    """Write ``record`` as CSV: an optional ``time`` column (s) then one column per channel (mV). Returns the path."""
    p = Path(path)
    sig = record.signal.reshape(record.n_samples, -1)
    df = pd.DataFrame(sig, columns=list(record.channel_names)[: sig.shape[1]])
    if time_column:
        df.insert(0, "time", np.arange(record.n_samples) / record.fs)
    atomic_write_text(p, df.to_csv(index=False, float_format="%.6f"))
    return p


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _check_positive(name: str, value: float, *, error: type[Exception] = ConfigError) -> None:
    try:
        ok = float(value) > 0 and np.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise error(f"{name}={value!r}; expected a positive finite number.")


__all__ = [
    "WFDB_BEAT_SYMBOLS",
    "Annotations",
    "Record",
    "read_csv_signal",
    "read_record",
    "write_csv_signal",
]
