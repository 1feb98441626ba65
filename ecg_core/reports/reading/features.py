"""Report features for the measurement model: one flat ``{name: float}`` per report, from the digitised leads
(:mod:`.digitize`) and their measurements (:mod:`.measure`), NaN where a value could not be measured.

The beats are the measurements' own (R peaks, QRS onset, J point and T offset of every beat, found on the rhythm
strip by neurokit2's delineation); every lead is measured on the beats inside the window it is shown, each beat
against its own PR baseline (the 30 ms before QRS onset), and the lead's value is the median over its beats.

Names are stable (:func:`feature_names`) and say which leads they speak about (:func:`feature_leads`):

* per lead ``<kind>_<lead>`` with kind in :data:`LEAD_KINDS`: ST deviation at J+0/40/60/80 ms (mm), ST slope
  (J+80 - J+40, mm), R and S amplitude, Q depth (mV) and duration (ms), pathological Q (0/1), T amplitude (signed
  extreme between J+80 and T offset, mV), QRS net amplitude, ST-segment spread over beats, and the lead's quality;
* territory ``terr_<territory>_<kind>``: mean ST, count of elevated / depressed leads, pathological Q count;
* global: rate, RR variation and range, PR, QRS, QT, QTc, axis (as sin/cos), R progression V1-V6, counts of leads
  with ST elevation / depression / T inversion, STEMI-like criteria flags (contiguous elevation, reciprocal
  depression), quality summary.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ecg_core.core.labels import LEADS, TERRITORIES
from ecg_core.reports.reading.measure import GLOBAL_KEYS, Measurements

FEATURES_VERSION = "1.0"
LEAD_KINDS: tuple[str, ...] = ("st0", "st40", "st60", "st80", "stslope", "stsd", "r", "s", "qdepth", "qms", "qpath",
                               "t", "net", "quality")
TERR_KINDS: tuple[str, ...] = ("st", "nelev", "ndep", "nq")
GLOBAL_FEATURES: tuple[str, ...] = (
    *GLOBAL_KEYS, "axis_sin", "axis_cos", "rr_range", "n_beats", "r_prog_slope", "rv1_sv1_ratio", "transition",
    "n_st_elev", "n_st_dep", "n_t_inv", "max_st", "min_st", "ste_run", "ste_terr_max", "recip_sum", "max_st0", "crit_ste", "crit_ste_recip", "crit_q",
    "crit_irregular", "quality_mean", "quality_min", "n_leads_pass", "rhythm_ok")


def feature_names() -> list[str]:
    """Every feature name, in a fixed order (the columns of the model's input)."""
    out = [f"{k}_{lead}" for lead in LEADS for k in LEAD_KINDS]
    out += [f"terr_{t}_{k}" for t in TERRITORIES for k in TERR_KINDS]
    return out + list(GLOBAL_FEATURES)


def feature_leads(name: str) -> tuple[str, ...]:
    """The leads a feature speaks about: its lead, its territory's leads, or () for a global feature."""
    if name.startswith("terr_"):
        return tuple(TERRITORIES.get(name.split("_")[1], ()))
    lead = name.rsplit("_", 1)[-1]
    return (lead,) if lead in LEADS and name.split("_", 1)[0] in LEAD_KINDS else ()


def report_leads(name: str, f: dict[str, float]) -> tuple[str, ...]:
    """The leads a feature speaks about on this report: :func:`feature_leads`, and for a summary feature the leads
    that made its value (the elevated leads for ``n_st_elev``, the lead of ``max_st``, the leads with inverted T for
    ``n_t_inv``...); () for a truly global one (rate, intervals, quality)."""
    from ecg_core.reports.reading.criteria import RECIPROCAL

    fixed = feature_leads(name)
    if fixed:
        return fixed
    st = {lead: f.get(f"st60_{lead}", math.nan) for lead in LEADS if lead != "aVR"}
    st = {k: v for k, v in st.items() if np.isfinite(v)}
    elev = tuple(k for k, v in st.items() if v >= (1.5 if k in ("V2", "V3") else 1.0))
    dep = tuple(k for k, v in st.items() if v <= -0.5)
    if name in ("n_st_elev", "crit_ste", "ste_run") and elev:
        return elev
    if name in ("n_st_dep",) and dep:
        return dep
    if name == "crit_ste_recip" and elev:
        return elev + dep
    if name in ("max_st", "min_st") and st:
        return ((max if name == "max_st" else min)(st, key=st.get),)
    if name == "max_st0":
        s0 = {lead: f.get(f"st0_{lead}", math.nan) for lead in LEADS if lead != "aVR"}
        s0 = {k: v for k, v in s0.items() if np.isfinite(v)}
        return (max(s0, key=s0.get),) if s0 else ()
    if name in ("ste_terr_max", "recip_sum") and st:
        sums = {t: sum(max(0.0, st.get(lead, 0.0)) for lead in m) for t, m in TERRITORIES.items()}
        top = max(sums, key=sums.get)
        return tuple(TERRITORIES[top]) if name == "ste_terr_max" else tuple(RECIPROCAL.get(top, ()))
    if name == "n_t_inv":
        return tuple(k for k in LEADS if k not in ("aVR", "V1", "III") and f.get(f"t_{k}", 0.0) < -0.05)
    if name == "crit_q":
        return tuple(k for k in LEADS if f.get(f"qpath_{k}", 0.0) == 1.0)
    if name in ("r_prog_slope", "transition"):
        return ("V1", "V2", "V3", "V4", "V5", "V6")
    if name == "rv1_sv1_ratio":
        return ("V1",)
    if name in ("axis_deg", "axis_sin", "axis_cos"):
        return ("I", "aVF")
    return ()


def _beat_values(x: np.ndarray, fs: float, q_on: np.ndarray, j: np.ndarray, t_off: np.ndarray) -> dict[str, float]:
    ms = fs / 1000.0
    rows: dict[str, list[float]] = {k: [] for k in ("st0", "st40", "st60", "st80", "r", "s", "t", "net")}
    n = len(x)
    for a, b, c in zip(q_on, j, t_off):
        if not (np.isfinite(a) and np.isfinite(b)) or b <= a:
            continue
        a, b = int(a), int(b)
        lo, hi = a - int(35 * ms), b + int(90 * ms)
        if lo < 0 or hi >= n or not np.isfinite(x[lo:hi]).all():
            continue
        base = float(np.median(x[a - int(30 * ms): a - int(5 * ms) + 1]))
        for off in (0, 40, 60, 80):
            k = b + int(off * ms)
            rows[f"st{off}"].append(float(np.mean(x[k - 2: k + 3]) - base) * 10.0)
        qrs = x[a: b + 1] - base
        rows["r"].append(max(0.0, float(qrs.max())))
        rows["s"].append(min(0.0, float(qrs.min())))
        rows["net"].append(float(qrs.max() + qrs.min()))
        k80 = b + int(80 * ms)
        end = int(c) if np.isfinite(c) and k80 < int(c) < n else min(n, b + int(300 * ms))
        t = x[k80:end] - base
        t = t[np.isfinite(t)]
        if len(t):
            rows["t"].append(float(t[np.argmax(np.abs(t))]))
    out = {k: (float(np.median(v)) if v else math.nan) for k, v in rows.items()}
    out["stslope"] = out["st80"] - out["st40"]
    out["stsd"] = float(np.std(rows["st60"])) if len(rows["st60"]) >= 2 else math.nan
    return out


def report_features(dig: Any, meas: Measurements | None = None) -> dict[str, float]:
    """The features of one digitised report (a :class:`~ecg_core.reports.reading.digitize.Digitized` or any object
    with ``signals``, ``fs``, ``quality`` and ``rhythm``); ``meas``: its :func:`~.measure.measure` (computed when
    not given). Never raises for a report that cannot be read: its values are NaN."""
    from ecg_core.reports.reading.criteria import evaluate
    from ecg_core.reports.reading.measure import measure

    m = meas if meas is not None else measure(dig)
    f: dict[str, float] = dict.fromkeys(feature_names(), math.nan)
    fs = float(dig.fs)
    quality = dict(getattr(dig, "quality", {}) or {})
    beats = m.beats or {}
    q_on = np.asarray(beats.get("qrs_on", []), dtype=np.float64)
    j = np.asarray(beats.get("j", []), dtype=np.float64)
    t_off = np.asarray(beats.get("t_off", []), dtype=np.float64)
    sig = np.asarray(dig.signals, dtype=np.float64)
    for i, lead in enumerate(LEADS):
        f[f"quality_{lead}"] = float(quality.get(lead, 0.0))
        lm = m.leads.get(lead)
        if lm is not None and lm.n_beats:
            f[f"qdepth_{lead}"], f[f"qms_{lead}"] = lm.q_mv, lm.q_ms
            f[f"qpath_{lead}"] = float(lm.q_pathological)
        if len(q_on) and i < sig.shape[0]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                for k, v in _beat_values(sig[i], fs, q_on, j, t_off).items():
                    f[f"{k}_{lead}"] = v
        st = f[f"st60_{lead}"]
        if np.isfinite(st) and abs(st) > 10.0:  # a tracing error, as in measure
            for k in ("st0", "st40", "st60", "st80", "stslope"):
                f[f"{k}_{lead}"] = math.nan
    for k in GLOBAL_KEYS:
        f[k] = float(m.values.get(k, math.nan))
    ax = f["axis_deg"]
    f["axis_sin"], f["axis_cos"] = (math.sin(math.radians(ax)), math.cos(math.radians(ax))) if np.isfinite(ax) \
        else (math.nan, math.nan)
    r = np.asarray(beats.get("r", []), dtype=np.float64)
    f["n_beats"] = float(len(r))
    if len(r) >= 3:
        rr = np.diff(r) / fs
        f["rr_range"] = float((rr.max() - rr.min()) / rr.mean())
    _summaries(f)
    findings = {x.key: x for x in evaluate(m)}
    f["crit_ste"] = float("st_elevation" in findings)
    f["crit_ste_recip"] = float("st_elevation" in findings and "reciprocal" in findings["st_elevation"].text)
    f["crit_q"] = float("pathological_q" in findings)
    f["crit_irregular"] = float("irregular_rr" in findings)
    qs = [float(quality.get(lead, 0.0)) for lead in LEADS]
    f["quality_mean"], f["quality_min"] = float(np.mean(qs)), float(np.min(qs))
    f["n_leads_pass"] = float(sum(q >= 0.7 for q in qs))
    f["rhythm_ok"] = float(np.isfinite(np.asarray(getattr(dig, "rhythm", []), dtype=np.float64)).mean() > 0.9) \
        if np.size(getattr(dig, "rhythm", [])) else 0.0
    return f


def _summaries(f: dict[str, float]) -> None:
    """Territory, R-progression and count features from the per-lead values (in place)."""
    st = {lead: f[f"st60_{lead}"] for lead in LEADS if np.isfinite(f[f"st60_{lead}"])}
    elev = {lead for lead, v in st.items() if v >= (1.5 if lead in ("V2", "V3") else 1.0)}
    dep = {lead for lead, v in st.items() if v <= -0.5 and lead != "aVR"}
    for t, members in TERRITORIES.items():
        vals = [st[lead] for lead in members if lead in st]
        f[f"terr_{t}_st"] = float(np.mean(vals)) if vals else math.nan
        f[f"terr_{t}_nelev"] = float(len(elev & set(members)))
        f[f"terr_{t}_ndep"] = float(len(dep & set(members)))
        f[f"terr_{t}_nq"] = float(sum(f[f"qpath_{lead}"] == 1.0 for lead in members))
    f["n_st_elev"], f["n_st_dep"] = float(len(elev)), float(len(dep))
    f["n_t_inv"] = float(sum(np.isfinite(f[f"t_{lead}"]) and f[f"t_{lead}"] < -0.05
                             for lead in LEADS if lead not in ("aVR", "V1", "III")))
    if st:
        f["max_st"] = max(v for lead, v in st.items() if lead != "aVR") if len(st) > 1 or "aVR" not in st \
            else math.nan
        f["min_st"] = min(v for lead, v in st.items() if lead != "aVR") if len(st) > 1 or "aVR" not in st \
            else math.nan
    run = best = 0  # the longest run of elevated leads along a contiguous chain
    for chain in (("aVL", "I", "II", "aVF", "III"), ("V1", "V2", "V3", "V4", "V5", "V6")):
        run = 0
        for lead in chain:
            run = run + 1 if lead in elev else 0
            best = max(best, run)
    f["ste_run"] = float(best)
    sums = {t: sum(max(0.0, st.get(lead, 0.0)) for lead in members) for t, members in TERRITORIES.items()}
    top = max(sums, key=sums.get)
    f["ste_terr_max"] = float(sums[top])
    from ecg_core.reports.reading.criteria import RECIPROCAL

    f["recip_sum"] = float(sum(min(0.0, st.get(lead, 0.0)) for lead in RECIPROCAL.get(top, ())))
    st0 = [f[f"st0_{lead}"] for lead in LEADS if lead != "aVR" and np.isfinite(f[f"st0_{lead}"])]
    f["max_st0"] = float(max(st0)) if st0 else math.nan
    rv = [f[f"r_V{k}"] for k in range(1, 7)]
    ok = [(k, v) for k, v in enumerate(rv) if np.isfinite(v)]
    if len(ok) >= 3:
        f["r_prog_slope"] = float(np.polyfit([k for k, _ in ok], [v for _, v in ok], 1)[0])
    sv1 = f["s_V1"]
    if np.isfinite(sv1) and np.isfinite(f["r_V1"]):
        f["rv1_sv1_ratio"] = float(f["r_V1"] / (abs(sv1) + 0.05))
    for k in range(1, 7):  # the first precordial lead whose net QRS is positive
        if np.isfinite(f[f"net_V{k}"]) and f[f"net_V{k}"] > 0:
            f["transition"] = float(k)
            break


class CachedSignals:
    """The parts of a ``Digitized`` that :func:`report_features` reads, from arrays (e.g. a cache file)."""

    def __init__(self, signals: np.ndarray, rhythm: np.ndarray, fs: float, quality: dict[str, float],
                 strips: dict[str, np.ndarray] | None = None) -> None:
        self.signals, self.rhythm, self.fs, self.quality = signals, rhythm, fs, quality
        self.strips = strips or {}
