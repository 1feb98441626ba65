"""Does this report look like the reports the model was trained on? ("out of distribution", OOD).

A classifier answers confidently for any ECG it is shown, also for a layout, a paper or a camera it never saw. Every
prediction therefore carries an :class:`OodVerdict` built from two parts:

1. a **report descriptor** (:func:`describe_report`, any model kind): the layout (``'3x4+1'``, ``'3x4+3'``,
   ``'6x2'``, ``'12x1'``, ``'2x6'`` or ``'other'``, from the rows of ECG traces — their number, their length and the
   labels and breaks between the leads in them — from the lead detection's
   :func:`ecg_core.reports.traces.analyse_traces` on the Explain page, and in batch prediction from the trace
   components the ECG check already found on its ~560 px copy (:func:`analysis_from_scan`; the full analysis only
   when those rows form no known layout), the paper colour (hue,
   saturation and brightness of the background) and the picture's size and aspect;
2. a **distance in the model's feature space** (Keras models only): the output of the layer before the classifier
   (:func:`embedding_model`, the same forward pass as the prediction), projected on the first
   :data:`PCA_DIM` principal components of the training reports' embeddings, and its mean distance to the
   :data:`K_NEIGHBOURS` nearest training reports. The threshold is the :data:`QUANTILE` quantile of the distances of
   held-out folds of the training split (leave-fold-out: reference = the other folds), so that a report like the
   training ones passes about as often as a training report does when it is left out.

:class:`OodProfile` holds what the training reports looked like (layouts, colour and size ranges, the reference
embeddings); it is stored beside the model (``ood_profile.json``, ``ood_reference.npy``, ``ood_pca.npy``; no
pickle) by ``python -m ecg_core ood-profile RUN --data DIR`` (:mod:`ecg_core.reports.ood_build`), which uses the run's
own training split, never its test split. A run without a profile still gets its descriptor, and the verdict says
plainly that it is unknown (:data:`NO_PROFILE`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ecg_core.core.errors import ConfigError
from ecg_core.reports.layout_detect import classify_rows  # the layout classification of the lead detection
from ecg_core.reports.layout_detect import trace_rows as _rows_of

PROFILE_FILE = "ood_profile.json"
REFERENCE_FILE = "ood_reference.npy"  # (n, PCA_DIM) float32: the training reports' projected embeddings
PCA_FILE = "ood_pca.npy"  # (1 + PCA_DIM, D) float32: row 0 the mean embedding, then the components
PROFILE_VERSION = 1
PCA_DIM = 32
K_NEIGHBOURS = 5
QUANTILE = 0.99

LAYOUTS: tuple[str, ...] = ("3x4+1", "3x4+3", "6x2", "12x1", "2x6", "other")
LAYOUT_WORDS: dict[str, str] = {
    "3x4+1": "3x4 + rhythm strip", "3x4+3": "3x4 + 3 rhythm strips", "6x2": "6x2", "12x1": "12x1", "2x6": "2x6",
    "other": "an unrecognised layout",
}
NO_PROFILE = "unknown: this model has no OOD profile (build one with `python -m ecg_core ood-profile RUN --data DIR`)"
UNRELIABLE = "treat the prediction as unreliable"
#: px: the full trace analysis's copies when the rows found on the check's copy form no known layout (~17 ms at
#: 800 px; then the lead detection's width, ~45 ms, when those rows form no known layout either)
DESC_WIDTH = 800
DESC_WIDTH_FINE = 1100

# tolerances around the training ranges (a profile stores the training minimum and maximum)
_SAT_TOL, _VALUE_TOL, _HUE_TOL_DEG, _ASPECT_TOL, _MIN_WIDTH_FACTOR = 0.06, 0.10, 30.0, 0.08, 0.5


# --------------------------------------------------------------------------------------------------- descriptor
@dataclass(frozen=True)
class ReportDescriptor:
    """What a report looks like, independent of any model.

    ``layout`` in :data:`LAYOUTS`; ``n_rows`` rows of traces, ``n_columns`` the most lead segments found in one row
    (1 when the leads of a row join without a break); ``row_spans`` the share of the trace area's width each row
    covers (top to bottom). Paper: ``paper_hue`` in degrees (0-360), ``paper_saturation`` and ``paper_value``
    (0-1) of the background, ``mean_saturation`` of the whole page (a coloured grid on white paper). ``width`` and
    ``height``: the picture as stored (px); ``aspect`` = width / height.
    """

    layout: str
    n_rows: int
    n_columns: int
    row_spans: tuple[float, ...]
    paper_hue: float
    paper_saturation: float
    paper_value: float
    mean_saturation: float
    width: int
    height: int

    @property
    def aspect(self) -> float:
        return self.width / max(1, self.height)

    @property
    def colour_name(self) -> str:
        return colour_name(self.paper_hue, self.paper_saturation, self.paper_value)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["row_spans"] = list(self.row_spans)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReportDescriptor:
        try:
            return cls(str(d["layout"]), int(d["n_rows"]), int(d["n_columns"]),
                       tuple(float(v) for v in d["row_spans"]), float(d["paper_hue"]), float(d["paper_saturation"]),
                       float(d["paper_value"]), float(d["mean_saturation"]), int(d["width"]), int(d["height"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"not a report descriptor: {e}") from e


def colour_name(hue: float, sat: float, value: float) -> str:
    """Plain name of a paper colour (white, grey, black-and-white prints have no hue)."""
    if sat < 0.07:
        return "white" if value >= 0.8 else "grey"
    h = hue % 360.0
    if h < 15 or h >= 330:
        return "pink" if sat < 0.35 and value > 0.8 else "red"
    if h < 45:
        return "cream" if sat < 0.3 else "orange"
    if h < 70:
        return "cream" if sat < 0.3 else "yellow"
    if h < 170:
        return "green"
    if h < 260:
        return "blue"
    return "purple"


_NOT_GIVEN: Any = object()


def describe_report(rgb: np.ndarray, *, analysis: Any = None, scan: Any = None,
                    original_size: tuple[int, int] | None = None, photo: Any = _NOT_GIVEN) -> ReportDescriptor:
    """The :class:`ReportDescriptor` of a uint8 RGB (H, W, 3) or grey (H, W) report image.

    ``analysis``: :func:`ecg_core.reports.traces.analyse_traces` of a working copy when the caller already has it
    (the lead detection made one: the descriptor then costs ~2 ms); ``scan``: the ECG check's
    :class:`~ecg_core.reports.ecg_check.CheckScan` (``check_ecg(rgb, keep_scan=True).scan``: its reduced copy and
    the trace components it counted; ~3 ms, what batch prediction uses, see :func:`analysis_from_scan`); else the
    check's scan is made here. ``analysis`` is preferred when both are given.
    ``original_size``: (width, height) of the stored
    picture when ``rgb`` is a reduced decode. ``photo``: :func:`ecg_core.reports.leads.photo_layout` of ``rgb``
    when the caller already has it (``None``: not a photographed page; the lead detection made it); else it is made
    here, once. Never raises for an unusual image."""
    from ecg_core.reports.leads import photo_layout
    from ecg_core.reports.traces import analyse_traces

    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3):
        raise ConfigError(f"describe_report expects a uint8 image (H, W) or (H, W, 3); received {rgb.dtype} "
                          f"{rgb.shape}")
    if photo is _NOT_GIVEN:  # the same for every trace analysis below: made once
        photo = photo_layout(rgb)
    if analysis is None:
        if scan is None:
            from ecg_core.reports.ecg_check import check_ecg

            scan = check_ecg(rgb, keep_scan=True).scan
        out = _describe(rgb, analysis_from_scan(scan), original_size, photo, sampled=True)
        if out.layout != "other" or rgb.shape[1] <= scan.work.shape[1]:
            return out
        # rows that form no known layout on the check's copy (a header rule kept as a trace, a faint row lost):
        # the full trace analysis, at DESC_WIDTH px and, again no known layout, at DESC_WIDTH_FINE px
        out = _describe(rgb, analyse_traces(_desc_copy(rgb, DESC_WIDTH)), original_size, photo)
        if out.layout != "other" or rgb.shape[1] <= DESC_WIDTH:
            return out
        analysis = analyse_traces(_desc_copy(rgb, DESC_WIDTH_FINE))
    return _describe(rgb, analysis, original_size, photo)


def _describe(rgb: np.ndarray, ta: Any, original_size: tuple[int, int] | None, photo: Any, *,
              sampled: bool = False) -> ReportDescriptor:
    """:func:`describe_report` given the trace analysis ``ta`` and the photo layout ``photo`` (``None``: not a
    photographed page); ``sampled``: ``ta`` is of the check's copy (the paper colour is then sampled from ``rgb``
    itself)."""
    work, ink = ta.work, np.asarray(ta.ink, dtype=bool)
    rl = classify_rows(ta.trace, ta.curves)  # the lead detection's layout classification
    layout, rows, n_cols, spans = rl.name, rl.rows, rl.n_columns, list(rl.spans)
    # a photographed page (a desk around it; a cheap border test first): the rows of the straightened page, as the
    # lead detection sees them
    layout, rows = _photo_layout(photo, layout, rows)
    # paper: the light pixels that are not ink, on a grid of ~200 x 140 samples (~1 ms); on the check's copy
    # (half min-pooled: grid lines darker and wider than on the page) sampled from the picture itself
    if sampled and rgb.shape[1] > work.shape[1]:
        step = max(1, rgb.shape[1] // 200)
        small = np.ascontiguousarray(rgb[::step, ::step])
        if small.ndim == 2 or small.shape[2] != 3:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB if small.ndim == 2 else cv2.COLOR_RGBA2RGB)
        ink_s = cv2.resize(ink.astype(np.uint8), (small.shape[1], small.shape[0]),
                           interpolation=cv2.INTER_NEAREST).astype(bool)
    else:
        small, ink_s = np.ascontiguousarray(work[::4, ::4]), ink[::4, ::4]
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    v = hsv[..., 2]
    paper = (v >= 0.8 * float(np.percentile(v, 95))) & ~ink_s
    if not paper.any():
        paper = np.ones_like(v, dtype=bool)
    s = hsv[..., 1][paper].astype(np.float32) / 255.0
    hue = hsv[..., 0][paper].astype(np.float32) * (np.pi / 90.0)  # OpenCV hue 0-179 -> radians
    sat = float(np.median(s))
    hue_deg = float(np.degrees(np.arctan2(np.mean(np.sin(hue) * s), np.mean(np.cos(hue) * s))) % 360.0)
    mean_sat = float(np.mean(hsv[..., 1])) / 255.0  # the whole page: a coloured grid on white paper
    h0, w0 = (int(rgb.shape[0]), int(rgb.shape[1]))
    width, height = (int(original_size[0]), int(original_size[1])) if original_size else (w0, h0)
    return ReportDescriptor(layout, len(rows), n_cols, tuple(spans), round(hue_deg, 1), round(sat, 4),
                            round(float(np.median(v[paper])) / 255.0, 4), round(mean_sat, 4), width, height)


def _photo_layout(got: Any, layout: str, rows: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    """(layout, rows) of a photographed page (``got``: its :func:`ecg_core.reports.leads.photo_layout`, the page
    outline straightened first), else (``got`` ``None`` or the template) the ones given."""
    from ecg_core.reports.synth_layouts import page_layout

    if got is None or got.is_fallback:
        return layout, rows
    return got.layout, tuple(range(page_layout(got.layout).n_rows))


def analysis_from_scan(scan: Any) -> Any:
    """A :class:`~ecg_core.reports.traces.TraceAnalysis` of the ECG check's reduced copy from its
    :class:`~ecg_core.reports.ecg_check.CheckScan`, without a second trace analysis: the trace components the check
    counted, less the rows without spikes across their width (:func:`_spiky`: a header rule the check kept as a long
    curve), and the ink without long horizontal or vertical lines (grid, frames) as the curves."""
    from ecg_core.reports.traces import TraceAnalysis, _long_lines

    h, w = scan.ink.shape
    trace = np.array(scan.trace, dtype=bool)
    for t, b, _ in _rows_of(trace):
        if not _spiky(trace[t:b]):
            trace[t:b] = False
    ink = scan.ink.astype(np.uint8)
    curves = (ink & (1 - _long_lines(ink, max(15, int(0.25 * w)), max(9, int(0.12 * h))))).astype(bool)
    return TraceAnalysis(scan.work, scan.ink, curves, trace, 0.0, 0, 0)


def _spiky(band: np.ndarray, parts: int = 8, min_parts: int = 3) -> bool:
    """Whether a band of the trace mask holds spikes across its width: columns with at least 3 x the median ink
    height in at least ``min_parts`` of ``parts`` equal stretches of its extent. A header rule the check kept as a
    long curve carries its text glyphs at one end only; a row of traces has QRS complexes all along."""
    height = band.sum(axis=0)
    cols = np.flatnonzero(height)
    if cols.size < parts:
        return False
    tall = cols[height[cols] >= 3 * max(1.0, float(np.median(height[cols])))]
    if tall.size == 0:
        return False
    part = ((tall - cols[0]) * parts // max(1, cols[-1] + 1 - cols[0])).clip(0, parts - 1)
    return int(np.unique(part).size) >= min_parts


def _desc_copy(rgb: np.ndarray, width: int) -> np.ndarray:
    """The descriptor's own working copy, at most ``width`` px wide (area interpolation)."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    h, w = rgb.shape[:2]
    if w <= width:
        return rgb
    return cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------------------------ profile
@dataclass(frozen=True)
class EmbeddingReference:
    """The training reports in the model's feature space: ``layer`` whose output is the embedding, the PCA
    (``mean`` (D,), ``components`` (d, D)), the projected training embeddings ``reference`` (n, d), ``k`` neighbours,
    ``threshold`` on the mean k-NN distance and how it was chosen (``quantile`` of ``n_heldout`` held-out-fold
    distances over ``n_folds`` folds; ``heldout_in_rate``: their share at or below it)."""

    layer: str
    mean: np.ndarray
    components: np.ndarray
    reference: np.ndarray
    k: int
    threshold: float
    quantile: float
    n_folds: int
    n_heldout: int
    heldout_in_rate: float

    def project(self, emb: np.ndarray) -> np.ndarray:
        e = np.asarray(emb, dtype=np.float32).reshape(-1, self.mean.shape[0])
        return (e - self.mean) @ self.components.T

    def distance(self, emb: np.ndarray) -> np.ndarray:
        """Mean distance of each embedding (n, D) to its ``k`` nearest training reports (n,)."""
        return knn_distance(self.project(emb), self.reference, self.k)


def knn_distance(points: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance of each row of ``points`` to its ``k`` nearest rows of ``reference``."""
    p = np.asarray(points, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    d2 = np.maximum((p * p).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * p @ r.T, 0.0)
    kk = max(1, min(int(k), r.shape[0]))
    nearest = np.sqrt(np.partition(d2, kk - 1, axis=1)[:, :kk])
    return nearest.mean(axis=1)


def fit_pca(emb: np.ndarray, dim: int = PCA_DIM) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), components (d, D)) of the embeddings (n, D), d = min(dim, n - 1, D)."""
    e = np.asarray(emb, dtype=np.float64)
    mean = e.mean(axis=0)
    _, _, vt = np.linalg.svd(e - mean, full_matrices=False)
    d = max(1, min(int(dim), e.shape[0] - 1, e.shape[1]))
    return mean.astype(np.float32), vt[:d].astype(np.float32)


@dataclass(frozen=True)
class OodProfile:
    """What the training reports of a run looked like (see the module docstring).

    ``layouts``: training layout -> count; ``ranges``: descriptor field -> [min, max] over the training reports
    (``paper_saturation``, ``paper_value``, ``mean_saturation``, ``aspect``, ``width``); ``paper_hue``: circular
    mean hue (degrees) when the training paper is coloured, else ``None``; ``embedding``: ``None`` for a model
    without a feature space (a measurement model) or a profile of the descriptor part only."""

    run_id: str
    n_reports: int
    layouts: Mapping[str, int]
    ranges: Mapping[str, tuple[float, float]]
    paper_hue: float | None
    embedding: EmbeddingReference | None = None
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def training_layouts(self) -> list[str]:
        """Layouts of at least 2 % of the training reports, most common first."""
        total = max(1, sum(self.layouts.values()))
        return [k for k, v in sorted(self.layouts.items(), key=lambda kv: -kv[1]) if v / total >= 0.02]

    def layout_words(self) -> str:
        names = self.training_layouts
        return ", ".join(LAYOUT_WORDS.get(n, n) for n in names) if names else "no recognised layout"


def profile_from_descriptors(run_id: str, descriptors: Sequence[ReportDescriptor], *,
                             embedding: EmbeddingReference | None = None, source: str = "",
                             notes: Sequence[str] = ()) -> OodProfile:
    """The descriptor part of a profile from the training reports' descriptors (plus an optional embedding)."""
    if not descriptors:
        raise ConfigError("an OOD profile needs at least one training report")
    layouts: dict[str, int] = {}
    for d in descriptors:
        layouts[d.layout] = layouts.get(d.layout, 0) + 1
    vals = {f: np.array([getattr(d, f) for d in descriptors], dtype=np.float64)
            for f in ("paper_saturation", "paper_value", "mean_saturation", "aspect", "width")}
    ranges = {f: (round(float(v.min()), 4), round(float(v.max()), 4)) for f, v in vals.items()}
    sat = vals["paper_saturation"]
    hue = None
    if float(np.median(sat)) >= 0.07:
        rad = np.radians([d.paper_hue for d in descriptors])
        hue = round(float(np.degrees(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())) % 360.0), 1)
    return OodProfile(run_id, len(descriptors), layouts, ranges, hue, embedding, source, tuple(notes))


def save_profile(profile: OodProfile, run_dir: str | Path) -> Path:
    """Write ``ood_profile.json`` (and, with an embedding, ``ood_reference.npy`` and ``ood_pca.npy``) atomically."""
    import io

    from ecg_core.core.atomic import atomic_write_bytes, atomic_write_json

    d = Path(run_dir)
    meta: dict[str, Any] = {"version": PROFILE_VERSION, "run_id": profile.run_id, "n_reports": profile.n_reports,
                            "layouts": dict(profile.layouts), "ranges": {k: list(v) for k, v in profile.ranges.items()},
                            "paper_hue": profile.paper_hue, "source": profile.source, "notes": list(profile.notes),
                            "embedding": None}
    e = profile.embedding
    if e is not None:
        meta["embedding"] = {"layer": e.layer, "k": e.k, "threshold": e.threshold, "quantile": e.quantile,
                             "n_folds": e.n_folds, "n_heldout": e.n_heldout, "heldout_in_rate": e.heldout_in_rate,
                             "dim": int(e.components.shape[0]), "n_reference": int(e.reference.shape[0])}
        for name, arr in ((REFERENCE_FILE, e.reference), (PCA_FILE, np.vstack([e.mean[None, :], e.components]))):
            buf = io.BytesIO()
            np.save(buf, np.asarray(arr, dtype=np.float32), allow_pickle=False)
            atomic_write_bytes(d / name, buf.getvalue())
    return atomic_write_json(d / PROFILE_FILE, meta)


def load_profile(run_dir: str | Path) -> OodProfile | None:
    """The run's profile, or ``None`` when it has none; :class:`ConfigError` when the files are damaged."""
    d = Path(run_dir)
    p = d / PROFILE_FILE
    if not p.is_file():
        return None
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
        emb = None
        if meta.get("embedding"):
            m = meta["embedding"]
            ref = np.load(d / REFERENCE_FILE, allow_pickle=False)
            pca = np.load(d / PCA_FILE, allow_pickle=False)
            if ref.ndim != 2 or pca.ndim != 2 or ref.shape[1] != pca.shape[0] - 1:
                raise ValueError(f"array shapes {ref.shape} / {pca.shape} do not match")
            emb = EmbeddingReference(str(m["layer"]), pca[0], pca[1:], ref, int(m["k"]), float(m["threshold"]),
                                     float(m["quantile"]), int(m["n_folds"]), int(m["n_heldout"]),
                                     float(m["heldout_in_rate"]))
        return OodProfile(str(meta["run_id"]), int(meta["n_reports"]), {str(k): int(v) for k, v in
                                                                        meta["layouts"].items()},
                          {str(k): (float(v[0]), float(v[1])) for k, v in meta["ranges"].items()},
                          None if meta.get("paper_hue") is None else float(meta["paper_hue"]), emb,
                          str(meta.get("source", "")), tuple(str(n) for n in meta.get("notes", [])))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise ConfigError(f"the OOD profile of {d.name!r} is unreadable ({e}); rebuild it with `python -m ecg_core "
                          f"ood-profile {d.name} --data DIR`") from e


# ------------------------------------------------------------------------------------------------------ verdict
@dataclass(frozen=True)
class OodVerdict:
    """Whether a report resembles the training reports. ``in_distribution``: ``None`` when unknown (no profile);
    ``reasons``: plain sentences, one per property that differs (empty when in distribution); ``layout`` the
    detected layout; ``distance``/``threshold``: the feature-space check (``None`` when not made)."""

    in_distribution: bool | None
    reasons: tuple[str, ...]
    layout: str
    distance: float | None = None
    threshold: float | None = None

    @property
    def reason(self) -> str:
        """The CSV's ``ood_reason``: empty when in distribution."""
        if self.in_distribution is None:
            return "; ".join(self.reasons) if self.reasons else NO_PROFILE
        return "; ".join(self.reasons)

    @property
    def csv_value(self) -> str:
        """The CSV's ``in_distribution``: 'true', 'false' or '' (unknown)."""
        return "" if self.in_distribution is None else ("true" if self.in_distribution else "false")

    @property
    def message(self) -> str:
        """One warning for the page and the PDF; empty when in distribution."""
        if self.in_distribution is None:
            return f"Whether this report resembles the training data is {self.reason}."
        if self.in_distribution:
            return ""
        first = self.reasons[0]
        more = f" (also: {'; '.join(self.reasons[1:])})" if len(self.reasons) > 1 else ""
        return f"This report's {first}{more}: {UNRELIABLE}."


def assess(descriptor: ReportDescriptor | None, profile: OodProfile | None, *,
           embedding: np.ndarray | None = None) -> OodVerdict:
    """Compare one report with the training reports; see the module docstring."""
    layout = descriptor.layout if descriptor is not None else "other"
    if profile is None:
        extra = f"; the report's layout is {LAYOUT_WORDS.get(layout, layout)}" if descriptor is not None else ""
        return OodVerdict(None, (NO_PROFILE + extra,), layout)
    reasons: list[str] = []
    train = profile.training_layouts
    if descriptor is not None:
        if layout not in train:
            shown = layout if layout != "other" else f"unrecognised, {descriptor.n_rows} trace rows"
            reasons.append(f"layout ({shown}) differs from the reports this model was trained on "
                           f"({profile.layout_words()})")
        r = profile.ranges
        lo, hi = r.get("paper_saturation", (0.0, 1.0))
        hue_off = (profile.paper_hue is not None and descriptor.paper_saturation >= 0.07
                   and abs((descriptor.paper_hue - profile.paper_hue + 180.0) % 360.0 - 180.0) > _HUE_TOL_DEG)
        if not lo - _SAT_TOL <= descriptor.paper_saturation <= hi + _SAT_TOL or hue_off:
            reasons.append(f"paper colour ({descriptor.colour_name}, saturation {descriptor.paper_saturation:.2f}) "
                           f"differs from the training reports' (saturation {lo:.2f}-{hi:.2f})")
        lo, hi = r.get("paper_value", (0.0, 1.0))
        if not lo - _VALUE_TOL <= descriptor.paper_value <= hi + _VALUE_TOL:
            reasons.append(f"paper brightness ({descriptor.paper_value:.2f}) differs from the training reports' "
                           f"({lo:.2f}-{hi:.2f})")
        lo, hi = r.get("aspect", (0.0, 1e9))
        if not lo * (1 - _ASPECT_TOL) <= descriptor.aspect <= hi * (1 + _ASPECT_TOL):
            reasons.append(f"page shape (width/height {descriptor.aspect:.2f}) differs from the training reports' "
                           f"({lo:.2f}-{hi:.2f})")
        lo, _ = r.get("width", (0.0, 1e9))
        if descriptor.width < _MIN_WIDTH_FACTOR * lo:
            reasons.append(f"resolution ({descriptor.width} px wide) is far below the training reports' "
                           f"(at least {lo:.0f} px)")
    dist = thr = None
    e = profile.embedding
    if e is not None and embedding is not None:
        dist, thr = float(e.distance(embedding)[0]), float(e.threshold)
        if dist > thr:
            reasons.append(f"position in the model's feature space is far from the training reports (distance "
                           f"{dist:.2f} > {thr:.2f})")
    return OodVerdict(not reasons, tuple(reasons), layout, dist, thr)


def embedding_model(model: Any, layer: str | None = None) -> Any:
    """A flat functional Keras model with two outputs, (class probabilities, embedding), sharing one forward pass;
    ``layer``: the embedding layer (default: the layer before the classifier)."""
    import keras

    if not isinstance(model, keras.Model):
        raise ConfigError(f"an embedding needs a keras.Model; received {type(model).__name__}")
    name = layer or embedding_layer(model)
    try:
        out = model.get_layer(name).output
    except (ValueError, KeyError) as e:
        raise ConfigError(f"layer {name!r} is not in model {model.name!r}; rebuild the OOD profile") from e
    return keras.Model(model.inputs, [model.outputs[0], out])


def embedding_layer(model: Any) -> str:
    """The layer before the classifier (the global pooling or the last hidden dense layer)."""
    if len(model.layers) < 2:
        raise ConfigError("the model has no layer before its classifier")
    return str(model.layers[-2].name)


def verdict_columns(verdict: OodVerdict) -> dict[str, str]:
    """The two CSV cells of one verdict."""
    return {"in_distribution": verdict.csv_value, "ood_reason": verdict.reason}


class DescriptorCache:
    """On-disk cache of report descriptors keyed by file content hash (``root/v<version>/<hash>.json``, written
    atomically), beside the ECG-check verdicts: a folder described once is not decoded again for it."""

    VERSION = 2  # 2: described on the ECG check's scan (ood.analysis_from_scan)

    def __init__(self, root: str | Path) -> None:
        self.dir = Path(root) / f"v{self.VERSION}"

    def _path(self, content_hash: str) -> Path:
        if not content_hash or any(c not in "0123456789abcdef" for c in content_hash):
            raise ConfigError(f"content_hash must be a hex digest; got {content_hash!r}")
        return self.dir / f"{content_hash}.json"

    def get(self, content_hash: str) -> ReportDescriptor | None:
        try:
            return ReportDescriptor.from_dict(json.loads(self._path(content_hash).read_text()))
        except (OSError, ValueError, ConfigError):
            return None

    def put(self, content_hash: str, descriptor: ReportDescriptor) -> None:
        from ecg_core.core.atomic import atomic_write_json

        atomic_write_json(self._path(content_hash), descriptor.to_dict())
