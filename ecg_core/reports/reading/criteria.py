"""The classic ECG criteria, applied to :class:`~ecg_core.reports.reading.measure.Measurements`.

* ST elevation >= 1 mm (V2-V3: 1.5 mm) at J+60 ms in two contiguous leads -> the territory, with reciprocal
  ST depression >= 0.5 mm where present (STEMI pattern);
* pathological Q waves (>= 40 ms or >= 25 % of R) in two contiguous leads of a territory (old infarction);
* irregular RR (coefficient of variation > 0.12: atrial fibrillation or ectopy);
* bradycardia < 50 bpm, tachycardia > 100 bpm, wide QRS >= 120 ms, long QTc > 470 ms, short / long PR,
  left / right axis deviation.

Contiguity follows the Cabrera order of the limb leads (aVL, I, -aVR, II, aVF, III) and V1..V6. Territories are
:data:`ecg_core.core.labels.TERRITORIES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ecg_core.core.labels import TERRITORIES
from ecg_core.reports.reading.measure import Measurements

CONTIGUOUS: tuple[tuple[str, ...], ...] = (("aVL", "I", "II", "aVF", "III"), ("V1", "V2", "V3", "V4", "V5", "V6"))
RECIPROCAL: dict[str, tuple[str, ...]] = {
    "inferior": ("I", "aVL"), "lateral": ("II", "III", "aVF"), "anterior": ("II", "III", "aVF"),
    "septal": ("II", "III", "aVF"),
}
IRREGULAR_RR_CV = 0.12


@dataclass(frozen=True)
class Finding:
    """A criterion that fired: ``key`` (e.g. 'st_elevation'), ``text`` for the reader, ``leads`` to highlight,
    ``territory`` ('' when none)."""

    key: str
    text: str
    leads: tuple[str, ...] = ()
    territory: str = ""


def _contiguous_pairs(leads: set[str]) -> set[str]:
    """The leads of ``leads`` that have a contiguous neighbour also in ``leads``."""
    out: set[str] = set()
    for chain in CONTIGUOUS:
        for a, b in zip(chain[:-1], chain[1:]):
            if a in leads and b in leads:
                out |= {a, b}
    return out


def _territories(leads: set[str]) -> list[str]:
    return [t for t, members in TERRITORIES.items() if len(leads & set(members)) >= (1 if len(members) == 2 else 2)]


def evaluate(m: Measurements) -> list[Finding]:
    """The criteria that fire, most important first."""
    out: list[Finding] = []
    st = {lead: v.st_mm for lead, v in m.leads.items() if np.isfinite(v.st_mm)}
    elevated = {lead for lead, v in st.items() if v >= (1.5 if lead in ("V2", "V3") else 1.0)}
    ste = _contiguous_pairs(elevated)
    if ste:
        terr = [t for t in _territories(ste)]
        recip = sorted({lead for t in terr for lead in RECIPROCAL.get(t, ()) if st.get(lead, 0.0) <= -0.5})
        order = [lead for chain in CONTIGUOUS for lead in chain if lead in ste]
        text = (f"ST elevation >= 1 mm in {len(order)} contiguous leads ({', '.join(order)})"
                + (f": {' / '.join(terr)} territory" if terr else ""))
        if recip:
            text += f", reciprocal ST depression in {', '.join(recip)}"
        out.append(Finding("st_elevation", text, tuple(order) + tuple(recip), "/".join(terr)))
    q = {lead for lead, v in m.leads.items() if v.n_beats and v.q_pathological and lead not in ("aVR",)}
    q_cont = _contiguous_pairs(q - {"III"} if "aVF" not in q else q)
    if q_cont:
        terr = _territories(q_cont)
        order = [lead for chain in CONTIGUOUS for lead in chain if lead in q_cont]
        out.append(Finding("pathological_q", f"pathological Q waves in {', '.join(order)}"
                           + (f": {' / '.join(terr)} territory" if terr else ""), tuple(order), "/".join(terr)))
    v = m.values
    cv = v.get("rr_cv", math.nan)
    if np.isfinite(cv) and cv > IRREGULAR_RR_CV:
        out.append(Finding("irregular_rr", f"irregular RR intervals (variation {100 * cv:.0f} %): atrial "
                           "fibrillation or ectopic beats", ("II",)))
    hr = v.get("hr_bpm", math.nan)
    if np.isfinite(hr) and hr < 50:
        out.append(Finding("bradycardia", f"bradycardia ({hr:.0f} bpm)"))
    if np.isfinite(hr) and hr > 100:
        out.append(Finding("tachycardia", f"tachycardia ({hr:.0f} bpm)"))
    qrs = v.get("qrs_ms", math.nan)
    if np.isfinite(qrs) and qrs >= 120:
        out.append(Finding("wide_qrs", f"wide QRS ({qrs:.0f} ms): bundle branch block or ventricular rhythm"))
    qtc = v.get("qtc_ms", math.nan)
    if np.isfinite(qtc) and qtc > 470:
        out.append(Finding("long_qtc", f"long QTc ({qtc:.0f} ms)"))
    pr = v.get("pr_ms", math.nan)
    if np.isfinite(pr) and pr > 200:
        out.append(Finding("long_pr", f"long PR ({pr:.0f} ms): first-degree AV block"))
    if np.isfinite(pr) and pr < 120:
        out.append(Finding("short_pr", f"short PR ({pr:.0f} ms)"))
    ax = v.get("axis_deg", math.nan)
    if np.isfinite(ax) and -90 <= ax < -30:
        out.append(Finding("left_axis", f"left axis deviation ({ax:.0f} degrees)", ("I", "aVF")))
    if np.isfinite(ax) and 90 < ax <= 180:
        out.append(Finding("right_axis", f"right axis deviation ({ax:.0f} degrees)", ("I", "aVF")))
    return out


def criteria_text(findings: list[Finding]) -> str:
    """The keys of the findings joined by ';' (the ``criteria`` column of ``measure``)."""
    return ";".join(f.key + (f"[{f.territory}]" if f.territory else "") for f in findings)
