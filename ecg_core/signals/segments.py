"""Beats and rhythm windows cut from a record.

:func:`extract_segments` cuts fixed windows around beats and sliding windows inside rhythm episodes, labelled with the
``arrhythmia-6`` preset (N, L, R, A, V, VF) according to a :class:`SegmentConfig`; :func:`rhythm_episodes` lists the
annotated rhythm episodes of a record (see :mod:`ecg_core.signals.records` for the units).

Beat-symbol mapping (MIT-BIH symbols -> ``arrhythmia-6`` keys), the default of :class:`SegmentConfig`:

====  ==============  ====================================================================================
key   symbols         why
====  ==============  ====================================================================================
N     ``N``           plain normal beats only. The escape beats ``e`` / ``j`` (which AAMI counts as N) are
                      left out: they are late beats after pauses, not "a sinus beat through the normal
                      pathway", and there are only 32 of them in DS1.
L     ``L``           left bundle branch block beats.
R     ``R``           right bundle branch block beats.
A     ``A a J S``     supraventricular premature beats as AAMI's SVEB class: atrial premature (A), aberrated
                      atrial premature (a), nodal premature (J), supraventricular premature (S).
V     ``V E``         ventricular ectopic beats as AAMI's VEB class: premature ventricular contraction (V)
                      and ventricular escape (E).
====  ==============  ====================================================================================

Not used: fusion ``F``, paced ``/ f``, unclassifiable ``Q``, escape ``e j``, ventricular flutter waves ``!``
(those lie inside VF/VFL episodes, which give VF windows instead) and every non-beat annotation.

VF windows: sliding windows inside rhythm episodes whose annotation (symbol ``+``, aux note such as ``'(VF'``,
``'(VFL'``, ``'(VFIB'``; trailing NULs stripped) names ventricular fibrillation or flutter. An episode runs from its
rhythm annotation to the next rhythm annotation (or the end of the record).

Every window, beat or rhythm, is ``[anchor - pre_s, anchor + post_s)``: for beats the anchor is the annotated (or
detected) R peak, for rhythm windows it is ``window start + pre_s``. So the start time of any segment is
``time_s - pre_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ecg_core.core.config import FrozenConfig
from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import get_preset
from ecg_core.signals.filters import CLEAN_METHODS, clean, detect_rpeaks, resample, resample_index
from ecg_core.signals.records import WFDB_BEAT_SYMBOLS, Record, _check_positive

#: Default mapping of ``arrhythmia-6`` class keys to MIT-BIH beat symbols (see the module docstring).
DEFAULT_BEAT_SYMBOLS: tuple[tuple[str, str], ...] = (
    ("N", "N"),
    ("L", "L"),
    ("R", "R"),
    ("A", "AaJS"),
    ("V", "VE"),
)
#: Default mapping of class keys to rhythm names (aux notes without the leading ``(``) that give sliding windows.
DEFAULT_RHYTHM_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (("VF", ("VF", "VFL", "VFIB")),)
#: Channel names preferred, in order, when a record has several; otherwise channel 0 is used.
DEFAULT_LEAD_PREFERENCE: tuple[str, ...] = ("MLII", "II")


# --------------------------------------------------------------------------------------------------------------
# Rhythm episodes
# --------------------------------------------------------------------------------------------------------------
def rhythm_episodes(record: Record) -> pd.DataFrame:
    """Rhythm episodes from rhythm annotations (aux notes starting with ``'('``).

    Columns: ``rhythm`` (aux note without ``'('``, e.g. ``'VFL'``), ``start`` / ``end`` (sample indices at the
    record's rate, end exclusive), ``start_s`` / ``end_s`` (s). An episode ends at the next rhythm annotation or at
    the end of the record.
    """
    ann = record.annotations
    idx = [i for i, a in enumerate(ann.aux) if a.startswith("(")]
    rows = []
    for k, i in enumerate(idx):
        start = int(ann.sample[i])
        end = int(ann.sample[idx[k + 1]]) if k + 1 < len(idx) else record.n_samples
        if end > start:
            rows.append((ann.aux[i][1:].strip(), start, end))
    df = pd.DataFrame(rows, columns=["rhythm", "start", "end"]).astype({"start": "int64", "end": "int64"})
    df["start_s"] = df["start"] / record.fs
    df["end_s"] = df["end"] / record.fs
    return df


# --------------------------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentConfig(FrozenConfig):
    """How beats and rhythm windows are cut from a record.

    fs_target: common sampling rate of the segments, Hz (records are resampled to it before cleaning).
    pre_s / post_s: window before / after the anchor (R peak), s; the window is ``window_samples`` long.
    rhythm_stride_s: stride of the sliding windows inside rhythm episodes (VF), s.
    lead_preference: channel names tried in order; channel 0 when none matches.
    clean_method: a :data:`CLEAN_METHODS` key, or ``None`` to keep the raw signal; band ``lowcut``-``highcut`` Hz.
    peaks: ``'auto'`` (annotated beats when the record has any, otherwise R peaks detected by neurokit2 — only
        when ``include_unlabeled``), ``'annotations'`` (annotated beats only), ``'detect'`` (always detect; a
        detected peak within ``match_tolerance_s`` of an annotated beat takes its label).
    include_unlabeled: keep beats whose symbol maps to no class (label ``None``), e.g. detected beats of an
        unannotated recording to classify.
    beat_symbols: (class key, MIT-BIH symbols) pairs; rhythm_classes: (class key, rhythm names) pairs.
    preset: label preset whose class keys the mappings use.

    ``to_dict`` / ``from_dict`` / ``config_hash`` (sha1 of the sorted JSON, the identity of caches and datasets)
    come from :class:`~ecg_core.core.config.FrozenConfig`.
    """

    fs_target: float = 250.0
    pre_s: float = 0.25
    post_s: float = 0.45
    rhythm_stride_s: float = 0.35
    lead_preference: tuple[str, ...] = DEFAULT_LEAD_PREFERENCE
    clean_method: str | None = "bandpass"
    lowcut: float = 0.5
    highcut: float = 40.0
    peaks: Literal["auto", "annotations", "detect"] = "auto"
    include_unlabeled: bool = False
    match_tolerance_s: float = 0.075
    beat_symbols: tuple[tuple[str, str], ...] = DEFAULT_BEAT_SYMBOLS
    rhythm_classes: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_RHYTHM_CLASSES
    preset: str = "arrhythmia-6"

    def __post_init__(self) -> None:
        # normalise list inputs (e.g. from JSON) to tuples so the dataclass stays hashable
        object.__setattr__(self, "lead_preference", tuple(str(s) for s in self.lead_preference))
        object.__setattr__(self, "beat_symbols", tuple((str(k), str(s)) for k, s in self.beat_symbols))
        object.__setattr__(
            self, "rhythm_classes", tuple((str(k), tuple(str(r) for r in rs)) for k, rs in self.rhythm_classes)
        )
        _check_positive("SegmentConfig.fs_target", self.fs_target)
        if not 0 <= self.pre_s <= 5 or not 0 < self.post_s <= 5:
            raise ConfigError(
                f"SegmentConfig: expected 0 <= pre_s <= 5 and 0 < post_s <= 5 seconds, received pre_s={self.pre_s}, "
                f"post_s={self.post_s}."
            )
        if self.window_samples < 16:
            raise ConfigError(
                f"SegmentConfig: the window is {self.window_samples} samples at fs_target={self.fs_target} Hz; "
                "expected at least 16. Increase pre_s/post_s or fs_target."
            )
        _check_positive("SegmentConfig.rhythm_stride_s", self.rhythm_stride_s)
        _check_positive("SegmentConfig.match_tolerance_s", self.match_tolerance_s)
        if self.clean_method is not None and self.clean_method not in CLEAN_METHODS:
            raise ConfigError(
                f"SegmentConfig.clean_method={self.clean_method!r}; expected None or one of "
                f"{', '.join(map(repr, CLEAN_METHODS))}."
            )
        if not 0 < self.lowcut < self.highcut:
            raise ConfigError(
                f"SegmentConfig: expected 0 < lowcut < highcut, received lowcut={self.lowcut}, highcut={self.highcut}."
            )
        if self.clean_method == "bandpass" and self.highcut >= self.fs_target / 2:
            raise ConfigError(
                f"SegmentConfig.highcut={self.highcut} Hz must be below fs_target/2={self.fs_target / 2:g} Hz."
            )
        if self.peaks not in ("auto", "annotations", "detect"):
            raise ConfigError(
                f"SegmentConfig.peaks={self.peaks!r}; expected 'auto', 'annotations' or 'detect'."
            )
        keys = set(get_preset(self.preset).keys)
        seen: dict[str, str] = {}
        for key, symbols in self.beat_symbols:
            if key not in keys:
                raise ConfigError(
                    f"SegmentConfig.beat_symbols: class key {key!r} is not in preset {self.preset!r}; "
                    f"expected one of {', '.join(sorted(keys))}."
                )
            for s in symbols:
                if s in seen and seen[s] != key:
                    raise ConfigError(
                        f"SegmentConfig.beat_symbols: symbol {s!r} is mapped to both {seen[s]!r} and {key!r}; "
                        "map each symbol to one class."
                    )
                seen[s] = key
        for key, rhythms in self.rhythm_classes:
            if key not in keys or not rhythms:
                raise ConfigError(
                    f"SegmentConfig.rhythm_classes: ({key!r}, {rhythms!r}); expected a class key of preset "
                    f"{self.preset!r} and at least one rhythm name such as 'VF'."
                )

    @property
    def pre_samples(self) -> int:
        """Samples before the anchor at ``fs_target`` (``pre_s * fs_target`` rounded half up)."""
        return int(np.floor(self.pre_s * self.fs_target + 0.5))

    @property
    def window_samples(self) -> int:
        """Segment length in samples at ``fs_target``: ``(pre_s + post_s) * fs_target`` rounded half up."""
        return int(np.floor((self.pre_s + self.post_s) * self.fs_target + 0.5))

    @property
    def symbol_to_class(self) -> dict[str, str]:
        return {s: key for key, symbols in self.beat_symbols for s in symbols}

    @property
    def rhythm_to_class(self) -> dict[str, str]:
        return {r.upper(): key for key, rhythms in self.rhythm_classes for r in rhythms}


@dataclass(frozen=True, eq=False)
class Segment:
    """One window of one lead.

    ``x``: float32 (window_samples,) in mV at ``fs`` Hz; ``sample``: anchor index at the *record's* rate;
    ``time_s``: anchor time in the record, s (window start = ``time_s - pre_s``); ``label``: class key or ``None``;
    ``symbol``: MIT-BIH beat symbol, the rhythm aux note (``'(VF'``) or ``'?'`` for a detected, unmatched beat;
    ``kind``: ``'beat'`` or ``'rhythm'``.
    """

    record: str
    sample: int
    time_s: float
    label: str | None
    symbol: str
    kind: str
    x: np.ndarray
    fs: float


def pick_lead(record: Record, *, preference: tuple[str, ...] = DEFAULT_LEAD_PREFERENCE) -> tuple[np.ndarray, str]:
    """The first channel whose name is in ``preference`` (case-insensitive), else channel 0: (signal (n,), name)."""
    if record.signal.ndim == 1:
        return record.signal, (record.channel_names[0] if record.channel_names else "ch0")
    lowered = [n.lower() for n in record.channel_names]
    for name in preference:
        if name.lower() in lowered:
            j = lowered.index(name.lower())
            return record.signal[:, j], record.channel_names[j]
    return record.signal[:, 0], record.channel_names[0]


def prepared_lead(record: Record, cfg: SegmentConfig) -> np.ndarray:
    """The lead chosen by ``cfg.lead_preference``, resampled to ``cfg.fs_target`` and cleaned (``cfg.clean_method``)
    over the whole record, as float32: what every window is cut from."""
    lead, _ = pick_lead(record, preference=cfg.lead_preference)
    x = resample(lead, record.fs, cfg.fs_target)
    if cfg.clean_method is not None:
        x = clean(x, cfg.fs_target, method=cfg.clean_method, lowcut=cfg.lowcut, highcut=cfg.highcut)
    return x.astype(np.float32)


def extract_segments(record: Record, *, cfg: SegmentConfig | None = None) -> list[Segment]:
    """Cut labelled beat windows and rhythm (VF) windows from ``record``, sorted by time.

    The lead chosen by ``cfg.lead_preference`` is resampled to ``cfg.fs_target`` and cleaned (``cfg.clean_method``)
    over the whole record, then cut. Windows that do not fit inside the record are skipped. Beats come from the
    annotations or from neurokit2 detection (``cfg.peaks``); rhythm windows slide with ``cfg.rhythm_stride_s``
    inside every episode of a rhythm listed in ``cfg.rhythm_classes`` and never cross the episode's end.
    """
    cfg = cfg or SegmentConfig()
    fs_t = cfg.fs_target
    x = prepared_lead(record, cfg)
    n_t = x.shape[0]
    pre, win = cfg.pre_samples, cfg.window_samples
    ann = record.annotations
    sym2cls = cfg.symbol_to_class
    beat_idx = [i for i, s in enumerate(ann.symbol) if s in WFDB_BEAT_SYMBOLS]
    anchors: list[tuple[int, str | None, str, str]] = []  # (sample at record rate, label, symbol, kind)

    use_detect = cfg.peaks == "detect" or (cfg.peaks == "auto" and not beat_idx and cfg.include_unlabeled)
    if use_detect:
        peaks_t = detect_rpeaks(x.astype(np.float64), fs_t)
        peaks = resample_index(peaks_t, fs_t, record.fs)
        ann_s = ann.sample[beat_idx] if beat_idx else np.zeros(0, dtype=np.int64)
        tol = cfg.match_tolerance_s * record.fs
        for p in peaks:
            sym = "?"
            if ann_s.size:
                k = int(np.argmin(np.abs(ann_s - p)))
                if abs(int(ann_s[k]) - int(p)) <= tol:
                    sym = ann.symbol[beat_idx[k]]
            anchors.append((int(p), sym2cls.get(sym), sym, "beat"))
    else:
        for i in beat_idx:
            sym = ann.symbol[i]
            anchors.append((int(ann.sample[i]), sym2cls.get(sym), sym, "beat"))
    if not cfg.include_unlabeled:
        anchors = [a for a in anchors if a[1] is not None]

    out: list[Segment] = []
    for s, label, sym, kind in anchors:
        st = int(resample_index(s, record.fs, fs_t)) - pre
        if 0 <= st and st + win <= n_t:
            out.append(Segment(record.record_id, s, s / record.fs, label, sym, kind, x[st : st + win], fs_t))

    rhy2cls = cfg.rhythm_to_class
    stride = max(1, int(round(cfg.rhythm_stride_s * fs_t)))
    for ep in rhythm_episodes(record).itertuples(index=False):
        label = rhy2cls.get(str(ep.rhythm).upper())
        if label is None:
            continue
        a = int(np.ceil(ep.start * fs_t / record.fs))  # first target sample inside the episode
        b = min(int(np.floor(ep.end * fs_t / record.fs)), n_t)  # end (exclusive) of the episode at fs_t
        for st in range(a, b - win + 1, stride):
            s = int(np.floor((st + pre) * record.fs / fs_t))
            out.append(Segment(record.record_id, s, s / record.fs, label, f"({ep.rhythm}", "rhythm",
                               x[st : st + win], fs_t))
    out.sort(key=lambda g: (g.sample, g.kind))
    return out


def segments_frame(segments: list[Segment]) -> pd.DataFrame:
    """The metadata of ``segments`` as a DataFrame: record, sample, time_s, label, symbol, kind (no samples)."""
    cols = ["record", "sample", "time_s", "label", "symbol", "kind"]
    return pd.DataFrame([(g.record, g.sample, g.time_s, g.label, g.symbol, g.kind) for g in segments], columns=cols)


def segments_array(segments: list[Segment]) -> np.ndarray:
    """The samples of ``segments`` stacked as float32 (n, window_samples), mV."""
    if not segments:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([g.x for g in segments]).astype(np.float32, copy=False)



__all__ = [
    "DEFAULT_BEAT_SYMBOLS",
    "DEFAULT_LEAD_PREFERENCE",
    "DEFAULT_RHYTHM_CLASSES",
    "Segment",
    "SegmentConfig",
    "extract_segments",
    "pick_lead",
    "rhythm_episodes",
    "segments_array",
    "segments_frame",
]
