"""Plotly figures of ECG signals, spectral beat images and their Grad-CAM maps (built here, shown by the caller).

* :func:`signal_strip` — one lead with a range slider, the annotated beat symbols under the trace, the model's
  predicted class of every beat above it, rhythm episodes and the selected beat shaded;
* :func:`spectral_figure` — a spectral image on its real axes (seconds from the R peak x hertz), optionally next
  to its Grad-CAM overlay;
* :func:`cam_profiles` — the Grad-CAM map collapsed onto time (with the beat's waveform underneath) and onto
  frequency;
* :func:`probability_bars` — the class probabilities of one beat.

Inputs that leave nothing to draw give a figure with a centred message instead of an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ecg_core.signals.spectral_cam import BEAT_REGIONS, FREQ_BANDS, CamMapping
from ecg_core.signals.spectral import SpectralImage

#: One colour per ``arrhythmia-6`` class key; ``None`` (unmapped beat) is grey.
CLASS_COLORS: dict[str, str] = {
    "N": "#2ca02c",
    "L": "#1f77b4",
    "R": "#9467bd",
    "A": "#ff7f0e",
    "V": "#d62728",
    "VF": "#8c1c13",
}
UNMAPPED_COLOR = "#7f7f7f"
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


def message_figure(message: str, *, height: int = 250) -> go.Figure:
    """An empty figure with ``message`` in the middle (axes hidden)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 15, "color": "grey"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height, margin=_MARGIN, template="plotly_white")
    return fig


def _color(key: object) -> str:
    return CLASS_COLORS.get(key, UNMAPPED_COLOR) if isinstance(key, str) else UNMAPPED_COLOR


def _decimate(t: np.ndarray, x: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Min/max decimation to at most ~``max_points`` points (keeps every QRS peak visible)."""
    n = x.shape[0]
    if n <= max_points:
        return t, x
    buckets = max(1, max_points // 2)
    size = int(np.ceil(n / buckets))
    pad = size * buckets - n
    xp = np.pad(x, (0, pad), mode="edge").reshape(buckets, size)
    base = np.arange(buckets) * size
    idx = np.unique(np.clip(np.concatenate([base + xp.argmin(axis=1), base + xp.argmax(axis=1)]), 0, n - 1))
    return t[idx], x[idx]


def signal_strip(
    times: np.ndarray,
    signal: np.ndarray,
    *,
    annotations: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    episodes: pd.DataFrame | None = None,
    selected: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    view: tuple[float, float] | None = None,
    lead_name: str = "",
    max_points: int = 40_000,
) -> go.Figure:
    """A scrollable strip of one lead.

    times / signal: s and mV, shape (n,). annotations: ``time_s``, ``symbol``, ``label`` (see
    :func:`ecg_core.signals.arrhythmia.annotation_table`), drawn under the trace. predictions: ``time_s``, ``pred``,
    ``pred_name``, ``confidence``, ``agree``, ``kind`` and optionally ``symbol`` (see
    :func:`ecg_core.signals.arrhythmia.predict_segments`), drawn above it, coloured by class, ``x`` where the prediction
    disagrees with the annotation. episodes: ``rhythm``, ``start_s``, ``end_s`` shaded. selected: (start, end) s of
    the chosen beat's window, highlighted. window: only this time range (s) is drawn (keeps long records light);
    view: the initially visible range inside it (the range slider scrolls the rest).
    """
    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(signal, dtype=np.float64)
    if t.size == 0 or t.shape != x.shape:
        return message_figure("no signal to draw")
    t0, t1 = window if window is not None else (float(t[0]), float(t[-1]))
    sel = (t >= t0) & (t <= t1)
    if not sel.any():
        return message_figure("nothing in the chosen time range")
    tw, xw = _decimate(t[sel], x[sel], max_points)
    lo, hi = float(np.percentile(xw, 0.5)), float(np.percentile(xw, 99.5))
    span = max(hi - lo, 0.5)
    y_pred, y_ann = hi + 0.25 * span, lo - 0.2 * span

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=tw, y=xw, mode="lines", line={"color": "#222", "width": 1},
                             name=lead_name or "ECG", hovertemplate="%{x:.3f} s<br>%{y:.2f} mV<extra></extra>"))
    if episodes is not None and len(episodes):
        for ep in episodes.itertuples(index=False):
            if ep.end_s < t0 or ep.start_s > t1:
                continue
            vf = str(ep.rhythm).upper().startswith("VF")
            fig.add_vrect(x0=max(ep.start_s, t0), x1=min(ep.end_s, t1), line_width=0,
                          fillcolor=CLASS_COLORS["VF"] if vf else "#1f77b4", opacity=0.10 if vf else 0.04,
                          annotation_text=f"({ep.rhythm}", annotation_position="top left")
    if selected is not None:
        fig.add_vrect(x0=selected[0], x1=selected[1], line_width=1, line_color="#ff7f0e", fillcolor="#ff7f0e",
                      opacity=0.18)
    if annotations is not None and len(annotations):
        a = annotations[(annotations["time_s"] >= t0) & (annotations["time_s"] <= t1)]
        if len(a):
            fig.add_trace(go.Scatter(
                x=a["time_s"], y=np.full(len(a), y_ann), mode="text", text=a["symbol"],
                textfont={"color": [_color(k) for k in a["label"]], "size": 13}, name="annotation",
                hovertemplate="annotated %{text} at %{x:.3f} s<extra></extra>",
            ))
    if predictions is not None and len(predictions):
        p = predictions[(predictions["time_s"] >= t0) & (predictions["time_s"] <= t1)]
        for kind, y, size in (("beat", y_pred, 11), ("rhythm", y_pred + 0.12 * span, 7), ("window", y_pred, 7)):
            q = p[p["kind"] == kind] if "kind" in p else (p if kind == "beat" else p.iloc[:0])
            if not len(q):
                continue
            disagree = q["agree"].eq(0.0).to_numpy() if "agree" in q else np.zeros(len(q), bool)
            symbol = q["symbol"].astype(str).to_numpy() if "symbol" in q else np.full(len(q), "")
            fig.add_trace(go.Scatter(
                x=q["time_s"], y=np.full(len(q), y), mode="markers+text" if kind == "beat" else "markers",
                text=q["pred"], textposition="top center", textfont={"size": 10},
                marker={"color": [_color(k) for k in q["pred"]], "size": size,
                        "symbol": np.where(disagree, "x", "circle" if kind == "beat" else "square"),
                        "line": {"width": 0}},
                customdata=np.column_stack([q["pred_name"], q["confidence"], symbol]),
                hovertemplate=("predicted %{customdata[0]} (%{customdata[1]:.0%})<br>annotated %{customdata[2]}"
                               "<br>%{x:.3f} s<extra>" + kind + "</extra>"),
                name=f"prediction ({kind})",
            ))
    fig.update_xaxes(title="time (s)", range=list(view) if view is not None else [t0, t1],
                     rangeslider={"visible": True, "thickness": 0.12})
    fig.update_yaxes(title=f"{lead_name} (mV)" if lead_name else "mV", range=[y_ann - 0.2 * span, y_pred + 0.35 * span],
                     fixedrange=True)
    fig.update_layout(height=400, margin=_MARGIN, template="plotly_white", showlegend=False,
                      title="Signal: annotations below the trace, the model's prediction per beat above it")
    return fig


def _image_axes(image: SpectralImage, pre_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, bool]:
    """(z rows ascending in y, x = s from the anchor, y ascending, y title, log y?)."""
    img = image.image.astype(np.float64)
    if img.ndim == 3:
        img = img.mean(axis=2)
    rows = image.freqs if image.freqs is not None else image.amplitudes
    title = "frequency (Hz)" if image.freqs is not None else "amplitude (mV)"
    rows = np.asarray(rows, dtype=np.float64)
    log = image.freqs is not None and rows.size > 2 and not np.allclose(np.diff(rows), np.diff(rows)[0])
    return img[::-1], np.asarray(image.times) - pre_s, rows[::-1], title, bool(log)


def spectral_figure(
    image: SpectralImage,
    *,
    pre_s: float,
    cam: CamMapping | None = None,
    title: str = "",
    cam_opacity: float = 0.55,
    anchor: str = "R peak",
) -> go.Figure:
    """The spectral image on its axes (x: s from the ``anchor`` — the R peak of a beat —, y: Hz with row 0 = highest
    at the top; mV for waveform images); with ``cam`` a second panel shows the Grad-CAM map over the image."""
    if image.image.size == 0:
        return message_figure("no image")
    z, xs, ys, ytitle, log = _image_axes(image, pre_s)
    n = 2 if cam is not None else 1
    fig = make_subplots(rows=1, cols=n, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=["spectral image", "Grad-CAM over the image"][:n])
    for col in range(1, n + 1):
        fig.add_trace(go.Heatmap(z=z, x=xs, y=ys, colorscale="gray", showscale=False, zmin=0, zmax=255,
                                 hovertemplate="%{x:+.3f} s<br>%{y:.1f}<br>intensity %{z:.0f}<extra></extra>"),
                      row=1, col=col)
    if cam is not None:
        fig.add_trace(go.Heatmap(z=cam.cam[::-1], x=xs, y=ys, colorscale="Jet", zmin=0, zmax=1, opacity=cam_opacity,
                                 colorbar={"title": "Grad-CAM", "len": 0.8},
                                 hovertemplate="%{x:+.3f} s<br>%{y:.1f}<br>Grad-CAM %{z:.2f}<extra></extra>"),
                      row=1, col=2)
    for col in range(1, n + 1):
        fig.add_vline(x=0.0, line_dash="dot", line_color="white", opacity=0.7, row=1, col=col)
        fig.update_xaxes(title=f"time from the {anchor} (s)", row=1, col=col)
    fig.update_yaxes(title=ytitle, type="log" if log else "linear", row=1, col=1)
    # a figure title needs its own line above the subplot titles
    fig.update_layout(height=360 if title else 340, margin={**_MARGIN, "t": 75 if title else _MARGIN["t"]},
                      template="plotly_white", title=title or None)
    return fig


#: heights (fraction of the panel) of the band / region labels, one per band in turn: neighbouring labels never share
#: a line, and all stay inside the panel, below the subplot titles
_LABEL_LEVELS = (0.96, 0.84, 0.72)


def _band_label(fig: go.Figure, span: tuple[float, float], k: int, n: int, text: str, *, col: int) -> None:
    """The label of band ``k`` of ``n`` over ``span`` (x0, x1), at its own height (:data:`_LABEL_LEVELS`): the first
    band's label starts at its left edge, the last one's ends at its right edge (both stay inside the panel), the
    others are centred."""
    x, anchor = ((span[0], "left") if k == 0 else (span[1], "right") if k == n - 1
                 else ((span[0] + span[1]) / 2, "center"))
    fig.add_annotation(x=x, y=_LABEL_LEVELS[k % len(_LABEL_LEVELS)], yref="y domain", text=text, showarrow=False,
                       font={"size": 10}, bgcolor="rgba(255,255,255,0.75)", xanchor=anchor, yanchor="top",
                       row=1, col=col)


def cam_profiles(
    mapping: CamMapping,
    *,
    segment: np.ndarray | None = None,
    fs: float | None = None,
    pre_s: float = 0.0,
) -> go.Figure:
    """Grad-CAM collapsed onto time (left; the beat's waveform ``segment`` (mV at ``fs`` Hz, window starting
    ``pre_s`` s before the R peak) drawn underneath, parts of the beat shaded for beats) and onto frequency (right;
    bands shaded)."""
    if mapping.is_flat:
        return message_figure("the Grad-CAM map is flat: nothing to profile")
    # wide spacing: the left panel's second axis (mV ticks and title) sits between the panels
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.16, specs=[[{"secondary_y": True}, {}]],
                        subplot_titles=[f"which part of the {'beat' if mapping.beat else 'window'} mattered (time)",
                                        f"which frequencies mattered ({mapping.row_unit})"])
    if segment is not None and fs:
        seg = np.asarray(segment, dtype=np.float64)
        ts = np.arange(seg.size) / float(fs) - pre_s
        fig.add_trace(go.Scatter(x=ts, y=seg, mode="lines", line={"color": "#444", "width": 1}, name="beat (mV)",
                                 hovertemplate="%{x:+.3f} s<br>%{y:.2f} mV<extra>beat</extra>"),
                      row=1, col=1, secondary_y=True)
        fig.update_yaxes(title="mV", secondary_y=True, row=1, col=1, showgrid=False)
    fig.add_trace(go.Scatter(x=mapping.times_rel_s, y=mapping.time_profile, mode="lines", fill="tozeroy",
                             line={"color": "#d62728"}, name="Grad-CAM over time",
                             hovertemplate="%{x:+.3f} s<br>%{y:.2f}<extra>Grad-CAM</extra>"),
                  row=1, col=1, secondary_y=False)
    if mapping.regions:
        x0, x1 = float(mapping.times_rel_s[0]), float(mapping.times_rel_s[-1])
        for k, (name, lo, hi) in enumerate(BEAT_REGIONS):
            a, b = max(lo, x0), min(hi, x1)
            if a < b:
                share = mapping.regions.get(name, 0.0)
                fig.add_vrect(x0=a, x1=b, line_width=0, fillcolor=("#1f77b4", "#ff7f0e", "#2ca02c")[k % 3],
                              opacity=0.07, row=1, col=1)
                _band_label(fig, (a, b), k, len(BEAT_REGIONS), f"{name.split(' (')[0]} {share:.0%}", col=1)
    fig.add_trace(go.Scatter(x=mapping.row_values, y=mapping.row_profile, mode="lines", fill="tozeroy",
                             line={"color": "#1f77b4"}, name="Grad-CAM over frequency",
                             hovertemplate="%{x:.1f}<br>%{y:.2f}<extra>Grad-CAM</extra>"),
                  row=1, col=2)
    if mapping.bands:
        f0, f1 = float(mapping.row_values.min()), float(mapping.row_values.max())
        for k, (name, lo, hi) in enumerate(FREQ_BANDS):
            a, b = max(lo, f0), min(hi, f1)
            if a < b:
                fig.add_vrect(x0=a, x1=b, line_width=0, fillcolor=("#9467bd", "#ff7f0e", "#7f7f7f")[k % 3],
                              opacity=0.07, row=1, col=2)
                share = mapping.bands.get(name, 0.0)
                _band_label(fig, (a, b), k, len(FREQ_BANDS), f"{name.split(' (')[0]}: {share:.0%}", col=2)
    fig.update_xaxes(title=f"time from the {mapping.anchor} (s)", row=1, col=1)
    fig.update_xaxes(title="frequency (Hz)" if mapping.row_unit == "Hz" else "amplitude (mV)", row=1, col=2)
    fig.update_yaxes(title="Grad-CAM (max = 1)", range=[0, 1.08], row=1, col=1, secondary_y=False)
    fig.update_yaxes(range=[0, 1.08], row=1, col=2)
    fig.update_layout(height=320, margin=_MARGIN, template="plotly_white", showlegend=False)
    return fig


def probability_bars(probabilities: Mapping[str, float], *, names: Sequence[str] | None = None,
                     annotated: str | None = None) -> go.Figure:
    """Horizontal bars of the class probabilities of one beat (keys are class keys; ``names`` their display names
    in the same order); the annotated class, when known, is outlined."""
    if not probabilities:
        return message_figure("no prediction")
    keys = list(probabilities)
    labels = list(names) if names is not None and len(names) == len(keys) else keys
    vals = [float(probabilities[k]) for k in keys]
    fig = go.Figure(go.Bar(
        x=vals, y=labels, orientation="h", text=[f"{v:.0%}" for v in vals], textposition="auto",
        marker={"color": [_color(k) for k in keys],
                "line": {"color": ["black" if k == annotated else "rgba(0,0,0,0)" for k in keys], "width": 2}},
        hovertemplate="%{y}: %{x:.1%}<extra></extra>",
    ))
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title="probability")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=260, margin=_MARGIN, template="plotly_white", title="Model output for this beat")
    return fig


__all__ = [
    "CLASS_COLORS",
    "cam_profiles",
    "message_figure",
    "probability_bars",
    "signal_strip",
    "spectral_figure",
]
