"""Ground truth of a synthetic report for the reader: the true 12-lead signals as a WFDB record beside the image and
the sidecar fields the measurements are scored against (``st_mm``: designed ST deviation per lead at J+60 ms in
mm at 10 mm/mV; ``hr_bpm``: the rate of the annotated beats; ``q_leads``: the leads of an old infarction's
territory, where the pathological Q waves are). Used by ``synth --signals``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecg_core.core.labels import LEADS
from ecg_core.reports.layout import RHYTHM_KEY
from ecg_core.reports.synth_spec import Signals12


def truth_fields(signals: Signals12) -> dict[str, Any]:
    """``{'st_mm': {lead: mm}, 'hr_bpm': float, 'q_leads': [...]}`` of a synthetic recording."""
    st = {lead: round(10.0 * float(signals.st_deviation_mv.get(lead, 0.0)), 3) for lead in LEADS}
    q = [lead for lead in signals.pathology_leads if lead != RHYTHM_KEY] if signals.spec.cls == "history_of_mi" else []
    return {"st_mm": st, "hr_bpm": round(float(signals.heart_rate), 2), "q_leads": q}


def write_truth(signals: Signals12, folder: str | Path, stem: str) -> list[Path]:
    """Write the first 10 s of ``signals`` as ``<folder>/<stem>.hea/.dat`` (mV, standard lead names, its sampling
    rate) through :func:`ecg_core.reports.reading.formats.write_wfdb`."""
    from ecg_core.reports.reading.formats import write_wfdb

    n = int(round(10.0 * signals.fs))
    return write_wfdb(signals.data[:, :n], signals.fs, folder, stem,
                      comments=[f"true signals of the synthetic report {stem} (class {signals.spec.cls})"])
