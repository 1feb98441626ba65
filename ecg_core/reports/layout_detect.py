"""Which page layout is this, and where is each lead panel? The one layout classification shared by the lead
detection (:func:`ecg_core.reports.leads.detect_layout`, which the digitiser and the per-lead attribution use) and
the out-of-distribution descriptor (:func:`ecg_core.reports.ood.describe_report`).

1. **Rows** (:func:`trace_rows`): the horizontal projection of the trace mask of
   :func:`ecg_core.reports.traces.analyse_traces` has one peak per row of traces (its baseline); peaks whose band
   holds traces over less than 45 % of the widest row's span are dropped (a tall QRS, a noisy stretch). On tight
   pages (12x1) a tall complex touching the next row can make the trace filter drop a whole row while its baseline
   is still a long run of ink: the rows are then counted on the ink lines, when those find more. Five rows with
   one gap of two row spacings are a 6-row page whose faint row was dropped: it is put back (7-10 rows whose gaps
   are whole multiples of the row spacing adding up to 12 rows: a 12x1 page, likewise).
2. **Layout** (:func:`classify_rows`): 4 rows are the 3x4 + rhythm strip, 6 rows a 3x4 block over 3 rhythm strips
   or 6x2 by the time structure (:func:`rhythm_match`: the rhythm strips II, V1, V5 repeat, drawn at the same
   times, the block's II (row 2, first quarter), V1 (row 1, third) and V5 (row 2, last quarter); a 6x2 page's rows
   there hold other leads), and where that is unclear by lead labels / lead changes at a quarter and three quarters
   of the width of the top three rows; 11-13 rows 12x1, 2 rows 2x6; anything else ``'other'``.
3. **Panels** (:func:`panel_boxes`): every layout's rows span 10 s at 25 mm/s; the rows' traces end at 10 s, the
   paper grid's period (or, without a usable grid, the row's length with its calibration pulse: 258 mm) gives the
   scale, and the panels of :func:`ecg_core.reports.synth_layouts.page_layout` (the renderer's table: lead order,
   row, time window) are cut from each row band at their time window, 1 mm wider on both sides.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

KNOWN_LAYOUTS: tuple[str, ...] = ("3x4+1", "3x4+3", "6x2", "12x1", "2x6")
ROW_S = 10.0  # s: every row of every layout ends 10 s after its start
PULSE_MM = 8.0  # mm: the calibration pulse before t = 0 (12-20 mm on the renderer's page)

Row = tuple[int, int, float]  # (top, bottom, baseline) in px


@dataclass(frozen=True)
class RowLayout:
    """The rows of traces of a working copy: ``name`` (a layout of :data:`KNOWN_LAYOUTS` or ``'other'``),
    ``rows`` (top, bottom, baseline) px top to bottom, ``n_columns`` the most lead segments in one row, ``spans``
    the share of the trace area's width each row covers, ``breaks`` the relative positions (0-1) of the breaks /
    labels in each row, ``x_lo``/``x_hi`` the trace area's first and last column, ``trace`` the mask the rows were
    counted on, ``match`` the :func:`rhythm_match` of six rows."""

    name: str
    rows: tuple[Row, ...]
    n_columns: int
    spans: tuple[float, ...]
    breaks: tuple[tuple[float, ...], ...]
    x_lo: int
    x_hi: int
    trace: np.ndarray
    curves: np.ndarray | None = None
    match: float = float("nan")  # rhythm_match of six rows


def _bands(peaks: Sequence[int], h: int) -> list[Row]:
    """(top, bottom, baseline) of each row: half-way to the neighbouring baselines (half the median spacing at
    the ends)."""
    out = []
    gap = int(np.median(np.diff(peaks)) / 2) if len(peaks) > 1 else int(0.03 * h)
    for i, p in enumerate(peaks):
        top = (peaks[i - 1] + p) // 2 if i else max(0, p - gap)
        bottom = (p + peaks[i + 1]) // 2 if i + 1 < len(peaks) else min(h, p + gap)
        out.append((top, max(top + 1, bottom), float(p)))
    return out


def trace_rows(trace: np.ndarray) -> list[Row]:
    """(top, bottom, baseline) in px of each row of traces, from the horizontal projection of the trace mask."""
    from scipy.signal import find_peaks

    h = trace.shape[0]
    prof = trace.mean(axis=1).astype(np.float64)
    if prof.max() <= 0:
        return []
    prof = cv2.GaussianBlur(prof.reshape(-1, 1), (1, 0), sigmaX=0, sigmaY=max(1.0, 0.004 * h)).ravel()
    peaks, _ = find_peaks(prof, distance=max(3, int(0.035 * h)), height=0.2 * prof.max())
    rows = _bands(sorted(int(p) for p in peaks), h)
    # a tall QRS complex or a noisy stretch of one row can make a second, short peak: a row of traces spans most
    # of the width, so peaks whose band holds traces over less than 45 % of the widest row's span are dropped
    cover = [float(trace[t:b].any(axis=0).mean()) for t, b, _ in rows]
    if not cover:
        return []
    keep = [int(p) for (_, _, p), c in zip(rows, cover) if c >= 0.45 * max(cover)]
    return _bands(keep, h)


def baseline_rows(curves: np.ndarray) -> list[Row]:
    """Rows whose baseline is a long horizontal run of curve ink: y where at least 40 % of the columns hold ink
    within +-1 px, and whose band holds ink in at least 60 % of the best row's columns (text lines fail both)."""
    from scipy.signal import find_peaks

    h = curves.shape[0]
    cover = cv2.dilate(curves.astype(np.uint8), np.ones((3, 1), np.uint8)).mean(axis=1).astype(np.float64)
    peaks, _ = find_peaks(cover, distance=max(3, int(0.035 * h)), height=0.4)
    rows = _bands(sorted(int(p) for p in peaks), h)
    # a line of text (header, footer) holds ink in only part of its band's columns; a trace row in nearly all
    band = [float(curves[t:b].any(axis=0).mean()) for t, b, _ in rows]
    if not band:
        return []
    return _bands([int(p) for (_, _, p), c in zip(rows, band) if c >= 0.6 * max(band)], h)


def segments(band: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """Horizontal runs (x0, x1) of the columns of ``band`` that hold trace, gaps shorter than ``min_gap`` closed."""
    cols = np.flatnonzero(band.any(axis=0))
    if cols.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(cols) > min_gap)
    starts = np.r_[cols[0], cols[cuts + 1]]
    ends = np.r_[cols[cuts], cols[-1]] + 1
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def has_break(row: Sequence[float], at: float) -> bool:
    """Whether a row's breaks (relative positions 0-1) hold one at ``at`` (a label stands just after the cell's
    start)."""
    return any(at - 0.03 < b < at + 0.06 for b in row)


#: (row of the 3x4 block, rhythm strip row, quarter) drawing the same lead at the same time on a 3x4 + 3 page
RHYTHM_PAIRS: tuple[tuple[int, int, int], ...] = ((1, 3, 0), (0, 4, 2), (1, 5, 3))
MATCH_3X4, MATCH_6X2 = 0.7, 0.5  # mean best correlation: at least -> 3x4 + 3; below -> 6x2; between: the labels


def _row_profile(mask: np.ndarray, row: Row) -> np.ndarray:
    """Per column of a row band, the mean y (px, from the baseline) of its trace pixels; NaN where the column holds
    none or ink over more than half the band (a grid line, a label)."""
    t, b, p = row
    band = mask[t:b]
    cnt = band.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = (band * np.arange(band.shape[0], dtype=np.float64)[:, None]).sum(axis=0) / cnt
    y[(cnt == 0) | (cnt > 0.5 * band.shape[0])] = np.nan
    return y - (p - t)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 10:
        return 0.0
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    d = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / d) if d > 0 else 0.0


def rhythm_match(trace: np.ndarray, rows: Sequence[Row], x_lo: int, x_hi: int) -> float:
    """How well six rows repeat as a 3x4 block over the rhythm strips II, V1, V5 (:data:`RHYTHM_PAIRS`): the mean
    over the pairs of the best correlation of the two rows' trace profiles over the quarter (its middle 80 %),
    shifted by up to 4 mm (a skewed scan or photo moves lower rows sideways). About 1 on a 3x4 + 3 page, below 0.5
    on 6x2 pages; NaN without six rows."""
    if len(rows) != 6 or x_hi - x_lo < 50:
        return float("nan")
    ext = float(x_hi - x_lo)
    ppm = ext / (ROW_S * 25.0 + PULSE_MM)  # the rows' extent: 10 s and the calibration pulse
    lag = max(1, int(4 * ppm))
    prof = [_row_profile(trace, r) for r in rows]
    out = []
    for a, b, q in RHYTHM_PAIRS:
        start = x_lo + PULSE_MM * ppm + q * 62.5 * ppm
        x0, x1 = int(start + 5 * ppm), int(start + 57.5 * ppm)
        pa = prof[a][x0:x1]
        best = -1.0
        for d in range(-lag, lag + 1):
            if x0 + d < 0 or x1 + d > len(prof[b]):
                continue
            best = max(best, _corr(pa, prof[b][x0 + d : x1 + d]))
        out.append(best)
    return float(np.mean(out))


def layout_name(n_rows: int, breaks: Sequence[Sequence[float]], spans: Sequence[float] = (),
                match: float = float("nan")) -> str:
    """Layout name from the number of rows, the relative break positions (0-1) within each row and, for six rows,
    the :func:`rhythm_match` score."""
    if n_rows == 4:
        return "3x4+1"
    if n_rows == 6:
        if np.isfinite(match) and match >= MATCH_3X4:
            return "3x4+3"
        if np.isfinite(match) and match < MATCH_6X2:
            return "6x2"
        # lead labels or lead changes at a quarter and three quarters of the width: the 3x4 block on top
        top = sum(has_break(r, 0.25) or has_break(r, 0.75) for r in breaks[:3])
        bottom = sum(has_break(r, 0.25) or has_break(r, 0.75) for r in breaks[3:])
        return "3x4+3" if top >= 2 and top > bottom else "6x2"
    if 11 <= n_rows <= 13:
        return "12x1"
    if n_rows == 2:
        return "2x6"
    return "other"


_RECENT: list[tuple[np.ndarray, np.ndarray, RowLayout]] = []  # the last few results, by identity of the masks
_RECENT_LOCK = threading.Lock()


def classify_rows(trace: np.ndarray, curves: np.ndarray) -> RowLayout:
    """The :class:`RowLayout` of a trace analysis's ``trace`` and ``curves`` masks (see the module docstring).
    The lead detection and the OOD descriptor of one report classify the same analysis: the result for the same
    two mask objects is reused (the masks are never changed in place)."""
    with _RECENT_LOCK:
        for t, c, rl in _RECENT:
            if t is trace and c is curves:
                return rl
    rl = _classify_rows(trace, curves)
    with _RECENT_LOCK:
        _RECENT.append((trace, curves, rl))
        del _RECENT[:-4]
    return rl


def _classify_rows(trace: np.ndarray, curves: np.ndarray) -> RowLayout:
    trace, curves = np.asarray(trace, dtype=bool), np.asarray(curves, dtype=bool)
    rows = trace_rows(trace)
    ww = trace.shape[1]
    line_rows = baseline_rows(curves)
    if len(line_rows) > len(rows):
        rows, trace = line_rows, curves
    if len(rows) == 5:  # a 6-row page whose weak row the trace filter dropped: a gap of two row spacings
        rows = _fill_rows(rows, 6, trace.shape[0])
    elif 7 <= len(rows) <= 10:  # a 12x1 page with rows lost the same way (every Mendeley page has exactly 4)
        rows = _fill_rows(rows, 12, trace.shape[0])
    spans: list[float] = []
    breaks: list[list[float]] = []
    n_cols = 0
    x_lo = x_hi = 0
    if rows:
        x_lo = min(int(np.flatnonzero(trace[t:b].any(axis=0))[0]) for t, b, _ in rows if trace[t:b].any())
        x_hi = max(int(np.flatnonzero(trace[t:b].any(axis=0))[-1]) + 1 for t, b, _ in rows if trace[t:b].any())
        extent = max(1, x_hi - x_lo)
        for t, b, _ in rows:
            segs = segments(trace[t:b], max(2, int(0.004 * ww)))
            covered = sum(x1 - x0 for x0, x1 in segs)
            spans.append(round(covered / extent, 3))
            breaks.append([(x0 - x_lo) / extent for x0, _ in segs[1:]])
            n_cols = max(n_cols, len(segs))
        if len(rows) == 6:  # 6x2 or 3x4 + 3 strips: where do the lead labels / lead-change marks stand?
            other = curves & ~cv2.dilate(trace.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            for i, (t, b, _) in enumerate(rows):
                marks = segments(other[t:b, x_lo:x_hi], max(2, int(0.01 * ww)))
                breaks[i] += [x0 / extent for x0, _ in marks if x0 > 0.05 * extent]
    match = rhythm_match(trace, rows, x_lo, x_hi)
    name = layout_name(len(rows), breaks, spans, match)
    return RowLayout(name, tuple(rows), n_cols, tuple(spans), tuple(tuple(b) for b in breaks), x_lo, x_hi, trace,
                     curves, match)


def _fill_rows(rows: list[Row], n: int, h: int) -> list[Row]:
    """``rows`` with the rows a tight page lost put back: when fewer than ``n`` rows were found, a gap between two
    baselines of about twice (three times) the median spacing gets one (two) evenly spaced rows; the bands are then
    recut half way between the baselines."""
    if len(rows) >= n or len(rows) < 3:
        return rows
    base = [r[2] for r in rows]
    d = float(np.median(np.diff(base)))
    out = [base[0]]
    for b in base[1:]:
        k = int(round((b - out[-1]) / d))
        if k >= 2:
            out += [out[-1] + (b - out[-1]) * j / k for j in range(1, k)]
        out.append(b)
    if len(out) != n:
        return rows
    return _bands([int(round(v)) for v in out], h)


def _row_ends(trace: np.ndarray, rows: Sequence[Row]) -> tuple[float, float]:
    """Median first and last column (px) over the rows of the runs of ink in each row band longer than 3 % of the
    width (gaps up to 3 % closed: the flat stretches a faint photo loses; a stray glyph is shorter)."""
    firsts, lasts = [], []
    gap = max(2, int(0.03 * trace.shape[1]))
    for t, b, _ in rows:
        segs = [ab for ab in segments(trace[t:b], gap) if ab[1] - ab[0] > gap]
        if segs:
            firsts.append(float(segs[0][0]))
            lasts.append(float(segs[-1][1]))
    if not lasts:
        return 0.0, 0.0
    return float(np.median(firsts)), float(np.median(lasts))


def panel_boxes(rl: RowLayout, ppm_grid: float, *, pad_mm: float = 1.0
                ) -> tuple[dict[str, tuple[float, float, float, float]], dict[str, tuple[float, float]], str]:
    """(key -> box (x0, y0, x1, y1) in the working copy's px, key -> time window (s), how the scale was found)
    of the panels of layout ``rl.name`` (see the module docstring); ``ppm_grid``: px per mm of the paper grid on
    the working copy (0 when none). Empty dicts and the reason when the rows do not fit the layout."""
    from ecg_core.reports.synth_layouts import page_layout

    if rl.name not in KNOWN_LAYOUTS:
        return {}, {}, f"the {len(rl.rows)} trace rows form no known layout"
    lay = page_layout(rl.name)
    rows = _fill_rows(list(rl.rows), lay.n_rows, rl.trace.shape[0])
    if len(rows) != lay.n_rows:
        return {}, {}, f"{len(rows)} trace rows found, the {rl.name} layout has {lay.n_rows}"
    half = sum(has_break(r, 0.5) for r in rl.breaks)  # the labels of the chest leads may be lost on lower rows
    if rl.name == "6x2" and half < (2 if rl.match < MATCH_6X2 else 3):
        # six rows that do not change lead half way: six 10 s strips (a 6x1 page), not limb | chest leads
        return {}, {}, "6 trace rows without a lead change half way along (not a 6x2 page)"
    first, last = _row_ends(rl.trace, rows)
    if rl.curves is not None:  # a faint photo's trace components cover part of the rows: all their ink then
        f2, l2 = _row_ends(rl.trace | rl.curves, rows)  # (not always: a grey grid's line ends reach past the trace)
        if last - first < 0.8 * (l2 - f2):
            first, last = f2, l2
    if last - first < 0.3 * rl.trace.shape[1]:
        return {}, {}, "the trace rows are too short for 10 s of paper"
    ppm_len = (last - first) / (ROW_S * 25.0 + PULSE_MM)
    ppm, how = ppm_len, f"the rows' length ({ppm_len:.2f} px/mm with the calibration pulse)"
    if ppm_grid > 0:
        start = last - ROW_S * 25.0 * ppm_grid
        if start - 1.5 * PULSE_MM * ppm_grid <= first <= start + 3.0 * ppm_grid:
            ppm, how = ppm_grid, f"the paper grid ({ppm_grid:.2f} px/mm)"
    x_start = last - ROW_S * 25.0 * ppm
    pad = pad_mm * ppm
    boxes: dict[str, tuple[float, float, float, float]] = {}
    windows: dict[str, tuple[float, float]] = {}
    for p in lay.panels:
        top, bottom, _ = rows[p.row]
        boxes[p.key] = (x_start + p.t0 * 25.0 * ppm - pad, float(top), x_start + p.t1 * 25.0 * ppm + pad,
                        float(bottom))
        windows[p.key] = (float(p.t0), float(p.t1))
    return boxes, windows, how


def analysis_at(work: np.ndarray, level: float = 0.68):
    """:func:`ecg_core.reports.traces.analyse_traces` at the usual ink level, else the trace analysis of the ink
    at ``level`` of the paper (the faint traces of a low-resolution photo)."""
    from ecg_core.reports.traces import TraceAnalysis, analyse_traces, ink_masks, trace_components

    if level == 0.68:
        return analyse_traces(work)
    ink, curves = ink_masks(work, level=level)
    span, n, rows, mask = trace_components(curves, return_mask=True)
    return TraceAnalysis(work, ink, curves, mask, span, n, rows)
