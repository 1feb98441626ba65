"""Trace rows of a report whose layout is not the standard 3x4 + rhythm (6x1 pages, 3x4 + 2 rhythm strips, 50 mm/s
pages): every row of trace is read as one unnamed strip from its first to its last trace column (at most 10 s).

The rows come from the horizontal projection of the trace mask of :func:`ecg_core.reports.ecg_check.analyse_traces`
(long, thin, wiggling curves) and the other ink that is not a long straight line, its peaks at least 6 % of the page
height apart; a row reaches half way to its neighbours and must be ink in 85 % of its columns (a line of text is
not). The longest row is taken to be 250 mm of paper (10 s at 25 mm/s, 5 s at 50 mm/s) when the grid gave no scale
or one that would make it longer than 262 mm."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

STRIP_MM = 250.0  # the longest row of a page: 10 s at 25 mm/s, 5 s at 50 mm/s


def strip_cells(ta: Any, shape: tuple[int, int], ppm: float, speed: float
                ) -> tuple[dict[str, tuple[float, float, float, float, float]], dict[str, tuple[float, float]], float,
                           str]:
    """(cells, windows, px per mm, note) of the strips: key ``'strip_<k>'`` (top to bottom) -> (x of t = 0,
    baseline y, crop x0, crop x1, half height) in page pixels, and -> (0, duration in s); ``note`` says when the
    scale came from the longest row."""
    from scipy.signal import find_peaks

    trace = ta.trace | ta.curves  # curves too: a flat rhythm strip may not pass the trace test
    hw, ww = trace.shape
    s = shape[1] / ww
    prof = trace.mean(axis=1).astype(np.float64)
    prof = cv2.GaussianBlur(prof.reshape(-1, 1), (1, 0), sigmaX=0, sigmaY=max(1.0, 0.004 * hw)).ravel()
    if prof.max() <= 0:
        return {}, {}, ppm, ""
    peaks, _ = find_peaks(prof, distance=max(3, int(0.06 * hw)), height=0.25 * prof.max())
    gaps = np.diff(peaks) if len(peaks) > 1 else np.array([0.2 * hw])
    rows = []
    for k, p in enumerate(peaks):
        up = (p - peaks[k - 1]) / 2 if k > 0 else gaps[0] / 2
        down = (peaks[k + 1] - p) / 2 if k + 1 < len(peaks) else gaps[-1] / 2
        band = trace[int(max(0, p - up)) : int(min(hw, p + down))]
        cols = np.flatnonzero(band.any(axis=0))
        if cols.size >= 0.1 * ww and cols.size >= 0.85 * (cols[-1] - cols[0] + 1):  # a trace, not a line of text
            rows.append((float(cols[0]) * s, float(cols[-1] + 1) * s, float(p) * s, min(up, down) * s))
    if not rows:
        return {}, {}, ppm, ""
    widest = max(r[1] - r[0] for r in rows)
    note = ""
    if ppm <= 0 or widest / ppm > 1.05 * STRIP_MM:
        old = f"{ppm:.2f} px/mm would make it {widest / ppm:.0f} mm" if ppm > 0 else "no grid scale"
        ppm = widest / STRIP_MM
        note = f"the longest trace row taken as {STRIP_MM:g} mm of paper: {ppm:.2f} px/mm ({old})"
    cells: dict[str, tuple[float, float, float, float, float]] = {}
    windows: dict[str, tuple[float, float]] = {}
    for x0, x1, y, half in rows:
        dur = min(STRIP_MM / speed, (x1 - x0) / (speed * ppm))
        if dur < 1.0:
            continue
        key = f"strip_{len(cells) + 1}"
        cells[key] = (x0, y, x0 - ppm, x0 + dur * speed * ppm + ppm, float(half))
        windows[key] = (0.0, float(dur))
    return cells, windows, ppm, note
