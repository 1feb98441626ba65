"""Is this picture an ECG report? Cheap, interpretable image statistics instead of a second neural network.

A classifier trained on ECG reports answers *something* for every input: a holiday photo gets "Normal" with 60 %
confidence. :func:`check_ecg` looks at properties every paper ECG shares, whatever its layout (3x4, 6x2, 12x1,
2x6, with one or three rhythm strips), paper colour (pink, red, orange, green, blue, grey, cream, black-and-white,
no grid) or camera, and refuses the rest with "not recognised as an ECG report":

1. **paper** — a good part of the picture is light paper (``paper_fraction``: share of pixels at least 75 % as
   bright as the paper level, the 95th percentile of the grey levels; a photo shows the desk around the page);
2. **ink** — dark pixels are a little of the page (``dark_fraction``), not none (blank) and not half (noise);
3. **ECG traces** — thin continuous dark curves that are *flat between narrow spikes* (the QRS complexes): a
   component counts when it is the graph of a function (one dark run in most columns), spans at least 7 % of the
   width, stays near its running median in most columns (``flat``: unlike sines, random walks, noisy series) and
   rises or falls steeply and comes back within a few pixels at least once (a spike: unlike steps, ramps, sawtooth
   edges). Components with the same baseline form a row; ``n_trace_rows`` counts rows with at least 3 spikes and
   ``trace_span`` the share of the width they cover. A wide-complex tachycardia has no flat baseline: 4 rows of
   long wiggling traces (``n_wiggle_rows``, ``wiggle_span`` >= 75 %) on an ECG grid with a few spikes count too.
   The traces are searched in the darkest ink first (below ~45 % of the local paper level, adaptive), then in
   lighter and faint thin ink (a photographed page: blurred, shaded, reduced) when that finds fewer than 3 rows;
   vertical lines (grid, separators) and long horizontal ones (frames, rules) are removed, and a photographed
   page's desk is masked out;
4. **grid** — a square grid: the 2-D Fourier spectrum of the background (traces and text masked) has a peak and a
   second one at the same spatial frequency turned by 90 degrees (``grid_score`` in [0, 1]; rotation-invariant, so
   a photographed page at 15 degrees keeps its grid, while text lines repeat along one axis only). A report with
   at least ``strong_trace_rows`` rows of ECG traces is accepted without a grid (plain-paper prints).

Everything is computed on one copy reduced by an integer factor to about :data:`CHECK_WIDTH` px wide (OpenCV's
fast area path): a few milliseconds per report. Lead labels and calibration pulses are not required (many exports
omit them). The rates measured on rendered variants of every layout / paper / artifact, the real reports and the
generated non-ECG set (:mod:`ecg_core.reports.nonecg`, with line charts on grid paper) are printed by
``bench/ecg_check_rates.py`` and asserted in ``tests/test_ecg_check_variants.py``.

The heavier trace analysis at the working width (lead detection, the reader) lives in
:mod:`ecg_core.reports.traces`; its names are re-exported here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ecg_core.core.config import FrozenConfig
from ecg_core.core.errors import ConfigError
from ecg_core.reports.traces import (  # noqa: F401 - re-exported (leads, reading)
    WORK_WIDTH,
    TraceAnalysis,
    _background,
    _long_lines,
    _max_min,
    analyse_traces,
    components,
    grid_periodicity,
    ink_masks,
    open_line,
    to_work,
    trace_components,
)

NOT_ECG = "not recognised as an ECG report"
CHECK_WIDTH = 560  # px: the check's copy is the image reduced by the integer factor closest to width / CHECK_WIDTH


@dataclass(frozen=True)
class EcgCheckThresholds(FrozenConfig):
    """Decision thresholds of :func:`check_ecg` (calibrated on rendered variants of seeds 0-199, the 648 Mendeley
    dev reports, the 6 realworld-dev reports and non-ECG seeds 0-39; the reported rates use other seeds)."""

    min_paper_fraction: float = 0.15
    min_dark_fraction: float = 0.0005
    max_dark_fraction: float = 0.25
    min_trace_span: float = 0.35
    min_trace_rows: int = 2
    min_grid_score: float = 0.30
    strong_trace_rows: int = 3

    def __post_init__(self) -> None:
        for name in ("min_paper_fraction", "min_dark_fraction", "max_dark_fraction", "min_trace_span",
                     "min_grid_score"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise ConfigError(f"EcgCheckThresholds.{name} must be a number in [0, 1]; received {v!r}")
        for name in ("min_trace_rows", "strong_trace_rows"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 12:
                raise ConfigError(f"EcgCheckThresholds.{name} must be an int in 1..12; received {v!r}")


@dataclass(frozen=True)
class EcgFeatures:
    """The measured statistics (see the module docstring); pixels of the check's copy (``work_width`` wide)."""

    paper_level: float
    paper_fraction: float
    dark_fraction: float
    trace_span: float
    n_traces: int
    n_trace_rows: int
    n_spikes: int
    n_wiggle_rows: int
    wiggle_span: float
    grid_score: float
    grid_period_px: float
    mean_saturation: float
    work_width: int


@dataclass(frozen=True)
class EcgCheck:
    """Verdict of :func:`check_ecg`.

    ``is_ecg``: every required property was found. ``score`` in [0, 1]: the weakest property's margin (0.5 at its
    threshold, towards 1 well above), so 0.5 is the decision boundary; a distance to the nearest threshold, not a
    calibrated probability (kept in the ``predict`` CSV for scripts; the app shows the verdict and the reasons).
    ``reasons``: one plain sentence per property, the failing ones first; ``failed``: the failing ones only.
    """

    is_ecg: bool
    score: float
    reasons: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    features: EcgFeatures | None = None
    #: the check's reduced copy and masks (``check_ecg(..., keep_scan=True)``), for the report descriptor
    scan: CheckScan | None = field(default=None, repr=False, compare=False)

    @property
    def message(self) -> str:
        """One line for the user: the verdict and, when refused, the failed properties."""
        if self.is_ecg:
            return "recognised as an ECG report"
        return NOT_ECG + ": " + "; ".join(self.failed)


@dataclass(frozen=True)
class CheckScan:
    """What the check computed on its reduced copy, reused by :func:`ecg_core.reports.ood.describe_report` (no
    second trace analysis): ``work`` the copy (uint8 RGB), ``ink`` its dark pixels on the page, ``trace`` the
    components counted as ECG traces (or long wiggling curves), all of the copy's size."""

    work: np.ndarray
    ink: np.ndarray
    trace: np.ndarray


# --------------------------------------------------------------------------------------------------- features
def check_copy(rgb: np.ndarray) -> np.ndarray:
    """The check's copy: uint8 RGB reduced by the integer factor k closest to width / :data:`CHECK_WIDTH`, each
    pixel the mean of the darkest and the average of its k x k block."""
    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3) or (rgb.ndim == 3 and rgb.shape[2] not in (3, 4)):
        raise ConfigError(f"check_ecg expects a uint8 image (H, W) or (H, W, 3); received {rgb.dtype} {rgb.shape}")
    if rgb.ndim == 2:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
    elif rgb.shape[2] == 4:
        rgb = np.ascontiguousarray(rgb[:, :, :3])
    k = max(1, int(round(rgb.shape[1] / CHECK_WIDTH)))
    if k > 1 and rgb.shape[0] >= 2 * k:
        # half min-pooling, half area averaging: a 1-px trace of a 200 dpi export stays dark (averaging alone fades
        # it to the grey of the grid), a 1-px grey grid line stays lighter than the traces
        size = (rgb.shape[1] // k, rgb.shape[0] // k)
        darkest = cv2.resize(cv2.erode(rgb, np.ones((k, k), np.uint8)), size, interpolation=cv2.INTER_NEAREST)
        mean = cv2.resize(rgb[: size[1] * k, : size[0] * k], size, interpolation=cv2.INTER_AREA)
        rgb = cv2.addWeighted(darkest, 0.5, mean, 0.5, 0.0)
    return rgb


def _runmed(x: np.ndarray, k: int) -> np.ndarray:
    """Running median of ``x`` (float, values in 0..255) over ``k`` samples (odd), edges replicated (OpenCV's
    median filter of the one-row image: the replicated border makes every vertical neighbour the row itself)."""
    row = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(1, -1)
    return cv2.medianBlur(row, int(k))[0].astype(np.float32)


def _median(a: np.ndarray) -> float:
    """``np.median`` of a 1-D float array without NaNs, without its generic overhead (the same order statistics
    and the same mean of the two middle ones)."""
    n = a.size
    k = n // 2
    if n % 2:
        return float(np.partition(a, k)[k])
    p = np.partition(a, (k - 1, k))
    return float((p[k - 1] + p[k]) / 2.0)


def _std(a: np.ndarray) -> float:
    """``np.std`` of a 1-D float64 array, computed as NumPy does (mean, squared deviations, their mean)."""
    n = a.size
    x = a - np.add.reduce(a) / n
    return float(np.sqrt(np.add.reduce(x * x) / n))


def _spikes(top: np.ndarray, bottom: np.ndarray, d: int, amp: float) -> np.ndarray:
    """Columns where the trace rises (``top`` = highest ink row) or falls (``bottom``) by ``amp`` px and is back
    within ``d`` columns on both sides (a narrow spike, not a step)."""
    n = top.size
    if n < 2 * d + 3:
        return np.zeros(n, bool)
    # every shift dd in [max(2, d // 2), d] at once: row j of the gathers holds the samples dd columns to the left
    # (right), edges replicated
    dd = np.arange(max(2, d // 2), d + 1)
    idx = np.arange(n)
    left = np.maximum(idx[None, :] - dd[:, None], 0)
    right = np.minimum(idx[None, :] + dd[:, None], n - 1)
    up = np.minimum(top[left], top[right]) - top >= amp
    down = bottom - np.maximum(bottom[left], bottom[right]) >= amp
    return (up | down).any(axis=0)


@dataclass(frozen=True)
class _Traces:
    span: float
    n_traces: int
    n_rows: int
    n_spikes: int
    curves: np.ndarray
    wiggle_rows: int = 0
    wiggle_span: float = 0.0
    trace: np.ndarray | None = None  # bool: the components counted as ECG traces or long wiggling curves


def _ecg_traces(curves: np.ndarray) -> _Traces:
    """Components of ``curves`` (bool) that look like ECG traces, grouped into rows (see the module docstring)."""
    h, w = curves.shape
    mask = cv2.morphologyEx(curves.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    # 16-bit labels where they cannot overflow: OpenCV's labelling with statistics is ~3 x faster with them, same
    # labels and statistics
    _, labels, stats = components(mask)
    sw, sh, sa = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    keep = (sw >= 0.07 * w) & (sa <= np.maximum(5.0, 0.02 * w) * sw) & (sh >= 4)
    keep[0] = False
    d, amp, tol = max(3, int(round(0.008 * w))), max(3.5, 0.008 * w), max(1.5, 0.005 * w)
    thin = max(3.5, 0.0065 * w)  # px: the median height of a trace's columns (its line width)
    win = 2 * max(5, int(0.03 * w)) + 1
    covered, wiggle_cover = np.zeros(w, bool), np.zeros(w, bool)
    found: list[tuple[float, int]] = []  # (baseline y, spikes) of ECG-like traces
    wiggles: list[tuple[float, int]] = []  # long wiggling curves of any shape (sine-like VT, flutter)
    trace = np.zeros((h, w), bool)  # the components counted (ECG trace or wiggle): the mask the descriptor reuses
    for i in np.flatnonzero(keep):
        x, y, cw, ch = (int(v) for v in stats[i, :4])
        sub = labels[y : y + ch, x : x + cw] == i
        cols = sub.any(axis=0)
        starts = np.count_nonzero(sub[1:] & ~sub[:-1], axis=0) + sub[0]
        if float(np.mean(starts[cols] == 1)) < 0.6:
            continue
        xs = np.flatnonzero(cols)
        top = np.argmax(sub, axis=0)[xs].astype(np.float32)
        bottom = (ch - 1 - np.argmax(sub[::-1], axis=0))[xs].astype(np.float32)
        if xs.size < cw:  # columns without ink inside the component: interpolated
            grid_x = np.arange(xs[0], xs[-1] + 1)
            top, bottom = np.interp(grid_x, xs, top), np.interp(grid_x, xs, bottom)
        else:  # np.interp at its own sample points: the samples, as float64
            top, bottom = top.astype(np.float64), bottom.astype(np.float64)
        extent = _median(bottom - top) + 1.0
        if extent > 2.0 * thin:  # a band of text, a bar, a thick stroke: not a trace
            continue
        centre = 0.5 * (top + bottom)
        base = _runmed(centre, win)
        counted = False
        if cw >= 0.2 * w and _std(centre) >= 1.0:  # a long wiggling curve, whatever its shape
            wiggle_cover[x : x + cw] |= cols
            wiggles.append((y + _median(base), 3))
            counted = True
        if extent <= thin:
            flat = float(np.mean(np.abs(centre - base) <= tol))
            spikes = _spikes(top, bottom, d, amp) if flat >= 0.45 else None
            if spikes is not None and spikes.any():
                n_sp = int(np.count_nonzero(spikes[1:] & ~spikes[:-1]) + spikes[0])
                covered[x : x + cw] |= cols
                found.append((y + _median(base), n_sp))
                counted = True
        if counted:
            trace[y : y + ch, x : x + cw] |= sub
    rows, spikes_total = _rows(found, 0.025 * h)
    wiggle_rows, _ = _rows(wiggles, 0.025 * h)
    return _Traces(float(covered.mean()), len(found), rows, spikes_total, mask.astype(bool), wiggle_rows,
                   float(wiggle_cover.mean()), trace)


def _rows(found: list[tuple[float, int]], tol: float) -> tuple[int, int]:
    """(rows with at least 3 spikes, spikes) of components given as (baseline y, spikes): baselines closer than
    ``tol`` px form one row."""
    rows, total, last, row_spikes = 0, 0, -1e9, 0
    for yb, ns in sorted(found):
        if yb - last > tol:
            rows += row_spikes >= 3
            row_spikes = 0
        row_spikes += ns
        total += ns
        last = yb
    return rows + (row_spikes >= 3), total


def _vertical_lines_removed(mask: np.ndarray) -> np.ndarray:
    """``mask`` (uint8 0/1) without vertical runs longer than 12 % of the height (grid lines, separators)."""
    h = mask.shape[0]
    lines = open_line(mask, max(9, int(0.12 * h)), horizontal=False)  # = MORPH_OPEN by a 1 x k rectangle
    return mask & (1 - cv2.dilate(lines, np.ones((1, 3), np.uint8)))


def _page_mask(v: np.ndarray, paper: float) -> np.ndarray:
    """Where the page is (bool): a copy at quarter size at least half as bright as the paper, less a 4 px rim.
    A photographed page lies on a darker desk, whose rim next to the page would otherwise count as ink."""
    h, w = v.shape
    q = cv2.resize(v, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    q = cv2.dilate(q, np.ones((3, 3), np.uint8))  # labels and pulses are on the page
    page = cv2.erode((q >= 0.5 * paper).astype(np.uint8), np.ones((5, 5), np.uint8))
    return cv2.resize(page, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def _two_passes(vf: np.ndarray, bg: np.ndarray, ink: np.ndarray, page: np.ndarray) -> _Traces:
    """Traces of the darkest ink first (below 45 % of the paper level, vertical lines removed: the traces of most
    reports, whatever the grid); when that finds fewer than 3 rows, of lighter ink (below 72 %) and then of faint
    thin dark lines too (a black-hat filter: a blurred, shaded, reduced photo), long horizontal lines (at least half
    the width: frames, rules, dark grid lines) removed; the best of them."""
    h, w = ink.shape
    ink_page = page.astype(np.uint8)
    ratio = np.clip(vf * (255.0 / np.maximum(bg, 1.0)), 0, 255).astype(np.uint8)
    hist = np.cumsum(cv2.calcHist([ratio], [0], None, [256], [0, 256]).ravel())
    darkest = float(np.searchsorted(hist, 0.004 * ratio.size)) / 255.0  # the trace ink's level (ratio to paper)
    level = float(np.clip(darkest + 0.45 * (1.0 - darkest), 0.45, 0.8))
    dark = ((vf < level * bg) & (bg > 60)).astype(np.uint8) & ink_page
    first = _ecg_traces(_vertical_lines_removed(dark).astype(bool))
    if first.n_rows >= 3:
        return first
    # faint traces (a photo: blurred, shaded, reduced) or traces touching dark grid lines / frames
    best = first
    light = ((vf < 0.72 * bg) & (bg > 60)).astype(np.uint8) & ink_page
    v8 = np.clip(vf, 0, 255).astype(np.uint8)
    hat = cv2.morphologyEx(v8, cv2.MORPH_BLACKHAT, np.ones((5, 5), np.uint8)).astype(np.float32)
    faint = (((hat > 0.16 * bg) | (vf < 0.72 * bg)) & (bg > 60)).astype(np.uint8) & ink_page
    for mask in (light, cv2.morphologyEx(faint, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))):
        curves = mask & (1 - _long_lines(mask, max(15, int(0.5 * w)), max(9, int(0.12 * h))))
        other = _ecg_traces(curves.astype(bool))
        if (other.n_rows, other.span) > (best.n_rows, best.span):
            best = other
        if best.n_rows >= 3:
            break
    return best


@functools.lru_cache(maxsize=8)
def _spectrum_grid(n: int) -> tuple[np.ndarray, ...]:
    """What :func:`grid_spectrum` needs for an n x n crop and depends on n only (computed once per size, read-only):
    the Hann window, the frequencies along y and x of ``rfft2``'s output, their radius and the grid band."""
    win = np.hanning(n).astype(np.float32)
    fy = np.fft.fftfreq(n) * n
    fx = np.arange(n // 2 + 1, dtype=np.float64)
    r = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    band = (r >= n / 40.0) & (r <= n / 3.5)
    for a in (win, fy, fx, r, band):
        a.setflags(write=False)
    return win, fy, fx, r, band


def grid_spectrum(gray: np.ndarray, curves: np.ndarray, *, size: int = 256) -> tuple[float, float]:
    """(score in [0, 1], period in px) of a square grid from the 2-D power spectrum of the background.

    The grid signal (how much darker than the local paper, traces and text ``curves`` set to 0) of a central
    ``size`` x ``size`` crop, Hann-windowed; its strongest peak with a period of 3.5-40 px and the strongest
    within one bin of the same frequency turned by 90 degrees. The score is log10 of the weaker peak over the
    median power of that frequency ring, divided by 4 and clipped to [0, 1]: 0.3 means 16 x the ring's median.
    """
    h, w = gray.shape
    n = int(min(size, 2 ** int(np.log2(max(8, min(h, w))))))
    y0, x0 = (h - n) // 2, (w - n) // 2
    g = gray[y0 : y0 + n, x0 : x0 + n].astype(np.float32)
    bg = _background(gray[y0 : y0 + n, x0 : x0 + n])
    s = np.clip(bg - g, 0, 60)
    s[curves[y0 : y0 + n, x0 : x0 + n]] = 0.0
    s -= float(s.mean())
    win, fy, fx, r, band = _spectrum_grid(n)
    p = np.abs(np.fft.rfft2(s * win[:, None] * win[None, :])) ** 2
    if not band.any() or float(p[band].max()) <= 0:
        return 0.0, 0.0
    pb = np.where(band, p, 0.0)
    iy, ix = np.unravel_index(int(np.argmax(pb)), p.shape)
    ky, kx = float(fy[iy]), float(fx[ix])
    # the same frequency turned by 90 degrees: (kx, ky) -> (-ky, kx), mirrored into the half plane fx >= 0
    qx, qy = -ky, kx
    if qx < 0:  # conjugate symmetry of the real signal's spectrum
        qx, qy = ky, -kx
    best = 0.0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            jx, jy = int(round(qx)) + dx, int(round(qy)) + dy
            if 0 <= jx < p.shape[1] and -n // 2 <= jy < n // 2:
                best = max(best, float(p[jy % n, jx]))
    radius = float(np.hypot(ky, kx))
    ring = p[(np.abs(r - radius) <= 1.0)]
    med = float(np.median(ring)) if ring.size else 0.0
    weak = min(best, float(p[iy, ix]))
    if med <= 0 or weak <= 0:
        return 0.0, 0.0
    return float(np.clip(np.log10(weak / med) / 4.0, 0.0, 1.0)), float(n / max(radius, 1e-6))


def ecg_features(rgb: np.ndarray, *, analysis: TraceAnalysis | None = None) -> EcgFeatures:
    """Measure the statistics of :func:`check_ecg` on a uint8 RGB (H, W, 3) or grey (H, W) image. ``analysis``
    is accepted for compatibility and not used (the check has its own, cheaper analysis)."""
    return _measure(rgb)[0]


def _measure(rgb: np.ndarray) -> tuple[EcgFeatures, CheckScan]:
    """:func:`ecg_features` and the :class:`CheckScan` they were measured on."""
    small = check_copy(rgb)
    v, mn = _max_min(small)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    paper = float(np.percentile(gray[:: 2, :: 2], 95))
    paper_fraction = float(np.count_nonzero(gray >= 0.75 * paper)) / gray.size if paper > 40 else 0.0
    bg = _background(v)
    vf = v.astype(np.float32)
    ink = ((vf < 0.55 * bg) & (bg > 60)) | (gray.astype(np.float32) < 0.35 * bg)
    page = _page_mask(v, paper)
    ink &= page
    tr = _Traces(0.0, 0, 0, 0, np.zeros(ink.shape, bool))
    if float(ink.mean()) <= 0.3:  # noise and dark photos: no trace analysis (and no time spent on it)
        tr = _two_passes(vf, bg, ink, page)
    score, period = grid_spectrum(gray, tr.curves)
    sat = float(np.mean((vf[::2, ::2] - mn[::2, ::2]) / np.maximum(vf[::2, ::2], 1.0)))
    feats = EcgFeatures(paper_level=paper, paper_fraction=paper_fraction, dark_fraction=float(ink.mean()),
                        trace_span=tr.span, n_traces=tr.n_traces, n_trace_rows=tr.n_rows, n_spikes=tr.n_spikes,
                        n_wiggle_rows=tr.wiggle_rows, wiggle_span=tr.wiggle_span,
                        grid_score=score, grid_period_px=period, mean_saturation=sat, work_width=int(w))
    return feats, CheckScan(small, ink, tr.trace if tr.trace is not None else np.zeros(ink.shape, bool))


def _margin(value: float, threshold: float, *, above: bool, scale: float) -> float:
    """0.5 at the threshold, towards 1 when comfortably on the right side, towards 0 on the wrong side."""
    d = (value - threshold) if above else (threshold - value)
    return float(1.0 / (1.0 + np.exp(-d / max(scale, 1e-6))))


def check_ecg(rgb: np.ndarray, *, thresholds: EcgCheckThresholds | None = None,
              analysis: TraceAnalysis | None = None, keep_scan: bool = False) -> EcgCheck:
    """Decide whether ``rgb`` (uint8 (H, W, 3) or (H, W)) shows an ECG report; see the module docstring.

    Required: light paper, a moderate amount of ink, ECG-like traces in at least ``min_trace_rows`` rows spanning
    ``min_trace_span`` of the width, and either a square grid or ``strong_trace_rows`` rows of traces.
    ``analysis`` is accepted for compatibility and not used. ``keep_scan``: keep the :class:`CheckScan` in the
    verdict (``scan``) for the report descriptor.
    """
    t = thresholds or EcgCheckThresholds()
    f, scan = _measure(rgb)
    checks: list[tuple[bool, float, str]] = []

    ok = f.paper_fraction >= t.min_paper_fraction
    checks.append((ok, _margin(f.paper_fraction, t.min_paper_fraction, above=True, scale=0.08),
                   f"light paper covers {f.paper_fraction:.0%} of the image" if ok else
                   f"too little light paper ({f.paper_fraction:.0%} of the image; an ECG report has at least "
                   f"{t.min_paper_fraction:.0%})"))

    hi = _margin(f.dark_fraction, t.max_dark_fraction, above=False, scale=0.03)
    lo = _margin(f.dark_fraction, t.min_dark_fraction, above=True, scale=0.001)
    if f.dark_fraction > t.max_dark_fraction:
        checks.append((False, hi, f"too much dark ink ({f.dark_fraction:.0%} of the pixels; traces and text of "
                                  f"an ECG report stay below {t.max_dark_fraction:.0%})"))
    elif f.dark_fraction < t.min_dark_fraction and f.n_trace_rows < t.min_trace_rows:
        checks.append((False, lo, f"no dark ink: the page is blank ({f.dark_fraction:.2%} dark pixels)"))
    else:
        checks.append((True, min(hi, lo), f"dark ink on {f.dark_fraction:.1%} of the pixels"))

    grid_ok = f.grid_score >= t.min_grid_score
    ok = f.trace_span >= t.min_trace_span and f.n_trace_rows >= t.min_trace_rows
    m = min(_margin(f.trace_span, t.min_trace_span, above=True, scale=0.08),
            _margin(f.n_trace_rows, t.min_trace_rows - 0.5, above=True, scale=0.25))
    # a wide-complex tachycardia or flutter has no flat baseline: 4 rows of long wiggling traces on an ECG grid
    wide = (not ok and grid_ok and f.n_wiggle_rows >= max(4, t.min_trace_rows) and f.wiggle_span >= 0.75
            and f.n_spikes >= 5)
    if ok:
        text = (f"ECG-like traces (flat baseline, narrow spikes) in {f.n_trace_rows} rows span {f.trace_span:.0%} "
                "of the width")
    elif wide:
        m = min(_margin(f.n_wiggle_rows, 3.5, above=True, scale=0.25),
                _margin(f.wiggle_span, 0.75, above=True, scale=0.05))
        text = (f"continuous traces in {f.n_wiggle_rows} rows span {f.wiggle_span:.0%} of the width on an ECG grid "
                "(no flat baseline: e.g. a wide-complex tachycardia)")
    else:
        text = (f"no ECG-like traces: found {f.n_trace_rows} rows of continuous curves with a flat baseline and "
                f"narrow spikes spanning {f.trace_span:.0%} of the width; a report has at least "
                f"{t.min_trace_rows} rows spanning {t.min_trace_span:.0%}")
    checks.append((ok or wide, m, text))

    strong = f.n_trace_rows >= t.strong_trace_rows or (f.n_trace_rows >= 2 and f.n_spikes >= 15)
    if grid_ok:
        text = f"a square grid repeats every {f.grid_period_px:.1f} px along two perpendicular directions " \
               f"(score {f.grid_score:.2f})"
    elif strong:
        text = (f"no clear ECG grid (score {f.grid_score:.2f}); accepted because {f.n_trace_rows} rows of traces "
                "are unmistakable (plain-paper print)")
    else:
        text = (f"no ECG grid: nothing repeats with the same period along two perpendicular directions (score "
                f"{f.grid_score:.2f}; an ECG grid scores at least {t.min_grid_score:.2f}), and only "
                f"{f.n_trace_rows} rows of traces (without a grid at least {t.strong_trace_rows})")
    m = max(_margin(f.grid_score, t.min_grid_score, above=True, scale=0.04),
            _margin(f.n_trace_rows, t.strong_trace_rows - 0.5, above=True, scale=0.25))
    checks.append((grid_ok or strong, m, text))

    is_ecg = all(c[0] for c in checks)
    score = float(min(c[1] for c in checks))
    failed = [c[2] for c in checks if not c[0]]
    reasons = failed + [c[2] for c in checks if c[0]]
    return EcgCheck(is_ecg=is_ecg, score=round(score, 4), reasons=reasons, failed=failed, features=f,
                    scan=scan if keep_scan else None)


# ---------------------------------------------------------------------------------------------------- verdicts
class CheckCache:
    """On-disk cache of :func:`check_ecg` verdicts keyed by file content hash (``root/<thresholds
    hash>/<content hash>.json``, written atomically): a folder checked once is not checked again, whatever model
    predicts it next. Keeps ``is_ecg``, ``score``, ``failed`` and ``reasons`` (not the features)."""

    #: bump when the check's computation changes, so that old verdicts are not reused
    VERSION = 2

    def __init__(self, root: str | Path, thresholds: EcgCheckThresholds | None = None) -> None:
        from ecg_core.core.hashing import json_hash

        t = thresholds or EcgCheckThresholds()
        self.dir = Path(root) / json_hash({"v": self.VERSION, "work_width": CHECK_WIDTH, **t.to_dict()}, length=12)

    def _path(self, content_hash: str) -> Path:
        if not content_hash or any(c not in "0123456789abcdef" for c in content_hash):
            raise ConfigError(f"content_hash must be a hex digest; got {content_hash!r}")
        return self.dir / f"{content_hash}.json"

    def get(self, content_hash: str) -> EcgCheck | None:
        import json

        try:
            d = json.loads(self._path(content_hash).read_text())
            return EcgCheck(bool(d["is_ecg"]), float(d["score"]), [str(r) for r in d["reasons"]],
                            [str(f) for f in d["failed"]])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, content_hash: str, check: EcgCheck) -> None:
        import json

        from ecg_core.core.atomic import atomic_write_text

        atomic_write_text(self._path(content_hash), json.dumps({"is_ecg": check.is_ecg, "score": check.score,
                                                                "reasons": check.reasons, "failed": check.failed}))

