"""Every Streamlit-cached call of the app, in one place: the loaded models, the scanned datasets and every expensive
``ecg_core`` call a page makes (``st.cache_resource`` for live objects, ``st.cache_data`` for values).

Pages call these and never decorate anything themselves. The cache keys are the arguments: paths come with a
*signature* (run stamp, folder signature, file hash) so that a changed file is read again; arguments whose name
starts with ``_`` are not hashed by Streamlit (models, configs, arrays), the key before them names them.
``ecg_core`` is imported inside the functions: a page pays only for what it calls, and the TensorFlow-free pages
never import TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

if TYPE_CHECKING:
    import numpy as np

    from app_ui.warmup import Warmup
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml import compare
    from ecg_core.ml.registry import RunInfo
    from ecg_core.reports import pdf, pipeline
    from ecg_core.signals import arrhythmia as arr
    from ecg_core.signals import spectral_cam
    from ecg_core.xai.explainer import Explainer, ExplainerCache
    from ecg_core.xai.faithfulness import FaithfulnessResult, RandomisationCheck


# ------------------------------------------------------------------------------------------------ cache keys
def folder_signature(root: str | Path, *, stat_files: bool = False) -> str:
    """Cheap change detector for a folder tree: number of files and newest modification time.

    By default only the folders are stat-ed (a file added, removed or renamed changes its folder's time), which
    stays cheap on a large dataset; ``stat_files=True`` also reads every file's time, so that a file overwritten in
    place is noticed (a batch folder). Hidden folders are skipped; a file gives its own size and time.
    """
    p = Path(root)
    if p.is_file():
        st_ = p.stat()
        return f"file:{st_.st_size}:{st_.st_mtime_ns}"
    n, newest = 0, 0
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        n += len(filenames)
        with contextlib.suppress(OSError):
            newest = max(newest, os.stat(dirpath).st_mtime_ns)
        if stat_files:
            for name in filenames:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime_ns)
        if n > 200_000:
            break
    return f"{n}:{newest}"


def run_key(run: RunInfo) -> str:
    """A run's cache key: its folder and the time of its model file (a retrained run is loaded again)."""
    from ecg_core.ml import registry

    model = run.path / registry.MODEL_FILE
    if run.is_measurement:
        from ecg_core.ml.measure_model import MEASURE_JSON

        model = run.path / MEASURE_JSON
    return f"{run.path.resolve()}:{model.stat().st_mtime_ns if model.exists() else 0}"


# ------------------------------------------------------------------------------------------------ models
@st.cache_resource(show_spinner=False, max_entries=4)
def measure_model(run_path: str, run_key: str) -> Any:
    """A measurement run's model (LightGBM text / JSON; cheap to load), per run folder and model file time."""
    from ecg_core.ml import registry

    return registry.load_model(registry.read_run(run_path))


def perlead_model(run_path: str, run_key: str) -> tuple[Any, Explainer]:
    """A per-lead CNN run's Keras model (input ``report_panels``) and its Grad-CAM explainer on the last conv
    stage, per run folder and model file time (``run_key``, part of :func:`explainer_cache`'s key), from the app's
    shared :func:`explainer_cache`: the start-up warm-up loads the default ensemble's per-lead member there."""
    from ecg_core.ml import registry

    run = registry.read_run(run_path)
    warm = start_warmup()
    state = warm.state()
    with st.spinner(f"Loading model {run.run_id}..."):
        if state.status == "warming":
            warm.wait(timeout=120)  # the warm-up may be loading this model (an ensemble's member): never load it twice
        exp = explainer_cache().get(run)  # its last conv layer: run.json's, else the model's last conv stage
    return exp.model, exp


def ensemble(run: RunInfo) -> tuple[Any, list[Any]]:
    """An ensemble run's loaded :class:`ecg_core.reports.ensemble.Ensemble` and each member's bundle (a measurement
    model, or a per-lead (Keras model, explainer) pair), from the same caches as the members' own views."""
    from ecg_core.reports.ensemble import assemble, member_runs

    members, weights, temperature = member_runs(run)
    bundles = [measure_model(str(m.path), run_key(m)) if m.is_measurement else perlead_model(str(m.path), run_key(m))
               for m in members]
    models = [b if m.is_measurement else b[0] for m, b in zip(members, bundles)]
    return assemble(run, members, models, weights, temperature), bundles


@st.cache_resource(show_spinner=False, max_entries=8)
def perlead_explanation(run_key: str, file_hash: str, sidecar_json: str, class_index: int | None, _data: bytes,
                        _bundle: tuple[Any, Explainer]) -> tuple[np.ndarray, Any]:
    """The report (uint8 RGB) and its :class:`ecg_core.reports.perlead_predict.PerleadExplanation` (probabilities,
    attention per lead, Grad-CAM for ``class_index``; None: the predicted class), per run, image and class."""
    from ecg_core.imaging.loader import load_image
    from ecg_core.reports.perlead_predict import explain_report

    model, explainer = _bundle
    rgb = load_image(_data).rgb
    return rgb, explain_report(model, rgb, sidecar=json.loads(sidecar_json) if sidecar_json else None,
                               class_index=class_index, explainer=explainer)


@st.cache_resource(show_spinner=False)
def explainer_cache() -> ExplainerCache:
    """The app's one cache of loaded models (shared by the Explain pages and the start-up warm-up)."""
    from ecg_core.xai.explainer import ExplainerCache

    return ExplainerCache(max_entries=3)


@st.cache_resource(show_spinner=False)
def start_warmup() -> Warmup:
    """Start (once per server process) the background load of the default model into :func:`explainer_cache`.

    Returns at once; the state is read with ``start_warmup().state()``. ``ECG_INSIGHT_WARMUP=0`` turns it off.
    """
    from app_ui.warmup import Warmup
    from ecg_core.core import paths

    return Warmup(explainer_cache, paths.models_dir()).start()


def get_explainer(run: RunInfo) -> Explainer:
    """The loaded model of ``run`` from :func:`explainer_cache`; waits for the warm-up when it is loading this one."""
    warm = start_warmup()
    state = warm.state()
    with st.spinner(f"Loading model {run.run_id}..."):
        if state.status == "warming" and state.run_id in (None, run.run_id):
            warm.wait(timeout=120)  # the start-up warm-up is loading this model: wait for it, do not load it twice
        return explainer_cache().get(run)


@st.cache_resource(show_spinner=False, max_entries=4)
def report_pipeline(run_key: str, _explainer: Explainer, _cfg: PreprocessConfig) -> pipeline.ReportPipeline:
    """One pipeline per model (keyed by run folder and model file time): its caches keep a second method, class
    or opacity from decoding and preprocessing the report again."""
    from ecg_core.reports import pipeline

    return pipeline.ReportPipeline(_explainer, _cfg, cache_size=8)


def ood_profile(run: RunInfo) -> tuple[Any, str]:
    """(the run's OOD profile or None, a problem to show: '' or why a stored profile could not be read), reloaded
    when the profile file changes."""
    from ecg_core.reports import ood

    p = run.path / ood.PROFILE_FILE
    return _ood_profile_cached(str(run.path), p.stat().st_mtime_ns if p.exists() else 0)


def ood_of_image(run: RunInfo, file_hash: str, data: bytes, name: str) -> Any:
    """The descriptor-only :class:`ecg_core.reports.ood.OodVerdict` of one image (for a model without a feature
    space, e.g. a measurement model), cached per run profile and image."""
    from ecg_core.reports import ood

    p = run.path / ood.PROFILE_FILE
    return _ood_of_image_cached(str(run.path), p.stat().st_mtime_ns if p.exists() else 0, file_hash, data, name)


@st.cache_data(show_spinner=False, max_entries=32)
def _ood_of_image_cached(run_path: str, stamp: int, file_hash: str, _data: bytes, name: str) -> Any:
    from ecg_core.core.errors import EcgCoreError
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.reports import ood
    from ecg_core.reports.pipeline import decode_for_model

    profile, _ = _ood_profile_cached(run_path, stamp)
    try:
        rgb, size = decode_for_model(_data, name, PreprocessConfig())
    except EcgCoreError:
        return ood.assess(None, profile)
    return ood.assess(ood.describe_report(rgb, original_size=size), profile)


@st.cache_resource(show_spinner=False, max_entries=8)
def _ood_profile_cached(run_path: str, stamp: int) -> tuple[Any, str]:
    from ecg_core.core.errors import EcgCoreError
    from ecg_core.reports import ood

    try:
        return ood.load_profile(run_path), ""
    except EcgCoreError as e:
        return None, str(e)


@st.cache_data(show_spinner=False, max_entries=16)
def faithfulness(run_key: str, file_hash: str, cfg_hash: str, method: str, class_index: int,
                 _explainer: Explainer, _x: np.ndarray, _heatmap: np.ndarray
                 ) -> tuple[FaithfulnessResult, RandomisationCheck]:
    """Deletion/insertion curves and the model-randomisation check of one heatmap."""
    from ecg_core.xai.faithfulness import deletion_insertion, randomisation_check

    faith = deletion_insertion(_explainer, _x, _heatmap, class_index=class_index)
    sanity = randomisation_check(_explainer, _x, method=method, class_index=class_index, heatmap=_heatmap)
    return faith, sanity


@st.cache_data(show_spinner=False, max_entries=8)
def pdf_report(key: str, _content: pdf.ReportContent) -> bytes:
    """The PDF bytes of one explained report (``key`` names the image, model, method, class and opacity)."""
    from ecg_core.reports import pdf

    return pdf.build_report(_content)


@st.cache_data(show_spinner="Predicting every file of the batch...", max_entries=8)
def batch_predictions(run_key: str, folder: str, signature: str, check: bool, _explainer: Any,
                      _cfg: PreprocessConfig | None, ood_stamp: int = 0, _ood: Any = None,
                      kind: str = "keras") -> pd.DataFrame:
    """One row per file of ``folder``, with the ``in_distribution`` / ``ood_reason`` columns of the run's OOD
    profile ``_ood`` (``ood_stamp``: its file time). ``kind`` says what ``_explainer`` is: ``keras`` (a whole-page
    CNN's explainer with its preprocessing ``_cfg``: :func:`ecg_core.reports.batch.predict_files`),
    ``measurement`` (:func:`ecg_core.reports.measure_predict.predict_files_measure`, plus a ``reading`` column),
    ``perlead`` (a (Keras model, explainer) pair: :func:`ecg_core.reports.perlead_predict.predict_files_perlead`)
    or ``ensemble`` (:func:`ecg_core.reports.ensemble.predict_files_ensemble`) — what ``predict`` runs for each."""
    from ecg_core.core import paths
    from ecg_core.reports import batch

    files = batch.list_batch_files(folder)
    if kind == "measurement":  # no preprocessing: read and measure each report, as `predict` does
        from ecg_core.reports.measure_predict import predict_files_measure

        return predict_files_measure(_explainer, files, root=folder, check=check, ood=_ood)
    if kind == "perlead":
        from ecg_core.reports.perlead_predict import predict_files_perlead

        model = _explainer[0]
        names = list(_explainer[1].class_names or [])
        return predict_files_perlead(model, files, class_names=names, root=folder, check=check)
    if kind == "ensemble":
        from ecg_core.reports.ensemble import predict_files_ensemble

        return predict_files_ensemble(_explainer, files, root=folder, check=check, ood=_ood)
    if kind != "keras":
        raise ValueError(f"unknown model kind {kind!r}")
    return batch.predict_files(_explainer, _cfg, files, class_names=_explainer.class_names, root=folder,
                               check=check, cache_root=paths.cache_dir(), ood=_ood)


# ------------------------------------------------------------------------------------------------ datasets
@st.cache_data(show_spinner=False, max_entries=8)
def _scan_cached(root: str, preset: str, signature: str) -> tuple[pd.DataFrame, dict]:
    from ecg_core.ml import dataset

    df = dataset.scan(root, preset=preset)
    return df, dict(df.attrs)


def scan_dataset(root: str, preset: str = "cardiac-4") -> pd.DataFrame:
    """Scan (cached until the folder changes) and return the index with its attrs restored."""
    df, attrs = _scan_cached(root, preset, folder_signature(root))
    df = df.copy()
    df.attrs.update(attrs)
    return df


def thumbnail(path: str, width: int = 360):
    """A small RGB thumbnail of an image file, or None when it cannot be read."""
    return _thumbnail_cached(path, width)


@st.cache_data(show_spinner=False, max_entries=512)
def _thumbnail_cached(path: str, width: int):
    import cv2

    from ecg_core.core.errors import EcgCoreError
    from ecg_core.imaging.loader import load_image

    try:
        img = load_image(path, draft_size=(width, width))
    except EcgCoreError:
        return None
    h, w = img.rgb.shape[:2]
    scale = width / w
    return cv2.resize(img.rgb, (width, max(1, int(h * scale))), interpolation=cv2.INTER_AREA)


@st.cache_data(show_spinner=False, max_entries=16)
def augment_source(path: str, model_input: bool) -> np.ndarray:
    """The Augment page's source image: the decoded report, or its preprocessed model input (grey, 640x384)."""
    import numpy as np

    from ecg_core.imaging.loader import load_image
    from ecg_core.imaging.preprocess import PreprocessConfig, preprocess

    rgb = load_image(path).rgb
    if not model_input:
        return rgb
    res = preprocess(rgb, PreprocessConfig(height=384, width=640, channels=1), keep_steps=False)
    return np.clip(res.final[:, :, 0] * 255, 0, 255).astype(np.uint8)


@st.cache_data(show_spinner="Drawing the report...", max_entries=64)
def synth_report(cls: str, subtype: str | None, territory: str | None, heart_rate: float | None, severity: float,
                 noise: float, seed: int, paper: str, artifacts: bool, highlight: bool) -> tuple[object, dict]:
    """A synthetic report for the Learn page: (RGB image, sidecar). ``paper``: a grid style or ``black & white``."""
    from ecg_core.reports import synth

    spec = synth.SynthSpec(cls, subtype=subtype, territory=territory, heart_rate=heart_rate, severity=severity,
                           noise=noise, seed=seed)
    bw = paper == "black & white"
    options = synth.RenderOptions(grid="pink" if bw else paper, black_and_white=bw, artifacts=artifacts)
    image, sidecar = synth.make_report(spec, options)
    if highlight:
        image = synth.highlight_leads(image, sidecar)
    return image, sidecar


# ------------------------------------------------------------------------------------------------ compare
@st.cache_data(show_spinner=False, max_entries=128)
def run_record(run_path: str, signature: str) -> compare.RunRecord:
    from ecg_core.ml import compare

    return compare.load_run_record(Path(run_path))


@st.cache_data(show_spinner=False, max_entries=32)
def misclassified(run_path: str, signature: str) -> pd.DataFrame | None:
    """The wrong test predictions of a run, most confident first (None without predictions.csv)."""
    from ecg_core.ml import compare

    preds = compare.load_predictions(Path(run_path))
    return None if preds is None else compare.misclassified(preds)


@st.cache_data(show_spinner=False, max_entries=64)
def latency(run_path: str, signature: str, n: int) -> dict:
    """Single-image forward-pass latency of a run's model (``compare.measure_latency(...).to_dict()``)."""
    from ecg_core.ml import compare, registry

    model = registry.load_model(Path(run_path))
    return compare.measure_latency(model, n=n).to_dict()


@st.cache_data(show_spinner=False, max_entries=8)
def leakage_demos(models_dir: str, signature: str) -> list[dict]:
    from ecg_core.ml import leakage_demo, registry

    return leakage_demo.find_leakage_demos(registry.list_runs(models_dir))


# ------------------------------------------------------------------------------------------------ arrhythmia
@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def arrhythmia_model(run_path: str, stamp: str) -> arr.ArrhythmiaModel:
    from ecg_core.signals import arrhythmia as arr

    return arr.load_arrhythmia_model(run_path)


@st.cache_resource(show_spinner=False, max_entries=4)
def arrhythmia_explainer(run_path: str, stamp: str) -> spectral_cam.SpectralGradcam:
    from ecg_core.signals import spectral_cam

    return spectral_cam.SpectralGradcam(arrhythmia_model(run_path, stamp).model)


@st.cache_data(show_spinner="Reading the record...", max_entries=8)
def arrhythmia_record(key: str, path: str, fs: float | None) -> tuple:
    """(record, the warnings its reader raised, as text)."""
    from ecg_core.signals import sources

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = sources.load_record(path, fs=fs)
    return rec, [str(w.message) for w in caught]


@st.cache_data(show_spinner="Cutting the record into segments...", max_entries=8)
def arrhythmia_segments(key: str, path: str, fs: float | None, seg_json: str, mode: str) -> list:
    from ecg_core.signals import arrhythmia as arr
    from ecg_core.signals.segments import SegmentConfig

    rec, _ = arrhythmia_record(key, path, fs)
    return arr.record_segments(rec, SegmentConfig.from_dict(json.loads(seg_json)), mode=mode)


@st.cache_data(show_spinner="Classifying every segment...", max_entries=8)
def arrhythmia_predictions(key: str, path: str, fs: float | None, mode: str, run_path: str, stamp: str,
                           lead: str | None = None):
    """Predictions per segment of the record, cut from ``lead`` (the run's own lead preference when ``None``)."""
    from ecg_core.signals import arrhythmia as arr

    bundle = arrhythmia_model(run_path, stamp)
    segs = arrhythmia_segments(key, path, fs, json.dumps(arr.with_lead(bundle.seg_cfg, lead).to_dict()), mode)
    rec = arrhythmia_record(key, path, fs)[0] if bundle.is_gbm else None  # feature models read the whole record
    return arr.predict_segments(bundle, segs, record=rec)


@st.cache_data(show_spinner="Computing the beat features...", max_entries=4)
def arrhythmia_feature_rows(key: str, path: str, fs: float | None, mode: str, run_path: str, stamp: str,
                            lead: str | None = None):
    """The gradient-boosting model's input row of every segment (RR context, morphology, VF window features)."""
    from ecg_core.signals import arrhythmia as arr
    from ecg_core.signals import arrhythmia_gbm

    bundle = arrhythmia_model(run_path, stamp)
    segs = arrhythmia_segments(key, path, fs, json.dumps(arr.with_lead(bundle.seg_cfg, lead).to_dict()), mode)
    rec = arrhythmia_record(key, path, fs)[0]
    return arrhythmia_gbm.segment_feature_rows(rec, [g.time_s for g in segs], [g.kind for g in segs],
                                               snap=bundle.model.snap_peaks)


@st.cache_data(show_spinner=False, max_entries=4)
def arrhythmia_record_splits(run_path: str, stamp: str) -> dict:
    from ecg_core.signals import arrhythmia as arr

    return arr.record_splits(run_path)


@st.cache_data(show_spinner=False, max_entries=8)
def arrhythmia_strip(key: str, path: str, fs: float | None, seg_json: str, cleaned: bool) -> tuple:
    from ecg_core.signals import arrhythmia as arr
    from ecg_core.signals.segments import SegmentConfig

    rec, _ = arrhythmia_record(key, path, fs)
    return arr.strip_signal(rec, seg_cfg=SegmentConfig.from_dict(json.loads(seg_json)), cleaned=cleaned)


@st.cache_data(show_spinner=False, max_entries=8)
def reading(file_hash: str, _data: bytes, sidecar_json: str) -> tuple:
    """(Digitized, Measurements, findings) of one report image (``file_hash`` names the bytes; ``sidecar_json`` is a
    synthetic report's sidecar or ``""``): the Explain page's Reading view."""
    from ecg_core.imaging.loader import load_image
    from ecg_core.reports.reading.criteria import evaluate
    from ecg_core.reports.reading.digitize import digitize
    from ecg_core.reports.reading.measure import measure

    dig = digitize(load_image(_data).rgb, sidecar=json.loads(sidecar_json) if sidecar_json else None)
    m = measure(dig)
    return dig, m, evaluate(m)


@st.cache_data(show_spinner=False, max_entries=8)
def rendered_record(key: str, _files: tuple[tuple[str, bytes], ...], record: str, paper: str, artifacts: bool
                    ) -> tuple[object, dict]:
    """A 12-lead WFDB record printed as a 3x4 + II report (RGB image, sidecar) for the Learn page; ``key`` names
    the record's files (path and stamp, or the upload's hash), ``_files`` are (name, bytes) of an upload written to a
    temporary folder first (empty for a record on disk at ``record``)."""
    import tempfile

    from ecg_core.reports.reading.formats import read_12lead
    from ecg_core.reports.reading.render import render_record
    from ecg_core.reports.synth_render import RenderOptions

    bw = paper == "black & white"
    options = RenderOptions(grid="pink" if bw else paper, black_and_white=bw, artifacts=artifacts)
    with tempfile.TemporaryDirectory() as d:
        if _files:
            for fname, content in _files:
                (Path(d) / Path(fname).name).write_bytes(content)
            record = str(Path(d) / Path(record).name)
        signals, fs = read_12lead(record)
    image, sidecar, _ = render_record(signals, fs, options)
    return image, sidecar
