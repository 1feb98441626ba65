"""Files of digitised signals: WFDB records (PhysioNet convention: 16-bit, units mV, standard lead names) and CSV,
every file written atomically (:mod:`ecg_core.core.atomic`); and reading a 12-lead WFDB record back."""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ecg_core.core.atomic import atomic_write_bytes, atomic_write_to_path
from ecg_core.core.errors import ConfigError, EcgCoreError
from ecg_core.core.labels import LEADS
from ecg_core.reports.reading.digitize import Digitized

# lead-name spellings seen in PhysioNet headers -> the standard names
_ALIASES = {name.lower(): name for name in LEADS} | {"avr": "aVR", "avl": "aVL", "avf": "aVF", "mlii": "II"}


def write_wfdb(signals: np.ndarray, fs: float, out_dir: str | Path, record_name: str, *,
               comments: list[str] | None = None) -> list[Path]:
    """Write a 12-lead record ``<out_dir>/<record_name>.hea/.dat`` (rows in LEADS order, mV, NaN allowed: stored
    as the format's missing value). wfdb writes into a temporary folder; each file then moves into place
    atomically. Returns the two paths."""
    import wfdb

    sig = np.asarray(signals, dtype=np.float64)
    if sig.ndim != 2 or sig.shape[0] != len(LEADS):
        raise ConfigError(f"signals must have shape (12, n) in LEADS order; received {sig.shape}")
    if not record_name or any(c in record_name for c in "/\\ "):
        raise ConfigError(f"record_name must be a file stem without spaces or slashes; received {record_name!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = sig.T.copy()
    finite = np.isfinite(p)
    if not finite.any():
        raise EcgCoreError(f"{record_name}: no lead could be read, nothing to write")
    # adc gain: the largest that keeps every lead inside int16 (at least 200 adu/mV, PhysioNet's usual 1000)
    peak = float(np.nanmax(np.abs(p))) if finite.any() else 1.0
    gain = float(min(1000.0, max(200.0, np.floor(30000.0 / max(peak, 1e-3)))))
    tmp = Path(tempfile.mkdtemp(prefix=f".{record_name}.wfdb-", dir=out))
    try:
        wfdb.wrsamp(record_name, fs=float(fs), units=["mV"] * len(LEADS), sig_name=list(LEADS), p_signal=p,
                    fmt=["16"] * len(LEADS), adc_gain=[gain] * len(LEADS), baseline=[0] * len(LEADS),
                    comments=comments or [], write_dir=str(tmp))
        paths = []
        for ext in (".dat", ".hea"):  # header last: a reader never finds a header without its data
            src = tmp / f"{record_name}{ext}"
            paths.append(atomic_write_to_path(out / src.name, lambda t, s=src: shutil.copyfile(s, t)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths[::-1]


def write_digitized(dig: Digitized, out_dir: str | Path, record_name: str) -> list[Path]:
    """:func:`write_wfdb` of a :class:`Digitized`, its calibration and per-lead quality in the header comments."""
    comments = [f"digitised from a report image; px/mm {dig.px_per_mm:.3f}, {dig.paper_speed_mm_s:g} mm/s, "
                f"{dig.gain_mm_mv:g} mm/mV, rhythm strip lead {dig.rhythm_lead or 'unknown'}",
                "quality " + " ".join(f"{k}={v:.2f}" for k, v in dig.quality.items())]
    return write_wfdb(dig.signals, dig.fs, out_dir, record_name, comments=comments)


def csv_bytes(signals: np.ndarray, fs: float) -> bytes:
    """CSV text: ``time_s`` and one column per lead (mV, empty where missing)."""
    import pandas as pd

    sig = np.asarray(signals, dtype=np.float64)
    df = pd.DataFrame(sig.T, columns=list(LEADS))
    df.insert(0, "time_s", np.round(np.arange(sig.shape[1]) / float(fs), 6))
    return df.to_csv(index=False, float_format="%.4f").encode()


def rhythm_strip_signal(dig: Digitized) -> tuple[np.ndarray, str]:
    """The rhythm strip as one continuous signal (mV at ``dig.fs``): NaN ends cut, inner gaps bridged linearly, with
    the name of its lead ("rhythm" when unknown). Raises :class:`EcgCoreError` when less than 2 s could be read."""
    x = np.asarray(dig.rhythm, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(x))
    if ok.size < 2 * dig.fs:
        raise EcgCoreError("no rhythm strip of at least 2 s could be read off this report")
    x = x[ok[0] : ok[-1] + 1]
    idx = np.arange(len(x))
    good = np.isfinite(x)
    return np.interp(idx, idx[good], x[good]), dig.rhythm_lead or "rhythm"


def write_csv(signals: np.ndarray, fs: float, path: str | Path) -> Path:
    return atomic_write_bytes(path, csv_bytes(signals, fs))


def wfdb_zip_bytes(dig: Digitized, record_name: str) -> bytes:
    """The record's .hea and .dat in a zip (for a download button)."""
    with tempfile.TemporaryDirectory() as d:
        paths = write_digitized(dig, d, record_name)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for p in paths:
                z.write(p, p.name)
    return buf.getvalue()


def read_12lead(record: str | Path) -> tuple[np.ndarray, float]:
    """A 12-lead WFDB record (path with or without extension) -> ((12, n) mV in LEADS order, fs). Leads are
    matched by name (case-insensitive; MLII counts as II); a record without all 12 raises."""
    import wfdb

    base = Path(record)
    if base.suffix in (".hea", ".dat", ".mat"):
        base = base.with_suffix("")
    try:
        rec = wfdb.rdrecord(str(base), physical=True)
    except Exception as e:  # wfdb raises many types for a bad record
        raise EcgCoreError(f"cannot read WFDB record {str(base)!r}: {e}") from e
    names = [_ALIASES.get(str(n).strip().lower()) for n in rec.sig_name]
    missing = [lead for lead in LEADS if lead not in names]
    if missing:
        raise EcgCoreError(f"record {base.name!r} lacks the lead(s) {', '.join(missing)}; it has "
                           f"{', '.join(rec.sig_name)}")
    units = [str(u).lower() for u in rec.units]
    out = np.empty((len(LEADS), rec.p_signal.shape[0]))
    for i, lead in enumerate(LEADS):
        j = names.index(lead)
        scale = 0.001 if units[j] in ("uv", "µv") else 1.0
        out[i] = rec.p_signal[:, j] * scale
    return out, float(rec.fs)
