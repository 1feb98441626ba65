"""Panels of a report for the per-lead CNN (:mod:`ecg_core.ml.zoo_perlead`): crop, mosaic, cache, maps back.

The 13 panels (the 12 lead cells and the rhythm strip, in :data:`ecg_core.reports.layout.LEAD_KEYS` order) are cut
from the lead boxes of :func:`ecg_core.reports.leads.layout_for` (the sidecar of a synthetic report, else
:func:`~ecg_core.reports.leads.detect_layout`; on the Mendeley reports the detected 3x4 + rhythm layout). Each
panel becomes **ink** (``1 - max(R, G, B) / 255``: black traces are ~1, white paper ~0 and a coloured grid, bright
in at least one channel, stays low), minus its median (the paper), scaled to ``[0, 1]``, resized with area
averaging to ``panel_hw`` (default 44 x 128 px). The mosaic stacks the panels vertically, each followed by
``gap`` zero rows (default 4): a slot of 48 rows, 13 slots -> a 624 x 128 x 1 float32 image.

Example::

    m = report_mosaic(rgb)                 # PanelMosaic: .image (624, 128, 1), .layout (LeadLayout)
    heat = cam_to_report(cam, m.layout)    # a mosaic-sized Grad-CAM map -> original image coordinates
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ecg_core.core.errors import ConfigError, EcgCoreError
from ecg_core.reports.layout import LEAD_KEYS, RHYTHM_KEY
from ecg_core.reports.leads import LeadLayout, layout_for

__all__ = [
    "GAP",
    "MOSAIC_VERSION",
    "PANEL_HW",
    "MosaicCache",
    "PanelMosaic",
    "attention_table",
    "cam_to_report",
    "mosaic_shape",
    "panel_ink",
    "panels_to_mosaic",
    "report_mosaic",
]

PANEL_HW: tuple[int, int] = (44, 128)
GAP = 4
#: bump when the panel extraction changes (the cache key)
MOSAIC_VERSION = 1


@dataclass(frozen=True)
class PanelMosaic:
    """The mosaic (float32 (13 * slot, w, 1)) of a report and the layout its panels were cut from."""

    image: np.ndarray
    layout: LeadLayout


def mosaic_shape(panel_hw: tuple[int, int] = PANEL_HW, gap: int = GAP) -> tuple[int, int, int]:
    """(height, width, 1) of the mosaic for ``panel_hw`` panels and ``gap`` separating zero rows."""
    return (len(LEAD_KEYS) * (panel_hw[0] + gap), panel_hw[1], 1)


def panel_ink(rgb: np.ndarray, box: tuple[int, int, int, int], panel_hw: tuple[int, int] = PANEL_HW) -> np.ndarray:
    """One panel as float32 ink in [0, 1] of shape ``panel_hw`` (see the module docstring)."""
    x0, y0, x1, y1 = box
    crop = rgb[y0:y1, x0:x1]
    if crop.size == 0:
        return np.zeros(panel_hw, np.float32)
    dark = 1.0 - (crop.max(axis=2) if crop.ndim == 3 else crop).astype(np.float32) / 255.0
    dark = np.clip(dark - float(np.median(dark)), 0.0, None)
    top = float(np.percentile(dark, 99.5))
    if top > 1e-3:
        dark = np.clip(dark / top, 0.0, 1.0)
    return cv2.resize(dark, (panel_hw[1], panel_hw[0]), interpolation=cv2.INTER_AREA).astype(np.float32)


def panels_to_mosaic(panels: np.ndarray, gap: int = GAP) -> np.ndarray:
    """(13, h, w) panels -> (13 * (h + gap), w, 1) mosaic, each panel followed by ``gap`` zero rows."""
    n, h, w = panels.shape
    out = np.zeros((n, h + gap, w), np.float32)
    out[:, :h] = panels
    return out.reshape(n * (h + gap), w, 1)


def report_mosaic(rgb: np.ndarray, *, sidecar: Mapping[str, Any] | None = None, layout: LeadLayout | None = None,
                  panel_hw: tuple[int, int] = PANEL_HW, gap: int = GAP) -> PanelMosaic:
    """The mosaic of one report image (uint8 RGB (H, W, 3)); boxes from ``layout``, else the sidecar, else
    detected. A lead missing from the layout gives an empty (zero) panel."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConfigError(f"report_mosaic expects a uint8 RGB image (H, W, 3); received "
                          f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}")
    lay = layout if layout is not None else layout_for(rgb, sidecar=sidecar)
    panels = np.stack([panel_ink(rgb, lay.boxes[k], panel_hw) if k in lay.boxes else np.zeros(panel_hw, np.float32)
                       for k in LEAD_KEYS])
    return PanelMosaic(panels_to_mosaic(panels, gap), lay)


def cam_to_report(cam: np.ndarray, layout: LeadLayout, *, panel_hw: tuple[int, int] = PANEL_HW,
                  gap: int = GAP) -> np.ndarray:
    """A heatmap over the mosaic (any size proportional to it, e.g. Grad-CAM at the input size) -> a heatmap in
    the report's original pixels: each panel's part is resized into its lead box (boxes that overlap keep the
    larger value); outside every box it is 0."""
    cam = np.asarray(cam, np.float32)
    if cam.ndim == 3:
        cam = cam[..., 0]
    mh, mw, _ = mosaic_shape(panel_hw, gap)
    if cam.ndim != 2:
        raise ConfigError(f"cam must be 2-D (mosaic rows, columns); received shape {cam.shape}")
    if cam.shape != (mh, mw):
        cam = cv2.resize(cam, (mw, mh), interpolation=cv2.INTER_LINEAR)
    slot = panel_hw[0] + gap
    out = np.zeros(tuple(layout.image_shape), np.float32)
    for i, k in enumerate(LEAD_KEYS):
        if k not in layout.boxes:
            continue
        x0, y0, x1, y1 = layout.boxes[k]
        part = cv2.resize(cam[i * slot: i * slot + panel_hw[0]], (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], part)
    return np.clip(out, 0.0, None)


def attention_table(weights: np.ndarray) -> list[dict[str, Any]]:
    """The 13 attention weights of the model (``lead_attention`` layer) as rows ``lead``, ``weight``, ``rank``
    (1 = most attended), in layout order."""
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.size != len(LEAD_KEYS):
        raise ConfigError(f"expected {len(LEAD_KEYS)} attention weights; received {w.size}")
    order = np.argsort(-w, kind="stable")
    rank = np.empty(len(w), int)
    rank[order] = np.arange(1, len(w) + 1)
    return [{"lead": "rhythm" if k == RHYTHM_KEY else k, "weight": float(w[i]), "rank": int(rank[i])}
            for i, k in enumerate(LEAD_KEYS)]


class MosaicCache:
    """Mosaics on disk as uint8 ``.npy`` (ink x 255), keyed by the file's SHA-256 and :data:`MOSAIC_VERSION`."""

    def __init__(self, root: str | Path, panel_hw: tuple[int, int] = PANEL_HW, gap: int = GAP) -> None:
        self.dir = Path(root) / f"v{MOSAIC_VERSION}-{panel_hw[0]}x{panel_hw[1]}g{gap}"
        self.panel_hw, self.gap = panel_hw, gap

    def get(self, sha256: str, path: str | Path) -> tuple[np.ndarray, str]:
        """The mosaic (float32) of the image at ``path`` and the layout source (``'cache'`` when cached)."""
        f = self.dir / f"{sha256}.npy"
        if sha256:
            try:
                return np.load(f, allow_pickle=False).astype(np.float32) / 255.0, "cache"
            except (OSError, ValueError):
                pass
        from ecg_core.imaging.loader import load_image
        from ecg_core.reports.leads import load_sidecar

        m = report_mosaic(load_image(path).rgb, sidecar=load_sidecar(path), panel_hw=self.panel_hw, gap=self.gap)
        if sha256:
            try:
                import io

                from ecg_core.core.atomic import atomic_write_bytes

                buf = io.BytesIO()
                np.save(buf, np.round(m.image * 255).astype(np.uint8), allow_pickle=False)
                atomic_write_bytes(f, buf.getvalue())
            except (OSError, EcgCoreError):  # a cache that cannot be written is not a failure
                pass
        return m.image, m.layout.source

    def many(self, index: Any, *, progress: Any = None, should_stop: Any = None) -> np.ndarray:
        """Mosaics (N, H, W, 1) of every row of ``index`` (columns ``path``, ``sha256``)."""
        out = np.zeros((len(index), *mosaic_shape(self.panel_hw, self.gap)), np.float32)
        for i, r in enumerate(index.itertuples(index=False)):
            if should_stop is not None and should_stop():
                from ecg_core.ml.progress import StopRequested

                raise StopRequested()
            out[i] = self.get(str(r.sha256 or ""), r.path)[0]
            if progress is not None:
                progress(i + 1, len(index))
        return out
