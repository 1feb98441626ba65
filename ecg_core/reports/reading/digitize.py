"""The digitiser: a 12-lead report image -> 12 named leads in mV at 500 Hz, the pixel path of every trace and a
quality score per lead.

Steps (all on the original pixels, OpenCV morphology and vectorised NumPy):

1. **Deskew**: the angle (within +-10 degrees) that makes the horizontal profile of the page's darkness sharpest
   (grid lines, baselines and text all run along the paper); the page is rotated back when it is off by more than
   0.1 degree.
   A photographed page on a desk (:func:`ecg_core.reports.page_geometry.find_page_warp`) is straightened by its
   perspective instead, and the paths are mapped back through it.
2. **Lead boxes**: a synthetic report's sidecar, else :func:`ecg_core.reports.leads.detect_layout`; the time window
   of each box comes from the layout (:attr:`ecg_core.reports.leads.LeadLayout.lead_windows`: 3x4 + rhythm, 3x4 +
   3 strips, 6x2, 12x1, 2x6; the extra strips of a 3x4 + 3 page fill V1 and V5 with 10 s).
3. **Calibration** (:mod:`.calibration`): pixels per mm from the sidecar, else from the paper grid's period
   (:func:`ecg_core.reports.ecg_check.grid_periodicity`), else from the column width (62.5 mm = 2.5 s at 25 mm/s).
   The 1 mV calibration pulse at the start of each row is measured and must agree with the gain (10 mm/mV unless
   told otherwise); a pulse of 5 or 20 mm switches the gain.
4. **Trace/grid separation**: darkness relative to the local paper level (max channel, so coloured grid lines are
   faint), minus long horizontal and vertical lines (grey-level openings: grid lines, separators, frames); the
   trace is what stays darker than a share of the box's darkest pixels.
5. **Per-column extraction**: every column of a box holds a few dark runs; a Viterbi pass picks one run per column
   so that the path stays continuous (a neighbouring lead's excursion into the box is a jump the path refuses) and
   near the row's baseline; a tall run is a steep stroke (its centre) or a peak (its extreme end).
6. **Conversion**: mV = (baseline - y) / (gain x px/mm), seconds = x / (speed x px/mm), resampled at ``fs``.

Quality per lead: the share of the lead's columns with a trace, times the share of steps without a jump; a lead
passes at :data:`QUALITY_PASS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ecg_core.core.config import FrozenConfig
from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import LEADS
from ecg_core.reports.layout import RHYTHM_KEY, lead_windows
from ecg_core.reports.page_geometry import estimate_skew
from ecg_core.reports.reading.calibration import calibrate_gain, darkness, grid_px_per_mm

QUALITY_PASS = 0.7
DIGITIZE_VERSION = "1.0"


@dataclass(frozen=True)
class DigitizeOptions(FrozenConfig):
    """``fs``: output rate (Hz); ``paper_speed_mm_s`` / ``gain_mm_mv``: the report's speed and gain (the gain is
    replaced by the calibration pulse's when that clearly shows 5 or 20 mm); ``rhythm_lead``: the lead printed on
    the rhythm strip (its 12-lead row is filled from the 10 s strip; ``''`` keeps the strip apart);
    ``deskew``: rotate the page straight first; ``max_skew_deg``: the largest rotation searched."""

    fs: float = 500.0
    paper_speed_mm_s: float = 25.0
    gain_mm_mv: float = 10.0
    rhythm_lead: str = "auto"
    deskew: bool = True
    max_skew_deg: float = 10.0

    def __post_init__(self) -> None:
        for name, lo, hi in (("fs", 50.0, 2000.0), ("paper_speed_mm_s", 5.0, 200.0), ("gain_mm_mv", 1.0, 100.0),
                             ("max_skew_deg", 0.0, 45.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= float(v) <= hi:
                raise ConfigError(f"{name} must be a number in [{lo:g}, {hi:g}]; received {v!r}")
        if self.rhythm_lead not in ("", "auto", *LEADS):
            raise ConfigError(f"rhythm_lead must be '', 'auto' or one of {', '.join(LEADS)}; received "
                              f"{self.rhythm_lead!r}")


@dataclass(frozen=True, eq=False)
class Digitized:
    """The signals read off one report.

    ``signals``: float64 (12, n) in mV, rows in :data:`ecg_core.core.labels.LEADS` order, NaN where the report does
    not show the lead; ``fs`` Hz. ``rhythm``: the 10 s rhythm strip (n,) in mV (NaN when absent), printed lead
    ``rhythm_lead``. ``paths``: lead key (12 leads and ``'II_rhythm'``) -> (k, 2) float array of the trace's (x, y)
    in original image pixels; ``quality``: key -> score in [0, 1] (:data:`QUALITY_PASS` passes); ``windows``:
    key -> (t0, t1) seconds shown. ``px_per_mm``, ``paper_speed_mm_s``, ``gain_mm_mv``: the calibration used;
    ``calibration``: what the pulse showed; ``skew_deg``: the rotation removed; ``layout_source``: where the boxes
    came from; ``messages``: what the reader should know."""

    fs: float
    signals: np.ndarray
    rhythm: np.ndarray
    rhythm_lead: str
    paths: dict[str, np.ndarray]
    quality: dict[str, float]
    windows: dict[str, tuple[float, float]]
    px_per_mm: float
    paper_speed_mm_s: float
    gain_mm_mv: float
    skew_deg: float
    layout_source: str
    image_shape: tuple[int, int]
    calibration: dict[str, Any] = field(default_factory=dict)
    messages: tuple[str, ...] = ()
    strips: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(self.signals.shape[1])

    @property
    def time(self) -> np.ndarray:
        return np.arange(self.n_samples) / self.fs

    def lead(self, name: str) -> np.ndarray:
        if name not in LEADS:
            raise ConfigError(f"lead must be one of {', '.join(LEADS)}; received {name!r}")
        return self.signals[LEADS.index(name)]

    @property
    def leads(self) -> dict[str, np.ndarray]:
        return {name: self.signals[i] for i, name in enumerate(LEADS)}

    def passed(self, threshold: float = QUALITY_PASS) -> dict[str, bool]:
        """Key -> whether its quality reaches ``threshold``."""
        return {k: q >= threshold for k, q in self.quality.items()}

    @property
    def all_passed(self) -> bool:
        return bool(self.quality) and all(self.passed().values())

    @property
    def mean_quality(self) -> float:
        return float(np.mean(list(self.quality.values()))) if self.quality else 0.0


# ------------------------------------------------------------------------------------------------ deskew
def _rotation(shape: tuple[int, int], angle: float) -> np.ndarray:
    """2x3 matrix taking original pixels to the deskewed page (rotation by -angle about the centre)."""
    h, w = shape
    return cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -angle, 1.0)


def _apply(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ m[:, :2].T + m[:, 2]


# ------------------------------------------------------------------------------------------ trace extraction
def _percentile_u8(a: np.ndarray, q: float) -> int:
    """The ``q``-th percentile of a uint8 array from its histogram (much faster than np.percentile)."""
    hist = cv2.calcHist([a], [0], None, [256], [0, 256]).ravel()
    c = np.cumsum(hist)
    return int(np.searchsorted(c, q / 100.0 * c[-1]))


def trace_mask(crop: np.ndarray, px_per_mm: float) -> np.ndarray:
    """Boolean mask of the trace in an RGB crop: darkness without long straight lines (uint8 grey-level openings),
    above half the crop's strong darkness (and at least 0.12)."""
    ch, cw = crop.shape[:2]
    d = cv2.convertScaleAbs(darkness(crop, int(round(2.5 * px_per_mm))), alpha=255.0)
    lh = max(5, int(0.6 * cw))
    lv = max(5, int(0.85 * ch))
    lines = cv2.max(cv2.morphologyEx(d, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (lh, 1))),
                    cv2.morphologyEx(d, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, lv))))
    d = cv2.subtract(d, lines)
    strong = _percentile_u8(d, 99.7) if d.size else 0
    mask = (d > max(0.12 * 255, 0.5 * strong)).astype(np.uint8)
    k = max(3, int(round(0.5 * px_per_mm)) | 1)  # bridge the antialiasing holes between two nearby strokes
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, k))).astype(bool)


def _column_runs(mask: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """Dark runs per column: (tops, bottoms inclusive, bounds) with the runs of column j at bounds[j]:bounds[j+1]."""
    m = mask.astype(np.int8)
    d = np.diff(m, axis=0, prepend=0, append=0)
    dt = d.T
    sc, sr = np.nonzero(dt == 1)
    _, er = np.nonzero(dt == -1)
    bounds = np.searchsorted(sc, np.arange(mask.shape[1] + 1))
    return sr.tolist(), (er - 1).tolist(), bounds.tolist()


def extract_path(mask: np.ndarray, baseline: float, *, w_base: float = 0.03, w_skip: float = 0.5,
                 w_centre: float = 0.05, stroke_ends: float = 0.35
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One trace through a box mask by dynamic programming over its columns.

    Returns (x, y, gaps, line width): points of the trace in crop pixels (one per column that holds it; a steep
    stroke gives two, where it enters and leaves the column, ``stroke_ends`` x the line width beside it), the
    vertical gap in px from the previous column's run (0 when they touch; the first is 0) and the median run length
    (the line width). The cost of a path is the vertical gap between consecutive runs (0 when they touch),
    ``w_base`` per pixel of a run's centre from ``baseline``, ``w_skip`` per column without any run and
    ``w_centre`` per half-pixel between the run centres."""
    tops, bots, bounds = _column_runs(mask)
    w = mask.shape[1]
    cols: list[int] = []
    cands: list[tuple[int, int]] = []  # (k0, k1) per kept column
    costs: list[list[float]] = []
    backs: list[list[int]] = []
    prev: tuple[int, int] | None = None
    prev_cost: list[float] = []
    prev_col = -1
    for j in range(w):
        k0, k1 = bounds[j], bounds[j + 1]
        if k0 == k1:
            continue
        cur_cost: list[float] = []
        cur_back: list[int] = []
        for k in range(k0, k1):
            t, b = tops[k], bots[k]
            unary = w_base * abs(0.5 * (t + b) - baseline)
            if prev is None:
                cur_cost.append(unary)
                cur_back.append(-1)
                continue
            tb = t + b
            best, arg = math.inf, -1
            for i in range(prev[1] - prev[0]):
                p = prev[0] + i
                tp, bp = tops[p], bots[p]
                gap = t - bp - 1 if t - bp - 1 > 0 else (tp - b - 1 if tp - b - 1 > 0 else 0)
                dc = tb - tp - bp
                c = prev_cost[i] + gap + w_centre * (dc if dc > 0 else -dc)
                if c < best:
                    best, arg = c, i
            cur_cost.append(best + unary + w_skip * (j - prev_col - 1))
            cur_back.append(arg)
        cols.append(j)
        cands.append((k0, k1))
        costs.append(cur_cost)
        backs.append(cur_back)
        prev, prev_cost, prev_col = (k0, k1), cur_cost, j
    if not cols:
        empty = np.zeros(0)
        return empty, empty, empty, 1.0
    chosen = [0] * len(cols)
    i = int(np.argmin(costs[-1]))
    for n in range(len(cols) - 1, -1, -1):
        chosen[n] = cands[n][0] + i
        i = backs[n][i]
    top = np.array([tops[k] for k in chosen], dtype=np.float64)
    bot = np.array([bots[k] for k in chosen], dtype=np.float64)
    length = bot - top + 1.0
    lw = float(np.median(length))
    y = 0.5 * (top + bot)
    gaps = np.zeros(len(y))
    if len(y) >= 2:
        gaps[1:] = np.maximum(0.0, np.maximum(top[1:] - bot[:-1] - 1.0, top[:-1] - bot[1:] - 1.0))
    x = np.array(cols, dtype=np.float64)
    if len(y) >= 3:
        # a tall run that no neighbour passes above (below) is a peak: its far end is the value; any other tall
        # run is a steep stroke: its centre
        tall = length > 1.5 * lw + 1.0
        tp, tn = np.r_[top[0], top[:-1]], np.r_[top[1:], top[-1]]
        bp, bn = np.r_[bot[0], bot[:-1]], np.r_[bot[1:], bot[-1]]
        up = tall & (tp >= top) & (tn >= top)
        down = tall & (bp <= bot) & (bn <= bot)
        hi, lo = top + 0.5 * lw, bot - 0.5 * lw
        y = np.where(up & ~down, hi, np.where(down & ~up, lo, y))
        if stroke_ends:
            # a steep stroke of a line lw px wide covers, in column j, the trace between j - (1 + lw) / 2 and
            # j + (1 + lw) / 2: its top and bottom are the values there (which one is which: the direction)
            stroke = tall & ~up & ~down & (length > 3.0 * lw)
            rising = stroke & (tp + bp > tn + bn)
            half = stroke_ends * lw
            x_in = np.where(stroke, x - half, x)
            y_in = np.where(rising, bot, np.where(stroke, top, y))
            x_out = x[stroke] + half
            y_out = np.where(rising, top, bot)[stroke]
            x = np.concatenate([x_in, x_out])
            y = np.concatenate([y_in, y_out])
            gaps = np.concatenate([gaps, np.zeros(len(x_out))])
            order = np.argsort(x, kind="stable")
            x, y, gaps = x[order], y[order], gaps[order]
    return x, y, gaps, lw


# ------------------------------------------------------------------------------------------ digitiser
def _cells(layout_boxes: Mapping[str, tuple[int, int, int, int]], m: np.ndarray | None, ppm: float, speed: float,
           windows: Mapping[str, tuple[float, float]] | None = None
           ) -> dict[str, tuple[float, float, float, float, float]]:
    """Key -> (x of t0, y of the baseline, crop x0, crop x1, half height) in deskewed pixels: the box's centre
    (mapped by ``m`` when the boxes belong to the rotated page) and the window's width at ``speed`` and ``ppm``,
    1 mm wider on both sides; ``windows``: key -> (t0, t1) s (default: the 3x4 + rhythm table)."""
    windows = windows if windows is not None else lead_windows()
    out = {}
    for key, (x0, y0, x1, y1) in layout_boxes.items():
        t0, t1 = windows[key]
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        width = (t1 - t0) * speed * ppm
        bh = float(y1 - y0)
        if m is not None:
            cx, cy = _apply(m, np.array([[cx, cy]]))[0]
            sin, cos = abs(m[0, 1]), abs(m[0, 0])
            bh = max(4.0, (bh - width * sin) / max(cos, 1e-3))
        out[key] = (cx - width / 2, cy, cx - width / 2 - ppm, cx + width / 2 + ppm, bh / 2)
    return out


def digitize(rgb: np.ndarray, *, sidecar: Mapping[str, Any] | None = None,
             options: DigitizeOptions | None = None) -> Digitized:
    """Read the 12 leads (and the rhythm strip) off a report image (uint8 RGB (H, W, 3)).

    ``sidecar``: a synthetic report's JSON (lead boxes, px/mm, speed, gain) when known; real images are laid out
    by :func:`ecg_core.reports.leads.detect_layout`. Never raises for an unusual image: leads that cannot be read
    come back NaN with quality 0 and the reason in ``messages``."""
    from ecg_core.reports.ecg_check import analyse_traces, to_work
    from ecg_core.reports.leads import detect_layout, layout_from_sidecar

    opts = options if options is not None else DigitizeOptions()
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConfigError(f"digitize expects a uint8 RGB image (H, W, 3); received "
                          f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}")
    shape = (int(rgb.shape[0]), int(rgb.shape[1]))
    messages: list[str] = []
    speed = float(sidecar.get("paper_speed_mm_s", opts.paper_speed_mm_s)) if sidecar else opts.paper_speed_mm_s
    gain = float(sidecar.get("gain_mm_mv", opts.gain_mm_mv)) if sidecar else opts.gain_mm_mv
    warp = None
    if opts.deskew and sidecar is None:  # a photographed page on a desk: its perspective undone first
        from ecg_core.reports.page_geometry import find_page_warp

        warp, _ = find_page_warp(rgb)
    skew = estimate_skew(rgb, max_deg=opts.max_skew_deg) if opts.deskew and warp is None else 0.0
    m = None
    page = rgb
    if warp is not None:
        page = warp.rectify(rgb)
        skew = float(warp.tilt_deg)
        messages.append(warp.message)
    elif abs(skew) > 0.1:
        m = _rotation(shape, skew)
        page = cv2.warpAffine(rgb, m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        messages.append(f"the page was rotated {skew:+.2f} degrees straight")
    ta = None
    if sidecar is not None:
        layout = layout_from_sidecar(sidecar, shape)
        ppm = float(sidecar.get("px_per_mm", 0.0))
        boxes_m = m
    elif warp is not None:  # the photographed page's layout, found as the lead detection finds it
        from ecg_core.reports.leads import detect_on_photo

        layout, ta = detect_on_photo(rgb, warp)
        boxes_m = None
        ppm = 0.0
    else:
        ta = analyse_traces(to_work(page))
        layout = detect_layout(page, analysis=ta, warp=False)
        boxes_m = None
        ppm = 0.0
    if layout.is_fallback:
        messages.append(layout.message)
    grid_ok = ppm > 0
    if ppm <= 0:
        ppm, gscore = grid_px_per_mm(page, ta)
        grid_ok = ppm > 0
        col = layout.boxes.get("I")
        ppm_cols = (col[2] - col[0] - 3.0 * ppm) / 62.5 * 25.0 / speed if (col and ppm > 0) else 0.0
        if col and ppm > 0 and layout.layout != "3x4+1":  # another layout: its own column width, 1 mm pads
            t0, t1 = layout.lead_windows.get("I", (0.0, 2.5))
            ppm_cols = (col[2] - col[0] - 2.0 * ppm) / ((t1 - t0) * speed)
        if ppm <= 0 and col and layout.layout == "3x4+1":
            ppm = (col[2] - col[0]) / (2.5 * speed + 3.0)
            messages.append(f"no paper grid measured (score {gscore:.2f}): {ppm:.2f} px/mm from the column width")
        elif col and layout.layout != "3x4+1" and (ppm <= 0 or abs(ppm_cols / ppm - 1) > 0.1):
            # another layout's boxes were cut at one scale (the grid's, else the rows' length): the same one here
            t0, t1 = layout.lead_windows.get("I", (0.0, 2.5))
            ppm_cols = (col[2] - col[0]) / ((t1 - t0) * speed + 2.0)
            messages.append(f"{ppm_cols:.2f} px/mm from the column width (paper grid: {ppm:.2f} px/mm)")
            ppm = ppm_cols
        elif ppm_cols > 0 and abs(ppm_cols / ppm - 1) > 0.1:
            messages.append(f"grid period ({ppm:.2f} px/mm) and column width ({ppm_cols:.2f} px/mm) disagree")
    inv = cv2.invertAffineTransform(m) if m is not None else None
    other = layout.layout != "3x4+1"  # another layout (3x4 + 3 strips, 6x2, 12x1, 2x6): its own time windows
    lay_windows = layout.lead_windows
    cells = _cells(layout.boxes, boxes_m, ppm, speed, lay_windows if other else None)
    windows = {k: v for k, v in (lay_windows if other else lead_windows()).items() if k in cells}
    source = layout.source
    if layout.is_fallback and ta is not None:
        from ecg_core.reports.reading.rows import strip_cells

        pshape = (int(page.shape[0]), int(page.shape[1]))
        sc, sw, ppm_rows, note = strip_cells(ta, pshape, ppm if grid_ok else 0.0, speed)
        if sc:
            cells, windows, source, ppm = sc, sw, "strips", ppm_rows
            if layout.message in messages:
                messages.remove(layout.message)
            messages.append(f"not the standard 3x4 + rhythm layout: {len(sc)} trace rows read as unnamed strips")
            if note:
                messages.append(note)
    if other and sidecar is None and layout.layout != "other" and gain == DigitizeOptions().gain_mm_mv:
        from ecg_core.reports.synth_layouts import page_layout

        gain = page_layout(layout.layout).gain_mm_mv  # the layout's usual gain (12x1: 5 mm/mV) until a pulse says
    pulse_cells = {k: c for k, c in cells.items() if windows.get(k, (1.0,))[0] == 0.0} if other else cells
    gain, calib, notes = calibrate_gain(page, pulse_cells or cells, ppm, gain)
    messages += notes
    fs = float(opts.fs)
    n = int(round(10.0 * fs))
    signals = np.full((len(LEADS), n), np.nan)
    rhythm = np.full(n, np.nan)
    paths: dict[str, np.ndarray] = {}
    quality: dict[str, float] = {}
    strips: dict[str, np.ndarray] = {}
    h, w = int(page.shape[0]), int(page.shape[1])  # the page read (the straightened photo when warped)
    for key, (x_t0, yb, cx0, cx1, hh) in cells.items():
        t0, t1 = windows[key]
        a, b = int(max(0, math.floor(cx0))), int(min(w, math.ceil(cx1)))
        top, bottom = int(max(0, math.floor(yb - hh))), int(min(h, math.ceil(yb + hh)))
        if b - a < 5 or bottom - top < 5:
            quality[key] = 0.0
            continue
        mask = trace_mask(page[top:bottom, a:b], ppm)
        cols, ys, gaps, _ = extract_path(mask, yb - top)
        xs = cols + a
        i0, i1 = int(round(t0 * fs)), min(n, int(round(t1 * fs)))
        t = np.arange(i0, i1) / fs
        xq = x_t0 + (t - t0) * speed * ppm
        inside = (xs >= x_t0 - 0.5) & (xs <= x_t0 + (t1 - t0) * speed * ppm + 0.5)
        span = max(1.0, (t1 - t0) * speed * ppm)
        coverage = float(np.count_nonzero(inside)) / span
        if np.count_nonzero(inside) < 2:
            quality[key] = 0.0
            continue
        xv, yv = xs[inside].astype(np.float64), ys[inside] + top
        jumps = float(np.mean(gaps[inside][1:] > 1.0 * ppm))  # the path leaps > 1 mm between columns
        mv = (yb - np.interp(xq, xv, yv)) / (gain * ppm)
        pos = np.searchsorted(xv, xq)
        near = np.minimum(np.abs(xq - xv[np.clip(pos - 1, 0, len(xv) - 1)]), np.abs(xv[np.clip(pos, 0, len(xv) - 1)]
                                                                                    - xq))
        mv[near > 1.0 * ppm] = np.nan  # no trace within 1 mm
        q = min(1.0, coverage) * (1.0 - min(1.0, 10.0 * jumps))
        if np.nanmax(np.abs(mv)) > 6.0 if np.isfinite(mv).any() else True:
            q *= 0.5
        quality[key] = round(float(q), 4)
        pts = np.stack([xv, yv], axis=1)
        paths[key] = warp.to_picture(pts) if warp is not None else (_apply(inv, pts) if inv is not None else pts)
        if key == RHYTHM_KEY:
            rhythm[i0:i1] = mv
        elif key not in LEADS:
            strips[key] = np.full(n, np.nan)
            strips[key][i0:i1] = mv
        else:
            signals[LEADS.index(key), i0:i1] = mv
    rl = opts.rhythm_lead if source != "strips" and RHYTHM_KEY in cells else ""
    for key in [k for k in strips if k.endswith("_rhythm")] if other else []:  # a 3x4 + 3 page's V1 / V5 strips
        lead = key[: -len("_rhythm")]
        if quality.get(key, 0.0) >= 0.5 and lead in LEADS:
            signals[LEADS.index(lead)] = strips[key]
    if strips and source == "strips":  # the best strip (quality, then length) gives the beats
        best = max(strips, key=lambda k: (round(quality.get(k, 0.0), 1), windows[k][1]))
        rhythm = strips[best]
    if rl == "auto":
        rl = _match_rhythm(signals, rhythm, int(round(2.5 * fs)))
        messages.append(f"the rhythm strip shows lead {rl} (it matches that lead's cell)" if rl else
                        "the rhythm strip matches none of I, II, III: kept apart")
    if rl and RHYTHM_KEY in quality and quality[RHYTHM_KEY] >= 0.5:
        signals[LEADS.index(rl)] = rhythm
    bad = [k for k, q in quality.items() if q < QUALITY_PASS]
    if bad:
        messages.append(f"{len(bad)} lead(s) below the quality check ({QUALITY_PASS:g}): {', '.join(bad)}")
    return Digitized(fs=fs, signals=signals, rhythm=rhythm, rhythm_lead=rl, paths=paths, quality=quality,
                     windows=windows, px_per_mm=float(ppm), paper_speed_mm_s=speed, gain_mm_mv=gain,
                     skew_deg=float(skew), layout_source=source, image_shape=shape, calibration=calib,
                     messages=tuple(messages), strips=strips)


def _match_rhythm(signals: np.ndarray, rhythm: np.ndarray, n: int) -> str:
    """The one of I, II, III (first-column cells, 0-2.5 s) that correlates best (>= 0.7) with the strip's first
    2.5 s, or ''."""
    best, name = 0.7, ""
    a = rhythm[:n]
    for lead in ("I", "II", "III"):
        b = signals[LEADS.index(lead), :n]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 0.5 * n:
            continue
        x, y = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
        den = float(np.sqrt(np.dot(x, x) * np.dot(y, y)))
        c = float(np.dot(x, y) / den) if den > 0 else 0.0
        if c > best:
            best, name = c, lead
    return name


def digitize_file(path: str | Path, *, options: DigitizeOptions | None = None, use_sidecar: bool = True
                  ) -> Digitized:
    """:func:`digitize` of an image file (safely decoded), with its synthetic sidecar when one lies beside it."""
    from ecg_core.imaging.loader import load_image
    from ecg_core.reports.leads import load_sidecar

    rgb = load_image(path).rgb
    sidecar = load_sidecar(path) if use_sidecar else None
    return digitize(rgb, sidecar=sidecar, options=options)


def draw_traces(rgb: np.ndarray, dig: Digitized, *, rgb_colour: tuple[int, int, int] = (0, 160, 255),
                thickness: int | None = None, alpha: float = 1.0) -> np.ndarray:
    """A copy of ``rgb`` with the digitised paths drawn over it (blended with ``alpha``); leads below the quality
    check are drawn in orange."""
    if rgb.shape[:2] != tuple(dig.image_shape):
        raise ConfigError(f"rgb must have the digitised image's shape {dig.image_shape}; received {rgb.shape[:2]}")
    over = np.ascontiguousarray(rgb.copy())
    t = thickness or max(1, int(round(dig.px_per_mm * 0.3)))
    for key, pts in dig.paths.items():
        if len(pts) < 2:
            continue
        colour = rgb_colour if dig.quality.get(key, 0.0) >= QUALITY_PASS else (255, 140, 0)
        # break the polyline where columns are missing
        gaps = np.flatnonzero(np.diff(pts[:, 0]) > 2.0 * dig.px_per_mm) + 1
        for part in np.split(pts, gaps):
            if len(part) >= 2:
                cv2.polylines(over, [np.round(part).astype(np.int32).reshape(-1, 1, 2)], False, colour, t, cv2.LINE_AA)
    if alpha >= 1.0:
        return over
    return cv2.addWeighted(over, float(alpha), rgb, 1.0 - float(alpha), 0.0)


def snr_db(truth: np.ndarray, est: np.ndarray, *, max_shift: int = 10) -> float:
    """Signal power over error power in dB (the PhysioNet/CinC 2024 digitisation score for one lead): ``truth``
    and ``est`` cover the samples the lead is shown; a constant offset (fitted on the samples read) and a time shift
    of up to ``max_shift`` samples are allowed; samples not read (NaN) count as zero."""
    truth = np.asarray(truth, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    power = float(np.sum(truth**2))
    best = -math.inf
    for s in range(-max_shift, max_shift + 1):
        e = np.full_like(est, np.nan)
        if s >= 0:
            e[s:] = est[: len(est) - s]
        else:
            e[:s] = est[-s:]
        ok = np.isfinite(e)
        if not ok.any():
            continue
        d = np.where(ok, e + float(np.mean(truth[ok] - e[ok])), 0.0)
        best = max(best, 10.0 * math.log10(power / max(float(np.sum((truth - d) ** 2)), 1e-12)))
    return best
