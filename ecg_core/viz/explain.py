"""Plotly figures of explanations: class probabilities, deletion/insertion curves, a zoomable view of a heatmap
overlay, and the set of figures the Explain page draws for one explained report (built here, shown by the caller)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ecg_core.reports.pipeline import ExplainedReport, PreparedReport
    from ecg_core.xai.faithfulness import FaithfulnessResult


def probability_figure(probs: Sequence[float], class_names: Sequence[str], *, highlight: int | None = None,
                       title: str = "Class probabilities") -> Any:
    """Plotly horizontal bars of the class probabilities (the highlighted class darker)."""
    import plotly.graph_objects as go

    p = np.asarray(probs, dtype=float)
    hi = int(np.argmax(p)) if highlight is None else int(highlight)
    colours = ["#1f77b4" if i == hi else "#9ecae1" for i in range(len(p))]
    # plain lists and one constructor call (plotly validates numpy arrays and incremental updates at length)
    bar = {"type": "bar", "x": [100.0 * float(v) for v in p], "y": [str(c) for c in class_names],
           "orientation": "h", "marker": {"color": colours}, "text": [f"{v:.1%}" for v in p], "textposition": "auto",
           "hovertemplate": "%{y}: %{x:.1f} %<extra></extra>"}
    layout = {"title": {"text": title}, "xaxis": {"title": {"text": "probability (%)"}, "range": [0, 100]},
              "yaxis": {"autorange": "reversed"}, "height": 60 + 45 * len(p),
              "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}
    return go.Figure({"data": [bar], "layout": layout})


def image_data_uri(rgb: np.ndarray, *, quality: int = 90) -> str:
    """``rgb`` (uint8 (h, w, 3)) as a ``data:image/jpeg;base64,...`` URI (a JPEG: for a 1120x796 overlay about 400 KB
    as base64 against 1.9 MB for a PNG, and far smaller than a figure's list of pixel values)."""
    import base64

    import cv2

    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or min(arr.shape[:2]) < 1:
        raise ValueError(f"expected a uint8 RGB image (h, w, 3); received {arr.dtype} {arr.shape}")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("the image could not be encoded as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def zoomable_image_figure(rgb: np.ndarray, *, title: str = "", height: int | None = None,
                          nominal_width: int = 800) -> Any:
    """A plotly figure of one image (e.g. a heatmap overlay) that the viewer zooms into and pans: drag a box to
    zoom, drag to pan after choosing pan in the toolbar, double-click (double-tap) to reset, wheel zoom
    when the chart is shown with ``config={"scrollZoom": True}``. The pixels keep their aspect ratio; the axes are
    hidden. ``height``: pixels of the picture's area (default: the image's aspect at ``nominal_width``, 200 to 900),
    plus 30 for the toolbar above it."""
    import plotly.graph_objects as go

    h, w = np.asarray(rgb).shape[:2]
    if height is None:
        height = int(min(900, max(200, round(nominal_width * h / max(w, 1)))))
    trace = {"type": "image", "source": image_data_uri(rgb), "x0": 0, "y0": 0, "dx": 1, "dy": 1,
             "hoverinfo": "skip"}
    # the top margin keeps plotly's toolbar (zoom, pan, reset, full screen) off the picture
    layout = {"height": int(height) + 30, "margin": {"l": 0, "r": 0, "t": 30, "b": 0},
              "dragmode": "zoom",
              "xaxis": {"visible": False, "range": [-0.5, w - 0.5], "constrain": "domain"},
              "yaxis": {"visible": False, "range": [h - 0.5, -0.5], "scaleanchor": "x", "constrain": "domain"}}
    if title:
        layout["title"] = {"text": title, "font": {"size": 13}, "x": 0, "xanchor": "left", "y": 0.99}
    return go.Figure({"data": [trace], "layout": layout})


def faithfulness_figure(result: FaithfulnessResult) -> Any:
    """Plotly figure: deletion and insertion curves next to their random-order baselines."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"Deletion (AUC {result.deletion_auc:.3f} vs random {result.deletion_auc_random:.3f})",
        f"Insertion (AUC {result.insertion_auc:.3f} vs random {result.insertion_auc_random:.3f})"))
    x = result.fractions * 100
    for col, (curve, rand) in enumerate(((result.deletion, result.deletion_random),
                                         (result.insertion, result.insertion_random)), start=1):
        fig.add_trace(go.Scatter(x=x, y=curve, mode="lines+markers", name="most attended first",
                                 line={"color": "#d62728"}, showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=x, y=rand, mode="lines", name="random order", line={"color": "#7f7f7f",
                                 "dash": "dash"}, showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="patches removed (%)" if col == 1 else "patches restored (%)", row=1, col=col)
        fig.update_yaxes(title_text="class probability", range=[0, 1], row=1, col=col)
    fig.update_layout(height=330, margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.3})
    return fig


@dataclass(frozen=True)
class ReportFigures:
    """What the page draws for one explanation."""

    overlay: np.ndarray
    probability: Any
    lead_attention: Any


def figures(prepared: PreparedReport, explained: ExplainedReport, class_names: list[str], *, alpha: float = 0.55,
            colormap: str = "jet") -> ReportFigures:
    """Overlay on the displayed report, the probability chart and the per-lead attention chart."""
    from ecg_core.reports import leads
    from ecg_core.xai.overlay import overlay

    return ReportFigures(
        overlay(prepared.rgb, explained.heatmap_display, alpha=alpha, colormap=colormap),
        probability_figure(explained.probs, class_names),
        leads.attention_bar(explained.lead_table),
    )
