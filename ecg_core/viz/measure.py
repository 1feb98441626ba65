"""Figures of a measurement model's explanation: the per-lead contributions to a class (a bar chart) and the same
drawn on the report (each lead's trace area tinted red when its measurements push towards the class, blue when
they push away)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ecg_core.core.labels import LEADS


def lead_boxes(paths: Mapping[str, np.ndarray], shape: tuple[int, int], *, pad: int = 6
               ) -> dict[str, tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of each of the 12 leads' traces (their pixel paths), padded, inside the image."""
    h, w = shape[:2]
    out: dict[str, tuple[int, int, int, int]] = {}
    for lead in LEADS:
        xy = np.asarray(paths.get(lead, np.zeros((0, 2))), dtype=np.float64)
        xy = xy[np.isfinite(xy).all(axis=1)] if xy.size else xy
        if len(xy) < 2:
            continue
        x0, y0 = np.floor(xy.min(axis=0)).astype(int) - pad
        x1, y1 = np.ceil(xy.max(axis=0)).astype(int) + pad
        out[lead] = (max(0, int(x0)), max(0, int(y0)), min(w - 1, int(x1)), min(h - 1, int(y1)))
    return out


def contribution_overlay(rgb: np.ndarray, boxes: Mapping[str, tuple[int, int, int, int]],
                         per_lead: Mapping[str, float], *, alpha: float = 0.45) -> np.ndarray:
    """``rgb`` with each lead box tinted by its contribution (red: towards the class, blue: away; the strongest
    lead at ``alpha``) and labelled with its value."""
    import cv2

    out = rgb.copy()
    vals = [abs(float(per_lead.get(k, 0.0))) for k in boxes]
    top = max(vals) if vals and max(vals) > 0 else 1.0
    tint = out.copy()
    for lead, (x0, y0, x1, y1) in boxes.items():
        v = float(per_lead.get(lead, 0.0))
        colour = (220, 40, 40) if v > 0 else (40, 90, 220)
        strength = min(1.0, abs(v) / top)
        if strength <= 0:
            continue
        region = tint[y0:y1, x0:x1]
        region[:] = (1 - strength) * region + strength * np.asarray(colour, dtype=np.float64)
    out = cv2.addWeighted(tint, float(alpha), out, 1.0 - float(alpha), 0.0)
    scale = max(0.4, rgb.shape[1] / 2400)
    for lead, (x0, _y0, _x1, y1) in boxes.items():  # under the box: the report's own lead names stay readable
        v = float(per_lead.get(lead, 0.0))
        cv2.putText(out, f"{lead} {v:+.2f}", (x0 + int(40 * scale), min(out.shape[0] - 2, y1 + int(18 * scale))),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (120, 0, 0) if v > 0 else (0, 40, 140), max(1, int(2 * scale)),
                    cv2.LINE_AA)
    return out


def lead_contribution_figure(per_lead: Mapping[str, float], class_name: str) -> Any:
    """Plotly bars of the per-lead (and global) contributions to ``class_name``'s margin."""
    import plotly.graph_objects as go

    keys = [k for k in (*LEADS, "global") if k in per_lead]
    vals = [float(per_lead[k]) for k in keys]
    bar = {"type": "bar", "x": keys, "y": vals, "marker": {"color": ["#d62728" if v > 0 else "#1f77b4" for v in vals]},
           "hovertemplate": "%{x}: %{y:+.3f}<extra></extra>"}
    layout = {"title": {"text": f"What each lead's measurements add to '{class_name}' (model margin)"},
              "yaxis": {"title": {"text": "contribution"}}, "height": 320,
              "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}
    return go.Figure({"data": [bar], "layout": layout})
