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
  depression), quality summary;
* acute MI (1.1, :data:`MI_FEATURES`): at J+40/60/80 the ST elevation two contiguous leads share, the reciprocal
  depression opposite them and both together, the largest territory elevation; the 2nd / 3rd largest ST, total
  elevation / depression, ST over QRS amplitude, hyperacute T, the share of beats with the elevation.

A model reads a named subset (:func:`feature_set`); its ``measure.json`` lists the columns it was fitted on.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ecg_core.core.labels import LEADS, TERRITORIES
from ecg_core.reports.reading.measure import GLOBAL_KEYS, Measurements

FEATURES_VERSION = "1.1"
LEAD_KINDS: tuple[str, ...] = ("st0", "st40", "st60", "st80", "stslope", "stsd", "r", "s", "qdepth", "qms", "qpath",
                               "t", "net", "quality")
TERR_KINDS: tuple[str, ...] = ("st", "nelev", "ndep", "nq")
GLOBAL_FEATURES: tuple[str, ...] = (
    *GLOBAL_KEYS, "axis_sin", "axis_cos", "rr_range", "n_beats", "r_prog_slope", "rv1_sv1_ratio", "transition",
    "n_st_elev", "n_st_dep", "n_t_inv", "max_st", "min_st", "ste_run", "ste_terr_max", "recip_sum", "max_st0", "crit_ste", "crit_ste_recip", "crit_q",
    "crit_irregular", "quality_mean", "quality_min", "n_leads_pass", "rhythm_ok")
# acute-MI summaries (1.1): at J+40/60/80 the elevation shared by two contiguous leads (``ste2``), the largest
# territory elevation (``terrste``), the reciprocal depression opposite the best pair (``recip``) and both together
# (``stemi``); the 2nd / 3rd largest ST, total elevation / depression, ST over QRS amplitude, hyperacute T (largest
# T, shared by two contiguous leads, over QRS), and how consistent the elevation of the best pair is over beats
MI_FEATURES: tuple[str, ...] = (
    *(f"{k}_{off}" for off in (40, 60, 80) for k in ("ste2", "terrste", "recip", "stemi")),
    "st_2nd", "st_3rd", "st_pos_sum", "st_neg_sum", "ste_qrs_max", "ste2_qrs", "t_max", "t2_max", "t_qrs_max",
    "ste_consist")
CONTIGUOUS_PAIRS: tuple[tuple[str, str], ...] = (
    ("aVL", "I"), ("I", "II"), ("II", "aVF"), ("aVF", "III"), ("II", "III"), ("I", "V6"), ("V5", "V6"),
    ("V4", "V5"), ("V3", "V4"), ("V2", "V3"), ("V1", "V2"))


def feature_names() -> list[str]:
    """Every feature name, in a fixed order (the columns of the model's input)."""
    out = [f"{k}_{lead}" for lead in LEADS for k in LEAD_KINDS]
    out += [f"terr_{t}_{k}" for t in TERRITORIES for k in TERR_KINDS]
    return out + list(GLOBAL_FEATURES) + list(MI_FEATURES)


_ST_GLOBAL = ("hr_bpm", "rr_cv", "qrs_ms", "max_st", "min_st", "n_st_elev", "n_st_dep", "crit_ste")
_QRS_GLOBAL = ("crit_q", "n_t_inv", "r_prog_slope", "rv1_sv1_ratio", "transition")
FEATURE_SETS: tuple[str, ...] = ("all", "v1.0", "st", "st+mi", "st+mi+q+t", "st+mi+qrs", "no-quality")


def feature_set(name: str = "all") -> list[str]:
    """A named subset of :func:`feature_names` (in its order), the columns a model reads: ``all``; ``v1.0`` (the
    215 features of version 1.0); ``st`` (ST per lead, territories, rate, QRS width, ST counts); ``st+mi`` (plus
    :data:`MI_FEATURES`); ``st+mi+q+t`` (plus Q and T per lead, Q and T counts); ``st+mi+qrs`` (plus R, S and net
    QRS per lead and R progression); ``no-quality`` (all but the reading-quality and ST-spread features)."""
    names = feature_names()
    kind = {n: n.split("_")[0] for n in names}
    st = [n for n in names if kind[n] in ("st0", "st40", "st60", "st80", "stslope", "terr") or n in _ST_GLOBAL]
    sets = {
        "all": names, "v1.0": [n for n in names if n not in MI_FEATURES], "st": st,
        "st+mi": st + list(MI_FEATURES),
        "st+mi+q+t": [n for n in names if n in st or n in MI_FEATURES or kind[n] in ("qdepth", "qms", "qpath", "t")
                      or n in _QRS_GLOBAL[:2]],
        "st+mi+qrs": [n for n in names if n in st or n in MI_FEATURES or n in _QRS_GLOBAL
                      or kind[n] in ("qdepth", "qms", "qpath", "t", "r", "s", "net")],
        "no-quality": [n for n in names if kind[n] not in ("quality", "stsd")],
    }
    if name not in sets:
        from ecg_core.core.errors import ConfigError

        raise ConfigError(f"feature set must be one of {', '.join(FEATURE_SETS)}; received {name!r}")
    out = sets[name]
    return [n for n in names if n in set(out)]


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
    if name in MI_FEATURES:
        return _mi_leads(name, f)
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
    out["_st60"] = rows["st60"]  # per beat (for the consistency of an elevation; not a feature)
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
    per_beat: dict[str, list[float]] = {}
    for i, lead in enumerate(LEADS):
        f[f"quality_{lead}"] = float(quality.get(lead, 0.0))
        lm = m.leads.get(lead)
        if lm is not None and lm.n_beats:
            f[f"qdepth_{lead}"], f[f"qms_{lead}"] = lm.q_mv, lm.q_ms
            f[f"qpath_{lead}"] = float(lm.q_pathological)
        if len(q_on) and i < sig.shape[0]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                vals = _beat_values(sig[i], fs, q_on, j, t_off)
                per_beat[lead] = vals.pop("_st60")
                for k, v in vals.items():
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
    _mi_summaries(f, per_beat)
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


def _elev_mm(lead: str) -> float:
    return 1.5 if lead in ("V2", "V3") else 1.0


def _st(f: dict[str, float], off: int) -> dict[str, float]:
    vals = {lead: f[f"st{off}_{lead}"] for lead in LEADS if lead != "aVR"}
    return {k: v for k, v in vals.items() if np.isfinite(v)}


def _recip_leads(pair: tuple[str, str]) -> tuple[str, ...]:
    inferior = set(TERRITORIES["inferior"])
    leads = ("I", "aVL") if set(pair) <= inferior else ("II", "III", "aVF")
    return tuple(lead for lead in leads if lead not in pair)


def _best_pair(st: dict[str, float]) -> tuple[tuple[str, str] | None, float]:
    best, arg = -math.inf, None
    for a, b in CONTIGUOUS_PAIRS:
        if a in st and b in st and min(st[a], st[b]) > best:
            best, arg = min(st[a], st[b]), (a, b)
    return arg, best


def _mi_summaries(f: dict[str, float], per_beat: dict[str, list[float]]) -> None:
    """The acute-MI summaries of :data:`MI_FEATURES` (in place)."""
    for off in (40, 60, 80):
        st = _st(f, off)
        pair, v = _best_pair(st)
        if pair is None:
            continue
        f[f"ste2_{off}"] = float(v)
        f[f"terrste_{off}"] = float(max(np.mean([max(0.0, st.get(x, 0.0)) for x in m])
                                        for m in TERRITORIES.values()))
        rec = [st[x] for x in _recip_leads(pair) if x in st]
        f[f"recip_{off}"] = float(min(0.0, min(rec))) if rec else 0.0
        f[f"stemi_{off}"] = float(v - f[f"recip_{off}"])
    st = _st(f, 60)
    if st:
        top = sorted(st.values(), reverse=True)
        f["st_2nd"] = float(top[1]) if len(top) > 1 else math.nan
        f["st_3rd"] = float(top[2]) if len(top) > 2 else math.nan
        f["st_pos_sum"] = float(sum(max(0.0, v) for v in top))
        f["st_neg_sum"] = float(sum(min(0.0, v) for v in top))
    amp = {lead: f[f"r_{lead}"] - f[f"s_{lead}"] for lead in LEADS if lead != "aVR"}
    ratio = {k: 0.1 * v / (amp[k] + 0.2) for k, v in st.items() if np.isfinite(amp.get(k, math.nan))}
    if ratio:
        f["ste_qrs_max"] = float(max(ratio.values()))
        f["ste2_qrs"] = float(_best_pair(ratio)[1]) if _best_pair(ratio)[0] else math.nan
    t = {lead: f[f"t_{lead}"] for lead in LEADS if lead != "aVR" and np.isfinite(f[f"t_{lead}"])}
    if t:
        f["t_max"] = float(max(t.values()))
        pair, v = _best_pair(t)
        f["t2_max"] = float(v) if pair else math.nan
        tq = [v / (amp[k] + 0.2) for k, v in t.items() if np.isfinite(amp.get(k, math.nan))]
        f["t_qrs_max"] = float(max(tq)) if tq else math.nan
    frac = {lead: float(np.mean(np.asarray(v) >= _elev_mm(lead))) for lead, v in per_beat.items()
            if v and lead != "aVR"}
    pair, v = _best_pair(frac)
    f["ste_consist"] = float(v) if pair else math.nan


def _mi_leads(name: str, f: dict[str, float]) -> tuple[str, ...]:
    """The leads behind an acute-MI summary on this report (for the per-lead explanation)."""
    kind, _, off = name.rpartition("_")
    if off in ("40", "60", "80"):
        pair = _best_pair(_st(f, int(off)))[0]
        if pair is None:
            return ()
        return _recip_leads(pair) if kind == "recip" else pair + (_recip_leads(pair) if kind == "stemi" else ())
    if name in ("st_2nd", "st_3rd", "st_pos_sum", "st_neg_sum", "ste_qrs_max", "ste2_qrs", "ste_consist"):
        st = _st(f, 60)
        if name == "st_neg_sum":
            return tuple(k for k, v in st.items() if v < 0)
        if name == "st_pos_sum":
            return tuple(k for k, v in st.items() if v > 0)
        top = sorted(st, key=st.get, reverse=True)
        return tuple(top[:3]) if name != "ste2_qrs" and name != "ste_consist" else (_best_pair(st)[0] or ())
    t = {lead: f.get(f"t_{lead}", math.nan) for lead in LEADS if lead != "aVR"}
    t = {k: v for k, v in t.items() if np.isfinite(v)}
    if not t:
        return ()
    return (_best_pair(t)[0] or ()) if name == "t2_max" else (max(t, key=t.get),)


class CachedSignals:
    """The parts of a ``Digitized`` that :func:`report_features` reads, from arrays (e.g. a cache file)."""

    def __init__(self, signals: np.ndarray, rhythm: np.ndarray, fs: float, quality: dict[str, float],
                 strips: dict[str, np.ndarray] | None = None) -> None:
        self.signals, self.rhythm, self.fs, self.quality = signals, rhythm, fs, quality
        self.strips = strips or {}
