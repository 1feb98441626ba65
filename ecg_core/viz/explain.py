"""Plotly figures of explanations: class probabilities, deletion/insertion curves, and the set of figures the
Explain page draws for one explained report (built here, shown by the caller)."""

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
