"""ECG signals in, beats and rhythm windows out.

Units everywhere: time in seconds (``*_s``), sampling rates in Hz (``fs``), amplitudes in millivolts (mV),
sample indices as integers at the rate named next to them (a :class:`Segment`'s ``sample`` is always an index at
the *record's own* rate, so it points back into the original file).

* :func:`read_record` reads a WFDB record (``.hea`` + signal file, optional ``.atr`` annotations) with ``wfdb``;
  :func:`read_csv_signal` / :func:`write_csv_signal` read and write plain CSV signals.
* :func:`resample` (``scipy.signal.resample_poly``), :func:`clean` (Butterworth band-pass / high-pass with
  ``scipy.signal.sosfiltfilt`` or ``neurokit2.ecg_clean``) and :func:`detect_rpeaks` (``neurokit2.ecg_peaks``).
* :func:`extract_segments` cuts fixed windows around beats and sliding windows inside rhythm episodes, labelled
  with the ``arrhythmia-6`` preset (N, L, R, A, V, VF) according to a :class:`SegmentConfig`.
* :func:`ensure_demo_records` writes three SYNTHETIC WFDB records (PVCs + APBs, LBBB, VF episode) on first use
  into ``<app home>/demo-signals``, so the Arrhythmia page and the tests work without the MIT-BIH files.

Beat-symbol mapping (MIT-BIH symbols -> ``arrhythmia-6`` keys), the default of :class:`SegmentConfig`:

====  ==============  ====================================================================================
key   symbols         why
====  ==============  ====================================================================================
N     ``N``           plain normal beats only. The escape beats ``e`` / ``j`` (which AAMI counts as N) are
                      left out: they are late beats after pauses, not "a sinus beat through the normal
                      pathway", and there are only 32 of them in DS1.
L     ``L``           left bundle branch block beats.
R     ``R``           right bundle branch block beats.
A     ``A a J S``     supraventricular premature beats as AAMI's SVEB class: atrial premature (A), aberrated
                      atrial premature (a), nodal premature (J), supraventricular premature (S).
V     ``V E``         ventricular ectopic beats as AAMI's VEB class: premature ventricular contraction (V)
                      and ventricular escape (E).
====  ==============  ====================================================================================

Not used: fusion ``F``, paced ``/ f``, unclassifiable ``Q``, escape ``e j``, ventricular flutter waves ``!``
(those lie inside VF/VFL episodes, which give VF windows instead) and every non-beat annotation.

VF windows: sliding windows inside rhythm episodes whose annotation (symbol ``+``, aux note such as ``'(VF'``,
``'(VFL'``, ``'(VFIB'``; trailing NULs stripped) names ventricular fibrillation or flutter. An episode runs from its
rhythm annotation to the next rhythm annotation (or the end of the record).

Every window, beat or rhythm, is ``[anchor - pre_s, anchor + post_s)``: for beats the anchor is the annotated (or
detected) R peak, for rhythm windows it is ``window start + pre_s``. So the start time of any segment is
``time_s - pre_s``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError, SignalLoadError
from ecg_core.core.labels import get_preset

#: Default mapping of ``arrhythmia-6`` class keys to MIT-BIH beat symbols (see the module docstring).
DEFAULT_BEAT_SYMBOLS: tuple[tuple[str, str], ...] = (
    ("N", "N"),
    ("L", "L"),
    ("R", "R"),
    ("A", "AaJS"),
    ("V", "VE"),
)
#: Default mapping of class keys to rhythm names (aux notes without the leading ``(``) that give sliding windows.
DEFAULT_RHYTHM_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (("VF", ("VF", "VFL", "VFIB")),)
#: Channel names preferred, in order, when a record has several; otherwise channel 0 is used.
DEFAULT_LEAD_PREFERENCE: tuple[str, ...] = ("MLII", "II")

#: Every WFDB symbol that marks a beat (wfdb.io.annotation.is_qrs minus nothing): used to decide whether a record
#: carries beat annotations at all.
WFDB_BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?!")

CSV_MAX_BYTES = 100 * 1024 * 1024  # 100 MB: ~1 h of one lead at 1 kHz written as text
_TIME_COLUMN = re.compile(r"^(time|times|t|sec|secs|seconds|time_s|time_sec|timestamp|elapsed)(\s*\(s\))?$", re.I)
_TIME_MS_COLUMN = re.compile(r"^(time_ms|ms|msec|milliseconds|time\s*\(ms\))$", re.I)
_WFDB_SUFFIXES = (".hea", ".dat", ".atr", ".mat", ".xyz", ".qrs")


# --------------------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------------------
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
    df.to_csv(p, index=False, float_format="%.6f")
    return p


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------------------------
# Resampling, cleaning, R peaks
# --------------------------------------------------------------------------------------------------------------
def resample(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample along axis 0 from ``fs_in`` to ``fs_out`` Hz with ``scipy.signal.resample_poly`` (polyphase FIR,
    anti-aliased). The up/down ratio is the closest fraction with a denominator <= 1000. Returns float64."""
    from scipy.signal import resample_poly

    _check_positive("fs_in", fs_in)
    _check_positive("fs_out", fs_out)
    x = np.asarray(signal, dtype=np.float64)
    if fs_in == fs_out:
        return x.copy()
    ratio = Fraction(float(fs_out) / float(fs_in)).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=0)


def resample_index(sample: np.ndarray | int, fs_in: float, fs_out: float) -> np.ndarray:
    """Map sample indices at ``fs_in`` to the nearest indices at ``fs_out`` (int64)."""
    return np.rint(np.asarray(sample, dtype=np.float64) * (float(fs_out) / float(fs_in))).astype(np.int64)


def _clean_bandpass(x: np.ndarray, fs: float, lowcut: float, highcut: float, order: int) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(order, [lowcut, highcut], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, x, axis=0, padlen=min(3 * (2 * len(sos) + 1), x.shape[0] - 1))


def _clean_highpass(x: np.ndarray, fs: float, lowcut: float, highcut: float, order: int) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(order, lowcut, btype="highpass", fs=fs, output="sos")
    return sosfiltfilt(sos, x, axis=0, padlen=min(3 * (2 * len(sos) + 1), x.shape[0] - 1))


def _clean_neurokit(x: np.ndarray, fs: float, lowcut: float, highcut: float, order: int) -> np.ndarray:
    try:
        import neurokit2 as nk
    except ImportError as e:  # pragma: no cover - listed in requirements.txt
        raise ConfigError("clean(method='neurokit') needs neurokit2: pip install neurokit2") from e
    cols = x.reshape(x.shape[0], -1)
    out = np.column_stack([nk.ecg_clean(cols[:, j], sampling_rate=int(round(fs)), method="neurokit") for j in
                           range(cols.shape[1])])
    return out.reshape(x.shape)


#: Cleaning methods: name -> implementation ``(x, fs, lowcut, highcut, order) -> x``; also the error message.
CLEAN_METHODS: dict[str, Callable[[np.ndarray, float, float, float, int], np.ndarray]] = {
    "bandpass": _clean_bandpass,  # Butterworth band-pass lowcut..highcut Hz, zero phase (sosfiltfilt)
    "highpass": _clean_highpass,  # baseline-wander removal only: Butterworth high-pass at lowcut Hz, zero phase
    "neurokit": _clean_neurokit,  # neurokit2.ecg_clean(method='neurokit'): 0.5 Hz high-pass + 50 Hz powerline
}


def clean(
    signal: np.ndarray,
    fs: float,
    *,
    method: str = "bandpass",
    lowcut: float = 0.5,
    highcut: float = 40.0,
    order: int = 3,
) -> np.ndarray:
    """Remove baseline wander and high-frequency noise along axis 0; returns float64 mV of the same shape.

    ``method``: ``'bandpass'`` (Butterworth ``order``, ``lowcut``-``highcut`` Hz, zero phase), ``'highpass'``
    (baseline removal at ``lowcut`` Hz only) or ``'neurokit'`` (``neurokit2.ecg_clean``; ignores the cut-offs).
    """
    if method not in CLEAN_METHODS:
        raise ConfigError(f"clean: method={method!r}; expected one of {', '.join(map(repr, CLEAN_METHODS))}.")
    _check_positive("fs", fs)
    if not 0 < lowcut < highcut:
        raise ConfigError(f"clean: expected 0 < lowcut < highcut, received lowcut={lowcut}, highcut={highcut} Hz.")
    if method == "bandpass" and highcut >= fs / 2:
        raise ConfigError(
            f"clean: highcut={highcut} Hz must be below the Nyquist frequency fs/2={fs / 2:g} Hz; lower highcut or "
            "use method='highpass'."
        )
    x = np.asarray(signal, dtype=np.float64)
    if x.shape[0] < 8:
        raise ConfigError(f"clean: the signal has {x.shape[0]} samples; expected at least 8.")
    x = _fill_nan(x.copy(), what="clean")
    return CLEAN_METHODS[method](x, float(fs), float(lowcut), float(highcut), int(order))


def detect_rpeaks(signal: np.ndarray, fs: float, *, method: str = "neurokit") -> np.ndarray:
    """R-peak sample indices (int64, at ``fs``) of a 1-D signal in mV, found by ``neurokit2.ecg_peaks``.

    ``method`` is any ``neurokit2.ecg_peaks`` method (``'neurokit'``, ``'pantompkins1985'``, ``'hamilton2002'``,
    ...). The signal is cleaned by ``neurokit2.ecg_clean`` first. A failed detection warns and returns no peaks.
    """
    import neurokit2 as nk

    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise ConfigError(f"detect_rpeaks: expected a 1-D signal, received shape {x.shape}; pick one channel.")
    rate = int(round(fs))
    try:
        cleaned = nk.ecg_clean(x, sampling_rate=rate, method="neurokit")
        _, info = nk.ecg_peaks(cleaned, sampling_rate=rate, method=method)
    except Exception as e:  # neurokit raises plain ValueErrors/IndexErrors on flat or too short signals
        warnings.warn(f"detect_rpeaks: no R peaks found ({type(e).__name__}: {e}).", UserWarning, stacklevel=2)
        return np.zeros(0, dtype=np.int64)
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


# --------------------------------------------------------------------------------------------------------------
# Rhythm episodes
# --------------------------------------------------------------------------------------------------------------
def rhythm_episodes(record: Record) -> pd.DataFrame:
    """Rhythm episodes from rhythm annotations (aux notes starting with ``'('``).

    Columns: ``rhythm`` (aux note without ``'('``, e.g. ``'VFL'``), ``start`` / ``end`` (sample indices at the
    record's rate, end exclusive), ``start_s`` / ``end_s`` (s). An episode ends at the next rhythm annotation or at
    the end of the record.
    """
    ann = record.annotations
    idx = [i for i, a in enumerate(ann.aux) if a.startswith("(")]
    rows = []
    for k, i in enumerate(idx):
        start = int(ann.sample[i])
        end = int(ann.sample[idx[k + 1]]) if k + 1 < len(idx) else record.n_samples
        if end > start:
            rows.append((ann.aux[i][1:].strip(), start, end))
    df = pd.DataFrame(rows, columns=["rhythm", "start", "end"]).astype({"start": "int64", "end": "int64"})
    df["start_s"] = df["start"] / record.fs
    df["end_s"] = df["end"] / record.fs
    return df


# --------------------------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentConfig:
    """How beats and rhythm windows are cut from a record.

    fs_target: common sampling rate of the segments, Hz (records are resampled to it before cleaning).
    pre_s / post_s: window before / after the anchor (R peak), s; the window is ``window_samples`` long.
    rhythm_stride_s: stride of the sliding windows inside rhythm episodes (VF), s.
    lead_preference: channel names tried in order; channel 0 when none matches.
    clean_method: a :data:`CLEAN_METHODS` key, or ``None`` to keep the raw signal; band ``lowcut``-``highcut`` Hz.
    peaks: ``'auto'`` (annotated beats when the record has any, otherwise R peaks detected by neurokit2 — only
        when ``include_unlabeled``), ``'annotations'`` (annotated beats only), ``'detect'`` (always detect; a
        detected peak within ``match_tolerance_s`` of an annotated beat takes its label).
    include_unlabeled: keep beats whose symbol maps to no class (label ``None``), e.g. detected beats of an
        unannotated recording to classify.
    beat_symbols: (class key, MIT-BIH symbols) pairs; rhythm_classes: (class key, rhythm names) pairs.
    preset: label preset whose class keys the mappings use.
    """

    fs_target: float = 250.0
    pre_s: float = 0.25
    post_s: float = 0.45
    rhythm_stride_s: float = 0.35
    lead_preference: tuple[str, ...] = DEFAULT_LEAD_PREFERENCE
    clean_method: str | None = "bandpass"
    lowcut: float = 0.5
    highcut: float = 40.0
    peaks: Literal["auto", "annotations", "detect"] = "auto"
    include_unlabeled: bool = False
    match_tolerance_s: float = 0.075
    beat_symbols: tuple[tuple[str, str], ...] = DEFAULT_BEAT_SYMBOLS
    rhythm_classes: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_RHYTHM_CLASSES
    preset: str = "arrhythmia-6"

    def __post_init__(self) -> None:
        # normalise list inputs (e.g. from JSON) to tuples so the dataclass stays hashable
        object.__setattr__(self, "lead_preference", tuple(str(s) for s in self.lead_preference))
        object.__setattr__(self, "beat_symbols", tuple((str(k), str(s)) for k, s in self.beat_symbols))
        object.__setattr__(
            self, "rhythm_classes", tuple((str(k), tuple(str(r) for r in rs)) for k, rs in self.rhythm_classes)
        )
        _check_positive("SegmentConfig.fs_target", self.fs_target)
        if not 0 <= self.pre_s <= 5 or not 0 < self.post_s <= 5:
            raise ConfigError(
                f"SegmentConfig: expected 0 <= pre_s <= 5 and 0 < post_s <= 5 seconds, received pre_s={self.pre_s}, "
                f"post_s={self.post_s}."
            )
        if self.window_samples < 16:
            raise ConfigError(
                f"SegmentConfig: the window is {self.window_samples} samples at fs_target={self.fs_target} Hz; "
                "expected at least 16. Increase pre_s/post_s or fs_target."
            )
        _check_positive("SegmentConfig.rhythm_stride_s", self.rhythm_stride_s)
        _check_positive("SegmentConfig.match_tolerance_s", self.match_tolerance_s)
        if self.clean_method is not None and self.clean_method not in CLEAN_METHODS:
            raise ConfigError(
                f"SegmentConfig.clean_method={self.clean_method!r}; expected None or one of "
                f"{', '.join(map(repr, CLEAN_METHODS))}."
            )
        if not 0 < self.lowcut < self.highcut:
            raise ConfigError(
                f"SegmentConfig: expected 0 < lowcut < highcut, received lowcut={self.lowcut}, highcut={self.highcut}."
            )
        if self.clean_method == "bandpass" and self.highcut >= self.fs_target / 2:
            raise ConfigError(
                f"SegmentConfig.highcut={self.highcut} Hz must be below fs_target/2={self.fs_target / 2:g} Hz."
            )
        if self.peaks not in ("auto", "annotations", "detect"):
            raise ConfigError(
                f"SegmentConfig.peaks={self.peaks!r}; expected 'auto', 'annotations' or 'detect'."
            )
        keys = set(get_preset(self.preset).keys)
        seen: dict[str, str] = {}
        for key, symbols in self.beat_symbols:
            if key not in keys:
                raise ConfigError(
                    f"SegmentConfig.beat_symbols: class key {key!r} is not in preset {self.preset!r}; "
                    f"expected one of {', '.join(sorted(keys))}."
                )
            for s in symbols:
                if s in seen and seen[s] != key:
                    raise ConfigError(
                        f"SegmentConfig.beat_symbols: symbol {s!r} is mapped to both {seen[s]!r} and {key!r}; "
                        "map each symbol to one class."
                    )
                seen[s] = key
        for key, rhythms in self.rhythm_classes:
            if key not in keys or not rhythms:
                raise ConfigError(
                    f"SegmentConfig.rhythm_classes: ({key!r}, {rhythms!r}); expected a class key of preset "
                    f"{self.preset!r} and at least one rhythm name such as 'VF'."
                )

    @property
    def pre_samples(self) -> int:
        """Samples before the anchor at ``fs_target`` (``pre_s * fs_target`` rounded half up)."""
        return int(np.floor(self.pre_s * self.fs_target + 0.5))

    @property
    def window_samples(self) -> int:
        """Segment length in samples at ``fs_target``: ``(pre_s + post_s) * fs_target`` rounded half up."""
        return int(np.floor((self.pre_s + self.post_s) * self.fs_target + 0.5))

    @property
    def symbol_to_class(self) -> dict[str, str]:
        return {s: key for key, symbols in self.beat_symbols for s in symbols}

    @property
    def rhythm_to_class(self) -> dict[str, str]:
        return {r.upper(): key for key, rhythms in self.rhythm_classes for r in rhythms}

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentConfig:
        """Rebuild from :meth:`to_dict` output (e.g. ``spectral_config.json``); unknown keys are a ConfigError."""
        return _from_dict(cls, d)

    def config_hash(self) -> str:
        """sha1 hex digest of the sorted JSON of the fields: a stable identity for caches and datasets."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class Segment:
    """One window of one lead.

    ``x``: float32 (window_samples,) in mV at ``fs`` Hz; ``sample``: anchor index at the *record's* rate;
    ``time_s``: anchor time in the record, s (window start = ``time_s - pre_s``); ``label``: class key or ``None``;
    ``symbol``: MIT-BIH beat symbol, the rhythm aux note (``'(VF'``) or ``'?'`` for a detected, unmatched beat;
    ``kind``: ``'beat'`` or ``'rhythm'``.
    """

    record: str
    sample: int
    time_s: float
    label: str | None
    symbol: str
    kind: str
    x: np.ndarray
    fs: float


def pick_lead(record: Record, *, preference: tuple[str, ...] = DEFAULT_LEAD_PREFERENCE) -> tuple[np.ndarray, str]:
    """The first channel whose name is in ``preference`` (case-insensitive), else channel 0: (signal (n,), name)."""
    if record.signal.ndim == 1:
        return record.signal, (record.channel_names[0] if record.channel_names else "ch0")
    lowered = [n.lower() for n in record.channel_names]
    for name in preference:
        if name.lower() in lowered:
            j = lowered.index(name.lower())
            return record.signal[:, j], record.channel_names[j]
    return record.signal[:, 0], record.channel_names[0]


def extract_segments(record: Record, *, cfg: SegmentConfig | None = None) -> list[Segment]:
    """Cut labelled beat windows and rhythm (VF) windows from ``record``, sorted by time.

    The lead chosen by ``cfg.lead_preference`` is resampled to ``cfg.fs_target`` and cleaned (``cfg.clean_method``)
    over the whole record, then cut. Windows that do not fit inside the record are skipped. Beats come from the
    annotations or from neurokit2 detection (``cfg.peaks``); rhythm windows slide with ``cfg.rhythm_stride_s``
    inside every episode of a rhythm listed in ``cfg.rhythm_classes`` and never cross the episode's end.
    """
    cfg = cfg or SegmentConfig()
    lead, _ = pick_lead(record, preference=cfg.lead_preference)
    fs_t = cfg.fs_target
    x = resample(lead, record.fs, fs_t)
    if cfg.clean_method is not None:
        x = clean(x, fs_t, method=cfg.clean_method, lowcut=cfg.lowcut, highcut=cfg.highcut)
    x = x.astype(np.float32)
    n_t = x.shape[0]
    pre, win = cfg.pre_samples, cfg.window_samples
    ann = record.annotations
    sym2cls = cfg.symbol_to_class
    beat_idx = [i for i, s in enumerate(ann.symbol) if s in WFDB_BEAT_SYMBOLS]
    anchors: list[tuple[int, str | None, str, str]] = []  # (sample at record rate, label, symbol, kind)

    use_detect = cfg.peaks == "detect" or (cfg.peaks == "auto" and not beat_idx and cfg.include_unlabeled)
    if use_detect:
        peaks_t = detect_rpeaks(x.astype(np.float64), fs_t)
        peaks = resample_index(peaks_t, fs_t, record.fs)
        ann_s = ann.sample[beat_idx] if beat_idx else np.zeros(0, dtype=np.int64)
        tol = cfg.match_tolerance_s * record.fs
        for p in peaks:
            sym = "?"
            if ann_s.size:
                k = int(np.argmin(np.abs(ann_s - p)))
                if abs(int(ann_s[k]) - int(p)) <= tol:
                    sym = ann.symbol[beat_idx[k]]
            anchors.append((int(p), sym2cls.get(sym), sym, "beat"))
    else:
        for i in beat_idx:
            sym = ann.symbol[i]
            anchors.append((int(ann.sample[i]), sym2cls.get(sym), sym, "beat"))
    if not cfg.include_unlabeled:
        anchors = [a for a in anchors if a[1] is not None]

    out: list[Segment] = []
    for s, label, sym, kind in anchors:
        st = int(resample_index(s, record.fs, fs_t)) - pre
        if 0 <= st and st + win <= n_t:
            out.append(Segment(record.record_id, s, s / record.fs, label, sym, kind, x[st : st + win], fs_t))

    rhy2cls = cfg.rhythm_to_class
    stride = max(1, int(round(cfg.rhythm_stride_s * fs_t)))
    for ep in rhythm_episodes(record).itertuples(index=False):
        label = rhy2cls.get(str(ep.rhythm).upper())
        if label is None:
            continue
        a = int(np.ceil(ep.start * fs_t / record.fs))  # first target sample inside the episode
        b = min(int(np.floor(ep.end * fs_t / record.fs)), n_t)  # end (exclusive) of the episode at fs_t
        for st in range(a, b - win + 1, stride):
            s = int(np.floor((st + pre) * record.fs / fs_t))
            out.append(Segment(record.record_id, s, s / record.fs, label, f"({ep.rhythm}", "rhythm",
                               x[st : st + win], fs_t))
    out.sort(key=lambda g: (g.sample, g.kind))
    return out


def segments_frame(segments: list[Segment]) -> pd.DataFrame:
    """The metadata of ``segments`` as a DataFrame: record, sample, time_s, label, symbol, kind (no samples)."""
    cols = ["record", "sample", "time_s", "label", "symbol", "kind"]
    return pd.DataFrame([(g.record, g.sample, g.time_s, g.label, g.symbol, g.kind) for g in segments], columns=cols)


def segments_array(segments: list[Segment]) -> np.ndarray:
    """The samples of ``segments`` stacked as float32 (n, window_samples), mV."""
    if not segments:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([g.x for g in segments]).astype(np.float32, copy=False)


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(
            f"{cls.__name__}.from_dict: unknown field(s) {', '.join(unknown)}; expected a subset of "
            f"{', '.join(sorted(known))}. The file was probably written by another version of ecg_core."
        )
    return cls(**d)


def _check_positive(name: str, value: float, *, error: type[Exception] = ConfigError) -> None:
    try:
        ok = float(value) > 0 and np.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise error(f"{name}={value!r}; expected a positive finite number.")


# --------------------------------------------------------------------------------------------------------------
# Synthetic demo records (generated on first use; never shipped as files)
# --------------------------------------------------------------------------------------------------------------
#: Names of the synthetic demo records written by :func:`ensure_demo_records`.
DEMO_RECORD_NAMES: tuple[str, ...] = ("demo_pvc", "demo_lbbb", "demo_vf")
DEMO_FS = 360  # Hz, as MIT-BIH (so the demo exercises resampling to the 250 Hz segment rate)
_DEMO_DURATION_S = 30.0
_DEMO_SEED = 20240601
_DEMO_VERSION = 1  # bump when the generator changes: existing folders are then regenerated
_DEMO_STAMP = "demo_signals.json"
_DEMO_COMMENT = "SYNTHETIC demo record written by ecg_core.signals.records.ensure_demo_records (not patient data)"

# Waves as (amplitude mV, centre s relative to the R peak, width s) of a sum-of-Gaussians beat model.
_W_NORMAL = ((0.15, -0.20, 0.025), (-0.12, -0.03, 0.010), (1.10, 0.0, 0.011), (-0.25, 0.03, 0.012),
             (0.30, 0.26, 0.045))
_W_ATRIAL = ((-0.10, -0.16, 0.020), (-0.12, -0.03, 0.010), (1.05, 0.0, 0.011), (-0.25, 0.03, 0.012),
             (0.28, 0.25, 0.045))
_W_PVC = ((-0.35, -0.04, 0.030), (1.50, 0.02, 0.035), (-0.60, 0.30, 0.070))
_W_LBBB = ((0.12, -0.22, 0.025), (0.75, -0.03, 0.025), (0.80, 0.035, 0.028), (-0.35, 0.32, 0.060))
_W_LBBB_PVC = ((-1.20, 0.0, 0.040), (0.45, 0.30, 0.070))


def demo_signals_dir() -> Path:
    """Default folder of the demo records: ``<app home>/demo-signals`` (see :mod:`ecg_core.core.paths`)."""
    from ecg_core.core import paths

    return paths.app_home() / "demo-signals"


def ensure_demo_records(dest_dir: str | Path | None = None, *, overwrite: bool = False) -> list[Path]:
    """Write the SYNTHETIC demo records into ``dest_dir`` unless they are already there; return their record paths
    (without extension, ready for :func:`read_record`), in :data:`DEMO_RECORD_NAMES` order.

    ``dest_dir`` defaults to :func:`demo_signals_dir`. Three single-lead WFDB records (360 Hz, lead ``MLII``, mV,
    ``.hea`` + ``.dat`` + ``.atr`` with MIT-BIH beat symbols at the R peaks), 30 s each:

    * ``demo_pvc``  — sinus rhythm (~72 bpm) with premature ventricular contractions (``V``: early, wide, no P wave,
      discordant T, compensatory pause) and atrial premature beats (``A``: early, narrow, different P wave);
    * ``demo_lbbb`` — left-bundle-branch-block-like beats (``L``: wide notched R, discordant T) with two PVCs;
    * ``demo_vf``   — 10 s sinus rhythm, 12 s ventricular fibrillation (chaotic 4-7 Hz oscillation of varying
      amplitude), 8 s sinus rhythm; rhythm annotations ``(N`` / ``(VF`` / ``(N`` (symbol ``+``).

    They are a sum-of-Gaussians beat model plus baseline wander and noise, not patient data. Deterministic: a fixed
    seed and no dates in the headers, so two calls write byte-identical files. Safe when several processes call
    it at once: files are written into a private temporary folder and renamed into place, the stamp file
    (``demo_signals.json``, with the generator version) last; a folder with an older stamp is regenerated.
    ``overwrite=True`` always regenerates. Raises :class:`SignalLoadError` when the folder is not writable.
    """
    dest = Path(dest_dir) if dest_dir is not None else demo_signals_dir()
    targets = [dest / name for name in DEMO_RECORD_NAMES]
    if not overwrite and _demo_complete(dest):
        return targets
    import tempfile

    try:
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".demo-tmp-", dir=dest))
    except OSError as e:
        raise SignalLoadError(
            f"ensure_demo_records: cannot create {str(dest)!r} ({e.strerror or e}); set ECG_INSIGHT_HOME to a "
            "writable folder or pass dest_dir."
        ) from e
    try:
        written = write_demo_records(tmp)
        for f in sorted(tmp.iterdir()):
            os.replace(f, dest / f.name)
        stamp = {"version": _DEMO_VERSION, "seed": _DEMO_SEED, "fs": DEMO_FS, "records": list(DEMO_RECORD_NAMES),
                 "synthetic": True, "files": sorted(p.name for p in written)}
        (tmp / _DEMO_STAMP).write_text(json.dumps(stamp, indent=1))
        os.replace(tmp / _DEMO_STAMP, dest / _DEMO_STAMP)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return targets


def _demo_complete(dest: Path) -> bool:
    try:
        stamp = json.loads((dest / _DEMO_STAMP).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("version") != _DEMO_VERSION:
        return False
    return all((dest / f"{n}{ext}").is_file() for n in DEMO_RECORD_NAMES for ext in (".hea", ".dat", ".atr"))


def write_demo_records(out_dir: str | Path) -> list[Path]:
    """Write the demo records (see :func:`ensure_demo_records`) into ``out_dir`` unconditionally, plus a
    ``RECORDS`` list; returns every file written."""
    import wfdb

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for name, (sig, samples, symbols, aux) in _demo_signals(np.random.default_rng(_DEMO_SEED)).items():
        wfdb.wrsamp(
            name, fs=DEMO_FS, units=["mV"], sig_name=["MLII"], p_signal=sig[:, None], fmt=["212"],
            adc_gain=[200.0], baseline=[1024], comments=[_DEMO_COMMENT], write_dir=str(out),
        )
        wfdb.wrann(
            name, "atr", np.asarray(samples, dtype=np.int64), symbol=symbols, aux_note=aux, fs=DEMO_FS,
            write_dir=str(out),
        )
        files += [out / f"{name}{ext}" for ext in (".hea", ".dat", ".atr")]
    (out / "RECORDS").write_text("\n".join(DEMO_RECORD_NAMES) + "\n")
    return files + [out / "RECORDS"]


def _demo_beat(t: np.ndarray, r_time: float, waves: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    return sum(a * np.exp(-0.5 * ((t - r_time - mu) / sd) ** 2) for a, mu, sd in waves)


def _demo_noise(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    wander = 0.08 * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 6.3)) + 0.04 * np.sin(2 * np.pi * 0.07 * t)
    return wander + 0.012 * rng.standard_normal(t.size)


def _demo_rhythm(
    rng: np.random.Generator, t0: float, t1: float, rr: float, ectopy: dict[int, str]
) -> list[tuple[float, str]]:
    """Beat times (s) and symbols between t0 and t1; ``ectopy`` maps beat number -> 'V' (early + pause) or 'A'."""
    beats, t, k = [], t0 + 0.4, 0
    while t < t1 - 0.5:
        sym = ectopy.get(k, "N")
        if sym == "V":
            t_v = t - 0.38 * rr  # early ...
            beats.append((t_v, "V"))
            t = t_v + 1.62 * rr  # ... with a full compensatory pause (the two intervals sum to 2 RR)
        elif sym == "A":
            t_a = t - 0.30 * rr
            beats.append((t_a, "A"))
            t = t_a + 1.05 * rr  # non-compensatory pause
        else:
            beats.append((t, sym))
            t += rr * (1 + 0.03 * rng.standard_normal())
        k += 1
    return beats


def _demo_vf(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Chaotic 4-7 Hz oscillation with slowly varying amplitude (coarse -> fine VF), mV."""
    out = np.zeros_like(t)
    for _ in range(4):
        f = rng.uniform(4.0, 7.0)
        drift = np.cumsum(rng.standard_normal(t.size)) / DEMO_FS * 1.5  # random phase drift (Hz*s)
        out += rng.uniform(0.2, 0.45) * np.sin(2 * np.pi * (f * t + drift) + rng.uniform(0, 6.3))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 0.15 * t + rng.uniform(0, 6.3))
    return out * envelope * np.linspace(1.2, 0.7, t.size)


def _demo_signals(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, list[int], list[str], list[str]]]:
    """name -> (signal mV (n,), annotation samples, symbols, aux notes), generated in a fixed order from ``rng``."""
    n = int(_DEMO_DURATION_S * DEMO_FS)
    t = np.arange(n) / DEMO_FS
    templates = {"N": _W_NORMAL, "A": _W_ATRIAL, "V": _W_PVC}
    out = {}

    beats = _demo_rhythm(rng, 0.0, _DEMO_DURATION_S, 0.83, {5: "V", 12: "V", 17: "A", 22: "V", 28: "A", 31: "V"})
    sig = _demo_noise(t, rng) + sum(_demo_beat(t, bt, templates[s]) for bt, s in beats)
    out["demo_pvc"] = (sig, [int(round(bt * DEMO_FS)) for bt, _ in beats], [s for _, s in beats], [""] * len(beats))

    beats = _demo_rhythm(rng, 0.0, _DEMO_DURATION_S, 0.90, {9: "V", 24: "V"})
    beats = [(bt, "L" if s == "N" else s) for bt, s in beats]
    sig = _demo_noise(t, rng) + sum(_demo_beat(t, bt, _W_LBBB if s == "L" else _W_LBBB_PVC) for bt, s in beats)
    out["demo_lbbb"] = (sig, [int(round(bt * DEMO_FS)) for bt, _ in beats], [s for _, s in beats], [""] * len(beats))

    vf_on, vf_off = 10.0, 22.0
    pre = _demo_rhythm(rng, 0.0, vf_on, 0.75, {})
    post = _demo_rhythm(rng, vf_off + 0.3, _DEMO_DURATION_S, 0.95, {})
    sig = _demo_noise(t, rng) + sum(_demo_beat(t, bt, _W_NORMAL) for bt, _ in pre + post)
    in_vf = (t >= vf_on) & (t < vf_off)
    taper = np.clip(np.minimum(t - vf_on, vf_off - t) / 0.2, 0, 1)  # 0.2 s fade in/out
    sig = sig + np.where(in_vf, _demo_vf(t, rng) * taper, 0.0)
    events = [(0.0, "+", "(N")] + [(bt, s, "") for bt, s in pre] + [(vf_on, "+", "(VF"), (vf_off, "+", "(N")]
    events += [(bt, s, "") for bt, s in post]
    events.sort(key=lambda e: e[0])
    out["demo_vf"] = (sig, [int(round(e[0] * DEMO_FS)) for e in events], [e[1] for e in events],
                      [e[2] for e in events])
    return out


__all__ = [
    "CLEAN_METHODS",
    "DEFAULT_BEAT_SYMBOLS",
    "DEMO_RECORD_NAMES",
    "DEFAULT_RHYTHM_CLASSES",
    "Annotations",
    "Record",
    "Segment",
    "SegmentConfig",
    "clean",
    "demo_signals_dir",
    "detect_rpeaks",
    "ensure_demo_records",
    "extract_segments",
    "pick_lead",
    "read_csv_signal",
    "read_record",
    "resample",
    "resample_index",
    "rhythm_episodes",
    "segments_array",
    "segments_frame",
    "write_csv_signal",
    "write_demo_records",
]
