"""Plotly figure builders shared by pages, CLI and reports (built here, shown by the caller)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def empty_figure(message: str = "no data") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 16})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=250, margin={"l": 10, "r": 10, "t": 30, "b": 10})
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
