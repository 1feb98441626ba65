"""Measurements a cardiologist makes on 12 simultaneous leads, from neurokit2's R peaks and delineation.

The beats are found on the longest lead (the 10 s rhythm strip): ``nk.ecg_clean`` -> ``nk.ecg_peaks`` (a vote of
three detectors, :data:`PEAK_METHODS`) ->
``nk.ecg_delineate(method='prominence')`` (P onset, QRS onset and offset, T offset per beat). Global values are
medians over beats: heart rate (60 / mean RR), RR variation, PR, QRS, QT and QTc (Bazett). Every lead is measured
on the beats inside the time window it is shown, with the same (simultaneous) beat marks: baseline = the PR segment
(the 30 ms before QRS onset), ST deviation at J + 60 ms in mm, R amplitude, Q-wave depth and duration (the first
negative deflection of the QRS; >= 40 ms or >= 25 % of R is pathological, except alone in III, aVL or V1 where
it is a normal variant unless a neighbouring lead of the wall has one too; never in aVR), T polarity. The frontal
axis comes from the net QRS amplitude in I and aVF.

Each value passes a plausibility check (:data:`PLAUSIBLE`); one that fails is NaN with the reason in
``problems`` and shows as "could not measure", never as a number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecg_core.core.labels import LEADS

# global value -> (low, high) accepted; outside is "could not measure"
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "hr_bpm": (20.0, 300.0), "rr_cv": (0.0, 1.0), "pr_ms": (60.0, 400.0), "qrs_ms": (40.0, 250.0),
    "qt_ms": (200.0, 700.0), "qtc_ms": (250.0, 700.0), "axis_deg": (-180.0, 180.0),
}
# normal ranges shown beside the values (adults)
NORMAL: dict[str, tuple[float, float]] = {
    "hr_bpm": (60.0, 100.0), "pr_ms": (120.0, 200.0), "qrs_ms": (70.0, 110.0), "qt_ms": (300.0, 450.0),
    "qtc_ms": (350.0, 460.0), "axis_deg": (-30.0, 90.0), "rr_cv": (0.0, 0.1),
}
GLOBAL_KEYS: tuple[str, ...] = ("hr_bpm", "rr_cv", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "axis_deg")
ST_LIMIT_MM = 10.0  # |ST| beyond this is a tracing error
Q_MIN_MV = 0.05


@dataclass(frozen=True)
class LeadMeasure:
    """One lead: ``st_mm`` (ST deviation at J+60 ms from the PR baseline, mm at 10 mm/mV), ``r_mv``, ``q_mv``
    (depth, >= 0), ``q_ms`` (duration), ``q_pathological``, ``t_polarity`` ('+', '-' or 'flat'), ``n_beats``."""

    st_mm: float = math.nan
    r_mv: float = math.nan
    q_mv: float = math.nan
    q_ms: float = math.nan
    q_pathological: bool = False
    t_polarity: str = ""
    n_beats: int = 0


@dataclass(frozen=True)
class Measurements:
    """Global values (``values``: key of :data:`GLOBAL_KEYS` -> number or NaN), per-lead values, the beat marks
    used (sample indices) and ``problems``: key -> why it could not be measured."""

    values: dict[str, float]
    leads: dict[str, LeadMeasure]
    beats: dict[str, list[int]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    fs: float = 500.0

    def row(self) -> dict[str, Any]:
        """One flat row: the global values, ``st_<lead>_mm``, ``q_<lead>`` (1/0, empty when not measured)."""
        out: dict[str, Any] = {k: self.values.get(k, math.nan) for k in GLOBAL_KEYS}
        for lead in LEADS:
            m = self.leads.get(lead, LeadMeasure())
            out[f"st_{lead}_mm"] = m.st_mm
        for lead in LEADS:
            m = self.leads.get(lead, LeadMeasure())
            out[f"q_{lead}"] = (int(m.q_pathological) if m.n_beats else math.nan)
        return out

    def shown(self, key: str, digits: int = 0) -> str:
        """A global value as text, or 'could not measure (why)'."""
        v = self.values.get(key, math.nan)
        if not np.isfinite(v):
            return f"could not measure ({self.problems.get(key, 'no value')})"
        return f"{v:.{digits}f}"

    def table(self):
        """Per-lead table (pandas): lead, ST (mm), R (mV), Q depth (mV), Q (ms), pathological Q, T."""
        import pandas as pd

        rows = []
        for lead in LEADS:
            m = self.leads.get(lead, LeadMeasure())
            rows.append({"lead": lead, "st_mm": m.st_mm, "r_mv": m.r_mv, "q_mv": m.q_mv, "q_ms": m.q_ms,
                         "q_pathological": m.q_pathological if m.n_beats else None, "t": m.t_polarity,
                         "beats": m.n_beats})
        return pd.DataFrame(rows)


def _check(values: dict[str, float], problems: dict[str, str]) -> None:
    for k, (lo, hi) in PLAUSIBLE.items():
        v = values.get(k, math.nan)
        if np.isfinite(v) and not lo <= v <= hi:
            problems[k] = f"{v:.0f} is outside the plausible {lo:g}-{hi:g}"
            values[k] = math.nan
        elif not np.isfinite(v):
            problems.setdefault(k, "not found on the trace")
            values[k] = math.nan


def _fill(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    if ok.all():
        return x
    idx = np.arange(len(x))
    return np.interp(idx, idx[ok], x[ok])


def _marks(w: Mapping[str, Any], key: str) -> np.ndarray:
    v = np.asarray(w.get(key, []), dtype=np.float64)
    return v


PEAK_METHODS: tuple[str, ...] = ("neurokit", "hamilton2002", "elgendi2010")


def _consensus_peaks(nk: Any, clean: np.ndarray, fs: int) -> np.ndarray:
    """R peaks by vote of three of neurokit2's detectors (:data:`PEAK_METHODS`): a beat where at least two of them
    mark one within 100 ms; when that keeps fewer than 70 % of the median detector's beats, the
    median detector's own. One detector alone misses the small QRS of a strip with tall T waves now and then, or
    counts the T waves."""
    found = []
    for method in PEAK_METHODS:
        try:
            _, info = nk.ecg_peaks(clean, sampling_rate=fs, method=method)
        except Exception:  # a detector that fails on this trace is left out
            continue
        found.append((method, np.asarray(info["ECG_R_Peaks"], dtype=int)))
    if not found:
        raise ValueError("no R-peak detector found beats")
    # a beat is a place where at least two detectors put a peak (within 100 ms: R and R' of a wide QRS)
    tol = 0.1 * fs
    marks = sorted((int(p), k) for k, (_, peaks) in enumerate(found) for p in peaks)
    need = min(2, len(found))
    dev = np.abs(clean - np.median(clean))
    w = int(0.04 * fs)
    out: list[int] = []
    i = 0
    while i < len(marks):
        j = i
        while j + 1 < len(marks) and marks[j + 1][0] - marks[i][0] <= tol:
            j += 1
        group = marks[i : j + 1]
        if len({k for _, k in group}) >= need:
            nk_marks = [p for p, k in group if found[k][0] == "neurokit"]
            if nk_marks:  # neurokit's marks sit on the R wave, which the delineation expects
                out.append(nk_marks[0])
            else:  # another detector's may sit on the slope: the largest deflection within 40 ms
                c = int(np.mean([p for p, _ in group]))
                out.append(max(0, c - w) + int(np.argmax(dev[max(0, c - w) : c + w + 1])))
        i = j + 1
    counts = sorted(len(p) for _, p in found)
    median = counts[len(counts) // 2]
    if len(out) >= 0.7 * median:
        beats = np.array(sorted(set(out)), dtype=int)
        nk_beats = next((p for n, p in found if n == "neurokit"), np.zeros(0, dtype=int))
        return _drop_extra_beats(beats, nk_beats, tol)
    # the detectors disagree on where the beats are (small QRS, tall T): the one with the median count, each of
    # its marks moved to the largest deflection within 40 ms
    peaks = next(p for _, p in found if len(p) == median)
    return np.array(sorted({max(0, p - w) + int(np.argmax(dev[max(0, p - w) : p + w + 1])) for p in peaks}),
                    dtype=int)


def _drop_extra_beats(beats: np.ndarray, trusted: np.ndarray, tol: float) -> np.ndarray:
    """Drop a beat that ``trusted`` (neurokit's) lacks when it splits one ordinary RR into two short ones (both
    < 0.7 x the median RR, together < 1.3 x): two detectors agreeing on a T wave. A premature beat is kept: its
    compensatory pause makes the pair long."""
    if len(beats) < 4:
        return beats
    med = float(np.median(np.diff(beats)))
    keep = np.ones(len(beats), dtype=bool)
    for i in range(1, len(beats) - 1):
        if len(trusted) and np.min(np.abs(trusted - beats[i])) <= tol:
            continue
        a, b = beats[i] - beats[i - 1], beats[i + 1] - beats[i]
        if a < 0.7 * med and b < 0.7 * med and a + b < 1.3 * med:
            keep[i] = False
    return beats[keep]


def measure_signals(signals: np.ndarray, fs: float, *, rhythm: np.ndarray | None = None,
                    gain_mm_mv: float = 10.0) -> Measurements:
    """Measure 12 simultaneous leads ((12, n) mV, NaN where not shown) sampled at ``fs``; the beats come from
    ``rhythm`` (a 10 s strip) when given, else from the lead with the most samples."""
    import neurokit2 as nk

    sig = np.asarray(signals, dtype=np.float64)
    values: dict[str, float] = {}
    problems: dict[str, str] = {}
    leads: dict[str, LeadMeasure] = {}
    counts = np.isfinite(sig).sum(axis=1)
    ref = sig[int(np.argmax(counts))]
    if rhythm is not None and np.isfinite(rhythm).sum() >= 0.9 * counts.max():
        ref = np.asarray(rhythm, dtype=np.float64)
    if np.isfinite(ref).sum() < 2 * fs:
        problems.update({k: "no lead of at least 2 s was read" for k in GLOBAL_KEYS})
        _check(values, problems)
        return Measurements(values, leads, {}, problems, fs)
    ok = np.isfinite(ref)
    first, last = int(np.argmax(ok)), int(len(ok) - np.argmax(ok[::-1]))
    x = _fill(ref[first:last])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            clean = nk.ecg_clean(x, sampling_rate=int(fs))
            r = _consensus_peaks(nk, clean, int(fs))
            if len(r) < 2:
                raise ValueError("fewer than 2 beats")
            _, w = nk.ecg_delineate(clean, r, sampling_rate=int(fs), method="prominence")
        except Exception as e:  # neurokit raises plain exceptions on traces it cannot read
            problems.update({k: f"no beats found ({e})" for k in GLOBAL_KEYS})
            _check(values, problems)
            return Measurements(values, leads, {}, problems, fs)
    rr = np.diff(r) / fs
    values["hr_bpm"] = 60.0 / float(np.mean(rr))
    values["rr_cv"] = float(np.std(rr) / np.mean(rr)) if len(rr) >= 2 else math.nan
    p_on, q_on = _marks(w, "ECG_P_Onsets"), _marks(w, "ECG_R_Onsets")
    q_pk = _marks(w, "ECG_Q_Peaks")
    if len(q_pk) == len(q_on):  # a Q wave starts the QRS before the R onset
        q_on = np.where(np.isfinite(q_pk) & (q_pk - 0.012 * fs < q_on), q_pk - 0.012 * fs, q_on)
    j, t_off = _marks(w, "ECG_R_Offsets"), _marks(w, "ECG_T_Offsets")
    n = min(len(r), len(p_on), len(q_on), len(j), len(t_off))
    ms = 1000.0 / fs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values["pr_ms"] = float(np.nanmedian(q_on[:n] - p_on[:n])) * ms
        values["qrs_ms"] = float(np.nanmedian(j[:n] - q_on[:n])) * ms
        qt = (t_off[:n] - q_on[:n]) * ms
        values["qt_ms"] = float(np.nanmedian(qt))
        rr_ms = float(np.mean(rr)) * 1000.0
        values["qtc_ms"] = values["qt_ms"] / math.sqrt(rr_ms / 1000.0) if np.isfinite(values["qt_ms"]) else math.nan
    beats = {"r": (r + first).tolist(), "qrs_on": (q_on[:n] + first).tolist(), "j": (j[:n] + first).tolist(),
             "t_off": (t_off[:n] + first).tolist()}
    # per lead, on the beats inside its window
    qo, jj, to = q_on[:n] + first, j[:n] + first, t_off[:n] + first
    nets: dict[str, float] = {}
    for i, lead in enumerate(LEADS):
        leads[lead], net = _lead(sig[i], fs, qo, jj, to, gain_mm_mv, q_counts=lead != "aVR")
        nets[lead] = net
    _q_context(leads)
    if np.isfinite(nets.get("I", math.nan)) and np.isfinite(nets.get("aVF", math.nan)):
        values["axis_deg"] = math.degrees(math.atan2(nets["aVF"], nets["I"]))
    else:
        problems["axis_deg"] = "lead I or aVF could not be measured"
    _check(values, problems)
    return Measurements(values, leads, beats, problems, fs)


# a Q wave (or QS) alone in III, aVL or V1 is a normal variant (axis, septal depolarisation): it counts only with a
# Q wave in a neighbouring lead of the same wall
_Q_NEEDS_NEIGHBOUR: dict[str, tuple[str, ...]] = {"III": ("II", "aVF"), "aVL": ("I", "V5", "V6"), "V1": ("V2",)}


def _q_context(leads: dict[str, LeadMeasure]) -> None:
    from dataclasses import replace

    raw = {lead for lead, m in leads.items() if m.q_pathological}
    for lead, needs in _Q_NEEDS_NEIGHBOUR.items():
        if lead in raw and not raw & set(needs):
            leads[lead] = replace(leads[lead], q_pathological=False)


def _lead(x: np.ndarray, fs: float, q_on: np.ndarray, j: np.ndarray, t_off: np.ndarray, gain: float, *,
          q_counts: bool = True) -> tuple[LeadMeasure, float]:
    """Median over the beats whose QRS onset - 60 ms .. J + 100 ms lies inside the lead's samples; ``q_counts``:
    False for aVR, whose QS complex is normal."""
    n = len(x)
    st, rs, qd, qm, tp, net = [], [], [], [], [], []
    for a, b, c in zip(q_on, j, t_off):
        if not (np.isfinite(a) and np.isfinite(b)):
            continue
        a, b = int(a), int(b)
        lo, hi = a - int(0.06 * fs), b + int(0.1 * fs)
        if lo < 0 or hi >= n or not np.isfinite(x[lo:hi]).all() or b <= a:
            continue
        base = float(np.median(x[a - int(0.03 * fs) : a - int(0.005 * fs) + 1]))
        k = b + int(0.06 * fs)
        st.append(float(np.mean(x[k - 2 : k + 3]) - base) * gain)
        qrs = x[a : b + 1] - base
        rs.append(max(0.0, float(qrs.max())))
        net.append(float(qrs.max() + qrs.min()))
        # Q: a first deflection that is negative, before any positive one
        pos = np.flatnonzero(qrs > Q_MIN_MV)
        neg = np.flatnonzero(qrs < -Q_MIN_MV)
        if len(neg) and (not len(pos) or neg[0] < pos[0]):
            end = pos[0] if len(pos) else len(qrs)
            seg = qrs[:end]
            below = np.flatnonzero(seg < -0.02)
            qm.append(float(-seg.min()))
            qd.append(float(below[-1] - below[0] + 1) / fs * 1000.0 if len(below) else 0.0)
        else:
            qm.append(0.0)
            qd.append(0.0)
        if np.isfinite(c) and int(c) < n and int(c) > k:
            t = x[k : int(c)] - base
            if np.isfinite(t).all() and len(t):
                ext = float(t[np.argmax(np.abs(t))])
                tp.append(ext)
    if not st:
        return LeadMeasure(), math.nan
    st_mm = float(np.median(st))
    r_mv, q_mv, q_ms = float(np.median(rs)), float(np.median(qm)), float(np.median(qd))
    if abs(st_mm) > ST_LIMIT_MM:
        st_mm = math.nan
    patho = bool(q_counts and q_mv >= 0.1 and (q_ms >= 40.0 or (r_mv > 0 and q_mv >= 0.25 * r_mv) or r_mv < Q_MIN_MV))
    t_ext = float(np.median(tp)) if tp else math.nan
    pol = "" if not np.isfinite(t_ext) else ("+" if t_ext > 0.05 else "-" if t_ext < -0.05 else "flat")
    return (LeadMeasure(st_mm=st_mm, r_mv=r_mv, q_mv=q_mv, q_ms=q_ms, q_pathological=patho, t_polarity=pol,
                        n_beats=len(st)), float(np.median(net)))


def measure(dig: Any) -> Measurements:
    """:func:`measure_signals` of a :class:`~ecg_core.reports.reading.digitize.Digitized` (its rhythm strip gives
    the beats; ST in mm at the standard 10 mm/mV). A report read as unnamed strips (``dig.strips``) gets each
    global value as the median over its strips (over the strips with regular RR when there are any: a detector
that counts tall T waves as beats makes RR alternate; one strip's slip does not decide), the beat marks of the
    strip whose heart rate is that median, and no per-lead values."""
    if not getattr(dig, "strips", None):
        return measure_signals(dig.signals, dig.fs, rhythm=dig.rhythm, gain_mm_mv=10.0)
    empty = np.full_like(dig.signals, np.nan)
    per = [measure_signals(empty, dig.fs, rhythm=x) for x in dig.strips.values()]
    ok = [m for m in per if np.isfinite(m.values.get("hr_bpm", math.nan))]
    regular = [m for m in ok if m.values.get("rr_cv", 1.0) <= 0.15]  # a detector counting T waves alternates RR
    ok = regular or ok
    if not ok:
        return per[0]
    values: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in GLOBAL_KEYS:
            values[k] = float(np.nanmedian([m.values.get(k, math.nan) for m in ok]))
        # the rate from each strip's median RR: a lead-change mark or a T wave counted as a beat shortens two
        # intervals, which the mean feels and the median does not
        rates = [60.0 * dig.fs / float(np.median(np.diff(m.beats["r"]))) for m in ok if len(m.beats.get("r", [])) > 2]
        if rates:
            values["hr_bpm"] = float(np.median(rates))
    ref = min(ok, key=lambda m: abs(m.values["hr_bpm"] - values["hr_bpm"]))
    problems = {"axis_deg": "the leads of an unnamed strip are not known"}
    _check(values, problems)
    return Measurements(values, {}, ref.beats, problems, dig.fs)


_LABELS = {"hr_bpm": ("Heart rate", "bpm"), "rr_cv": ("RR variation", ""), "pr_ms": ("PR", "ms"),
           "qrs_ms": ("QRS", "ms"), "qt_ms": ("QT", "ms"), "qtc_ms": ("QTc (Bazett)", "ms"),
           "axis_deg": ("Frontal QRS axis", "degrees")}


def global_table(m: Measurements):
    """The global values for a reader (pandas): measurement, value (or 'could not measure (why)'), normal range,
    flag ('low', 'high' or '')."""
    import pandas as pd

    rows = []
    for k in GLOBAL_KEYS:
        label, unit = _LABELS[k]
        v = m.values.get(k, math.nan)
        lo, hi = NORMAL[k]
        digits = 2 if k == "rr_cv" else 0
        flag = "" if not np.isfinite(v) else ("low" if v < lo else "high" if v > hi else "")
        shown = m.shown(k, digits) + (f" {unit}" if np.isfinite(v) and unit else "")
        rows.append({"measurement": label, "value": shown, "normal": f"{lo:g}-{hi:g} {unit}".strip(), "flag": flag})
    return pd.DataFrame(rows)


def lead_table(m: Measurements):
    """Per-lead values with flags (pandas): ST elevated (>= 1 mm) / depressed (<= -0.5 mm), pathological Q;
    leads not measured read 'could not measure'."""
    df = m.table()
    flags = []
    for r in df.itertuples(index=False):
        f = []
        if not r.beats:
            f.append("could not measure")
        else:
            if np.isfinite(r.st_mm) and r.st_mm >= 1.0:
                f.append("ST elevation")
            if np.isfinite(r.st_mm) and r.st_mm <= -0.5:
                f.append("ST depression")
            if r.q_pathological:
                f.append("pathological Q")
            if r.t == "-" and r.lead not in ("aVR", "V1", "III"):
                f.append("T inversion")
        flags.append(", ".join(f))
    df["flags"] = flags
    return df
