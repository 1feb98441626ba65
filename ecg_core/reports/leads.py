"""Where is each lead on the report? Lead boxes, their detection on real images, and attention per lead.

The standard report (:mod:`ecg_core.reports.layout`, the table shared with the synthetic renderer) prints 3 rows
x 4 columns of 2.5 s — row 1 I aVR V1 V4, row 2 II aVL V2 V5, row 3 III aVF V3 V6 — and a 10 s rhythm strip below
(key ``'II_rhythm'``, whatever lead the device chose for it; the Mendeley reports print lead III or II there). A :class:`LeadLayout` holds one box per lead in
**original image pixels** ``(x0, y0, x1, y1)``, x1/y1 exclusive — the format of the synthetic sidecars — and says
where the boxes came from:

* ``'sidecar'`` — the ground truth written by :mod:`ecg_core.reports.synth` next to a synthetic report;
* ``'detected'`` — found on the image by :func:`detect_layout`:

  1. ink that is not part of a long straight line is kept, and of it only long, thin, wiggling curves (the trace
     test of :mod:`ecg_core.reports.ecg_check`); their horizontal projection has one peak per trace row at the
     baseline: the 4 strongest, regularly spaced peaks are the 3 lead rows and the rhythm strip;
  2. the columns come from the long vertical separator lines between the leads when the device prints them
     (3 lines, equally spaced), otherwise from the paper grid: the grid period gives pixels per 5 mm, a column is
     62.5 mm (2.5 s at 25 mm/s) and the 4 columns end where the rhythm strip ends;
  3. the cells are widened by 1.5 mm on both sides so that the lead label printed at the start of a cell lies
     inside its box.

* ``'template'`` — fixed fractions of the image measured on the Mendeley layout, used when detection fails; the
  layout's ``message`` says why, and the page shows it.

Other layouts (3x4 + 3 strips, 6x2, 12x1, 2x6: :mod:`ecg_core.reports.layout_detect`) and photographed pages
(:mod:`ecg_core.reports.page_geometry`) set ``LeadLayout.layout`` and ``.windows``; a 4-row scan is read as before.

:func:`lead_attention` turns a heatmap in original coordinates into the share of attention per lead and per
territory (:data:`ecg_core.core.labels.TERRITORIES`, plus aVR and the rhythm strip:
:func:`ecg_core.reports.layout.lead_territory`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import LEADS
from ecg_core.reports.layout import (
    LEAD_KEYS,
    OTHER_TERRITORY,
    RHYTHM_KEY,
    RHYTHM_TERRITORY,
    TEMPLATE_BASELINES,
    TEMPLATE_COL_W,
    TEMPLATE_X0,
    TERRITORY_ORDER,
    cell_boxes,
    lead_territory,
    lead_windows,
)

SOURCES: tuple[str, ...] = ("sidecar", "detected", "template")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class LeadLayout:
    """Lead boxes in original pixels (x0, y0, x1, y1), x1/y1 exclusive; ``source`` in :data:`SOURCES`;
    ``message`` says how they were found (and, for the template, why detection failed); ``image_shape`` is
    (height, width) of the image they belong to."""

    boxes: Mapping[str, Box]
    source: str
    message: str
    image_shape: tuple[int, int]
    layout: str = "3x4+1"
    windows: Mapping[str, tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"LeadLayout.source must be one of {', '.join(SOURCES)}; received {self.source!r}")
        unknown = sorted(k for k in self.boxes if not is_lead_key(k))
        if unknown:
            raise ConfigError(f"LeadLayout boxes must be keyed by {', '.join(LEAD_KEYS)} (or '<lead>_rhythm'); "
                              f"received unknown {unknown}")
        h, w = self.image_shape
        for k, b in self.boxes.items():
            if len(b) != 4 or not (0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h):
                raise ConfigError(
                    f"box of {k!r} must satisfy 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h}; received {tuple(b)}"
                )

    @property
    def is_fallback(self) -> bool:
        return self.source == "template"

    @property
    def lead_windows(self) -> dict[str, tuple[float, float]]:
        """Key -> time window [t0, t1) in seconds of every box (the layout's; the 3x4 + rhythm table when the
        layout gave none)."""
        win = dict(self.windows) if self.windows else lead_windows()
        return {k: (float(win[k][0]), float(win[k][1])) for k in self.boxes if k in win}

    @property
    def keys(self) -> list[str]:
        """The box keys in layout order: the 12 leads, then the rhythm strips."""
        return sorted(self.boxes, key=key_order)


def _label(key: str) -> str:
    """Display name of a box key: 'rhythm' for the II strip, 'V1 rhythm' for another strip."""
    return "rhythm" if key == RHYTHM_KEY else key.replace("_rhythm", " rhythm")


def is_lead_key(key: str) -> bool:
    """A box key: one of the 12 leads, ``'II_rhythm'`` or ``'<lead>_rhythm'`` (a layout's other rhythm strips)."""
    return key in LEAD_KEYS or (key.endswith("_rhythm") and key[: -len("_rhythm")] in LEADS)


def key_order(key: str) -> tuple[int, int]:
    """Sort key of box keys: the 12 leads in order, then the rhythm strips in lead order."""
    if key in LEADS:
        return (0, LEADS.index(key))
    lead = key[: -len("_rhythm")] if key.endswith("_rhythm") else key
    return (1, LEADS.index(lead) if lead in LEADS else len(LEADS))


# ------------------------------------------------------------------------------------------------- helpers
def _clip_box(box: Sequence[float], shape: tuple[int, int]) -> Box:
    h, w = shape
    x0 = int(min(max(np.floor(box[0]), 0), w - 1))
    y0 = int(min(max(np.floor(box[1]), 0), h - 1))
    x1 = int(min(max(np.ceil(box[2]), x0 + 1), w))
    y1 = int(min(max(np.ceil(box[3]), y0 + 1), h))
    return (x0, y0, x1, y1)


def _grid_boxes(x_start: float, col_w: float, baselines: Sequence[float], *, pad: float,
                shape: tuple[int, int]) -> dict[str, Box]:
    """Boxes of the 3x4 cells and the rhythm strip from the first column's start, the column width and the 4 row
    baselines (all in px); rows reach half the neighbouring spacing above and below the baseline."""
    b = [float(v) for v in baselines]
    gaps = np.diff(b)
    tops = [b[0] - gaps[0] / 2] + [(b[i - 1] + b[i]) / 2 for i in range(1, 4)]
    bottoms = [(b[i] + b[i + 1]) / 2 for i in range(3)] + [b[3] + gaps[-1] / 2]
    return {k: _clip_box(box, shape) for k, box in cell_boxes(x_start, col_w, tops, bottoms, pad_x=pad).items()}


# ------------------------------------------------------------------------------------------------- sources
def layout_from_sidecar(sidecar: Mapping[str, Any], image_shape: tuple[int, int] | None = None) -> LeadLayout:
    """The ground-truth layout of a synthetic report's sidecar (``sidecar['boxes']``; ``image_size`` is
    [width, height]). Boxes are clipped to ``image_shape`` (height, width) when given."""
    boxes = sidecar.get("boxes") if isinstance(sidecar, Mapping) else None
    if not isinstance(boxes, Mapping) or not boxes:
        raise ConfigError("the sidecar has no 'boxes' entry; expected the JSON written by ecg_core.reports.synth next to "
                          "the image")
    if image_shape is None:
        size = sidecar.get("image_size")
        if not (isinstance(size, (list, tuple)) and len(size) == 2):
            raise ConfigError("the sidecar has no 'image_size' [width, height]; pass image_shape=(height, width)")
        image_shape = (int(size[1]), int(size[0]))
    shape = (int(image_shape[0]), int(image_shape[1]))
    out = {k: _clip_box(v, shape) for k, v in boxes.items() if is_lead_key(k)}
    win = sidecar.get("lead_windows_s")
    windows = ({k: (float(v[0]), float(v[1])) for k, v in win.items() if k in out}
               if isinstance(win, Mapping) else None)
    return LeadLayout(out, "sidecar", "lead boxes from the synthetic report's ground truth (sidecar JSON)", shape,
                      str(sidecar.get("layout_name", "3x4+1")), windows)


def load_sidecar(image_path: str | Path) -> dict[str, Any] | None:
    """The JSON sidecar next to an image (same name, ``.json``) when it holds lead boxes, else ``None``."""
    p = Path(image_path).with_suffix(".json")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("boxes"), dict) else None


def template_layout(image_shape: tuple[int, int], *, reason: str = "") -> LeadLayout:
    """Fixed boxes (fractions of the image measured on the Mendeley layout); ``reason`` says why detection
    failed and goes into the message."""
    h, w = int(image_shape[0]), int(image_shape[1])
    boxes = _grid_boxes(TEMPLATE_X0 * w, TEMPLATE_COL_W * w, [f * h for f in TEMPLATE_BASELINES],
                        pad=0.005 * w, shape=(h, w))
    why = f" ({reason})" if reason else ""
    msg = ("lead positions could not be detected on this image" + why + "; a fixed template of the standard "
           "3x4 + rhythm layout is used instead, so boxes may be misplaced — check them on the image")
    return LeadLayout(boxes, "template", msg, (h, w))


def _find_rows(trace: np.ndarray) -> tuple[list[float], str]:
    """Baselines (px) of the 4 trace rows from the horizontal projection of the trace mask, or ([], why)."""
    from scipy.signal import find_peaks

    h = trace.shape[0]
    prof = trace.mean(axis=1).astype(np.float64)
    prof = cv2.GaussianBlur(prof.reshape(-1, 1), (1, 0), sigmaX=0, sigmaY=max(1.0, 0.004 * h)).ravel()
    if prof.max() <= 0:
        return [], "no ECG traces were found"
    peaks, props = find_peaks(prof, distance=max(3, int(0.1 * h)), height=0.2 * prof.max())
    if len(peaks) < 4:
        return [], f"found {len(peaks)} trace rows, expected 4 (3 rows of leads and a rhythm strip)"
    top = sorted(sorted(peaks, key=lambda i: prof[i], reverse=True)[:4])
    gaps = np.diff(top)
    if gaps.min() < 0.6 * np.median(gaps) or gaps.max() > 1.5 * np.median(gaps):
        return [], f"the trace rows are not evenly spaced (gaps {', '.join(str(int(g)) for g in gaps)} px)"
    return [float(v) for v in top], ""


def _find_separators(ink: np.ndarray, top: float, bottom: float, min_len: float) -> list[float]:
    """x positions (px) of long vertical lines between ``top`` and ``bottom`` (at least ``min_len`` px long)."""
    from ecg_core.reports.traces import open_line

    h, w = ink.shape
    y0, y1 = int(max(0, top)), int(min(h, bottom))
    band = ink[y0:y1].astype(np.uint8)
    band = cv2.morphologyEx(band, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 5)))
    k = max(5, int(min_len))
    lines = open_line(band, k, horizontal=False)  # = MORPH_OPEN by a 1 x k rectangle, faster
    cols = np.flatnonzero(lines.any(axis=0))
    if cols.size == 0:
        return []
    groups = np.split(cols, np.flatnonzero(np.diff(cols) > 3) + 1)
    return [float(g.mean()) for g in groups if g.size <= 8]


def _equal_triplet(xs: Sequence[float], tol: float = 0.08) -> tuple[float, float, float] | None:
    """Three positions among ``xs`` with nearly equal gaps (the column separators), widest first."""
    best = None
    xs = sorted(xs)
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            for k in range(j + 1, len(xs)):
                g1, g2 = xs[j] - xs[i], xs[k] - xs[j]
                if min(g1, g2) > 0 and abs(g1 - g2) <= tol * max(g1, g2):
                    if best is None or g1 + g2 > best[2] - best[0]:
                        best = (xs[i], xs[j], xs[k])
    return best


def detect_layout(rgb: np.ndarray, *, analysis: Any = None, warp: bool = True) -> LeadLayout:
    """Detect the layout and its lead boxes on a report image (uint8 RGB (H, W, 3) or grey (H, W)).

    1. a photographed page (:func:`ecg_core.reports.page_geometry.find_page_warp`, only when a tilted or
       perspective page outline on a background is clearly there; ``warp=False`` skips it) is straightened first
       and the boxes found on it are mapped back to this image's pixels;
    2. the standard 3x4 + rhythm layout is looked for as it always was (rows of the 4 strongest baselines,
       columns from separator lines or the grid); a page where that succeeds gets exactly those boxes;
    3. otherwise the rows of traces are classified (:func:`ecg_core.reports.layout_detect.classify_rows`, the same
       classification as the out-of-distribution check) and a 3x4 + 3 rhythm strips, 6x2, 12x1 or 2x6 page gets
       its panels (:func:`ecg_core.reports.layout_detect.panel_boxes`), with ``layout`` and ``windows`` set.

    Returns a ``'detected'`` layout, or the ``'template'`` layout with the reason in its message when the image
    shows no known layout clearly enough. Never raises for an unusual image. ``analysis``:
    :func:`ecg_core.reports.ecg_check.analyse_traces` of ``to_work(rgb)`` when the caller already has it.
    """
    from ecg_core.reports.ecg_check import analyse_traces, to_work

    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3):
        raise ConfigError(f"detect_layout expects a uint8 image (H, W) or (H, W, 3); received {rgb.dtype} "
                          f"{rgb.shape}")
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    pw = None
    if warp:
        from ecg_core.reports.page_geometry import find_page_warp

        pw, _ = find_page_warp(rgb)
    if pw is not None:
        return _detect_warped(rgb, pw)
    ta = analysis if analysis is not None else analyse_traces(to_work(rgb))
    return _detect_any(rgb, ta, allow_3x4=False)


def photo_layout(rgb: np.ndarray) -> LeadLayout | None:
    """:func:`detect_layout` of a photographed page (the outline of a tilted page on a background clearly there),
    else ``None`` (a scan, a screenshot: nothing to straighten)."""
    from ecg_core.reports.page_geometry import find_page_warp

    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    pw, _ = find_page_warp(rgb)
    return _detect_warped(rgb, pw) if pw is not None else None


def detect_on_photo(rgb: np.ndarray, pw: Any) -> tuple[LeadLayout, Any]:
    """(layout, trace analysis) of the page straightened by the
    :class:`~ecg_core.reports.page_geometry.PageWarp` ``pw``: the boxes in the pixels of ``pw.rectify(rgb)``. The
    page is analysed turned by :data:`PHOTO_TRIES` (the boxes found there are turned back), with fainter ink when
    the usual level finds no layout; the template of the page when none does."""
    from ecg_core.reports.ecg_check import to_work
    from ecg_core.reports.layout_detect import analysis_at

    w, h = pw.page_size
    lay, ta = template_layout((h, w), reason="no known layout on the straightened photo"), None
    for turn, level in PHOTO_TRIES:  # the straightened page, turned slightly; fainter ink when that fails
        pw_try = pw.turned(turn)
        page = pw_try.rectify(rgb)
        ta = analysis_at(to_work(page), level)
        on_page = _detect_any(page, ta, allow_3x4=True)
        if on_page.is_fallback:
            lay = on_page
            continue
        back = pw.homography @ np.linalg.inv(pw_try.homography)  # turned page px -> page px
        boxes = {}
        for k, (x0, y0, x1, y1) in on_page.boxes.items():
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64).reshape(-1, 1, 2)
            q = cv2.perspectiveTransform(pts, back).reshape(-1, 2)
            boxes[k] = _clip_box((*q.min(axis=0), *q.max(axis=0)), (h, w))
        return LeadLayout(boxes, "detected", on_page.message, (h, w), on_page.layout, on_page.windows), ta
    return lay, ta


def _detect_warped(rgb: np.ndarray, pw: Any) -> LeadLayout:
    """The layout of the page straightened by the :class:`~ecg_core.reports.page_geometry.PageWarp` ``pw``, its
    boxes mapped back to ``rgb``'s pixels."""
    shape = (int(rgb.shape[0]), int(rgb.shape[1]))
    on_page, _ = detect_on_photo(rgb, pw)
    if on_page.is_fallback:
        why = on_page.message.partition(" (")[2].partition("); a fixed")[0] or "no known layout"
        return template_layout(shape, reason=f"{why}, on the straightened photo")
    boxes = {k: _clip_box(pw.box_to_picture(b), shape) for k, b in on_page.boxes.items()}
    return LeadLayout(boxes, "detected", f"{pw.message}; {on_page.message}", shape, on_page.layout,
                      on_page.windows)


#: (degrees the straightened photo is turned, ink level of the trace analysis) tried in turn on a photographed page
PHOTO_TRIES: tuple[tuple[float, float], ...] = ((0.7, 0.68), (0.7, 0.8))


def _detect_any(rgb: np.ndarray, ta: Any, *, allow_3x4: bool) -> LeadLayout:
    """The 3x4 + rhythm detection; when it fails, the other layouts (and, ``allow_3x4``, the 3x4 + rhythm layout
    by its rows too: a straightened photo)."""
    from ecg_core.reports.layout_detect import classify_rows, panel_boxes
    from ecg_core.reports.reading.calibration import grid_px_per_mm

    shape = (int(rgb.shape[0]), int(rgb.shape[1]))
    rl = classify_rows(ta.trace, ta.curves)
    # 4 rows (every Mendeley report) or no known layout: the 3x4 detection, exactly as it always was; 6 or 12 rows
    # first get their own panels (4 evenly spaced rows among them could pass for a 3x4 page)
    first = _detect_3x4(shape, ta) if rl.name in ("3x4+1", "other") else None
    if first is not None and not first.is_fallback:
        return first
    if rl.name == "3x4+1" and not allow_3x4:
        return first
    s = shape[1] / ta.work.shape[1]
    ppm, _ = grid_px_per_mm(rgb, ta)
    boxes, windows, how = panel_boxes(rl, ppm / s)
    if not boxes:
        return first if first is not None else _detect_3x4(shape, ta)
    out = {k: _clip_box((b[0] * s, b[1] * s, b[2] * s, b[3] * s), shape) for k, b in boxes.items()}
    msg = f"lead boxes detected: {rl.name} layout ({len(rl.rows)} trace rows), scale from {how}"
    return LeadLayout(out, "detected", msg, shape, rl.name, windows)


def _detect_3x4(shape: tuple[int, int], ta: Any) -> LeadLayout:
    """The 3x4 + rhythm detection of the module docstring on the trace analysis ``ta`` of an image of ``shape``."""
    from ecg_core.reports.ecg_check import grid_periodicity

    work = ta.work
    s = shape[1] / work.shape[1]  # original px per work px
    ink, curves = ta.ink, ta.curves
    baselines, why = _find_rows(ta.trace)
    if not baselines:
        return template_layout(shape, reason=why)
    spacing = float(np.median(np.diff(baselines)))
    # columns, way 1: three equally spaced long vertical separators across the three lead rows
    seps = _find_separators(ink, baselines[0] - 0.3 * spacing, baselines[2] + 0.3 * spacing, 1.3 * spacing)
    triplet = _equal_triplet(seps)
    band = curves[int(max(0, baselines[3] - spacing / 2)) : int(baselines[3] + spacing / 2)]
    rhythm_cols = np.flatnonzero(band.sum(axis=0) > 0)
    how = ""
    if triplet is not None:
        col_w = (triplet[2] - triplet[0]) / 2.0
        x_start = triplet[0] - col_w
        how = "column separator lines"
    else:
        # way 2: the grid period gives px per mm; the 4 columns (4 x 62.5 mm) end where the rhythm strip ends
        gray = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
        score, period = grid_periodicity(gray, curves)
        if score < 0.1 or period <= 0 or rhythm_cols.size == 0:
            return template_layout(shape, reason="neither column separator lines nor a measurable paper grid "
                                                 "were found")
        mm5 = period if period >= 10 else 5.0 * period  # a 5 mm period, or five 1 mm periods
        col_w = 12.5 * mm5
        x_end = float(rhythm_cols[-1] + 1)
        x_start = x_end - 4 * col_w
        first = float(rhythm_cols[0])  # calibration pulse and label come first, at most ~2 cm before the trace
        if not x_start - 5 * mm5 <= first <= x_start + 0.1 * col_w:
            return template_layout(shape, reason=f"the rhythm strip ({x_end - first:.0f} px) does not match 10 s "
                                                 f"of paper grid ({4 * col_w:.0f} px at {mm5 / 5:.1f} px/mm)")
        how = f"the paper grid ({mm5 / 5 * s:.1f} px/mm)"
    if x_start + 4 * col_w > work.shape[1] * 1.02 or x_start < -0.02 * work.shape[1]:
        return template_layout(shape, reason="the detected columns do not fit on the page")
    pad = 1.5 * col_w / 62.5  # 1.5 mm
    boxes = _grid_boxes(x_start * s, col_w * s, [b * s for b in baselines], pad=pad * s, shape=shape)
    msg = f"lead boxes detected: 4 trace rows (baselines) and 4 columns from {how}"
    return LeadLayout(boxes, "detected", msg, shape)


def check_and_layout(rgb: np.ndarray) -> tuple[Any, LeadLayout]:
    """:func:`ecg_core.reports.ecg_check.check_ecg` and :func:`detect_layout` of one image, sharing one analysis of the
    traces (about half the cost of calling both)."""
    from ecg_core.reports.ecg_check import analyse_traces, check_ecg, to_work

    ta = analyse_traces(to_work(rgb))
    return check_ecg(rgb, analysis=ta), detect_layout(rgb, analysis=ta)


def layout_for(rgb: np.ndarray, *, sidecar: Mapping[str, Any] | None = None) -> LeadLayout:
    """The sidecar's ground truth when given (synthetic reports), else :func:`detect_layout`."""
    if sidecar is not None:
        return layout_from_sidecar(sidecar, (int(rgb.shape[0]), int(rgb.shape[1])))
    return detect_layout(rgb)


# ------------------------------------------------------------------------------------------ coordinate mapping
def original_box_to_model(box: Sequence[float], crop_box: Sequence[int], model_hw: tuple[int, int]
                          ) -> tuple[float, float, float, float]:
    """Map a box in original pixels into model-input pixels (crop, then stretch to ``model_hw`` = (h, w))."""
    cx0, cy0, cx1, cy1 = crop_box
    sx, sy = model_hw[1] / (cx1 - cx0), model_hw[0] / (cy1 - cy0)
    return ((box[0] - cx0) * sx, (box[1] - cy0) * sy, (box[2] - cx0) * sx, (box[3] - cy0) * sy)


def model_box_to_original(box: Sequence[float], crop_box: Sequence[int], model_hw: tuple[int, int]
                          ) -> tuple[float, float, float, float]:
    """Inverse of :func:`original_box_to_model`."""
    cx0, cy0, cx1, cy1 = crop_box
    sx, sy = (cx1 - cx0) / model_hw[1], (cy1 - cy0) / model_hw[0]
    return (cx0 + box[0] * sx, cy0 + box[1] * sy, cx0 + box[2] * sx, cy0 + box[3] * sy)


# ---------------------------------------------------------------------------------------------- attribution
def _check_heatmap(heatmap: np.ndarray, layout: LeadLayout) -> np.ndarray:
    hm = np.asarray(heatmap, dtype=np.float64)
    if hm.ndim != 2 or hm.shape != tuple(layout.image_shape):
        raise ConfigError(
            f"heatmap must be 2-D in original image coordinates {tuple(layout.image_shape)} (h, w); received shape "
            f"{hm.shape}. Fix: map it back with explain.heatmap_to_original first."
        )
    if not np.all(np.isfinite(hm)) or hm.min() < 0:
        raise ConfigError("heatmap must hold finite values >= 0 (normalised attention)")
    return hm


def lead_attention(heatmap_orig: np.ndarray, layout: LeadLayout) -> pd.DataFrame:
    """Attention per lead: one row per box, sorted by ``mass`` (descending).

    Columns: ``lead``, ``territory``, ``mass`` (sum of the heatmap inside the box / sum over the whole image, so
    the masses of non-overlapping boxes add up to at most 1), ``mean_intensity`` (mean heatmap value in the box,
    0..1), ``area_fraction`` (box area / image area), ``enrichment`` (mass / area_fraction: > 1 means more
    attention than a uniform map would give), ``rank`` (1 = most attended). ``attrs['outside_mass']`` is the share
    of attention outside every box (header, margins). A map that is zero everywhere gives zeros.
    """
    hm = _check_heatmap(heatmap_orig, layout)
    total = float(hm.sum())
    h, w = hm.shape
    union = np.zeros(hm.shape, dtype=bool)
    rows = []
    for lead in layout.keys:
        x0, y0, x1, y1 = layout.boxes[lead]
        part = hm[y0:y1, x0:x1]
        union[y0:y1, x0:x1] = True
        area = (x1 - x0) * (y1 - y0) / float(h * w)
        mass = float(part.sum()) / total if total > 0 else 0.0
        rows.append({"lead": lead, "territory": lead_territory(lead), "mass": mass,
                     "mean_intensity": float(part.mean()) if part.size else 0.0, "area_fraction": area,
                     "enrichment": mass / area if area > 0 else 0.0})
    df = pd.DataFrame(rows, columns=["lead", "territory", "mass", "mean_intensity", "area_fraction", "enrichment"])
    df = df.sort_values(["mass", "lead"], ascending=[False, True]).reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    df.attrs["outside_mass"] = float(hm[~union].sum()) / total if total > 0 else 0.0
    df.attrs["source"] = layout.source
    return df


def territory_attention(table: pd.DataFrame) -> pd.DataFrame:
    """Sum of ``mass`` and mean of ``mean_intensity`` per territory of a :func:`lead_attention` table, in
    :data:`TERRITORY_ORDER`; columns territory, leads, mass, mean_intensity."""
    rows = []
    for terr in TERRITORY_ORDER:
        part = table[table["territory"] == terr]
        if part.empty:
            continue
        order = sorted(set(part["lead"]), key=key_order)
        rows.append({"territory": terr, "leads": ", ".join(_label(x) for x in order),
                     "mass": float(part["mass"].sum()), "mean_intensity": float(part["mean_intensity"].mean())})
    return pd.DataFrame(rows, columns=["territory", "leads", "mass", "mean_intensity"])


# ---------------------------------------------------------------------------------------------- drawing
_TERRITORY_RGB: dict[str, tuple[int, int, int]] = {
    "inferior": (214, 39, 40), "lateral": (31, 119, 180), "septal": (44, 160, 44), "anterior": (255, 127, 14),
    OTHER_TERRITORY: (127, 127, 127), RHYTHM_TERRITORY: (148, 103, 189),
}


def draw_boxes(rgb: np.ndarray, layout: LeadLayout, *, highlight: Iterable[str] = (), thickness: int | None = None,
               labels: bool = True) -> np.ndarray:
    """A copy of ``rgb`` with every lead box outlined in its territory colour (``highlight``ed leads drawn
    thicker) and the lead name written at the box's top-left corner."""
    if rgb.ndim != 3 or rgb.shape[:2] != tuple(layout.image_shape):
        raise ConfigError(f"rgb must be (H, W, 3) with (H, W) = {tuple(layout.image_shape)}; received {rgb.shape}")
    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    t = thickness or max(1, int(round(w / 700)))
    marked = set(highlight)
    for lead, (x0, y0, x1, y1) in layout.boxes.items():
        colour = _TERRITORY_RGB[lead_territory(lead)]
        tt = t * 3 if lead in marked else t
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, tt)
        if labels:
            name = _label(lead)
            scale = max(0.4, w / 2400)
            cv2.putText(out, name, (x0 + 3 * t, y0 + int(22 * scale) + 2 * t), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        colour, max(1, t), cv2.LINE_AA)
    return out


def attention_bar(table: pd.DataFrame, *, title: str = "Attention per lead") -> Any:
    """Plotly bar chart of a :func:`lead_attention` table: mass per lead in layout order, coloured by
    territory."""
    import plotly.graph_objects as go

    if table is None or table.empty:
        fig = go.Figure()
        fig.add_annotation(text="no lead boxes", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        return fig
    # plain lists and one constructor call: the same figure as add_trace/update_layout with pandas slices, ~7x
    # faster (plotly validates numpy arrays and every incremental update at length)
    rows = {r.lead: r for r in table.itertuples(index=False)}
    order = sorted(rows, key=key_order)
    label = _label

    data = []
    for terr in TERRITORY_ORDER:
        part = [rows[lead] for lead in order if rows[lead].territory == terr]
        if not part:
            continue
        r, g, b = _TERRITORY_RGB[terr]
        data.append({"type": "bar", "name": terr, "marker": {"color": f"rgb({r},{g},{b})"},
                     "x": [label(p.lead) for p in part], "y": [100.0 * float(p.mass) for p in part],
                     "customdata": [[float(p.mean_intensity), float(p.enrichment)] for p in part],
                     "hovertemplate": "%{x}: %{y:.1f} % of the attention<br>mean intensity %{customdata[0]:.2f}"
                                      "<br>%{customdata[1]:.1f}x a uniform map<extra></extra>"})
    layout = {"title": {"text": title}, "yaxis": {"title": {"text": "share of attention (%)"}}, "barmode": "group",
              "height": 330, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "legend": {"orientation": "h", "y": 1.15},
              "xaxis": {"categoryorder": "array", "categoryarray": [label(x) for x in order]}}
    return go.Figure({"data": data, "layout": layout})
