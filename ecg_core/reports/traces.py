"""Trace analysis of a report image at the working width (:data:`WORK_WIDTH`): ink and curve masks, trace-like
components, the paper-grid period. Shared by the lead detection (:mod:`ecg_core.reports.leads`) and the reader
(:mod:`ecg_core.reports.reading`); the ECG input check (:mod:`ecg_core.reports.ecg_check`) uses its own cheaper
analysis at a smaller width. Units: pixels of the working copy unless stated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ecg_core.core.errors import ConfigError

WORK_WIDTH = 1100  # px: the working copy keeps the 1 mm grid resolvable (~4 px/mm on an A4-landscape report)


def to_work(rgb: np.ndarray) -> np.ndarray:
    """The working copy: uint8 RGB, at most :data:`WORK_WIDTH` px wide (area interpolation)."""
    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3):
        raise ConfigError(f"check_ecg expects a uint8 image (H, W) or (H, W, 3); received {rgb.dtype} {rgb.shape}")
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    h, w = rgb.shape[:2]
    if w > WORK_WIDTH:
        # area averaging for a real reduction; for a copy only slightly wider (a JPEG decoded at half scale is
        # ~1107 px) bilinear gives the same pixels within rounding at a tenth of the cost of OpenCV's
        # non-integer area path
        interp = cv2.INTER_AREA if w > 1.25 * WORK_WIDTH else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, (WORK_WIDTH, max(1, int(round(h * WORK_WIDTH / w)))), interpolation=interp)
    return rgb


def _autocorr(profile: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised autocorrelation (lag 0 = 1) of a detrended 1-D profile, lags 0..max_lag."""
    p = profile.astype(np.float64)
    k = 15
    if p.size > 2 * k + 1:
        trend = np.convolve(np.pad(p, k, mode="edge"), np.ones(2 * k + 1) / (2 * k + 1), mode="valid")
        p = p - trend
    p = p - p.mean()
    denom = float(np.dot(p, p))
    if denom <= 1e-9 or p.size < 8:
        return np.zeros(max_lag + 1)
    n = p.size
    max_lag = min(max_lag, n - 2)
    out = np.array([np.dot(p[: n - lag], p[lag:]) / denom for lag in range(max_lag + 1)])
    return out


def _strip_acf(g: np.ndarray, axis: int, max_lag: int, n_strips: int = 6) -> np.ndarray:
    """Mean autocorrelation of the profiles of ``n_strips`` strips (profile along ``axis`` = 1: x, 0: y).

    Strips keep the grid periodic in the profile when the page is slightly rotated (averaging a 1.5 degree
    rotated page over its full height would smear a 5 mm period away).
    """
    length = g.shape[1] if axis == 1 else g.shape[0]
    other = g.shape[0] if axis == 1 else g.shape[1]
    edges = np.linspace(0, other, n_strips + 1).astype(int)
    acfs = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b - a < 4:
            continue
        prof = g[a:b].mean(axis=0) if axis == 1 else g[:, a:b].mean(axis=1)
        acfs.append(_autocorr(prof, max_lag))
    if not acfs or length < 16:
        return np.zeros(max_lag + 1)
    n = min(len(a) for a in acfs)
    return np.mean([a[:n] for a in acfs], axis=0)


def grid_periodicity(gray: np.ndarray, curves: np.ndarray) -> tuple[float, float]:
    """(score, period in px) of a square grid.

    The grid signal is how much darker than the paper a pixel is (trace and text pixels ``curves`` masked to 0),
    averaged along strips into x and y profiles. For each lag T in 3..80 px, the prominence of an axis is
    ``acf(T) - acf(T / 2)`` (a periodic pattern correlates with itself one period away and anti-correlates half a
    period away; smooth images correlate at every small lag). The score is the best T's smaller prominence over
    both axes (allowing +-1 px between them), halved so that an ideal grid scores about 0.75: a grid repeats with
    the same period along x and along y, text lines only along y.
    """
    g = np.clip(_background(gray) - gray.astype(np.float32), 0, 120)
    g[curves] = 0.0
    max_lag = 80
    ax, ay = _strip_acf(g, 1, max_lag), _strip_acf(g, 0, max_lag)
    n = min(len(ax), len(ay))
    if n < 6:
        return 0.0, 0.0

    def prominence(acf: np.ndarray) -> np.ndarray:
        out = np.full(n, -1.0)
        for t in range(3, n):
            half = t / 2.0
            lo, hi = int(np.floor(half)), int(np.ceil(half))
            out[t] = acf[t] - max(acf[lo], acf[hi])
        return out

    px, py = prominence(ax), prominence(ay)
    joint = np.full(n, -1.0)
    for t in range(3, n - 1):
        joint[t] = 0.5 * min(px[t], float(np.max(py[t - 1 : t + 2])))
    t_best = int(np.argmax(joint))
    best = float(joint[t_best])
    if best <= 0:
        return 0.0, 0.0
    # the fundamental: a multiple of the true period scores nearly as well as the period itself
    for k in (5, 4, 3, 2):
        t_sub = int(round(t_best / k))
        if t_sub >= 3:
            lo, hi = max(3, t_sub - 1), min(n - 2, t_sub + 1)
            cand = lo + int(np.argmax(joint[lo : hi + 1]))
            if joint[cand] >= 0.6 * best:
                t_best = cand
                break
    return best, _refine_period(ax + ay, t_best)


def _refine_period(acf: np.ndarray, period: int) -> float:
    """Sub-pixel period: the highest multiple m * period (m <= 4) still inside the autocorrelation, its peak
    refined by a parabola through the three samples around it, divided by m."""
    n = len(acf)
    for m in (4, 3, 2, 1):
        c = m * period
        if c + 3 < n:
            lo, hi = max(1, c - 2), min(n - 2, c + 2)
            i = lo + int(np.argmax(acf[lo : hi + 1]))
            a, b, d = acf[i - 1], acf[i], acf[i + 1]
            den = a - 2 * b + d
            off = 0.5 * (a - d) / den if den < 0 else 0.0
            return float((i + float(np.clip(off, -0.5, 0.5))) / m)
    return float(period)


def _max_min(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel max and min channel (uint8), with OpenCV (several times faster than ``ndarray.max(axis=2)``)."""
    r, g, b = cv2.split(rgb)
    return cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b)


def _background(channel: np.ndarray) -> np.ndarray:
    """Local paper level (float32, same shape): a max filter about 20 px wide (wider than traces and grid lines),
    smoothed, computed at quarter size; it follows uneven lighting so that a shaded corner's paper is not mistaken
    for ink."""
    h, w = channel.shape[:2]
    small = cv2.resize(channel, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.dilate(small, np.ones((5, 5), np.uint8))
    small = cv2.GaussianBlur(small.astype(np.float32), (0, 0), 2.5)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def open_line(mask: np.ndarray, length: int, *, horizontal: bool) -> np.ndarray:
    """``cv2.morphologyEx(mask, cv2.MORPH_OPEN, rect)`` of a uint8 0/1 ``mask`` with a ``length`` x 1 (horizontal)
    or 1 x ``length`` rectangle, pixel for pixel: the same anchor (the kernel's centre, for the erosion and the
    dilation alike) and the same borders (outside the image ignored), from two box sums whose cost does not depend
    on ``length`` (OpenCV's erosion and dilation by a line cost O(length) per pixel: ~5 ms for a quarter of a
    1100 px page, ~1 ms this way). A pixel survives the erosion when its window holds no 0 (counted with 0 padding,
    so that the outside is ignored) and the dilation when its window holds a surviving pixel (sums saturate at
    255: only zero / non-zero matters). 0/1 uint8 out."""
    ks = (int(length), 1) if horizontal else (1, int(length))
    holes = cv2.compare(mask, 0, cv2.CMP_EQ)  # 255 where the mask is 0
    kept = cv2.compare(cv2.boxFilter(holes, -1, ks, normalize=False, borderType=cv2.BORDER_CONSTANT), 0,
                       cv2.CMP_EQ)  # the erosion, 0/255
    grown = cv2.boxFilter(kept, -1, ks, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return cv2.compare(grown, 0, cv2.CMP_GT) & np.uint8(1)


def _long_lines(mask: np.ndarray, hlen: int, vlen: int) -> np.ndarray:
    """Pixels of ``mask`` (uint8 0/1) on horizontal runs >= ``hlen`` or vertical runs >= ``vlen`` px, gaps of
    up to 6 px bridged (dotted lines count), grown by one pixel (antialiasing). The openings by the long lines are
    :func:`open_line` (the same pixels as ``cv2.morphologyEx(..., MORPH_OPEN, ...)``, several times faster)."""
    bridged_v = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 7)))
    bridged_h = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (7, 1)))
    lines = open_line(bridged_h, hlen, horizontal=True)
    lines |= open_line(bridged_v, vlen, horizontal=False)
    return cv2.dilate(lines, np.ones((3, 3), np.uint8))


#: per max channel v (0-255), the smallest min channel of a neutral pixel: ``min > 0.6 * v`` in float32 (what the
#: ink masks compared) is ``min >= _NEUTRAL_MIN[v]`` for integer channels; a lookup without two float copies
_NEUTRAL_MIN = (np.floor(0.6 * np.arange(256, dtype=np.float32)) + 1).astype(np.uint8)


def ink_masks(work: np.ndarray, *, level: float = 0.68) -> tuple[np.ndarray, np.ndarray]:
    """(ink, curves) boolean masks of the working copy.

    ``ink``: pixels darker than ``level`` x the local paper level (max channel) that are not light coloured grid
    (a saturated pixel counts only when it is darker than half the paper level: a trace crossing a pink line).
    ``curves``: the ink without long straight horizontal or vertical lines, dotted ones included (grid lines of
    grey prints, column separators, frames, table rules), so that traces and glyphs remain. Lines are removed
    twice — from all ink and from the black ink alone — so a black trace crossing a grey grid line is not cut
    while black separator lines still go.
    """
    h, w = work.shape[:2]
    v, mn = _max_min(work)
    bg = _background(v)
    vf = v.astype(np.float32)
    neutral = mn >= cv2.LUT(v, _NEUTRAL_MIN)  # saturation (v - min) / v < 0.4: min > 0.6 v (float32)
    ink = ((vf < level * bg) & (bg > 60) & (neutral | (vf < 0.5 * bg))).astype(np.uint8)
    black = (ink.astype(bool) & (vf < min(0.45, level) * bg)).astype(np.uint8)
    hlen, vlen = max(15, int(0.25 * w)), max(9, int(0.12 * h))
    curves = (ink & (1 - _long_lines(ink, hlen, vlen))) | (black & (1 - _long_lines(black, hlen, vlen)))
    return ink.astype(bool), curves.astype(bool)


@functools.cache
def _label16_safe() -> bool:
    """Whether this OpenCV raises ``cv2.error`` when 16-bit component labels would overflow (newer OpenCV versions
    check; probed once per process on 90 000 single pixels: a property of the installed library, not state)
    instead of returning wrapped labels."""
    probe = np.zeros((600, 600), np.uint8)
    probe[::2, ::2] = 1
    try:
        cv2.connectedComponentsWithStats(probe, connectivity=8, ltype=cv2.CV_16U)
    except cv2.error:
        return True
    return False


def components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, labels, stats) of ``cv2.connectedComponentsWithStats(mask, connectivity=8)``: the same labels and
    statistics, computed with 16-bit labels when they cannot overflow (at most one provisional label per 2 x 2
    block) or, when they might, tried with 16-bit labels where OpenCV raises on an overflow (then with 32-bit ones):
    OpenCV's labelling is ~3 x faster with them. ``labels`` is uint16 or int32."""
    h, w = mask.shape[:2]
    if ((h + 1) // 2) * ((w + 1) // 2) < 65535 or _label16_safe():
        try:
            n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_16U)
            return int(n), labels, stats
        except cv2.error:
            pass
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    return int(n), labels, stats


def trace_components(curves: np.ndarray, *, return_mask: bool = False
                     ) -> tuple[float, int, int] | tuple[float, int, int, np.ndarray]:
    """(share of the width covered by trace-like components, number of such components, number of rows they form)
    and, with ``return_mask``, the boolean mask of those components' pixels.

    A component counts when it is at least 12 % of the width long, thin on average (pixels per column), has one
    dark run in at least 70 % of its columns (the graph of a function, unlike a glyph), and its centre line moves
    (not a straight rule). Components whose vertical centres lie within 6 % of the height of each other form one
    row (a report has 4: three rows of leads and the rhythm strip).
    """
    h, w = curves.shape
    mask = cv2.morphologyEx(curves.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    n, labels, stats = components(mask)
    covered = np.zeros(w, dtype=bool)
    count = 0
    centres: list[float] = []
    sw, sh, sa = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    keep = (sw >= 0.12 * w) & (sa <= np.maximum(6.0, 0.012 * w) * sw) & (sh >= max(4, int(0.015 * h)))
    keep[0] = False  # background
    accepted: list[int] = []
    for i in np.flatnonzero(keep):
        x, y, cw, ch, area = (int(v) for v in stats[i])
        sub = labels[y : y + ch, x : x + cw] == i
        cols = sub.any(axis=0)
        starts = np.count_nonzero(sub[1:] & ~sub[:-1], axis=0) + sub[0]
        single = float(np.mean(starts[cols] == 1)) if cols.any() else 0.0
        if single < 0.7:
            continue
        ys = np.arange(ch, dtype=np.float32)[:, None]
        centre = (sub * ys).sum(axis=0)[cols] / np.maximum(sub.sum(axis=0)[cols], 1)
        if float(np.std(centre)) < 1.0:
            continue
        covered[x : x + cw] |= cols
        count += 1
        accepted.append(int(i))
        centres.append(y + float(np.median(centre)))
    rows = 0
    last = -1e9
    for c in sorted(centres):
        if c - last > 0.06 * h:
            rows += 1
        last = c
    if return_mask:
        return float(covered.mean()), count, rows, np.isin(labels, accepted)
    return float(covered.mean()), count, rows


@dataclass(frozen=True)
class TraceAnalysis:
    """Masks and trace statistics of a working copy (shared by :func:`ecg_features` and
    :func:`ecg_core.reports.leads.detect_layout`)."""

    work: np.ndarray
    ink: np.ndarray
    curves: np.ndarray
    trace: np.ndarray
    trace_span: float
    n_traces: int
    n_rows: int


def analyse_traces(work: np.ndarray) -> TraceAnalysis:
    """Find the traces of a working copy (see :func:`to_work`): ink at 68 % of the paper level first; when that
    does not show 4 rows of traces spanning 80 % of the width (grey grid lines darker than usual, e.g. a rotated
    black-and-white scan), ink at 50 % too, and keep the better of the two."""
    ink, curves = ink_masks(work)
    span, n, rows, mask = trace_components(curves, return_mask=True)
    best = TraceAnalysis(work, ink, curves, mask, span, n, rows)
    if rows < 4 or span < 0.8:
        _, curves2 = ink_masks(work, level=0.5)
        span2, n2, rows2, mask2 = trace_components(curves2, return_mask=True)
        if (min(rows2, 4), span2) > (min(rows, 4), span):
            best = TraceAnalysis(work, ink, curves2, mask2, span2, n2, rows2)
    return best

