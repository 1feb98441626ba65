"""The Arrhythmia page's logic: a record in, per-beat predictions and Grad-CAM in time and frequency out.

Pipeline (the same one the model was trained on, read back from the run's ``run.json``):

1. a record: a synthetic demo record (:func:`ecg_core.signals.demo.ensure_demo_records`), a record of
   ``<shared data>/signals/*`` or an upload (WFDB ``.hea`` + ``.dat`` [+ ``.atr``], or a CSV file) —
   :mod:`ecg_core.signals.sources` (``demo_sources``, ``shared_sources``, ``save_upload``, ``load_record``);
2. segments: beat windows around annotated (or detected) R peaks plus the rhythm (VF) windows of annotated episodes,
   or sliding windows over the whole record — :func:`record_segments` with the run's
   :class:`~ecg_core.signals.segments.SegmentConfig`;
3. images: :func:`ecg_core.signals.spectral.segments_to_images` with the run's
   :class:`~ecg_core.signals.spectral.SpectralConfig`, then the run's
   :class:`~ecg_core.imaging.preprocess.PreprocessConfig` (for spectral runs: no crop, no CLAHE, no median,
   grayscale; the same code path as training) — :func:`model_inputs`;
4. class probabilities per segment — :func:`predict_segments` (a DataFrame, one row per segment);
5. Grad-CAM (Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
   Localization") on one spectral image, mapped back to seconds (columns, through ``SpectralImage.times``) and
   hertz (rows, through ``SpectralImage.freqs``) — :mod:`ecg_core.signals.spectral_cam`.

Times are in seconds, frequencies in hertz, amplitudes in mV. Relative times (``*_rel_s``) are seconds from the
segment's anchor (the R peak of a beat); record times are seconds from the start of the record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core import paths
from ecg_core.core.errors import ConfigError, ModelLoadError, SignalLoadError
from ecg_core.core.formatting import fmt_value_ci
from ecg_core.core.labels import ClassInfo, get_preset
from ecg_core.ml import registry
from ecg_core.signals.filters import clean, resample
from ecg_core.signals.records import WFDB_BEAT_SYMBOLS, Record
from ecg_core.signals.segments import (
    Segment,
    SegmentConfig,
    extract_segments,
    pick_lead,
    rhythm_episodes,
    segments_array,
)
from ecg_core.signals.spectral import SpectralConfig, SpectralStack, segments_to_images

PRESET = "arrhythmia-6"
#: Spectral settings used to *show* images when no model is chosen (the shipped model's settings).
DEFAULT_SPECTRAL = SpectralConfig(method="stft", size=(64, 64))


# --------------------------------------------------------------------------------------------------------------
# Record views
# --------------------------------------------------------------------------------------------------------------
def annotation_table(record: Record, *, seg_cfg: SegmentConfig | None = None) -> pd.DataFrame:
    """Beat annotations of ``record``: ``time_s``, ``sample`` (record rate), ``symbol`` and ``label`` (class key
    of the ``arrhythmia-6`` mapping in ``seg_cfg``, ``None`` for unmapped symbols such as ``F`` or ``/``)."""
    cfg = seg_cfg or SegmentConfig()
    ann = record.annotations
    sym2cls = cfg.symbol_to_class
    rows = [(int(s), str(sym)) for s, sym in zip(ann.sample, ann.symbol) if sym in WFDB_BEAT_SYMBOLS]
    df = pd.DataFrame(rows, columns=["sample", "symbol"]).astype({"sample": "int64"})
    df.insert(0, "time_s", df["sample"] / record.fs)
    df["label"] = [sym2cls.get(s) for s in df["symbol"]]
    return df


def strip_signal(
    record: Record, *, seg_cfg: SegmentConfig | None = None, cleaned: bool = True
) -> tuple[np.ndarray, np.ndarray, str]:
    """The lead the model reads (``seg_cfg.lead_preference``) at the record's rate: (times s (n,), mV (n,), lead
    name). ``cleaned`` applies the segment config's filter (as the model input does, but at the record's rate)."""
    cfg = seg_cfg or SegmentConfig()
    x, name = pick_lead(record, preference=cfg.lead_preference)
    x = np.asarray(x, dtype=np.float64)
    if cleaned and cfg.clean_method is not None and x.shape[0] >= 8:
        highcut = min(cfg.highcut, 0.45 * record.fs)
        lowcut = min(cfg.lowcut, highcut / 2)
        x = clean(x, record.fs, method=cfg.clean_method, lowcut=lowcut, highcut=highcut)
    return np.arange(x.shape[0]) / record.fs, x, name


def rhythm_table(record: Record) -> pd.DataFrame:
    """Rhythm episodes (``rhythm``, ``start_s``, ``end_s``) of ``record``
    (see :func:`ecg_core.signals.segments.rhythm_episodes`)."""
    return rhythm_episodes(record)[["rhythm", "start_s", "end_s"]]


# --------------------------------------------------------------------------------------------------------------
# Segments and images
# --------------------------------------------------------------------------------------------------------------
def _beats_and_episodes(record: Record, cfg: SegmentConfig) -> list[Segment]:
    """Every beat (annotated, or detected when the record has no beat annotations; unmapped symbols keep label
    ``None``) and the sliding windows of annotated rhythm episodes of ``cfg.rhythm_classes``."""
    return extract_segments(record, cfg=replace(cfg, include_unlabeled=True))


def _sliding_windows(record: Record, cfg: SegmentConfig) -> list[Segment]:
    """Windows every ``cfg.rhythm_stride_s`` over the whole record; a window lying inside an annotated rhythm
    episode of ``cfg.rhythm_classes`` carries that class, the others have no label (kind ``'window'``)."""
    lead, _ = pick_lead(record, preference=cfg.lead_preference)
    fs_t = cfg.fs_target
    x = resample(lead, record.fs, fs_t)
    if cfg.clean_method is not None:
        x = clean(x, fs_t, method=cfg.clean_method, lowcut=cfg.lowcut, highcut=cfg.highcut)
    x = x.astype(np.float32)
    pre, win = cfg.pre_samples, cfg.window_samples
    stride = max(1, int(round(cfg.rhythm_stride_s * fs_t)))
    eps = rhythm_episodes(record)
    rhy2cls = cfg.rhythm_to_class
    out = []
    for st in range(0, x.shape[0] - win + 1, stride):
        s = int(np.floor((st + pre) * record.fs / fs_t))
        t0, t1 = st / fs_t, (st + win) / fs_t
        label, symbol = None, ""
        for ep in eps.itertuples(index=False):
            key = rhy2cls.get(str(ep.rhythm).upper())
            if key is not None and ep.start_s <= t0 and t1 <= ep.end_s:
                label, symbol = key, f"({ep.rhythm}"
                break
        out.append(Segment(record.record_id, s, s / record.fs, label, symbol, "window", x[st : st + win], fs_t))
    return out


#: How a record is cut for prediction: mode name -> implementation. Also the source of the error message.
SEGMENT_MODES: dict[str, Callable[[Record, SegmentConfig], list[Segment]]] = {
    "beats": _beats_and_episodes,
    "windows": _sliding_windows,
}


def record_segments(record: Record, seg_cfg: SegmentConfig | None = None, *, mode: str = "beats") -> list[Segment]:
    """Cut ``record`` for prediction, sorted by time.

    ``mode='beats'``: one window per beat (annotated R peaks; R peaks detected by neurokit2 when the record has no
    beat annotations) — beats whose symbol maps to no class keep ``label=None`` but are still predicted — plus the
    sliding windows of annotated VF episodes. ``mode='windows'``: sliding windows every ``rhythm_stride_s`` over the
    whole record (finds VF in an unannotated recording). Raises :class:`ConfigError` for an unknown mode and
    :class:`SignalLoadError` when the record yields no window (too short, or no beat found).
    """
    if mode not in SEGMENT_MODES:
        raise ConfigError(f"record_segments: mode={mode!r}; expected one of {', '.join(map(repr, SEGMENT_MODES))}.")
    cfg = seg_cfg or SegmentConfig()
    segs = SEGMENT_MODES[mode](record, cfg)
    if not segs:
        raise SignalLoadError(
            f"record {record.record_id!r} ({record.duration_s:.1f} s at {record.fs:g} Hz) gave no segment of "
            f"{cfg.pre_s + cfg.post_s:.2f} s with mode={mode!r}; expected a longer recording with visible QRS "
            "complexes, or try mode='windows'."
        )
    return sorted(segs, key=lambda g: (g.sample, g.kind))


def segment_table(segments: Sequence[Segment], *, pre_s: float, post_s: float) -> pd.DataFrame:
    """One row per segment: ``record``, ``sample``, ``time_s`` (anchor), ``start_s``, ``end_s``, ``label``,
    ``symbol``, ``kind``."""
    df = pd.DataFrame(
        [(g.record, g.sample, g.time_s, g.label, g.symbol, g.kind) for g in segments],
        columns=["record", "sample", "time_s", "label", "symbol", "kind"],
    )
    df.insert(3, "start_s", df["time_s"] - pre_s)
    df.insert(4, "end_s", df["time_s"] + post_s)
    return df


def spectral_images(segments: Sequence[Segment], spec_cfg: SpectralConfig | None = None) -> SpectralStack:
    """Render ``segments`` (all at one rate) as spectral images: a :class:`~ecg_core.signals.spectral.SpectralStack`."""
    if not segments:
        raise ConfigError("spectral_images: no segments; expected at least one.")
    return segments_to_images(segments_array(list(segments)), segments[0].fs, cfg=spec_cfg or DEFAULT_SPECTRAL)


def model_inputs(images: np.ndarray, preprocess_cfg: Any) -> np.ndarray:
    """uint8 images (n, h, w) or (n, h, w, 3) -> float32 model input (n, height, width, channels) in [0, 1], through
    :func:`ecg_core.imaging.preprocess.preprocess` exactly as the training job fed the PNG files."""
    from ecg_core.imaging.preprocess import preprocess

    imgs = np.asarray(images)
    if imgs.ndim not in (3, 4) or imgs.dtype != np.uint8:
        raise ConfigError(f"model_inputs: expected uint8 (n, h, w[, 3]) images, received {imgs.dtype} {imgs.shape}.")
    if len(imgs) == 0:
        return np.zeros((0, *preprocess_cfg.input_shape), dtype=np.float32)
    return np.stack([preprocess(im, preprocess_cfg, keep_steps=False).final for im in imgs]).astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ArrhythmiaModel:
    """A loaded ``arrhythmia-6`` run: the Keras ``model``, its configs and class order (``class_keys`` are the
    preset keys N, L, R, A, V, VF in model-output order)."""

    run_id: str
    path: Path
    model: Any
    class_names: tuple[str, ...]
    class_keys: tuple[str, ...]
    seg_cfg: SegmentConfig
    spec_cfg: SpectralConfig
    preprocess: Any
    meta: dict[str, Any]

    @property
    def is_gbm(self) -> bool:
        """A gradient-boosting run (:mod:`ecg_core.signals.arrhythmia_gbm`): features of the whole record, no
        Grad-CAM; :func:`predict_segments` then needs the record."""
        return bool(self.meta.get("model_kind") == "lightgbm_beat_vf")


def is_arrhythmia_run(run: registry.RunInfo) -> bool:
    """True for a usable run of preset ``arrhythmia-6`` trained on a spectral set (``run.json`` has ``spectral``)."""
    return run.usable and run.meta.get("preset") == PRESET and isinstance(run.meta.get("spectral"), dict)


DEFAULT_ARRHYTHMIA_RUN = "arrhythmia6-lightgbm-ds1"  # chosen by leave-one-record-out CV (scripts/arrhythmia_cv.py)


def arrhythmia_runs(models_dir: str | Path | None = None, *,
                    preferred: str = DEFAULT_ARRHYTHMIA_RUN) -> list[registry.RunInfo]:
    """Usable ``arrhythmia-6`` spectral runs in ``models_dir`` (default :func:`ecg_core.core.paths.models_dir`): the
    ``preferred`` run (the shipped default) first when usable, then the others newest first."""
    runs = [r for r in registry.list_runs(models_dir or paths.models_dir()) if is_arrhythmia_run(r)]
    return sorted(runs, key=lambda r: r.run_id != preferred)  # stable: the rest stay newest first


def spectral_configs_of(run: registry.RunInfo) -> tuple[SegmentConfig, SpectralConfig]:
    """The segment and spectral configs a run was trained with (``run.json`` -> ``spectral``)."""
    spec = run.meta.get("spectral")
    if not isinstance(spec, dict) or "segment_config" not in spec or "spectral_config" not in spec:
        raise ModelLoadError(
            f"run {run.run_id!r} has no spectral config in run.json; expected a model trained on a folder written "
            "by build_spectral_dataset (python -m ecg_core spectral-build), whose spectral_config.json the "
            "training job copies into the run."
        )
    try:
        return SegmentConfig.from_dict(spec["segment_config"]), SpectralConfig.from_dict(spec["spectral_config"])
    except ConfigError as e:
        raise ModelLoadError(f"run {run.run_id!r}: its spectral config cannot be used ({e})") from e


def load_arrhythmia_model(run: registry.RunInfo | str | Path) -> ArrhythmiaModel:
    """Load a run for the Arrhythmia page; raises :class:`ModelLoadError` when it is not a usable ``arrhythmia-6``
    spectral run or its model does not match ``run.json``."""
    info = run if isinstance(run, registry.RunInfo) else registry.read_run(run)
    if info.meta.get("preset") != PRESET:
        raise ModelLoadError(
            f"run {info.run_id!r} uses preset {info.meta.get('preset')!r}; the Arrhythmia page needs a model of "
            f"preset {PRESET!r}."
        )
    seg_cfg, spec_cfg = spectral_configs_of(info)
    pre = registry.preprocess_config_of(info)
    if pre.channels != spec_cfg.channels:
        raise ModelLoadError(
            f"run {info.run_id!r}: the model reads {pre.channels}-channel images but its spectral images have "
            f"{spec_cfg.channels}; retrain with --channels {spec_cfg.channels}."
        )
    if info.meta.get("model_kind") == "lightgbm_beat_vf":  # LightGBM text boosters, checked against run.json
        from ecg_core.signals.arrhythmia_gbm import GbmArrhythmiaModel

        model = GbmArrhythmiaModel.load(info)
    else:
        model = registry.load_model(info)
    preset = get_preset(PRESET)
    keys = tuple(preset.info(name).key for name in info.class_names) if info.class_names else tuple(preset.keys)
    return ArrhythmiaModel(info.run_id, info.path, model, tuple(info.class_names or preset.class_names), keys,
                           seg_cfg, spec_cfg, pre, dict(info.meta))


def predict_segments(
    bundle: ArrhythmiaModel, segments: Sequence[Segment], *, stack: SpectralStack | None = None,
    batch_size: int = 256, record: Record | None = None,
) -> pd.DataFrame:
    """Class probabilities for every segment, one row each (in ``segments`` order).

    Columns: those of :func:`segment_table`, then ``pred`` (class key), ``pred_name``, ``confidence`` (top
    probability), ``agree`` (prediction equals the annotated class; ``NaN`` without a mapped annotation) and one
    ``p_<key>`` column per class. ``stack`` reuses already rendered images (from :func:`spectral_images` with the
    run's spectral config). A gradient-boosting bundle (``bundle.is_gbm``) reads features of the whole ``record``
    the segments were cut from (RR context, per-record normalisation) instead of images.
    """
    cfg = bundle.seg_cfg
    table = segment_table(segments, pre_s=cfg.pre_s, post_s=cfg.post_s)
    keys = list(bundle.class_keys)
    if not segments:
        return table.assign(pred=[], pred_name=[], confidence=[], agree=[], **{f"p_{k}": [] for k in keys})
    if bundle.is_gbm:
        if record is None:
            raise ConfigError("predict_segments: a gradient-boosting model needs the record (record=...).")
        from ecg_core.signals.arrhythmia_gbm import predict_record_rows

        probs = predict_record_rows(bundle.model, record, table["time_s"].to_numpy(dtype=np.float64),
                                    table["kind"].astype(str).to_numpy())
    else:
        stack = stack if stack is not None else spectral_images(segments, bundle.spec_cfg)
        x = model_inputs(stack.images, bundle.preprocess)
        probs = np.asarray(bundle.model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    top = probs.argmax(axis=1)
    table["pred"] = [keys[i] for i in top]
    table["pred_name"] = [bundle.class_names[i] for i in top]
    table["confidence"] = probs.max(axis=1)
    table["agree"] = [float(p == lab) if isinstance(lab, str) else np.nan
                      for p, lab in zip(table["pred"], table["label"])]
    for j, k in enumerate(keys):
        table[f"p_{k}"] = probs[:, j]
    return table


#: Classes whose beat score a gradient-boosting run explains (VF comes from the window detector).
GBM_BEAT_CLASSES: tuple[str, ...] = ("N", "L", "R", "A", "V")


def gbm_contributions(bundle: ArrhythmiaModel, row: pd.Series, class_key: str, *, top: int = 12) -> pd.DataFrame:
    """Feature contributions of a gradient-boosting bundle for one input row (``feature``, ``value``,
    ``contribution``), see :func:`ecg_core.signals.arrhythmia_gbm.explain_row`."""
    from ecg_core.signals.arrhythmia_gbm import explain_row

    if not bundle.is_gbm:
        raise ConfigError("gbm_contributions: the model is not a gradient-boosting run; use Grad-CAM.")
    return explain_row(bundle.model, row, class_key, top=top)


def segment_filters(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Named subsets of a segment table (:func:`segment_table` or :func:`predict_segments`) for the beat selector:
    ``'all segments'``, ``'annotated <key>'`` per class, and with predictions ``'predicted <key>'`` and
    ``'model disagrees with the annotation'``. Values are row positions (int arrays); empty subsets are left out."""
    pos = np.arange(len(table))
    out: dict[str, np.ndarray] = {"all segments": pos}
    for k in sorted(table["label"].dropna().unique()):
        out[f"annotated {k}"] = pos[(table["label"] == k).to_numpy()]
    if "pred" in table:
        for k in sorted(table["pred"].unique()):
            out[f"predicted {k}"] = pos[(table["pred"] == k).to_numpy()]
        out["model disagrees with the annotation"] = pos[(table["agree"] == 0.0).to_numpy()]
    return {name: idx for name, idx in out.items() if len(idx)}


def agreement_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Annotated class (rows, ``'unmapped'`` for beats without a class) x predicted class (columns): counts."""
    if predictions.empty:
        return pd.DataFrame()
    truth = predictions["label"].fillna("unmapped").astype(str)
    return pd.crosstab(truth.rename("annotated"), predictions["pred"].rename("predicted"))


# --------------------------------------------------------------------------------------------------------------
# Teaching text and model facts
# --------------------------------------------------------------------------------------------------------------
def class_infos() -> tuple[ClassInfo, ...]:
    """The six ``arrhythmia-6`` classes with their description and what to look for."""
    return get_preset(PRESET).classes


def class_info(key: str) -> ClassInfo:
    """The :class:`~ecg_core.core.labels.ClassInfo` of a class key (``'N'``, ``'V'``, ...), name or short name."""
    return get_preset(PRESET).info(key)


def run_facts(meta: dict[str, Any]) -> dict[str, Any]:
    """What the page shows about a run: architecture, test and k-fold metrics (leave-one-record-out too when the run
    has it), training records, image settings."""
    spec = meta.get("spectral") or {}
    cfg = spec.get("spectral_config") or {}
    m = meta.get("metrics") or {}
    kf = meta.get("kfold") or {}
    facts = {
        "run": meta.get("run_id", ""),
        "architecture": meta.get("arch", ""),
        "image": f"{cfg.get('method', '?')} {'x'.join(map(str, cfg.get('size', [])))}",
        "records": ", ".join(map(str, spec.get("records", []))),
        "test macro-F1": fmt_value_ci(m.get("macro_f1"), m.get("macro_f1_ci")),
        "test accuracy": fmt_value_ci(m.get("accuracy"), m.get("accuracy_ci")),
        "k-fold macro-F1": fmt_value_ci(kf.get("macro_f1"), kf.get("macro_f1_ci")),
    }
    lo = meta.get("loro")
    if isinstance(lo, dict):  # a run judged by leave-one-record-out CV as well
        facts["leave-one-record-out macro-F1"] = fmt_value_ci(lo.get("macro_f1"), lo.get("macro_f1_ci"))
    return facts


#: PhysioNet databases the spectral sets are built from, by record id, for runs whose ``run.json`` predates
#: ``spectral.record_fs``: (name, id pattern, sampling rate Hz). MIT-BIH Arrhythmia: 100-124 and 200-234 at 360 Hz;
#: MIT-BIH Malignant Ventricular Ectopy (VFDB): 418-615 at 250 Hz; CU Ventricular Tachyarrhythmia: cu01-cu35 at 250 Hz.
KNOWN_DATABASES: tuple[tuple[str, str, float], ...] = (
    ("MIT-BIH Arrhythmia", r"1[0-2]\d|2[0-3]\d", 360.0),
    ("MIT-BIH Malignant Ventricular Ectopy", r"4[1-9]\d|[56]\d\d", 250.0),
    ("CU Ventricular Tachyarrhythmia", r"cu\d\d", 250.0),
)
#: Lead names of a standard 12-lead ECG (lower case).
TWELVE_LEADS = frozenset({"i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"})


@dataclass(frozen=True)
class TrainingSignals:
    """What a spectral run was trained on: ``rates`` sampling rate (Hz) -> number of training records,
    ``databases`` their names, ``leads`` the lead preference of its segment config, ``n_records`` all records."""

    rates: dict[float, int]
    databases: tuple[str, ...]
    leads: tuple[str, ...]
    n_records: int

    @property
    def description(self) -> str:
        rates = " and ".join(f"{r:g} Hz" for r in sorted(self.rates, reverse=True))
        dbs = f" ({', '.join(self.databases)})" if self.databases else ""
        return f"{self.n_records} two-lead Holter records at {rates}{dbs}" if rates else f"{self.n_records} records"


def training_signals(meta: dict[str, Any]) -> TrainingSignals:
    """The records a spectral run was trained on, from ``run.json`` -> ``spectral``: their rates come from
    ``record_fs`` (written by newer builds), else from :data:`KNOWN_DATABASES` by record id (unknown ids count
    for no rate)."""
    import re

    spec = meta.get("spectral") or {}
    records = [str(r) for r in spec.get("records") or []]
    stored = spec.get("record_fs") if isinstance(spec.get("record_fs"), dict) else {}
    rates: dict[float, int] = {}
    dbs: list[str] = []
    for rid in records:
        fs = stored.get(rid)
        for name, pattern, rate in KNOWN_DATABASES:
            if re.fullmatch(pattern, rid, flags=re.IGNORECASE):
                fs = fs if fs is not None else rate
                if name not in dbs:
                    dbs.append(name)
                break
        if isinstance(fs, (int, float)) and fs > 0:
            rates[float(fs)] = rates.get(float(fs), 0) + 1
    leads = tuple((spec.get("segment_config") or {}).get("lead_preference") or SegmentConfig().lead_preference)
    return TrainingSignals(rates, tuple(dbs), leads, len(records))


def lead_options(record: Record, preference: Sequence[str] = ("MLII", "II", "V1")) -> tuple[list[str], int]:
    """The record's lead names and the index of the default one: the first of ``preference`` the record has
    (MLII, then II, then V1), else the first lead."""
    names = list(record.channel_names) or ["ch0"]
    lowered = [n.lower() for n in names]
    for want in preference:
        if want.lower() in lowered:
            return names, lowered.index(want.lower())
    return names, 0


def with_lead(seg_cfg: SegmentConfig, lead: str | None) -> SegmentConfig:
    """``seg_cfg`` reading ``lead`` first (the user's choice); unchanged for ``None``."""
    if not lead:
        return seg_cfg
    return replace(seg_cfg, lead_preference=(lead, *[x for x in seg_cfg.lead_preference if x != lead]))


def record_warnings(record: Record, meta: dict[str, Any], *, lead: str | None = None,
                    rate_tolerance: float = 0.02) -> list[str]:
    """Why this model's output on ``record`` deserves less trust, in plain sentences (empty when the record is
    like the training data): a sampling rate unlike every training record's (beyond ``rate_tolerance``), a
    12-lead recording (the model saw two-lead Holter records), a ``lead`` other than the one it was trained on."""
    train = training_signals(meta)
    out: list[str] = []
    if train.rates and not any(abs(record.fs - r) <= rate_tolerance * r for r in train.rates):
        out.append(f"This record is sampled at {record.fs:g} Hz; the model was trained on {train.description}. "
                   "The record is resampled to the model's rate, but a different rate (and the device behind it) "
                   "changes the beat shapes the model learned: read its classes with caution.")
    lowered = {n.lower() for n in record.channel_names}
    twelve = lowered & TWELVE_LEADS
    if len(twelve) >= 6 or record.n_channels >= 8:
        out.append(f"This is a {record.n_channels}-lead recording (leads {', '.join(record.channel_names[:12])}); "
                   f"the model was trained on {train.description or 'two-lead Holter records'}, not on standard "
                   "12-lead ECGs (short resting recordings from other devices and patients): its beat classes are "
                   "not validated on such a record.")
    if lead is not None and train.leads:
        wanted = [x.lower() for x in train.leads]
        if lead.lower() not in wanted and lowered & set(wanted):
            out.append(f"Lead {lead} is shown; the model was trained on lead {train.leads[0]}. Beat shapes differ "
                       f"between leads, so its classes are only meaningful on {train.leads[0]}.")
    return out


def segment_heading(symbol: Any, label: Any) -> str:
    """How the page names a segment's annotation: ``'annotated V (V)'``, ``'annotated F (no class of this model)'``
    or ``'no annotation'`` (a detected beat, or a window outside every annotated episode)."""
    sym = symbol if isinstance(symbol, str) else ""
    lab = label if isinstance(label, str) else None
    if sym in ("", "?") and lab is None:
        return "no annotation"
    if lab is None:
        return f"annotated {sym} (no class of this model)"
    if sym.startswith("("):  # a rhythm episode, e.g. "(VF"
        return f"annotated {sym[1:]} episode ({lab})"
    return f"annotated {sym or lab} ({lab})"


def record_splits(run_path: str | Path) -> dict[str, str]:
    """Record id -> split (``'train'``, ``'val'``, ``'test'``) of a spectral run, from its ``split.csv`` (image names
    are ``<class>/<record>_<sample>.png``); empty when the run has none. A record a model was trained on gives
    optimistic predictions — the page says so."""
    try:
        split = pd.read_csv(Path(run_path) / "split.csv", usecols=["rel_path", "split"])
    except (OSError, ValueError):
        return {}
    recs = split["rel_path"].astype(str).str.replace("\\", "/", regex=False).str.rsplit("/", n=1).str[-1]
    split = split.assign(record=recs.str.rsplit("_", n=1).str[0])
    return {str(r): str(s) for r, s in split.groupby("record")["split"].first().items()}


def record_confusion(run_path: str | Path) -> pd.DataFrame:
    """Held-out per-record confusion of a run that stores its cross-validation (``run.json`` ``cv_file``, written
    by ``scripts/arrhythmia_cv.py`` / ``arrhythmia_cnn.py``): one row per (record, annotated class) with the
    predicted counts per class; empty when the run has none. ``attrs['protocol']``: the CV file's protocol."""
    import json

    path = Path(run_path)
    try:
        meta = json.loads((path / "run.json").read_text())
        name = str(meta.get("cv_file") or "")
        if not name or "/" in name:
            return pd.DataFrame()
        cv = json.loads((path / name).read_text())
        chosen = str(meta.get("gbm", {}).get("cv_candidate") or next(iter(cv["candidates"])))
        per = cv["candidates"][chosen]["per_record_confusion"]
    except (OSError, ValueError, KeyError, StopIteration, AttributeError):
        return pd.DataFrame()
    keys = list(get_preset(PRESET).keys)
    rows = []
    for rid, conf in sorted(per.items()):
        trues = sorted({t for col in conf.values() for t in col}, key=lambda k: keys.index(k) if k in keys else 99)
        for t in trues:
            rows.append({"record": rid, "annotated": t, **{k: int(conf.get(k, {}).get(t, 0)) for k in keys}})
    out = pd.DataFrame(rows)
    out.attrs["protocol"] = str(cv.get("protocol") or "cross-validation")
    return out


def read_model_card(path: str | Path) -> str:
    """The run's ``MODEL_CARD.md``, or ``''`` when it has none."""
    try:
        return (Path(path) / "MODEL_CARD.md").read_text(encoding="utf-8")
    except OSError:
        return ""


__all__ = [
    "DEFAULT_SPECTRAL",
    "GBM_BEAT_CLASSES",
    "KNOWN_DATABASES",
    "PRESET",
    "SEGMENT_MODES",
    "ArrhythmiaModel",
    "TrainingSignals",
    "agreement_table",
    "annotation_table",
    "arrhythmia_runs",
    "class_info",
    "class_infos",
    "gbm_contributions",
    "is_arrhythmia_run",
    "lead_options",
    "load_arrhythmia_model",
    "model_inputs",
    "predict_segments",
    "read_model_card",
    "record_confusion",
    "record_segments",
    "record_splits",
    "record_warnings",
    "rhythm_table",
    "run_facts",
    "segment_filters",
    "segment_heading",
    "segment_table",
    "spectral_configs_of",
    "spectral_images",
    "strip_signal",
    "training_signals",
    "with_lead",
]
