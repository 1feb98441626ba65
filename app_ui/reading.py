"""The Reading view of the Explain page: the traces read off the report drawn over it (toggle, opacity), the
measurements with normal ranges and flags, the classic criteria that fired (their leads highlighted on the image)
and downloads of the signals (WFDB zip, CSV) and the measurements. Keys are prefixed ``reading_``."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from app_ui import cache, common


def _display(rgb: np.ndarray, width: int = 1400) -> tuple[np.ndarray, float]:
    h, w = rgb.shape[:2]
    s = min(1.0, width / w)
    if s >= 1.0:
        return rgb, 1.0
    return cv2.resize(rgb, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA), s


def reading_view(data: bytes, fhash: str, name: str, sidecar: dict[str, Any] | None = None) -> tuple:
    """Digitise and measure the report ``data`` (cached by ``fhash``) and show the Reading view; returns (global
    table, lead table, criteria texts) for the PDF."""
    from ecg_core.imaging.loader import load_image
    from ecg_core.reports.reading.digitize import QUALITY_PASS, draw_traces
    from ecg_core.reports.reading.formats import csv_bytes, wfdb_zip_bytes
    from ecg_core.reports.reading.measure import global_table, lead_table

    with common.safe("Reading the traces"), st.spinner("Reading the 12 leads off the report and measuring them..."):
        dig, m, findings = cache.reading(fhash, data, json.dumps(sidecar) if sidecar else "")
    rgb = load_image(data).rgb
    passed = sum(dig.passed().values())
    st.caption(f"{passed} of {len(dig.quality)} traces pass the quality check (>= {QUALITY_PASS:g}); "
               f"{dig.px_per_mm:.2f} px/mm, {dig.paper_speed_mm_s:g} mm/s, {dig.gain_mm_mv:g} mm/mV; lead boxes: "
               f"{dig.layout_source}.")
    for msg in dig.messages:
        st.caption("· " + msg)
    c1, c2 = st.columns([1, 2])
    show = c1.toggle("Show the digitised traces", value=True, key="reading_show")
    alpha = c2.slider("Trace opacity", 0.0, 1.0, 0.9, 0.05, key="reading_alpha")
    marked = sorted({lead for f in findings for lead in f.leads})
    picture = rgb
    if show:
        picture = draw_traces(rgb, dig, alpha=alpha)
        if marked:  # the leads of the criteria that fired, drawn again thicker in red
            sub = dataclasses.replace(dig, paths={k: v for k, v in dig.paths.items() if k in marked})
            picture = draw_traces(picture, sub, rgb_colour=(220, 30, 30),
                                  thickness=max(2, int(round(dig.px_per_mm * 0.6))), alpha=alpha)
    shown, _ = _display(picture)
    st.image(shown, caption=f"{name}: traces read off the report" + (f" (criteria leads in red: "
             f"{', '.join(marked)})" if marked and show else ""), width="stretch")
    st.markdown("**Criteria that fire**")
    if findings:
        for f in findings:
            st.write("- " + f.text)
    else:
        st.write("- none of the classic criteria fire on the measured values")
    st.caption("Measured on the digitised traces; a value the checks find implausible reads 'could not measure'. "
               "Not a diagnosis.")
    g, lt = global_table(m), lead_table(m)
    a, b = st.columns([2, 3])
    a.dataframe(g, hide_index=True, width="stretch", key="reading_global")
    b.dataframe(lt, hide_index=True, width="stretch", key="reading_leads")
    stem = Path(name).stem.replace(" ", "_") or "report"
    d1, d2, d3 = st.columns(3)
    with common.safe("Preparing the downloads"):
        d1.download_button("Signals (WFDB zip)", wfdb_zip_bytes(dig, stem), f"{stem}_wfdb.zip", "application/zip",
                           key="reading_wfdb")
        d2.download_button("Signals (CSV)", csv_bytes(dig.signals, dig.fs), f"{stem}_signals.csv", "text/csv",
                           key="reading_csv")
        row = {"file": name, **m.row()}
        meas = pd.DataFrame([row]).to_csv(index=False, float_format="%.2f").encode()
        d3.download_button("Measurements (CSV)", meas, f"{stem}_measurements.csv", "text/csv", key="reading_meas")
    return g, lt, tuple(f.text for f in findings)


def record_section(paper: str, artifacts: bool) -> None:
    """The Learn page's 'real recording' section: a 12-lead record from ``../shared/data/signals/12lead`` or an
    upload (.hea with its .dat or .mat) printed as a standard report with the paper chosen above."""
    from ecg_core.core import paths
    from ecg_core.core.hashing import file_hash

    st.subheader("A real recording, printed as a report")
    folder = paths.shared_data_dir() / "signals" / "12lead"
    records = sorted(p.with_suffix("") for p in folder.glob("*.hea")) if folder.is_dir() else []
    sources = (["Example record"] if records else []) + ["Upload a WFDB record"]
    source = st.radio("Recording", sources, horizontal=True, key="reading_record_source")
    files: tuple[tuple[str, bytes], ...] = ()
    if source == "Example record":
        rec = st.selectbox("Record", [p.name for p in records], key="reading_record")
        record = str(folder / rec)
        key = f"{record}|{(folder / (rec + '.hea')).stat().st_mtime_ns}"
    else:
        ups = st.file_uploader("The record's .hea and its .dat (or .mat)", accept_multiple_files=True,
                               type=["hea", "dat", "mat"], key="reading_record_upload")
        heas = [u for u in ups or [] if u.name.lower().endswith(".hea")]
        if not heas:
            st.info("Upload a 12-lead record: its header (.hea) and its signal file (.dat or .mat).")
            return
        files = tuple((u.name, u.getvalue()) for u in ups)
        record = Path(heas[0].name).stem
        key = "upload|" + file_hash(b"".join(c for _, c in files))
    with common.guard("Printing the record"):
        image, sidecar = cache.rendered_record(key, files, record, paper, artifacts)
        st.image(image, caption=f"{Path(record).name} printed at 25 mm/s, 10 mm/mV — HR "
                 f"{sidecar['heart_rate_bpm']:.0f} bpm (PhysioNet record; credits on the Home page)",
                 width="stretch")


def rhythm_strip_csv(dig: Any) -> bytes:
    """The rhythm strip of a :class:`~ecg_core.reports.reading.digitize.Digitized` (see
    :func:`~ecg_core.reports.reading.formats.rhythm_strip_signal`) as CSV bytes with a ``time`` column in seconds and
    one column named after its lead: what the Arrhythmia page reads."""
    from ecg_core.reports.reading.formats import rhythm_strip_signal

    x, lead = rhythm_strip_signal(dig)
    df = pd.DataFrame({"time": np.round(np.arange(len(x)) / dig.fs, 6), lead: np.round(x, 4)})
    return df.to_csv(index=False).encode()


def rhythm_strip_upload() -> tuple[bytes, str] | None:
    """The Arrhythmia page's 'report image' source: an uploaded 12-lead report -> its digitised rhythm strip as
    (CSV bytes, file name), or None (with a hint) until an image is uploaded."""
    from ecg_core.core.hashing import file_hash

    up = st.file_uploader("A 12-lead report image (its 10 s rhythm strip is read off it)",
                          type=["jpg", "jpeg", "png", "bmp", "tif", "tiff"], key="reading_strip_upload")
    if up is None:
        st.info("Upload a scan or photo of a 12-lead report: the rhythm strip at the bottom is digitised and "
                "classified beat by beat.")
        return None
    data = up.getvalue()
    with common.guard("Reading the rhythm strip"):
        dig, _, _ = cache.reading(file_hash(data), data, "")
        csv = rhythm_strip_csv(dig)
    st.caption(f"Rhythm strip read off `{up.name}` (lead {dig.rhythm_lead or 'unknown'}, quality "
               f"{max([q for k, q in dig.quality.items() if 'rhythm' in k or k.startswith('strip')] or [0]):.2f}, "
               f"500 Hz; the classifier was trained on MIT-BIH at 360 Hz and resamples).")
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(up.name).stem).lstrip("_.+-") or "report"
    return csv, f"{stem}_rhythm.csv"
