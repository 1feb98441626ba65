"""Figures of the per-lead CNN's explanation (:mod:`ecg_core.reports.perlead_predict`): its attention weight per
lead panel as a bar chart coloured by territory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["attention_weight_figure"]


def attention_weight_figure(rows: Sequence[dict[str, Any]], *, title: str = "Attention per lead (model weights)") -> Any:
    """Plotly bars of :func:`ecg_core.reports.perlead.attention_table` rows (``lead``, ``weight``, ``rank``) in
    layout order; the weights sum to 1 over the 13 panels (12 leads and the rhythm strip)."""
    import plotly.graph_objects as go

    from ecg_core.reports.leads import _TERRITORY_RGB, lead_territory

    def colour(lead: str) -> str:
        try:
            r, g, b = _TERRITORY_RGB[lead_territory("II" if lead == "rhythm" else lead)]
        except (KeyError, ValueError):
            r, g, b = (120, 120, 120)
        return f"rgb({r},{g},{b})"

    leads_ = [str(r["lead"]) for r in rows]
    vals = [100.0 * float(r["weight"]) for r in rows]
    bar = {"type": "bar", "x": leads_, "y": vals, "marker": {"color": [colour(x) for x in leads_]},
           "customdata": [int(r["rank"]) for r in rows],
           "hovertemplate": "%{x}: %{y:.1f} % of the attention (rank %{customdata})<extra></extra>"}
    layout = {"title": {"text": title}, "yaxis": {"title": {"text": "attention weight (%)"}}, "height": 330,
              "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
              "xaxis": {"categoryorder": "array", "categoryarray": leads_}}
    return go.Figure({"data": [bar], "layout": layout})
