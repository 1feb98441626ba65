"""Plotly figures of evaluation results: metric bars, confusion matrix, ROC curves, reliability, training curves.

Every builder returns a :class:`plotly.graph_objects.Figure` and never shows it. Inputs that leave nothing to draw
(no reports, all-NaN metrics, empty histories) give a figure with a centred "no data" annotation instead of an
error, so pages can render whatever they get. Several runs are passed as a ``{label: report}`` mapping; a single
:class:`~ecg_core.ml.report.EvalReport` is accepted wherever a mapping is and is labelled by its split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ecg_core.core.errors import ConfigError
from ecg_core.ml.report import CI_CLASS_METRICS, EvalReport, ci_key
from ecg_core.viz.common import VALUE_TICKS, empty_figure, integer_ticks

__all__ = [
    "confusion_heatmap",
    "metrics_by_class",
    "metrics_by_model",
    "no_data_figure",
    "pr_curves",
    "reliability_diagram",
    "roc_curves",
    "training_curves",
]

PALETTE: tuple[str, ...] = tuple(qualitative.Plotly)
RUN_DASHES: tuple[str, ...] = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
MODEL_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "specificity")
_LABELS = {
    "accuracy": "Accuracy",
    "error_rate": "Error rate",
    "precision": "Precision",
    "recall": "Recall (sensitivity)",
    "specificity": "Specificity",
    "f1": "F1",
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
}
_AVERAGES = ("macro", "weighted")
Reports = Mapping[str, EvalReport] | Sequence[EvalReport] | EvalReport


def no_data_figure(title: str | None = None, message: str = "no data") -> go.Figure:
    """An empty evaluation figure with ``message`` in the middle (grey, axes hidden, the white template)."""
    return empty_figure(message, title=title, color="grey", layout={"template": "plotly_white"})


def metrics_by_model(
    reports: Reports,
    *,
    metrics: Sequence[str] = MODEL_METRICS,
    average: str = "macro",
    title: str | None = "Metrics by model",
) -> go.Figure:
    """Grouped bars: x = metric, one bar per run, error bars = bootstrap interval where the report has one.

    ``accuracy`` / ``error_rate`` are whole-run values; the other metrics (``precision``, ``recall``, ``f1``,
    ``specificity``, ``roc_auc``, ``pr_auc``) use the ``average`` (``'macro'`` or ``'weighted'``); intervals exist
    for accuracy, error rate and macro threshold metrics.
    """
    if average not in _AVERAGES:
        raise ConfigError(f"average must be one of {list(_AVERAGES)}; received {average!r}")
    _check_metrics(metrics, allowed=tuple(_LABELS))
    items = _items(reports)
    fig = go.Figure()
    drawn = False
    for i, (label, rep) in enumerate(items):
        values, lo_err, hi_err = [], [], []
        for m in metrics:
            if m in ("accuracy", "error_rate"):
                v, key = getattr(rep, m), m
            else:
                v, key = getattr(rep, average).get(m, math.nan), f"macro_{m}" if average == "macro" else None
            ci = rep.ci.get(key) if key else None
            values.append(_num(v))
            lo, hi = _err(v, ci)
            lo_err.append(lo)
            hi_err.append(hi)
        drawn |= any(v is not None for v in values)
        fig.add_bar(
            name=label,
            x=[_LABELS[m] for m in metrics],
            y=values,
            marker_color=_color(i),
            error_y=_error_bars(lo_err, hi_err),
            hovertemplate="%{x}: %{y:.3f}",
        )
    if not drawn:
        return no_data_figure(title)
    fig.update_layout(
        barmode="group", title=title, template="plotly_white", yaxis={"range": [0, 1.05], "title": "value"},
        legend_title_text="run",
    )
    return fig


def metrics_by_class(
    reports: Reports,
    *,
    metrics: Sequence[str] = ("precision", "recall", "f1", "specificity"),
    title: str | None = "Metrics by class",
) -> go.Figure:
    """One panel per metric; x = class, one bar per run, error bars = the per-class bootstrap interval.

    Runs with different class sets are drawn on the union of their classes (missing bars where a run lacks one).
    """
    _check_metrics(metrics, allowed=(*CI_CLASS_METRICS, "roc_auc", "pr_auc"))
    items = _items(reports)
    classes: list[str] = []
    for _, rep in items:
        classes += [c for c in rep.class_names if c not in classes]
    if not items or not classes or not metrics:
        return no_data_figure(title)
    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, subplot_titles=[_LABELS[m] for m in metrics])
    drawn = False
    for i, (label, rep) in enumerate(items):
        by_name = {m.name: m for m in rep.per_class}
        for j, metric in enumerate(metrics):
            values, lo_err, hi_err = [], [], []
            for c in classes:
                v = getattr(by_name[c], metric) if c in by_name else math.nan
                lo, hi = _err(v, rep.ci.get(ci_key(metric, c)))
                values.append(_num(v))
                lo_err.append(lo)
                hi_err.append(hi)
            drawn |= any(v is not None for v in values)
            fig.add_bar(
                name=label,
                legendgroup=label,
                showlegend=j == 0,
                x=classes,
                y=values,
                marker_color=_color(i),
                error_y=_error_bars(lo_err, hi_err),
                hovertemplate="%{x}: %{y:.3f}",
                row=1,
                col=j + 1,
            )
    if not drawn:
        return no_data_figure(title)
    fig.update_yaxes(range=[0, 1.05])
    fig.update_layout(barmode="group", title=title, template="plotly_white", legend_title_text="run")
    return fig


def confusion_heatmap(
    source: EvalReport | np.ndarray | Sequence[Sequence[int]],
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = "Confusion matrix",
) -> go.Figure:
    """Heatmap of the row-normalised confusion matrix; each cell shows the count and the row percentage.

    ``source`` is a report, or a (k, k) count matrix (rows = true class) together with ``class_names``.
    """
    if isinstance(source, EvalReport):
        counts = source.confusion_array()
        names = list(source.class_names)
    else:
        counts = np.asarray(source, dtype=float)
        if counts.size == 0:
            return no_data_figure(title)
        if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
            raise ConfigError(f"source must be a square (k, k) confusion matrix; received shape {counts.shape}")
        names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(len(counts))]
        if len(names) != len(counts):
            raise ConfigError(
                f"class_names must name the {len(counts)} rows of the matrix; received {len(names)} names"
            )
    counts = np.nan_to_num(np.asarray(counts, dtype=float), nan=0.0)
    if counts.size == 0 or counts.sum() == 0:
        return no_data_figure(title)
    row = counts.sum(axis=1, keepdims=True)
    norm = np.zeros_like(counts)
    np.divide(counts, row, out=norm, where=row > 0)
    text = [
        [f"{int(round(c))}<br>{p:.0%}" for c, p in zip(c_row, p_row, strict=True)]
        for c_row, p_row in zip(counts, norm, strict=True)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=norm,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "row share", "tickformat": ".0%"},
            customdata=counts,
            hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata:.0f} files (%{z:.1%} of the row)<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="Predicted", side="bottom", type="category")
    fig.update_yaxes(title_text="True", autorange="reversed", type="category")
    fig.update_layout(title=title, template="plotly_white")
    return fig


def roc_curves(
    reports: Reports,
    *,
    classes: Sequence[str] | None = None,
    title: str | None = "ROC curves (one-vs-rest)",
) -> go.Figure:
    """One-vs-rest ROC curves: colour = class (= run when one class of several runs is drawn), line style = run;
    legend shows the AUC. Undefined classes are skipped."""
    items = _items(reports)
    fig = go.Figure()
    all_classes: list[str] = []
    for _, rep in items:
        all_classes += [c for c in rep.class_names if c not in all_classes]
    wanted = all_classes if classes is None else [str(c) for c in classes]
    drawn = False
    for r, (label, rep) in enumerate(items):
        for name in wanted:
            curve = rep.roc.get(name)
            if curve is None or not curve.fpr or not _finite(curve.auc):
                continue
            legend = f"{name} (AUC {curve.auc:.3f})" if len(items) == 1 else f"{label} · {name} (AUC {curve.auc:.3f})"
            fig.add_scatter(
                x=list(curve.fpr),
                y=list(curve.tpr),
                mode="lines",
                name=legend,
                line={"color": _color(r) if len(wanted) == 1 and len(items) > 1 else _color(all_classes.index(name)),
                      "dash": RUN_DASHES[r % len(RUN_DASHES)]},
                hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}",
            )
            drawn = True
    if not drawn:
        return no_data_figure(title)
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"color": "grey", "dash": "dot", "width": 1},
        hoverinfo="skip",
    )
    fig.update_xaxes(title_text="False positive rate (1 - specificity)", range=[0, 1], constrain="domain")
    fig.update_yaxes(title_text="True positive rate (sensitivity)", range=[0, 1.02], scaleanchor="x", scaleratio=1)
    fig.update_layout(title=title, template="plotly_white")
    return fig


def pr_curves(
    curves: Mapping[str, Mapping[str, Any]],
    *,
    classes: Sequence[str] | None = None,
    title: str | None = "Precision-recall curves (one-vs-rest)",
) -> go.Figure:
    """One-vs-rest precision-recall curves, ``curves`` = ``{run label: {class: PRCurve}}`` (from
    :func:`ecg_core.ml.compare.pr_curves`): colour = class, line style = run; the legend gives the average precision
    (AP). With one class, its prevalence (the precision of guessing) is drawn as a dotted line per run."""
    items = [(str(k), v) for k, v in (curves or {}).items()]
    all_classes: list[str] = []
    for _, per in items:
        all_classes += [c for c in per if c not in all_classes]
    wanted = all_classes if classes is None else [str(c) for c in classes]
    fig = go.Figure()
    drawn = False
    for r, (label, per) in enumerate(items):
        for name in wanted:
            c = per.get(name)
            if c is None or not c.recall or not _finite(c.ap):
                continue
            legend = f"{name} (AP {c.ap:.3f})" if len(items) == 1 else f"{label} · {name} (AP {c.ap:.3f})"
            color = _color(all_classes.index(name)) if len(wanted) > 1 or len(items) == 1 else _color(r)
            fig.add_scatter(x=list(c.recall), y=list(c.precision), mode="lines", name=legend,
                            line={"color": color, "dash": RUN_DASHES[r % len(RUN_DASHES)], "shape": "hv"},
                            hovertemplate="recall %{x:.3f}<br>precision %{y:.3f}")
            if len(wanted) == 1:
                fig.add_scatter(x=[0, 1], y=[c.prevalence] * 2, mode="lines", showlegend=False, hoverinfo="skip",
                                line={"color": color, "dash": "dot", "width": 1})
            drawn = True
    if not drawn:
        return no_data_figure(title)
    fig.update_xaxes(title_text="Recall (sensitivity)", range=[0, 1.02], tickformat=".1f", dtick=0.2)
    fig.update_yaxes(title_text="Precision (positive predictive value)", range=[0, 1.02], tickformat=".1f", dtick=0.2)
    fig.update_layout(title=title, template="plotly_white")
    return fig


def reliability_diagram(reports: Reports, *, title: str | None = "Reliability (top-label calibration)") -> go.Figure:
    """Top: accuracy vs mean confidence per bin with the diagonal of perfect calibration (ECE in the legend).
    Bottom: files per confidence bin."""
    items = _items(reports)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06)
    drawn = False
    for i, (label, rep) in enumerate(items):
        cal = rep.calibration
        if cal.n == 0 or not cal.count:
            continue
        conf = np.asarray(cal.confidence, dtype=float)
        acc = np.asarray(cal.accuracy, dtype=float)
        keep = (np.asarray(cal.count) > 0) & np.isfinite(conf) & np.isfinite(acc)
        if not keep.any():
            continue
        edges = np.asarray(cal.edges, dtype=float)
        centers = (edges[:-1] + edges[1:]) / 2
        ece = f"ECE {cal.ece:.3f}" if _finite(cal.ece) else "ECE n/a"
        name = f"{label} ({ece})"
        fig.add_scatter(
            x=conf[keep],
            y=acc[keep],
            mode="lines+markers",
            name=name,
            legendgroup=label,
            line={"color": _color(i)},
            customdata=np.asarray(cal.count)[keep],
            hovertemplate="confidence %{x:.3f}<br>accuracy %{y:.3f}<br>%{customdata} files<extra></extra>",
            row=1,
            col=1,
        )
        fig.add_bar(
            x=centers,
            y=list(cal.count),
            width=float(np.min(np.diff(edges))) / max(len(items), 1),
            name=f"{label} files",
            legendgroup=label,
            showlegend=False,
            marker_color=_color(i),
            hovertemplate="bin centre %{x:.2f}<br>%{y} files<extra></extra>",
            row=2,
            col=1,
        )
        drawn = True
    if not drawn:
        return no_data_figure(title)
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", line={"color": "grey", "dash": "dot"},
        hoverinfo="skip", row=1, col=1,
    )
    fig.update_xaxes(range=[0, 1], row=1, col=1)
    fig.update_xaxes(range=[0, 1], title_text="Confidence (top-class probability)", row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text="Accuracy", row=1, col=1)
    fig.update_yaxes(title_text="Files", row=2, col=1)
    fig.update_layout(title=title, template="plotly_white", barmode="group")
    return fig


def training_curves(
    histories: Mapping[str, pd.DataFrame], *, title: str | None = "Training curves"
) -> go.Figure:
    """Loss (left) and accuracy (right) per epoch for several runs: colour = run, solid = train, dashed = validation.

    Each history is a DataFrame with ``epoch`` and any of ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``
    (Keras ``history.csv``); missing columns and NaN epochs are skipped, a missing ``epoch`` counts rows from 1.
    """
    if not isinstance(histories, Mapping):
        raise ConfigError(
            f"histories must be a dict of run label -> history DataFrame; received {type(histories).__name__}"
        )
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Loss", "Accuracy"])
    drawn = False
    shown: set[str] = set()  # one legend entry per run and train/validation
    for i, (label, hist) in enumerate(histories.items()):
        if not isinstance(hist, pd.DataFrame) or hist.empty:
            continue
        epoch = (
            pd.to_numeric(hist["epoch"], errors="coerce")
            if "epoch" in hist.columns
            else pd.Series(np.arange(1, len(hist) + 1), index=hist.index)
        )
        for col_idx, base in ((1, "loss"), (2, "accuracy")):
            for prefix, dash, kind in (("", "solid", "train"), ("val_", "dash", "validation")):
                col = prefix + base
                if col not in hist.columns:
                    continue
                y = pd.to_numeric(hist[col], errors="coerce")
                ok = y.notna() & epoch.notna() & np.isfinite(y.astype(float)) & np.isfinite(epoch.astype(float))
                if not ok.any():
                    continue
                fig.add_scatter(
                    x=epoch[ok].to_numpy(),
                    y=y[ok].to_numpy(),
                    mode="lines+markers" if ok.sum() < 30 else "lines",
                    name=f"{label} {kind}",
                    legendgroup=str(label),
                    showlegend=f"{label} {kind}" not in shown,
                    line={"color": _color(i), "dash": dash},
                    hovertemplate="epoch %{x}<br>" + col + " %{y:.4f}",
                    row=1,
                    col=col_idx,
                )
                shown.add(f"{label} {kind}")
                drawn = True
    if not drawn:
        return no_data_figure(title)
    last = max((pd.to_numeric(h["epoch"], errors="coerce").max() if "epoch" in h.columns else len(h))
               for h in histories.values() if isinstance(h, pd.DataFrame) and not h.empty)
    fig.update_xaxes(title_text="epoch", **integer_ticks(last if _finite(last) else 1))
    fig.update_yaxes(title_text="loss", row=1, col=1, **VALUE_TICKS)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], row=1, col=2)
    fig.update_layout(title=title, template="plotly_white")
    return fig


# --------------------------------------------------------------------------------------------------- internals


def _items(reports: Reports) -> list[tuple[str, EvalReport]]:
    if reports is None:
        return []
    if isinstance(reports, EvalReport):
        return [(reports.split, reports)]
    if isinstance(reports, Mapping):
        items = [(str(k), v) for k, v in reports.items()]
    elif isinstance(reports, Sequence) and not isinstance(reports, str):
        items = [(f"run {i + 1}", r) for i, r in enumerate(reports)]
    else:
        raise ConfigError(
            f"reports must be an EvalReport or a dict of run label -> EvalReport; received {type(reports).__name__}"
        )
    for label, rep in items:
        if not isinstance(rep, EvalReport):
            raise ConfigError(f"reports must hold EvalReport objects; {label!r} is a {type(rep).__name__}")
    return items


def _check_metrics(metrics: Sequence[str], *, allowed: Sequence[str]) -> None:
    bad = [m for m in metrics if m not in allowed]
    if isinstance(metrics, str) or bad:
        raise ConfigError(f"metrics must be a list drawn from {list(allowed)}; received {metrics!r}")


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, int | float | np.floating | np.integer) and math.isfinite(float(v))


def _num(v: Any) -> float | None:
    return float(v) if _finite(v) else None


def _err(value: Any, ci: tuple[float, float] | None) -> tuple[float | None, float | None]:
    """Asymmetric error-bar lengths (below, above) of ``value`` for the interval ``ci``; None when unavailable."""
    if ci is None or not _finite(value) or not all(_finite(b) for b in ci):
        return None, None
    return max(float(value) - float(ci[0]), 0.0), max(float(ci[1]) - float(value), 0.0)


def _error_bars(lo: list[float | None], hi: list[float | None]) -> dict[str, Any] | None:
    if all(v is None for v in hi):
        return None
    return {
        "type": "data",
        "symmetric": False,
        "array": [v if v is not None else 0.0 for v in hi],
        "arrayminus": [v if v is not None else 0.0 for v in lo],
        "visible": True,
    }


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]
