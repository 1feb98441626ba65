"""Write the synthetic demo ECG records of ``assets/demo_signals/`` (WFDB format, single lead, 360 Hz, mV).

The records are SYNTHETIC (a sum-of-Gaussians beat model plus baseline wander and noise), not patient data. They
exist so that the Arrhythmia page and the tests work on a fresh clone without the MIT-BIH files:

* ``demo_pvc``  — 30 s sinus rhythm (~72 bpm) with premature ventricular contractions (wide, early, no P wave,
  discordant T, compensatory pause) and two atrial premature beats (early, narrow, different P wave).
* ``demo_lbbb`` — 30 s of left-bundle-branch-block-like beats (wide notched R, no S, discordant T) with two PVCs.
* ``demo_vf``   — 30 s: 10 s sinus rhythm, 12 s ventricular fibrillation (chaotic 4-7 Hz oscillation of varying
  amplitude), then 8 s sinus rhythm; rhythm annotations ``(N`` / ``(VF`` / ``(N`` (symbol ``+``).

Beat annotations use MIT-BIH symbols (``N``, ``V``, ``A``, ``L``) at the R peak. Reproducible: fixed seed, no dates
in the headers. Run from the repository root::

    python scripts/make_demo_signals.py            # writes assets/demo_signals/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import wfdb

FS = 360  # Hz, as MIT-BIH (so the demo exercises resampling to the 250 Hz segment rate)
DURATION_S = 30.0
SEED = 20240601

# Waves as (amplitude mV, centre s relative to the R peak, width s).
NORMAL = [(0.15, -0.20, 0.025), (-0.12, -0.03, 0.010), (1.10, 0.0, 0.011), (-0.25, 0.03, 0.012), (0.30, 0.26, 0.045)]
ATRIAL = [(-0.10, -0.16, 0.020), (-0.12, -0.03, 0.010), (1.05, 0.0, 0.011), (-0.25, 0.03, 0.012), (0.28, 0.25, 0.045)]
PVC = [(-0.35, -0.04, 0.030), (1.50, 0.02, 0.035), (-0.60, 0.30, 0.070)]
LBBB = [(0.12, -0.22, 0.025), (0.75, -0.03, 0.025), (0.80, 0.035, 0.028), (-0.35, 0.32, 0.060)]
LBBB_PVC = [(-1.20, 0.0, 0.040), (0.45, 0.30, 0.070)]


def _beat(t: np.ndarray, r_time: float, waves: list[tuple[float, float, float]]) -> np.ndarray:
    return sum(a * np.exp(-0.5 * ((t - r_time - mu) / sd) ** 2) for a, mu, sd in waves)


def _noise(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    wander = 0.08 * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 6.3)) + 0.04 * np.sin(2 * np.pi * 0.07 * t)
    return wander + 0.012 * rng.standard_normal(t.size)


def _rhythm(
    rng: np.random.Generator, t0: float, t1: float, rr: float, ectopy: dict[int, str]
) -> list[tuple[float, str]]:
    """Beat times and symbols between t0 and t1 s; ``ectopy`` maps beat number -> 'V' (early + pause) or 'A'."""
    beats, t, k = [], t0 + 0.4, 0
    while t < t1 - 0.5:
        sym = ectopy.get(k, "N")
        if sym == "V":
            t_v = t - 0.38 * rr  # early ...
            beats.append((t_v, "V"))
            t = t_v + 1.62 * rr  # ... with a full compensatory pause (sum of the two intervals = 2 RR)
        elif sym == "A":
            t_a = t - 0.30 * rr
            beats.append((t_a, "A"))
            t = t_a + 1.05 * rr  # non-compensatory pause
        else:
            beats.append((t, sym))
            t += rr * (1 + 0.03 * rng.standard_normal())
        k += 1
    return beats


def _vf(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Chaotic 4-7 Hz oscillation with slowly varying amplitude (coarse -> fine VF), mV."""
    out = np.zeros_like(t)
    for _ in range(4):
        f = rng.uniform(4.0, 7.0)
        drift = np.cumsum(rng.standard_normal(t.size)) / FS * 1.5  # random phase drift (Hz*s)
        out += rng.uniform(0.2, 0.45) * np.sin(2 * np.pi * (f * t + drift) + rng.uniform(0, 6.3))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 0.15 * t + rng.uniform(0, 6.3))
    return out * envelope * np.linspace(1.2, 0.7, t.size)


def make_records(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, list[int], list[str], list[str]]]:
    n = int(DURATION_S * FS)
    t = np.arange(n) / FS
    templates = {"N": NORMAL, "A": ATRIAL, "V": PVC}
    records = {}

    beats = _rhythm(rng, 0.0, DURATION_S, 0.83, {5: "V", 12: "V", 17: "A", 22: "V", 28: "A", 31: "V"})
    sig = _noise(t, rng) + sum(_beat(t, bt, templates[s]) for bt, s in beats)
    records["demo_pvc"] = (sig, [int(round(bt * FS)) for bt, _ in beats], [s for _, s in beats], [""] * len(beats))

    beats = _rhythm(rng, 0.0, DURATION_S, 0.90, {9: "V", 24: "V"})
    beats = [(bt, "L" if s == "N" else s) for bt, s in beats]
    sig = _noise(t, rng) + sum(_beat(t, bt, LBBB if s == "L" else LBBB_PVC) for bt, s in beats)
    records["demo_lbbb"] = (sig, [int(round(bt * FS)) for bt, _ in beats], [s for _, s in beats], [""] * len(beats))

    vf_on, vf_off = 10.0, 22.0
    pre = _rhythm(rng, 0.0, vf_on, 0.75, {})
    post = [(bt, s) for bt, s in _rhythm(rng, vf_off + 0.3, DURATION_S, 0.95, {})]
    sig = _noise(t, rng) + sum(_beat(t, bt, NORMAL) for bt, s in pre + post)
    in_vf = (t >= vf_on) & (t < vf_off)
    taper = np.clip(np.minimum(t - vf_on, vf_off - t) / 0.2, 0, 1)  # 0.2 s fade in/out
    sig = sig + np.where(in_vf, _vf(t, rng) * taper, 0.0)
    events = [(0.0, "+", "(N")] + [(bt, s, "") for bt, s in pre] + [(vf_on, "+", "(VF"), (vf_off, "+", "(N")]
    events += [(bt, s, "") for bt, s in post]
    events.sort(key=lambda e: e[0])
    records["demo_vf"] = (
        sig,
        [int(round(e[0] * FS)) for e in events],
        [e[1] for e in events],
        [e[2] for e in events],
    )
    return records


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "assets" / "demo_signals")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    names = []
    for name, (sig, samples, symbols, aux) in make_records(rng).items():
        wfdb.wrsamp(
            name,
            fs=FS,
            units=["mV"],
            sig_name=["MLII"],
            p_signal=sig[:, None],
            fmt=["212"],
            adc_gain=[200.0],
            baseline=[1024],
            comments=["SYNTHETIC demo record written by scripts/make_demo_signals.py (not patient data)"],
            write_dir=str(args.out),
        )
        wfdb.wrann(
            name,
            "atr",
            np.asarray(samples, dtype=np.int64),
            symbol=symbols,
            aux_note=aux,
            fs=FS,
            write_dir=str(args.out),
        )
        names.append(name)
        print(f"{name}: {sig.size / FS:.0f} s, {sum(s != '+' for s in symbols)} beats")
    (args.out / "RECORDS").write_text("\n".join(names) + "\n")


if __name__ == "__main__":
    main()
