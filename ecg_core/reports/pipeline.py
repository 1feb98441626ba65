"""The single-report explain pipeline: upload bytes -> prepared report -> prediction + explanation -> figures.

What the Explain page (and ``bench/explain_latency.py``) runs for one report, in two cached stages:

1. :meth:`ReportPipeline.prepare` — hash the bytes, decode at **display resolution** (JPEGs through the DCT
   scaling of Pillow's draft mode, ~3x cheaper than a full decode, and the way training decoded its cache),
   preprocess with the run's :class:`~ecg_core.imaging.preprocess.PreprocessConfig`, run the ECG input check and find
   the lead boxes (sharing one analysis of the traces). Cached by (file hash, config hash): a second method,
   another class or another opacity never preprocesses again.
2. :meth:`ReportPipeline.explain` — prediction and attribution map; for the top class of a gradient method one
   forward/backward pass gives both (:meth:`~ecg_core.xai.explainer.Explainer.predict_and_explain`). The map is mapped
   back onto the displayed report and summed per lead. Cached by (file hash, method, class).

:meth:`ReportPipeline.analyse` does both for a new report, running the check and the lead detection on a worker
thread while the model runs (what the page calls first).

:func:`ecg_core.viz.explain.figures` then builds what the page shows (overlay, probability and lead-attention
charts). :func:`explain_report` explains one preprocessed report without the caches.

The caches belong to the :class:`ReportPipeline` object, which the caller owns (the page keeps one per model in
``st.cache_resource``); no module-level state. Thread-safe.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd
from cachetools import LRUCache

from ecg_core.core.errors import ConfigError
from ecg_core.core.hashing import file_hash
from ecg_core.reports.ecg_check import WORK_WIDTH
from ecg_core.xai.overlay import heatmap_to_original, overlay

if TYPE_CHECKING:
    from ecg_core.xai.explainer import Explainer

#: the displayed report is at least this wide when the upload is (the ECG check and the lead detection are
#: calibrated at this width) and less than twice as wide: a larger decode is reduced by an integer factor
DISPLAY_MIN_WIDTH = WORK_WIDTH


@dataclass(frozen=True)
class PreparedReport:
    """One decoded, preprocessed and inspected report.

    ``rgb`` is the report as displayed; ``original_size`` (width, height) the stored picture's size; ``pre`` the
    preprocessing result (its ``crop_box`` and ``steps`` are in the pixels of the decode it ran on, which may be
    larger than ``rgb``); ``crop_box`` the same crop in ``rgb``'s pixels; ``check`` the ECG input check;
    ``layout`` the lead boxes in ``rgb``'s pixels (from the sidecar for synthetic reports); ``descriptor`` its
    :class:`~ecg_core.reports.ood.ReportDescriptor` (layout, paper, size: what :meth:`ReportPipeline.ood` compares
    with the training reports).
    """

    file_hash: str
    name: str
    rgb: np.ndarray
    original_size: tuple[int, int]
    pre: Any  # ecg_core.imaging.preprocess.PreprocessResult
    crop_box: tuple[int, int, int, int]
    check: Any  # ecg_core.reports.ecg_check.EcgCheck
    layout: Any  # ecg_core.reports.leads.LeadLayout
    config_hash: str
    descriptor: Any = None  # ecg_core.reports.ood.ReportDescriptor


@dataclass(frozen=True)
class ExplainedReport:
    """Prediction and one attribution map of a :class:`PreparedReport`.

    ``heatmap`` is in model-input coordinates, ``heatmap_display`` on the displayed report (zero outside the
    crop); ``lead_table`` is :func:`ecg_core.reports.leads.lead_attention` of it.
    """

    probs: np.ndarray
    top: int
    method: str
    class_index: int
    heatmap: np.ndarray
    heatmap_display: np.ndarray
    lead_table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


@dataclass
class PipelineStats:
    """How often each stage really ran (the rest were cache hits)."""

    prepared: int = 0
    prepare_hits: int = 0
    explained: int = 0
    explain_hits: int = 0


def decode_draft_size(cfg: Any) -> tuple[int, int]:
    """The smallest (width, height) a JPEG may be decoded at: the preprocessing's draft size
    (:func:`ecg_core.imaging.preprocess.draft_size`, the one the training cache used), at least the check's working
    width wide. The same with or without the check, so that batch prediction's ``check`` only decides which files get
    a prediction, and the same for the Explain page's single report and batch prediction."""
    from ecg_core.imaging.preprocess import draft_size

    w, h = draft_size(cfg)
    return (max(w, WORK_WIDTH), h)


def decode_for_model(data: bytes, name: str, cfg: Any) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``data`` for preprocessing and display: uint8 RGB (H, W, 3) and the original (width, height).

    JPEGs are decoded at the smallest DCT scale (1, 1/2, 1/4, 1/8) that keeps the image as wide as the ECG check
    works and the crop larger than the preprocessing's work size (:func:`decode_draft_size`: the scale
    :func:`ecg_core.imaging.preprocess.preprocess_file` uses for the training cache, so inference sees what training
    saw); other formats are decoded fully. Batch prediction decodes the same way.
    """
    from ecg_core.imaging.loader import load_image

    img = load_image(data, name=name, draft_size=decode_draft_size(cfg))
    size = img.original_size if img.original_size[0] > 0 else (int(img.rgb.shape[1]), int(img.rgb.shape[0]))
    return img.rgb, size


def display_copy(rgb: np.ndarray, *, min_width: int = DISPLAY_MIN_WIDTH) -> tuple[np.ndarray, int]:
    """``rgb`` reduced by the largest integer factor k that keeps it ``min_width`` px wide (area averaging; an
    integer factor takes OpenCV's fast path), and k (1 = unchanged): between ``min_width`` and twice that."""
    k = max(1, int(rgb.shape[1]) // int(min_width))
    if k == 1:
        return rgb, 1
    return cv2.resize(rgb, None, fx=1.0 / k, fy=1.0 / k, interpolation=cv2.INTER_AREA), k


def _scale_box(box: tuple[int, int, int, int], sx: float, sy: float, shape: tuple[int, ...]
               ) -> tuple[int, int, int, int]:
    h, w = int(shape[0]), int(shape[1])
    x0, y0 = min(w - 1, int(round(box[0] * sx))), min(h - 1, int(round(box[1] * sy)))
    return (x0, y0, max(x0 + 1, min(w, int(round(box[2] * sx)))), max(y0 + 1, min(h, int(round(box[3] * sy)))))


def scaled_sidecar(sidecar: Mapping[str, Any], shape: tuple[int, int]) -> dict[str, Any]:
    """A synthetic report's sidecar with its boxes scaled from its ``image_size`` to ``shape`` (height, width)."""
    size = sidecar.get("image_size")
    boxes = sidecar.get("boxes")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and isinstance(boxes, Mapping)):
        return dict(sidecar)
    sx, sy = shape[1] / float(size[0]), shape[0] / float(size[1])
    out = dict(sidecar)
    out["boxes"] = {k: [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for k, b in boxes.items()}
    out["image_size"] = [shape[1], shape[0]]
    return out


class ReportPipeline:
    """Prepare and explain uploaded reports for one model (an :class:`~ecg_core.xai.explainer.Explainer` and its
    run's :class:`~ecg_core.imaging.preprocess.PreprocessConfig`), with small LRU caches of both stages."""

    def __init__(self, explainer: Any, cfg: Any, *, cache_size: int = 8) -> None:
        from ecg_core.imaging.preprocess import PreprocessConfig

        if not isinstance(cfg, PreprocessConfig):
            raise ConfigError(f"cfg must be a PreprocessConfig; received {type(cfg).__name__}")
        if tuple(cfg.input_shape) != tuple(explainer.input_shape):
            raise ConfigError(f"the preprocessing makes {cfg.input_shape} but the model expects "
                              f"{tuple(explainer.input_shape)}; use the run's own configuration")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ConfigError(f"cache_size must be an int >= 1; received {cache_size!r}")
        self.explainer = explainer
        self.cfg = cfg
        self.config_hash = cfg.config_hash()
        # LRU caches (cachetools, not thread-safe by themselves): every access holds self._lock
        self._prepared: LRUCache = LRUCache(maxsize=cache_size)
        self._explained: LRUCache = LRUCache(maxsize=4 * cache_size)
        self._probs: LRUCache = LRUCache(maxsize=4 * cache_size)
        self._ood: LRUCache = LRUCache(maxsize=4 * cache_size)
        self._embedders: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.stats = PipelineStats()

    # ------------------------------------------------------------------------------------------------ stage 1
    def _cached_prepared(self, h: str, sidecar: Mapping[str, Any] | None) -> PreparedReport | None:
        with self._lock:
            hit = self._prepared.get((h, bool(sidecar)))
            if hit is not None:
                self.stats.prepare_hits += 1
            return hit

    def _decode(self, data: bytes, name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """(decoded picture, displayed copy, original (width, height))."""
        decoded, size = decode_for_model(data, name, self.cfg)
        rgb, _ = display_copy(decoded)
        return decoded, rgb, (int(size[0]), int(size[1]))

    def _preprocess(self, decoded: np.ndarray, rgb: np.ndarray) -> tuple[Any, tuple[int, int, int, int]]:
        """(preprocessing result of the decode, its crop box in the displayed copy's pixels)."""
        from ecg_core.imaging.preprocess import preprocess

        pre = preprocess(decoded, self.cfg)
        crop = _scale_box(pre.crop_box, rgb.shape[1] / decoded.shape[1], rgb.shape[0] / decoded.shape[0], rgb.shape)
        return pre, crop

    @staticmethod
    def _inspect(rgb: np.ndarray, sidecar: Mapping[str, Any] | None, size: tuple[int, int] | None = None
                 ) -> tuple[Any, Any, Any]:
        """(ECG check, lead layout, report descriptor), sharing one analysis of the traces and one look for a
        photographed page (:func:`~ecg_core.reports.leads.photo_layout`: what ``detect_layout`` and the descriptor
        would each do first)."""
        from ecg_core.reports import ecg_check, leads, ood

        ta = ecg_check.analyse_traces(ecg_check.to_work(rgb))
        photo = leads.photo_layout(rgb)  # None: not a photographed page
        desc = ood.describe_report(rgb, analysis=ta, original_size=size, photo=photo)
        check = ecg_check.check_ecg(rgb)
        if sidecar is not None:
            layout = leads.layout_from_sidecar(scaled_sidecar(sidecar, rgb.shape[:2]), rgb.shape[:2])
        else:  # = leads.detect_layout(rgb, analysis=ta)
            layout = photo if photo is not None else leads.detect_layout(rgb, analysis=ta, warp=False)
        return check, layout, desc

    def _store_prepared(self, out: PreparedReport, sidecar: Mapping[str, Any] | None) -> None:
        with self._lock:
            self.stats.prepared += 1
            self._prepared[(out.file_hash, bool(sidecar))] = out

    def prepare(self, data: bytes, name: str = "upload", *, sidecar: Mapping[str, Any] | None = None,
                key: str | None = None) -> PreparedReport:
        """Decode, preprocess, check and lay out one report (cached by content hash; ``key`` = a known hash)."""
        h = key or file_hash(data)
        hit = self._cached_prepared(h, sidecar)
        if hit is not None:
            return hit
        decoded, rgb, size = self._decode(data, name)
        pre, crop = self._preprocess(decoded, rgb)
        check, layout, desc = self._inspect(rgb, sidecar, size)
        out = PreparedReport(h, name, rgb, size, pre, crop, check, layout, self.config_hash, desc)
        self._store_prepared(out, sidecar)
        return out

    def analyse(self, data: bytes, name: str = "upload", *, method: str = "gradcam",
                sidecar: Mapping[str, Any] | None = None, key: str | None = None
                ) -> tuple[PreparedReport, ExplainedReport]:
        """:meth:`prepare` then :meth:`explain` of the top class, with the ECG check and the lead detection (pure
        OpenCV/NumPy, which release the GIL) running on a worker thread, started as soon as the report is decoded,
        while the preprocessing and the model run: what the Explain page calls for a new report."""
        h = key or file_hash(data)
        hit = self._cached_prepared(h, sidecar)
        if hit is not None:
            return hit, self.explain(hit, method=method)
        decoded, rgb, size = self._decode(data, name)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecg-inspect")
            pool = self._pool
        inspection = pool.submit(self._inspect, rgb, sidecar, size)
        try:
            pre, crop = self._preprocess(decoded, rgb)
            probs, k, hm, notes = self._model_pass(pre.final, method, None, None)
        finally:
            check, layout, desc = inspection.result()
        prepared = PreparedReport(h, name, rgb, size, pre, crop, check, layout, self.config_hash, desc)
        self._store_prepared(prepared, sidecar)
        return prepared, self._assemble(prepared, method, probs, k, hm, notes)

    # ------------------------------------------------------------------------------------------------ stage 2
    def _model_pass(self, x: np.ndarray, method: str, class_index: int | None, probs: np.ndarray | None
                    ) -> tuple[np.ndarray, int, np.ndarray, list[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if class_index is None:
                probs, class_index, hm = self.explainer.predict_and_explain(x, method=method)
            else:
                if probs is None:
                    probs = np.asarray(self.explainer.predict_proba(x), dtype=np.float64)
                hm = self.explainer.explain(x, method=method, class_index=int(class_index))
        notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)
                 and "The structure of `inputs`" not in str(w.message)]
        return np.asarray(probs, dtype=np.float64), int(class_index), hm, notes

    def _assemble(self, prepared: PreparedReport, method: str, probs: np.ndarray, class_index: int,
                  hm: np.ndarray, notes: list[str]) -> ExplainedReport:
        from ecg_core.reports import leads

        disp = heatmap_to_original(hm, prepared.crop_box, prepared.rgb.shape[:2])
        table = leads.lead_attention(disp, prepared.layout)
        out = ExplainedReport(probs, int(np.argmax(probs)), method, class_index, hm, disp, table, notes)
        with self._lock:
            self.stats.explained += 1
            self._probs[prepared.file_hash] = probs
            self._explained[(prepared.file_hash, method, class_index)] = out
        return out

    def ood(self, prepared: PreparedReport, profile: Any) -> Any:
        """Does the report resemble the model's training reports? The :class:`~ecg_core.reports.ood.OodVerdict` of
        its descriptor and (when ``profile`` has a feature space) its embedding (one forward pass of the layer
        before the classifier, ~1-2 ms); ``profile`` ``None``: the verdict says it is unknown. Cached per report."""
        from ecg_core.reports import ood

        key = (prepared.file_hash, id(profile))
        with self._lock:
            hit = self._ood.get(key)
        if hit is not None:
            return hit
        emb = None
        if profile is not None and profile.embedding is not None:
            with self._lock:
                model = self._embedders.get(profile.embedding.layer)
            if model is None:
                import keras

                m = self.explainer.model
                model = keras.Model(m.inputs, m.get_layer(profile.embedding.layer).output)
                with self._lock:
                    self._embedders[profile.embedding.layer] = model
            x = np.asarray(prepared.pre.final, dtype=np.float32)[None]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The structure of `inputs`")
                emb = np.asarray(model(x, training=False)).reshape(1, -1)
        verdict = ood.assess(prepared.descriptor, profile, embedding=emb)
        with self._lock:
            self._ood[key] = verdict
        return verdict

    def explain(self, prepared: PreparedReport, *, method: str = "gradcam", class_index: int | None = None
                ) -> ExplainedReport:
        """Prediction and the ``method`` map for ``class_index`` (default: the top class), on the displayed
        report and per lead. Cached by (report, method, class)."""
        if prepared.config_hash != self.config_hash:
            raise ConfigError("this report was prepared for another model's preprocessing; prepare it again")
        pk = prepared.file_hash
        with self._lock:
            probs = self._probs.get(pk)
        if class_index is None and probs is not None:
            class_index = int(np.argmax(probs))
        with self._lock:
            hit = self._explained.get((pk, method, class_index)) if class_index is not None else None
            if hit is not None:
                self.stats.explain_hits += 1
                return hit
        probs, k, hm, notes = self._model_pass(prepared.pre.final, method, class_index, probs)
        return self._assemble(prepared, method, probs, k, hm, notes)


def full_resolution_overlay(data: bytes, name: str, explained: ExplainedReport, *, alpha: float = 0.55,
                            colormap: str = "jet") -> np.ndarray:
    """The overlay on the report decoded at full size (for the PNG download): the displayed map upscaled."""
    from ecg_core.imaging.loader import load_image

    rgb = load_image(data, name=name).rgb
    hm = cv2.resize(explained.heatmap_display, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    return overlay(rgb, hm, alpha=alpha, colormap=colormap)


@dataclass(frozen=True)
class Explanation:
    """A heatmap in both coordinate systems, with what produced it."""

    method: str
    class_index: int
    heatmap: np.ndarray
    heatmap_orig: np.ndarray
    notes: list[str] = field(default_factory=list)


def explain_report(explainer: Explainer, pre: Any, *, method: str = "gradcam", class_index: int | None = None
                   ) -> Explanation:
    """Explain a :class:`~ecg_core.imaging.preprocess.PreprocessResult` and map the map back onto the original; warnings
    (e.g. an empty map) become ``notes``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if class_index is None:
            class_index = int(np.argmax(explainer.predict_proba(pre.final)))
        hm = explainer.explain(pre.final, method=method, class_index=class_index)
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)
             and "The structure of `inputs`" not in str(w.message)]
    return Explanation(method, int(class_index), hm, heatmap_to_original(hm, pre.crop_box, pre.original_shape),
                       notes)
