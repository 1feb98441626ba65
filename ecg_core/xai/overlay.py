"""Heatmaps on the original report: the inverse of the preprocessing's crop + stretch, colour maps, blending.

:func:`heatmap_to_original` maps a model-input heatmap back onto the original report (zero outside the crop);
:func:`overlay` blends its colour rendering onto the report.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ecg_core.core.errors import ConfigError


def heatmap_to_original(heatmap: np.ndarray, crop_box: Sequence[int], original_shape: Sequence[int]) -> np.ndarray:
    """Map a model-input heatmap (h, w) back onto the original image: float32 (H, W), zero outside the crop.

    The preprocessing cut ``crop_box`` (x0, y0, x1, y1; x1/y1 exclusive) out of the original and stretched it to
    (h, w); this resizes the map to the crop's size (bilinear, same pixel-centre convention as OpenCV's resize)
    and pastes it at the crop's place.
    """
    hm = np.asarray(heatmap, dtype=np.float32)
    if hm.ndim != 2 or min(hm.shape) < 1:
        raise ConfigError(f"heatmap must be a 2-D array (h, w); received shape {hm.shape}")
    if len(original_shape) < 2:
        raise ConfigError(f"original_shape must be (H, W); received {original_shape!r}")
    H, W = int(original_shape[0]), int(original_shape[1])
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    if not (0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H):
        raise ConfigError(f"crop_box must satisfy 0 <= x0 < x1 <= {W} and 0 <= y0 < y1 <= {H}; received "
                          f"{tuple(crop_box)}")
    out = np.zeros((H, W), dtype=np.float32)
    out[y0:y1, x0:x1] = cv2.resize(hm, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return out


COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET, "turbo": cv2.COLORMAP_TURBO, "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS, "hot": cv2.COLORMAP_HOT,
}


def colorize(heatmap: np.ndarray, *, colormap: str = "jet") -> np.ndarray:
    """uint8 RGB (h, w, 3) rendering of a [0, 1] heatmap."""
    if colormap not in COLORMAPS:
        raise ConfigError(f"colormap must be one of {', '.join(COLORMAPS)}; received {colormap!r}")
    u8 = np.clip(np.rint(np.asarray(heatmap, np.float32) * 255), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)


def overlay(rgb: np.ndarray, heatmap_orig: np.ndarray, *, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """The report with the heatmap blended on top: uint8 RGB of the report's size.

    Each pixel mixes in the colormap colour with weight ``alpha * heat``, so unattended paper stays readable and
    the most attended regions carry the full ``alpha``.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConfigError(f"rgb must be uint8 (H, W, 3); received {rgb.dtype} {rgb.shape}")
    hm = np.asarray(heatmap_orig, np.float32)
    if hm.shape != rgb.shape[:2]:
        raise ConfigError(f"heatmap_orig must have the image's shape {rgb.shape[:2]}; received {hm.shape}. Fix: map "
                          "it with heatmap_to_original first.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1]; received {alpha!r}")
    colour = colorize(hm, colormap=colormap)
    w = np.float32(alpha) * np.clip(np.nan_to_num(hm, nan=0.0), 0, 1).astype(np.float32)
    # base (1 - w) + colour w, per pixel, rounded; OpenCV does it ~7x faster than the same numpy expression
    return cv2.blendLinear(colour, np.ascontiguousarray(rgb), w, np.float32(1.0) - w)
