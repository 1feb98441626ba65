"""Synthetic demo records (generated on first use; never shipped as files).

:func:`ensure_demo_records` writes three SYNTHETIC WFDB records (PVCs + APBs, LBBB, VF episode) on first use into
``<app home>/demo-signals``, so the Arrhythmia page and the tests work without the MIT-BIH files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from ecg_core.core.atomic import atomic_write_json, atomic_write_text
from ecg_core.core.errors import SignalLoadError

#: Names of the synthetic demo records written by :func:`ensure_demo_records`.
DEMO_RECORD_NAMES: tuple[str, ...] = ("demo_pvc", "demo_lbbb", "demo_vf")
DEMO_FS = 360  # Hz, as MIT-BIH (so the demo exercises resampling to the 250 Hz segment rate)
_DEMO_DURATION_S = 30.0
_DEMO_SEED = 20240601
_DEMO_VERSION = 1  # bump when the generator changes: existing folders are then regenerated
_DEMO_STAMP = "demo_signals.json"
_DEMO_COMMENT = "SYNTHETIC demo record written by ecg_core.signals.demo.ensure_demo_records (not patient data)"

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
    (without extension, ready for :func:`~ecg_core.signals.records.read_record`), in :data:`DEMO_RECORD_NAMES` order.

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
        atomic_write_json(dest / _DEMO_STAMP, stamp)
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
    atomic_write_text(out / "RECORDS", "\n".join(DEMO_RECORD_NAMES) + "\n")
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
    "DEMO_FS",
    "DEMO_RECORD_NAMES",
    "demo_signals_dir",
    "ensure_demo_records",
    "write_demo_records",
]
