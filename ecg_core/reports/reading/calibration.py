"""Calibration of a report: pixels per mm from the paper grid's period, and the 1 mV calibration pulse at the
start of each row, which must agree with the gain (10 mm/mV unless the report says otherwise; a pulse of 5 or 20 mm
switches the gain). Also the darkness map the digitiser reads traces from."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from ecg_core.reports.layout import RHYTHM_KEY


def darkness(rgb: np.ndarray, k: int) -> np.ndarray:
    """1 - max channel / local paper level (float32, 0 = paper); ``k``: the paper filter's size in px."""
    r, g, b = cv2.split(rgb)
    v = cv2.max(cv2.max(r, g), b).astype(np.float32)
    k = max(3, k | 1)
    bg = cv2.blur(cv2.dilate(v, np.ones((k, k), np.uint8)), (k, k))
    return np.clip(1.0 - v / np.maximum(bg, 1.0), 0.0, 1.0)


def grid_px_per_mm(rgb: np.ndarray, ta: Any = None) -> tuple[float, float]:
    """(px per mm, grid score) from the paper grid's period on the working copy (0 when no grid is found);
    ``ta``: :func:`ecg_core.reports.ecg_check.analyse_traces` of the working copy when the caller has it."""
    from ecg_core.reports.ecg_check import analyse_traces, grid_periodicity, to_work

    if ta is None:
        ta = analyse_traces(to_work(rgb))
    work = ta.work
    s = rgb.shape[1] / work.shape[1]
    score, period = grid_periodicity(cv2.cvtColor(work, cv2.COLOR_RGB2GRAY), ta.curves)
    if score < 0.1 or period <= 0:
        return 0.0, float(score)
    mm5 = period if period >= 10 else 5.0 * period
    return float(mm5 / 5.0 * s), float(score)


def _pulse_height_mm(rgb: np.ndarray, x0: float, y_top: float, y_bot: float, ppm: float) -> float:
    """Height in mm of the tallest vertical stroke in the 16 mm before ``x0`` (the calibration pulse), or NaN."""
    h, w = rgb.shape[:2]
    a, b = int(max(0, x0 - 16 * ppm)), int(min(w, x0 + 1 * ppm))
    t, u = int(max(0, y_top)), int(min(h, y_bot))
    if b - a < 3 or u - t < 3:
        return math.nan
    crop = rgb[t:u, a:b]
    d = darkness(crop, int(round(2.5 * ppm)))
    strong = float(np.percentile(d, 99.5))
    m = (d > max(0.2, 0.5 * strong)).astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((3, 1), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return math.nan
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    widths = stats[1:, cv2.CC_STAT_WIDTH]
    ok = (widths >= 2 * ppm) & (widths <= 12 * ppm)  # a pulse is ~5 mm wide, plus its foot
    if not ok.any():
        return math.nan
    return float(heights[ok].max() / ppm)


def calibrate_gain(page: np.ndarray, cells: dict[str, tuple[float, float, float, float, float]], ppm: float,
                   gain: float) -> tuple[float, dict[str, Any], list[str]]:
    """(gain in mm/mV, what the pulses showed, messages) from the pulse before the first cell of each row
    (I, II, III and the rhythm strip; the strips of a non-standard page otherwise)."""
    messages: list[str] = []
    pulses = []
    for key in [k for k in ("I", "II", "III", RHYTHM_KEY) if k in cells] or list(cells):
        x_t0, yb, _, _, hh = cells[key]
        pulses.append(_pulse_height_mm(page, x_t0, yb - hh, yb + hh, ppm))
    found = [p for p in pulses if np.isfinite(p)]
    calib: dict[str, Any] = {"pulse_mm": [round(p, 2) if np.isfinite(p) else None for p in pulses]}
    if found:
        med = float(np.median(found))
        for g in (gain, 10.0, 5.0, 20.0):
            if abs(med / g - 1) <= 0.15:
                if g != gain:
                    messages.append(f"the calibration pulse is {med:.1f} mm: gain {g:g} mm/mV instead of {gain:g}")
                gain = g
                calib["agrees"] = True
                break
        else:
            calib["agrees"] = False
            messages.append(f"the calibration pulse measures {med:.1f} mm, not {gain:g} mm (1 mV): gain kept")
    else:
        calib["agrees"] = None
        messages.append("no calibration pulse found: gain assumed")
    calib["gain_mm_mv"] = gain
    return gain, calib, messages
