"""Plotly figure builders shared by pages, CLI and reports (built here, shown by the caller)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def empty_figure(message: str = "no data", *, title: str | None = None, color: str | None = None,
                 layout: dict | None = None) -> go.Figure:
    """An empty figure with ``message`` in the middle (axes hidden): 250 px high by default, or ``layout``."""
    fig = go.Figure()
    font = {"size": 16, **({"color": color} if color else {})}
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=font)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    compact = {"height": 250, "margin": {"l": 10, "r": 10, "t": 30, "b": 10}}
    fig.update_layout(**(layout if layout is not None else compact))
    if title is not None:
        fig.update_layout(title=title)
    return fig


def integer_ticks(max_value: float, *, target: int = 10, start: int = 0) -> dict:
    """Axis settings for a count axis (epochs): integer ticks at a 1-2-5 step, about ``target`` of them, never
    fractional ticks such as 0.5 or 2.5."""
    import math

    need = max(1.0, float(max_value or 1) / max(1, target))
    mag = 10 ** math.floor(math.log10(need))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= need)
    return {"tickmode": "linear", "tick0": start, "dtick": int(step), "tickformat": "d"}


VALUE_TICKS = {"tickformat": ".3~g", "nticks": 6}
"""Axis settings for a metric or loss axis: a few round ticks, at most three significant digits."""


def training_progress_figure(epochs: list[dict]) -> go.Figure:
    """Loss (left axis) and accuracy (right axis, 0-1) per finished epoch of a live job (``progress.jsonl``
    ``epoch`` events): integer epoch ticks, rounded values."""
    if not epochs:
        return empty_figure("waiting for the first epoch")
    df = pd.DataFrame(epochs)
    fig = go.Figure()
    for col, dash in (("loss", None), ("val_loss", "dash"), ("accuracy", None), ("val_accuracy", "dash")):
        if col in df:
            fig.add_scatter(x=df["epoch"], y=df[col], name=col, line={"dash": dash}, mode="lines+markers",
                            yaxis="y2" if "acc" in col else "y", hovertemplate="epoch %{x}: %{y:.3f}")
    n = pd.to_numeric(df.get("epoch"), errors="coerce").max() if "epoch" in df else 1
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 20, "b": 10},
                      xaxis={"title": "epoch", **integer_ticks(n if pd.notna(n) else 1)},
                      yaxis={"title": "loss", "rangemode": "tozero", **VALUE_TICKS},
                      yaxis2={"title": "accuracy", "overlaying": "y", "side": "right", "range": [0, 1],
                              "tickformat": ".1f", "dtick": 0.2, "showgrid": False},
                      legend={"orientation": "h", "y": 1.15})
    return fig


def class_counts_bar(per_class: pd.DataFrame) -> go.Figure:
    """Grouped bars of files vs distinct images per class (``per_class`` from :func:`ecg_core.ml.dataset.audit`)."""
    if per_class is None or per_class.empty or per_class["files"].sum() == 0:
        return empty_figure("no readable images")
    fig = go.Figure(
        [
            go.Bar(name="files", x=per_class["class"], y=per_class["files"], text=per_class["files"]),
            go.Bar(name="distinct images", x=per_class["class"], y=per_class["distinct"], text=per_class["distinct"]),
        ]
    )
    fig.update_layout(
        barmode="group",
        yaxis_title="count",
        height=350,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title="Files vs distinct images per class",
        legend={"orientation": "h", "y": 1.12},
    )
    return fig


def split_bar(split_table: pd.DataFrame) -> go.Figure:
    """Stacked bars of distinct groups per class and split (``split_table`` from :func:`ecg_core.ml.splits.split_table`)."""
    if split_table is None or split_table.empty:
        return empty_figure("no split")
    groups = split_table["distinct groups"]
    fig = go.Figure([go.Bar(name=s, x=groups.index, y=groups[s], text=groups[s]) for s in groups.columns])
    fig.update_layout(
        barmode="stack",
        yaxis_title="distinct images (groups)",
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title="Group-aware split: distinct images per class",
        legend={"orientation": "h", "y": 1.12},
    )
    return fig
