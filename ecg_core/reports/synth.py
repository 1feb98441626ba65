"""Synthetic 12-lead ECG signals and report images with ground truth (the embedded demo data).

The signal model is our own parametric one, written for control rather than taken from ``neurokit2.ecg_simulate``:
every beat is a sum of (asymmetric) Gaussian waves P, q, R, S, T plus a smooth ST-plateau term, in the spirit of
McSharry et al., "A dynamical model for generating synthetic electrocardiogram signals", IEEE TBME 50(3), 2003 —
but written directly as a function of time, per lead, so that each clinical feature (ST elevation in one territory,
a pathological Q wave, a wide premature beat) is one parameter that tests can measure back.

* Limb leads come from *frontal-plane vectors*: a wave with vector (magnitude m in mV, angle phi in degrees, 0 =
  leftward, +90 = downward) contributes ``m cos(phi)`` to lead I and ``m cos(phi - 60)`` to lead II. Only I and II
  (plus V1-V6) are synthesised, the other limb leads are derived so that Einthoven's and Goldberger's relations
  hold exactly, noise included: ``III = II - I``, ``aVR = -(I + II) / 2``, ``aVL = I - II / 2``,
  ``aVF = II - I / 2``. The QRS vector's angle is the electrical axis.
* Precordial leads V1-V6 get per-lead amplitudes (normal R-wave progression, septal r in V1, septal q in V5-V6).
* Classes of the ``cardiac-4`` preset (folder names = class keys):

  - ``normal``: sinus 60-100 bpm, PR 120-200 ms, QRS < 110 ms, T upright in I, II, V3-V6 and inverted in aVR.
  - ``myocardial_infarction`` (acute STEMI) in one territory (:data:`MI_TERRITORIES`): ST elevation
    >= 0.1 mV at J+60 ms in every lead of the territory, hyperacute T waves, reciprocal ST depression.
  - ``history_of_mi``: pathological Q waves (>= 40 ms or >= 25 % of R) in one territory, possibly T inversion,
    no ST elevation.
  - ``abnormal_heartbeat`` with a subtype (:data:`SUBTYPES`): atrial fibrillation (irregular RR, no P waves,
    fibrillatory f waves), premature ventricular contractions (early wide QRS, discordant T, full compensatory
    pause), marked sinus bradycardia (< 50 bpm) or tachycardia (> 110 bpm).

* Noise (``noise`` in [0, 1]): baseline wander (respiration + slow drift), power-line interference (50/60 Hz) and
  EMG (band-limited white noise with bursts). Units: time in seconds, sampling rate in Hz, amplitudes in mV.

Report images (ECG paper, 3x4 + rhythm strip) are drawn by :mod:`ecg_core.reports.synth_render`; this module adds the
convenience :func:`make_report` and the dataset writer :func:`generate_dataset` (folder per class + JSON sidecar per
image + ``synth_manifest.json``, written atomically).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecg_core.core.errors import ConfigError, DatasetError
from ecg_core.core.labels import LEADS, get_preset
from ecg_core.reports.synth_render import (
    COLUMN_S,
    GRID_STYLES,
    LAYOUT,
    RHYTHM_KEY,
    RenderOptions,
    encode_image,
    highlight_leads,
    lead_layout_table,
    render_report,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "SYNTH_VERSION",
    "CLASS_KEYS",
    "SUBTYPES",
    "SUBTYPE_INFO",
    "MI_TERRITORIES",
    "TERRITORY_INFO",
    "LAYOUT",
    "RHYTHM_KEY",
    "SynthSpec",
    "Signals12",
    "RenderOptions",
    "heart_rate_range",
    "random_spec",
    "resolve_spec",
    "synth_signals",
    "render_report",
    "make_report",
    "highlight_leads",
    "lead_layout_table",
    "generate_dataset",
    "image_seed",
]

SYNTH_VERSION = "1.0"
PRESET_NAME = "cardiac-4"

CLASS_KEYS: tuple[str, ...] = ("myocardial_infarction", "abnormal_heartbeat", "normal", "history_of_mi")
SUBTYPES: dict[str, tuple[str, ...]] = {
    "abnormal_heartbeat": ("atrial_fibrillation", "pvc", "bradycardia", "tachycardia"),
}
# Territories of infarction as used for synthesis (the anterior wall here includes the septal leads V1-V2, as in
# the STEMI criteria; labels.TERRITORIES keeps septal and anterior apart for attribution).
MI_TERRITORIES: dict[str, tuple[str, ...]] = {
    "inferior": ("II", "III", "aVF"),
    "anterior": ("V1", "V2", "V3", "V4"),
    "lateral": ("I", "aVL", "V5", "V6"),
}
_TERRITORY_CLASSES = ("myocardial_infarction", "history_of_mi")

# Short teaching notes for the Learn page (clinical text; candidates to move into labels.py).
SUBTYPE_INFO: dict[str, tuple[str, str]] = {
    "atrial_fibrillation": (
        "Atrial fibrillation",
        "Irregularly irregular R-R intervals, no P waves, a fine or coarse fibrillatory baseline (f waves, "
        "350-600/min) best seen in V1 and the inferior leads.",
    ),
    "pvc": (
        "Premature ventricular contractions",
        "Early, wide (>= 120 ms) and bizarre QRS complexes without a P wave, T wave opposite to the QRS, then a full "
        "compensatory pause (the R-R interval around the PVC is twice the sinus R-R).",
    ),
    "bradycardia": ("Marked sinus bradycardia", "Sinus rhythm (a P wave before every QRS) slower than 50 bpm: "
                    "more than 6 large squares between R waves."),
    "tachycardia": ("Sinus tachycardia", "Sinus rhythm faster than 110 bpm: fewer than ~2.7 large squares between "
                    "R waves; P waves may merge with the preceding T wave."),
}
TERRITORY_INFO: dict[str, str] = {
    "inferior": "II, III, aVF - inferior wall, usually the right coronary artery; reciprocal changes in I and aVL.",
    "anterior": "V1-V4 - anterior wall and septum, left anterior descending artery; reciprocal changes inferiorly.",
    "lateral": "I, aVL, V5, V6 - lateral wall, circumflex or diagonal branches; reciprocal changes in III and aVF.",
}

# Heart-rate limits (bpm) a spec may ask for, and the typical range random specs draw from.
_HR_LIMITS: dict[tuple[str, str | None], tuple[float, float]] = {
    ("normal", None): (60.0, 100.0),
    ("myocardial_infarction", None): (50.0, 110.0),
    ("history_of_mi", None): (50.0, 100.0),
    ("abnormal_heartbeat", "atrial_fibrillation"): (60.0, 160.0),
    ("abnormal_heartbeat", "pvc"): (50.0, 100.0),
    ("abnormal_heartbeat", "bradycardia"): (30.0, 49.0),
    ("abnormal_heartbeat", "tachycardia"): (111.0, 180.0),
}
_HR_TYPICAL: dict[tuple[str, str | None], tuple[float, float]] = {
    ("normal", None): (60.0, 100.0),
    ("myocardial_infarction", None): (55.0, 105.0),
    ("history_of_mi", None): (55.0, 95.0),
    ("abnormal_heartbeat", "atrial_fibrillation"): (75.0, 150.0),
    ("abnormal_heartbeat", "pvc"): (60.0, 95.0),
    ("abnormal_heartbeat", "bradycardia"): (35.0, 48.0),
    ("abnormal_heartbeat", "tachycardia"): (115.0, 160.0),
}

# Independent leads that are synthesised (rows of the (8, n) arrays): I, II, V1-V6; the other limb leads are derived.
_PREC = slice(2, 8)
_LEAD_INDEX: dict[str, int] = {name: i for i, name in enumerate(LEADS)}
_LIMB_ANGLE: dict[str, float] = {"I": 0.0, "II": 60.0, "III": 120.0, "aVF": 90.0, "aVL": -30.0, "aVR": -150.0}
_AUG_SCALE = math.sqrt(3.0) / 2.0  # augmented leads (as derived above) see a frontal vector scaled by sqrt(3)/2


# ----------------------------------------------------------------------------------------------------------------
# Specification
# ----------------------------------------------------------------------------------------------------------------


def _choices(values: Sequence[object]) -> str:
    return ", ".join(repr(v) for v in values)


def heart_rate_range(cls: str, subtype: str | None = None) -> tuple[float, float]:
    """Heart-rate limits in bpm that a :class:`SynthSpec` of this class (and subtype) accepts.

    For ``abnormal_heartbeat`` without a subtype the union of all subtypes is returned.
    """
    _check_class(cls)
    if cls == "abnormal_heartbeat":
        if subtype is None:
            ranges = [v for (c, _), v in _HR_LIMITS.items() if c == cls]
            return (min(r[0] for r in ranges), max(r[1] for r in ranges))
        _check_subtype(cls, subtype)
        return _HR_LIMITS[(cls, subtype)]
    return _HR_LIMITS[(cls, None)]


def _check_class(cls: object) -> None:
    if cls not in CLASS_KEYS:
        raise ConfigError(f"cls must be one of {_choices(CLASS_KEYS)} (cardiac-4 class keys); received {cls!r}")


def _check_subtype(cls: str, subtype: object) -> None:
    allowed = SUBTYPES.get(cls, ())
    if subtype is None:
        return
    if not allowed:
        raise ConfigError(f"subtype must be None for class {cls!r} (it has no subtypes); received {subtype!r}")
    if subtype not in allowed:
        raise ConfigError(f"subtype for class {cls!r} must be one of {_choices(allowed)} or None; received {subtype!r}")


@dataclass(frozen=True)
class SynthSpec:
    """What to synthesise: one 12-lead recording.

    ``cls`` is a cardiac-4 class key. ``subtype`` (abnormal_heartbeat only), ``territory`` (myocardial_infarction and
    history_of_mi only), ``heart_rate`` (bpm) and ``axis_deg`` (frontal QRS axis, degrees) are drawn from ``seed``
    when ``None`` (see :func:`resolve_spec`). ``severity`` in [0, 1] scales the pathology (ST elevation, Q depth,
    f-wave size, number of PVCs); ``noise`` in [0, 1] scales baseline wander, power-line and EMG noise (0 = clean).
    ``fs`` is the sampling rate in Hz, ``duration_s`` the length in seconds (reports need >= 10 s).
    """

    cls: str
    subtype: str | None = None
    territory: str | None = None
    heart_rate: float | None = None
    severity: float = 0.6
    noise: float = 0.3
    fs: float = 500.0
    duration_s: float = 10.0
    seed: int = 0
    axis_deg: float | None = None
    powerline_hz: float = 50.0

    def __post_init__(self) -> None:
        _check_class(self.cls)
        _check_subtype(self.cls, self.subtype)
        if self.territory is not None:
            if self.cls not in _TERRITORY_CLASSES:
                raise ConfigError(
                    f"territory must be None for class {self.cls!r} (only {_choices(_TERRITORY_CLASSES)} have one); "
                    f"received {self.territory!r}"
                )
            if self.territory not in MI_TERRITORIES:
                raise ConfigError(
                    f"territory must be one of {_choices(tuple(MI_TERRITORIES))} or None; received {self.territory!r}"
                )
        for name, lo, hi in (("severity", 0.0, 1.0), ("noise", 0.0, 1.0), ("fs", 200.0, 5000.0),
                             ("duration_s", 1.0, 120.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
                raise ConfigError(f"{name} must be a number in [{lo:g}, {hi:g}]; received {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer; received {self.seed!r}")
        if self.powerline_hz not in (50, 60):
            raise ConfigError(f"powerline_hz must be 50 or 60; received {self.powerline_hz!r}")
        if self.axis_deg is not None and not (
            isinstance(self.axis_deg, (int, float)) and -180.0 <= float(self.axis_deg) <= 180.0
        ):
            raise ConfigError(f"axis_deg must be None or a number in [-180, 180]; received {self.axis_deg!r}")
        if self.heart_rate is not None:
            hr = self.heart_rate
            if isinstance(hr, bool) or not isinstance(hr, (int, float)):
                raise ConfigError(f"heart_rate must be None or a number in bpm; received {hr!r}")
            lo, hi = heart_rate_range(self.cls, self.subtype)
            if not lo <= float(hr) <= hi:
                what = self.cls if self.subtype is None else f"{self.cls}/{self.subtype}"
                raise ConfigError(
                    f"heart_rate for {what} must be in [{lo:g}, {hi:g}] bpm; received {hr!r} "
                    f"(pick another class/subtype for that rate, or None to draw one from the seed)"
                )


def _rng(seed: int, stream: int) -> np.random.Generator:
    """Independent, reproducible random stream ``stream`` of ``seed``."""
    return np.random.default_rng([int(seed), 0x5EC6, int(stream)])


def resolve_spec(spec: SynthSpec) -> SynthSpec:
    """Return ``spec`` with subtype, territory, heart rate and axis drawn from its seed where they are ``None``."""
    rng = _rng(spec.seed, 1)
    subtype = spec.subtype
    if spec.cls in SUBTYPES and subtype is None:
        fits = [s for s in SUBTYPES[spec.cls] if spec.heart_rate is None
                or _HR_LIMITS[(spec.cls, s)][0] <= spec.heart_rate <= _HR_LIMITS[(spec.cls, s)][1]]
        subtype = str(rng.choice(fits))
    else:
        rng.random()
    territory = spec.territory
    if spec.cls in _TERRITORY_CLASSES and territory is None:
        territory = str(rng.choice(tuple(MI_TERRITORIES)))
    else:
        rng.random()
    key = (spec.cls, subtype)
    lo, hi = _HR_TYPICAL[key]
    hr_draw = float(rng.uniform(lo, hi))
    heart_rate = float(spec.heart_rate) if spec.heart_rate is not None else round(hr_draw, 1)
    axis_draw = _draw_axis(rng, spec.cls, territory)
    axis = float(spec.axis_deg) if spec.axis_deg is not None else round(axis_draw, 1)
    return replace(spec, subtype=subtype, territory=territory, heart_rate=heart_rate, axis_deg=axis)


def _draw_axis(rng: np.random.Generator, cls: str, territory: str | None) -> float:
    if cls == "history_of_mi" and territory == "inferior":
        return float(rng.uniform(-20.0, 35.0))  # loss of inferior forces: leftward axis
    if cls == "history_of_mi" and territory == "lateral":
        return float(rng.uniform(60.0, 95.0))  # loss of lateral forces: rightward axis
    return float(rng.uniform(10.0, 75.0))


def random_spec(
    cls: str,
    rng: np.random.Generator,
    *,
    subtype: str | None = None,
    territory: str | None = None,
    fs: float = 500.0,
    duration_s: float = 10.0,
) -> SynthSpec:
    """Draw a resolved :class:`SynthSpec` of class ``cls`` (severity, noise, seed, subtype, territory, rate) from
    ``rng``. Severity is drawn from [0.15, 1] and noise from [0.05, 0.6] so that classes overlap a little."""
    _check_class(cls)
    severity = round(float(rng.uniform(0.15, 1.0)), 3)
    noise = round(float(rng.uniform(0.05, 0.6)), 3)
    seed = int(rng.integers(0, 2**31 - 1))
    powerline = 50.0 if rng.random() < 0.6 else 60.0
    spec = SynthSpec(cls, subtype=subtype, territory=territory, severity=severity, noise=noise, fs=fs,
                     duration_s=duration_s, seed=seed, powerline_hz=powerline)
    return resolve_spec(spec)


# ----------------------------------------------------------------------------------------------------------------
# Signals
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Signals12:
    """A synthetic 12-lead recording with beat annotations.

    ``data``: float64 array of shape (12, n) in mV, rows in :data:`ecg_core.core.labels.LEADS` order. ``fs``: sampling
    rate in Hz. Per-beat arrays (length = number of beats whose R peak lies in the record, sample indices into
    ``data``): ``r_peaks``, ``qrs_onsets``, ``j_points`` (QRS offset), ``t_ends``, ``p_onsets`` / ``p_offsets``
    (-1 where the beat has no P wave); ``beat_types``: ``'N'`` (supraventricular, normally conducted) or ``'V'``
    (premature ventricular). ``rhythm``: ``'sinus'`` or ``'atrial_fibrillation'``. ``pathology_leads``: the leads
    (and ``'II_rhythm'``) showing the abnormality. ``st_deviation_mv``: designed ST deviation per lead (mV, noise
    free, at J+60 ms). ``spec``: the resolved spec.
    """

    fs: float
    data: np.ndarray
    spec: SynthSpec
    r_peaks: np.ndarray
    beat_types: tuple[str, ...]
    qrs_onsets: np.ndarray
    j_points: np.ndarray
    t_ends: np.ndarray
    p_onsets: np.ndarray
    p_offsets: np.ndarray
    rhythm: str
    pathology_leads: tuple[str, ...]
    st_deviation_mv: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim != 2 or self.data.shape[0] != len(LEADS):
            raise ConfigError(f"data must have shape (12, n); received {self.data.shape}")
        for arr in (self.data, self.r_peaks, self.qrs_onsets, self.j_points, self.t_ends, self.p_onsets,
                    self.p_offsets):
            arr.setflags(write=False)

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    @property
    def time(self) -> np.ndarray:
        """Sample times in seconds, shape (n,)."""
        return np.arange(self.n_samples) / self.fs

    @property
    def leads(self) -> dict[str, np.ndarray]:
        """Lead name -> read-only view of shape (n,) in mV."""
        return {name: self.data[i] for i, name in enumerate(LEADS)}

    def lead(self, name: str) -> np.ndarray:
        """One lead (mV, shape (n,))."""
        if name not in _LEAD_INDEX:
            raise ConfigError(f"lead must be one of {_choices(LEADS)}; received {name!r}")
        return self.data[_LEAD_INDEX[name]]

    @property
    def heart_rate(self) -> float:
        """Mean ventricular rate in bpm measured from the annotated R peaks (what a machine prints)."""
        if len(self.r_peaks) < 2:
            return float(self.spec.heart_rate or 0.0)
        return float(60.0 * self.fs / np.mean(np.diff(self.r_peaks)))


@dataclass
class _Wave:
    center: float  # s relative to the beat's R time
    sl: float  # s, Gaussian width left of the center
    sr: float  # s, right of the center
    amp: np.ndarray  # (8,) mV on the independent leads


@dataclass
class _Beat:
    t: float  # R time, s
    kind: str  # 'N' or 'V'
    waves: list[_Wave]
    st_amp: np.ndarray  # (8,) ST plateau level, mV
    has_p: bool
    p_on: float
    p_off: float
    qrs_on: float
    j: float
    t_end: float


def _frontal(mag: float, angle_deg: float) -> np.ndarray:
    """Frontal vector -> contributions (lead I, lead II) in mV."""
    a = math.radians(angle_deg)
    return np.array([mag * math.cos(a), mag * math.cos(a - math.radians(60.0))])


def _vec(frontal: tuple[float, float] | np.ndarray, prec: Sequence[float] | np.ndarray) -> np.ndarray:
    out = np.zeros(8)
    out[:2] = frontal if isinstance(frontal, np.ndarray) else _frontal(*frontal)
    out[_PREC] = prec
    return out


def _limb_projection(angle_deg: float, lead: str) -> float:
    """Amplitude a unit frontal vector at ``angle_deg`` shows in limb lead ``lead`` (after derivation)."""
    scale = _AUG_SCALE if lead.startswith("aV") else 1.0
    return scale * math.cos(math.radians(angle_deg - _LIMB_ANGLE[lead]))


def _derive(indep: np.ndarray) -> np.ndarray:
    """(8, n) independent leads I, II, V1-V6 -> (12, n) in LEADS order, with exact Einthoven/Goldberger relations."""
    i, ii = indep[0], indep[1]
    out = np.empty((12, indep.shape[1]))
    out[0] = i
    out[1] = ii
    out[2] = ii - i
    out[3] = -(i + ii) / 2.0
    out[4] = i - ii / 2.0
    out[5] = ii - i / 2.0
    out[6:] = indep[2:]
    return out


@dataclass
class _Morph:
    """Morphology of one beat type of one synthetic patient (before per-beat timing)."""

    qrs: list[_Wave]
    t_amp: np.ndarray
    st_amp: np.ndarray
    qtc: float  # s, Fridericia-corrected QT
    qt_anchor: float  # s relative to R: where QT is counted from (the beat's own QRS onset before any Q wave)
    t_sl: float  # s at RR = 1 s
    t_sr: float
    has_p: bool = True
    p_amp: np.ndarray = field(default_factory=lambda: np.zeros(8))
    p_dur: float = 0.1
    pr: float = 0.16


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _normal_morph(rng: np.random.Generator, axis: float) -> _Morph:
    """Sinus beat of a healthy adult with frontal QRS axis ``axis`` (degrees)."""
    d = _u(rng, 0.080, 0.098)  # QRS duration design (s); the annotated onset..J span is ~0.98 d
    r_scale = _u(rng, 0.85, 1.15)
    prec_r = np.array([0.12, 0.35, 0.70, 1.15, 1.25, 1.00]) * r_scale * rng.uniform(0.85, 1.15, 6)
    prec_r = np.minimum(prec_r, 1.6)
    prec_s = -np.array([0.75, 1.10, 0.80, 0.40, 0.15, 0.05]) * _u(rng, 0.8, 1.2) * rng.uniform(0.85, 1.15, 6)
    prec_q = np.array([0.10, 0.08, 0.0, -0.03, -0.07, -0.09]) * _u(rng, 0.6, 1.3)
    qrs = [
        _Wave(-0.28 * d, 0.07 * d, 0.07 * d, _vec((_u(rng, 0.03, 0.08), _u(rng, 160.0, 200.0)), prec_q)),
        _Wave(0.0, 0.11 * d, 0.11 * d, _vec((_u(rng, 0.9, 1.45), axis), prec_r)),
        _Wave(0.25 * d, 0.08 * d, 0.08 * d, _vec((_u(rng, 0.12, 0.32), axis + _u(rng, 150.0, 200.0)), prec_s)),
    ]
    t_prec = np.array([_u(rng, -0.12, 0.08), 0.30, 0.38, 0.36, 0.28, 0.20]) * _u(rng, 0.8, 1.2)
    t_amp = _vec((_u(rng, 0.22, 0.40), _u(rng, 15.0, 50.0)), t_prec)
    st_amp = _vec((_u(rng, 0.0, 0.015), _u(rng, 0.0, 90.0)),
                  np.array([_u(rng, 0.0, 0.015), _u(rng, 0.0, 0.015), _u(rng, 0.0, 0.01), 0.0, 0.0, 0.0]))
    p_amp = _vec((_u(rng, 0.10, 0.20), _u(rng, 40.0, 70.0)),
                 np.array([0.04, 0.06, 0.07, 0.07, 0.06, 0.05]) * _u(rng, 0.8, 1.2))
    return _Morph(qrs=qrs, t_amp=t_amp, st_amp=st_amp, qtc=_u(rng, 0.385, 0.415), qt_anchor=-0.49 * d,
                  t_sl=0.046, t_sr=0.033,
                  p_amp=p_amp, p_dur=_u(rng, 0.080, 0.105), pr=_u(rng, 0.135, 0.185))


def _territory_min_projection(angle: float, leads: Sequence[str]) -> float:
    return min(_limb_projection(angle, lead) for lead in leads)


def _apply_acute_mi(m: _Morph, rng: np.random.Generator, territory: str, severity: float) -> None:
    """ST elevation (>= st_min in every territory lead), hyperacute T, reciprocal depression."""
    st_min = 0.12 + 0.28 * severity  # mV at the least elevated territory lead
    prec = np.zeros(6)
    if territory == "inferior":
        angle = _u(rng, 85.0, 110.0)
        mag = st_min * _u(rng, 1.0, 1.15) / _territory_min_projection(angle, MI_TERRITORIES["inferior"])
        prec[:3] = -st_min * np.array([_u(rng, 0.2, 0.6), _u(rng, 0.3, 0.7), _u(rng, 0.1, 0.4)])  # posterior mirror
    elif territory == "lateral":
        angle = _u(rng, -35.0, -10.0)
        mag = st_min * _u(rng, 1.0, 1.15) / _territory_min_projection(angle, ("I", "aVL"))
        prec[:] = st_min * np.array([-_u(rng, 0.1, 0.4), -_u(rng, 0.0, 0.2), 0.0, _u(rng, 0.3, 0.6),
                                     _u(rng, 1.0, 1.3), _u(rng, 1.0, 1.2)])
    else:  # anterior
        angle = _u(rng, -100.0, -70.0)
        mag = st_min * _u(rng, 0.4, 0.8)
        prec[:] = st_min * np.array([_u(rng, 1.0, 1.2), _u(rng, 1.3, 1.8), _u(rng, 1.3, 1.8), _u(rng, 1.0, 1.4),
                                     _u(rng, 0.2, 0.5), _u(rng, 0.0, 0.15)])
    st = _vec((mag, angle), prec)
    m.st_amp = m.st_amp + st
    # hyperacute T: tall and broad along the injury vector
    hyper = _u(rng, 0.9, 1.4)
    m.t_amp = m.t_amp + hyper * st
    m.t_sl *= 1.3
    m.t_sr *= 1.15


def _apply_old_mi(m: _Morph, rng: np.random.Generator, territory: str, severity: float) -> None:
    """Pathological Q waves in one territory, reduced R, possibly T inversion; no ST elevation."""
    q_mag = 0.30 + 0.35 * severity  # mV
    q_center, q_sig = -0.030 - 0.004 * severity, _u(rng, 0.0125, 0.015)  # s: wide (>= 40 ms) initial wave
    prec_q = np.zeros(6)
    r_factor = np.ones(6)
    invert_t = rng.random() < 0.3 + 0.5 * severity
    if territory == "inferior":
        frontal_q = _frontal(q_mag, _u(rng, -100.0, -80.0))
        t_angle = _u(rng, -60.0, -25.0)
    elif territory == "lateral":
        frontal_q = _frontal(q_mag, _u(rng, 165.0, 195.0))
        prec_q[4:] = -q_mag * np.array([_u(rng, 0.7, 1.0), _u(rng, 0.8, 1.1)])
        r_factor[4:] = _u(rng, 0.5, 0.7)
        t_angle = _u(rng, 110.0, 140.0)
    else:  # anterior: QS / Qr complexes in V1-V4
        frontal_q = _frontal(q_mag * 0.15, _u(rng, -100.0, -60.0))
        prec_q[:4] = -q_mag * np.array([_u(rng, 0.9, 1.2), _u(rng, 1.1, 1.4), _u(rng, 1.1, 1.4), _u(rng, 0.9, 1.1)])
        r_factor[:4] = [_u(rng, 0.0, 0.2), _u(rng, 0.05, 0.25), _u(rng, 0.15, 0.35), _u(rng, 0.4, 0.6)]
        t_angle = None
    # the septal q wave of the territory is replaced by the pathological one
    septal = m.qrs[0]
    if territory == "anterior":
        septal.amp[2:4] = 0.0
    m.qrs[1].amp[_PREC] *= r_factor
    m.qrs.insert(0, _Wave(q_center, q_sig, q_sig * 0.9, _vec(frontal_q, prec_q)))
    if invert_t:
        if t_angle is not None:
            m.t_amp[:2] = _frontal(_u(rng, 0.15, 0.3), t_angle)
            if territory == "lateral":
                m.t_amp[6:8] = -np.abs(m.t_amp[6:8]) * _u(rng, 0.5, 1.0)
        else:
            m.t_amp[2:6] = -np.array([_u(rng, 0.05, 0.15), 0.2, 0.25, 0.2]) * _u(rng, 0.6, 1.2)
    # a little residual ST (never elevation >= 0.05 mV); scar T waves are a bit smaller
    m.st_amp = np.clip(m.st_amp, -0.02, 0.02)
    m.t_amp = m.t_amp * 0.9


def _pvc_morph(rng: np.random.Generator, base: _Morph) -> _Morph:
    """Premature ventricular beat: wide bizarre QRS (140-180 ms), no P, T opposite to the QRS."""
    d = _u(rng, 0.14, 0.18)
    if rng.random() < 0.5:  # right-ventricular origin: LBBB-like, left-superior or inferior axis
        prec = np.array([-1.1, -1.3, -0.6, 0.5, 1.0, 1.1])
        angle = _u(rng, 60.0, 110.0) if rng.random() < 0.5 else _u(rng, -80.0, -30.0)
    else:  # left-ventricular origin: RBBB-like
        prec = np.array([1.0, 0.9, 0.5, -0.2, -0.7, -0.9])
        angle = _u(rng, 110.0, 170.0) if rng.random() < 0.5 else _u(rng, -150.0, -100.0)
    mag = _u(rng, 1.1, 1.6)
    prec = prec * _u(rng, 0.85, 1.2)
    main = _vec((mag, angle), prec)
    second = _vec((0.35 * mag, angle + _u(rng, -40.0, 40.0)), 0.3 * prec)
    qrs = [_Wave(0.0, 0.14 * d, 0.14 * d, main), _Wave(0.22 * d, 0.10 * d, 0.10 * d, second)]
    t_amp = -main * _u(rng, 0.25, 0.35)
    return _Morph(qrs=qrs, t_amp=t_amp, st_amp=-main * 0.05, qtc=base.qtc + 0.04, qt_anchor=-0.42 * d, t_sl=0.06,
                  t_sr=0.04, has_p=False)


def _beat_from_morph(t: float, kind: str, m: _Morph, rr: float, amp_mod: float) -> _Beat:
    waves = [_Wave(w.center, w.sl, w.sr, w.amp * amp_mod) for w in m.qrs]
    qrs_on = min(w.center - 3.0 * w.sl for w in m.qrs)
    j = max(w.center + 3.0 * w.sr for w in m.qrs)
    k = rr ** (1.0 / 3.0)
    qt = m.qtc * k
    t_end = m.qt_anchor + qt
    sr, sl = m.t_sr * k, m.t_sl * k
    t_center = t_end - 2.5 * sr
    waves.append(_Wave(t_center, sl, sr, m.t_amp.copy()))
    p_on = p_off = math.nan
    if m.has_p:
        p_sig = m.p_dur / 5.0
        p_on = qrs_on - m.pr
        p_off = p_on + m.p_dur
        waves.append(_Wave(p_on + m.p_dur / 2.0, p_sig, p_sig, m.p_amp.copy()))
    return _Beat(t=t, kind=kind, waves=waves, st_amp=m.st_amp.copy(), has_p=m.has_p, p_on=t + p_on,
                 p_off=t + p_off, qrs_on=t + qrs_on, j=t + j, t_end=t + t_end)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _render_beats(beats: list[_Beat], n: int, fs: float) -> np.ndarray:
    """Sum all beats' waves into (8, n) independent leads."""
    out = np.zeros((8, n))
    for b in beats:
        i0 = max(0, int(math.floor((b.t - 0.6) * fs)))
        i1 = min(n, int(math.ceil((b.t + 1.1) * fs)))
        if i1 <= i0:
            continue
        tr = np.arange(i0, i1) / fs - b.t  # s relative to R
        c = np.array([w.center for w in b.waves])[:, None]
        sl = np.array([w.sl for w in b.waves])[:, None]
        sr = np.array([w.sr for w in b.waves])[:, None]
        s = np.where(tr[None, :] < c, sl, sr)
        g = np.exp(-0.5 * ((tr[None, :] - c) / s) ** 2)  # (k, m)
        amps = np.stack([w.amp for w in b.waves], axis=1)  # (8, k)
        seg = amps @ g
        j_rel, te_rel = b.j - b.t, b.t_end - b.t
        plateau = _sigmoid((tr - (j_rel - 0.004)) / 0.004) * _sigmoid((te_rel - 0.03 - tr) / 0.02)
        seg += b.st_amp[:, None] * plateau[None, :]
        out[:, i0:i1] += seg
    return out


def _rr_sequence(rng: np.random.Generator, hr: float, t_start: float, t_stop: float, irregular_cv: float
                 ) -> np.ndarray:
    """R times (s) from t_start to t_stop. Sinus: respiratory arrhythmia (~3 %); AF: lognormal RR with ``cv``."""
    rr_mean = 60.0 / hr
    times = [t_start]
    f_resp, ph = _u(rng, 0.2, 0.33), _u(rng, 0.0, 2 * math.pi)
    while times[-1] < t_stop:
        t = times[-1]
        if irregular_cv > 0:
            sigma = math.sqrt(math.log(1.0 + irregular_cv**2))
            rr = rr_mean * float(rng.lognormal(-0.5 * sigma**2, sigma))
            rr = min(max(rr, 0.3), 2.2)
        else:
            rr = rr_mean * (1.0 + 0.03 * math.sin(2 * math.pi * f_resp * t + ph) + 0.008 * float(rng.standard_normal()))
        times.append(t + rr)
    return np.array(times)


def _noise(rng: np.random.Generator, n: int, fs: float, level: float, powerline_hz: float) -> np.ndarray:
    """(8, n) noise on the independent leads: baseline wander, power line, EMG (mV)."""
    t = np.arange(n) / fs
    out = np.zeros((8, n))
    if level <= 0:
        return out
    f_resp = _u(rng, 0.15, 0.35)
    for k in range(8):
        wander = (_u(rng, 0.02, 0.08) * np.sin(2 * np.pi * f_resp * t + _u(rng, 0, 2 * np.pi))
                  + _u(rng, 0.02, 0.10) * np.sin(2 * np.pi * _u(rng, 0.03, 0.12) * t + _u(rng, 0, 2 * np.pi)))
        line = _u(rng, 0.005, 0.02) * np.sin(2 * np.pi * powerline_hz * t + _u(rng, 0, 2 * np.pi))
        white = rng.standard_normal(n + 2)
        emg = (white[:-2] + white[1:-1] + white[2:]) / math.sqrt(3.0)
        burst = 0.5 + 0.5 * np.clip(np.sin(2 * np.pi * _u(rng, 0.05, 0.3) * t + _u(rng, 0, 2 * np.pi)), 0, None)
        emg = _u(rng, 0.004, 0.015) * burst * emg
        out[k] = level * (wander + line + emg)
    return out


def _f_waves(rng: np.random.Generator, n: int, fs: float, amp: float) -> np.ndarray:
    """Atrial fibrillation f waves (4-9 Hz, varying amplitude), (8, n) mV; largest in V1 and the inferior leads."""
    t = np.arange(n) / fs
    sig = np.zeros(n)
    for _ in range(3):
        f = _u(rng, 4.0, 9.0)
        sig += np.sin(2 * np.pi * f * t + _u(rng, 0, 2 * np.pi) + 0.8 * np.sin(2 * np.pi * _u(rng, 0.1, 0.5) * t))
    sig *= (0.6 + 0.4 * np.sin(2 * np.pi * _u(rng, 0.1, 0.4) * t + _u(rng, 0, 2 * np.pi))) / 3.0 * 1.6
    weights = _vec((1.0, _u(rng, 70.0, 110.0)), np.array([1.4, 0.8, 0.4, 0.3, 0.2, 0.15]))
    return amp * weights[:, None] * sig[None, :]


def synth_signals(spec: SynthSpec) -> Signals12:
    """Synthesise the 12-lead recording described by ``spec`` (deterministic for a given spec).

    Returns a :class:`Signals12` with ``data`` of shape (12, round(duration_s * fs)) in mV.
    """
    if not isinstance(spec, SynthSpec):
        raise ConfigError(f"spec must be a SynthSpec; received {type(spec).__name__}")
    spec = resolve_spec(spec)
    fs = float(spec.fs)
    n = int(round(spec.duration_s * fs))
    hr = float(spec.heart_rate)  # resolved
    axis = float(spec.axis_deg)  # resolved
    sev = float(spec.severity)
    mrng, trng, nrng = _rng(spec.seed, 2), _rng(spec.seed, 3), _rng(spec.seed, 4)

    base = _normal_morph(mrng, axis)
    rhythm = "sinus"
    pathology: tuple[str, ...] = ()
    cv = 0.0
    if spec.cls == "myocardial_infarction":
        _apply_acute_mi(base, mrng, spec.territory, sev)
        pathology = MI_TERRITORIES[spec.territory]
    elif spec.cls == "history_of_mi":
        _apply_old_mi(base, mrng, spec.territory, sev)
        pathology = MI_TERRITORIES[spec.territory]
    elif spec.subtype == "atrial_fibrillation":
        base.has_p = False
        rhythm = "atrial_fibrillation"
        cv = 0.14 + 0.12 * sev
        pathology = ("II", "V1", RHYTHM_KEY)
    elif spec.subtype in ("bradycardia", "tachycardia"):
        pathology = (RHYTHM_KEY,)

    # beat times: start before 0 so the record opens mid-rhythm
    rr0 = 60.0 / hr
    t_first = -_u(trng, 0.3, 1.0) * rr0 - 0.5
    times = _rr_sequence(trng, hr, t_first, spec.duration_s + 1.2, cv)
    kinds = ["N"] * len(times)
    if spec.subtype == "pvc":
        n_pvc = 1 + int(sev * 2.999)
        candidates = [i for i in range(1, len(times) - 1) if 0.25 < times[i] < spec.duration_s - 0.6]
        trng.shuffle(candidates)
        chosen: list[int] = []
        for i in candidates:
            if len(chosen) == n_pvc:
                break
            if all(abs(i - c) > 1 for c in chosen):
                chosen.append(i)
        for i in chosen:
            coupling = _u(trng, 0.5, 0.68)
            times[i] = times[i - 1] + coupling * (times[i] - times[i - 1])
            kinds[i] = "V"
    pvc_morph = _pvc_morph(mrng, base) if "V" in kinds else None

    beats: list[_Beat] = []
    f_resp, ph = _u(trng, 0.2, 0.33), _u(trng, 0, 2 * math.pi)
    for i, (t, kind) in enumerate(zip(times, kinds)):
        rr = float(times[i] - times[i - 1]) if i > 0 else rr0
        if kind == "V" or (i > 0 and kinds[i - 1] == "V"):
            rr = rr0
        amp_mod = 1.0 + 0.04 * math.sin(2 * math.pi * f_resp * t + ph) + 0.01 * float(trng.standard_normal())
        m = pvc_morph if kind == "V" else base
        beats.append(_beat_from_morph(float(t), kind, m, rr, amp_mod))

    indep = _render_beats(beats, n, fs)
    if rhythm == "atrial_fibrillation":
        indep += _f_waves(nrng, n, fs, 0.03 + 0.06 * sev)
    indep += _noise(nrng, n, fs, float(spec.noise), float(spec.powerline_hz))
    data = _derive(indep)

    inside = [b for b in beats if 0 <= round(b.t * fs) < n]

    def idx(values: list[float]) -> np.ndarray:
        return np.array([-1 if math.isnan(v) else int(round(v * fs)) for v in values], dtype=np.int64)

    if spec.subtype == "pvc":
        pvc_t = [b.t for b in inside if b.kind == "V"]
        leads = {LAYOUT[r][c] for r in range(3) for c in range(4)
                 for t in pvc_t if c * COLUMN_S <= t < (c + 1) * COLUMN_S}
        pathology = tuple(name for name in LEADS if name in leads) + (RHYTHM_KEY,)

    st_dev = _designed_st(base)
    return Signals12(
        fs=fs,
        data=data,
        spec=spec,
        r_peaks=idx([b.t for b in inside]),
        beat_types=tuple(b.kind for b in inside),
        qrs_onsets=idx([b.qrs_on for b in inside]),
        j_points=idx([b.j for b in inside]),
        t_ends=idx([b.t_end for b in inside]),
        p_onsets=idx([b.p_on for b in inside]),
        p_offsets=idx([b.p_off for b in inside]),
        rhythm=rhythm,
        pathology_leads=pathology,
        st_deviation_mv=st_dev,
    )


def _designed_st(m: _Morph) -> dict[str, float]:
    full = _derive(m.st_amp[:, None])[:, 0]
    return {name: round(float(full[i]), 4) for i, name in enumerate(LEADS)}


# ----------------------------------------------------------------------------------------------------------------
# Reports and datasets
# ----------------------------------------------------------------------------------------------------------------


def make_report(spec: SynthSpec, options: RenderOptions | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Synthesise ``spec`` and render it: (RGB uint8 image of shape (H, W, 3), JSON-ready sidecar dict).

    The render randomness (header text, artifacts) is seeded from ``spec.seed``.
    """
    signals = synth_signals(spec)
    return render_report(signals, options if options is not None else RenderOptions(), seed=spec.seed)


def image_seed(seed: int, class_id: int, index: int) -> int:
    """Seed of image ``index`` of class ``class_id`` in a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(class_id), int(index)]).generate_state(1)[0])


_STYLE_WEIGHTS: tuple[tuple[str, bool, float], ...] = (
    ("pink", False, 0.55),
    ("red", False, 0.12),
    ("orange", False, 0.06),
    ("blue", False, 0.06),
    ("green", False, 0.06),
    ("gray", False, 0.05),
    ("pink", True, 0.10),  # black-and-white print
)


def _dataset_item(args: tuple[int, str, int, int, dict[str, Any], str, str]) -> dict[str, Any]:
    """Generate, render and write one image + sidecar. Runs in worker processes too (module-level, picklable)."""
    seed, cls, class_id, index, opt_kwargs, image_format, folder = args
    s = image_seed(seed, class_id, index)
    rng = np.random.default_rng(s)
    spec = random_spec(cls, rng)
    kwargs = dict(opt_kwargs)
    if kwargs.pop("vary_grid", False):
        w = np.array([x[2] for x in _STYLE_WEIGHTS])
        grid, bw, _ = _STYLE_WEIGHTS[int(rng.choice(len(_STYLE_WEIGHTS), p=w / w.sum()))]
        kwargs.update(grid=grid, black_and_white=bw)
    options = RenderOptions(**kwargs)
    image, sidecar = render_report(synth_signals(spec), options, seed=int(rng.integers(0, 2**31 - 1)))
    stem = f"{cls}_{index:04d}"
    ext = "jpg" if image_format in ("jpg", "jpeg") else "png"
    sidecar["image_file"] = f"{stem}.{ext}"
    sidecar["dataset_seed"] = int(seed)
    sidecar["image_seed"] = s
    sidecar["index"] = int(index)
    out = Path(folder)
    (out / f"{stem}.{ext}").write_bytes(encode_image(image, ext))
    (out / f"{stem}.json").write_text(json.dumps(sidecar, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return {
        "rel_path": f"{cls}/{stem}.{ext}",
        "class_key": cls,
        "class_id": class_id,
        "subtype": spec.subtype,
        "territory": spec.territory,
        "heart_rate": sidecar["heart_rate_bpm"],
        "severity": spec.severity,
        "seed": sidecar["seed"],
    }


def generate_dataset(
    out_dir: Path | str,
    *,
    per_class: int,
    seed: int,
    px_per_mm: float = 4.0,
    artifacts: bool = True,
    image_format: str = "png",
    classes: Sequence[str] | None = None,
    vary_grid: bool = True,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Write a synthetic cardiac-4 dataset and return its index.

    Layout: ``out_dir/<class_key>/<class_key>_<i:04d>.<png|jpg>`` + ``.json`` sidecar, and
    ``out_dir/synth_manifest.json``. Image ``i`` of class ``c`` uses seed :func:`image_seed` ``(seed, id(c), i)``,
    so the content does not depend on ``workers`` or on the other classes. Everything is written into a hidden
    temporary sibling folder (``.<name>.partial-*``) that is renamed to ``out_dir`` at the end: an interrupted run
    leaves no ``out_dir``. ``out_dir`` must be absent or empty unless ``overwrite=True``. With ``workers > 1``
    (spawned processes) the calling script needs the usual ``if __name__ == "__main__":`` guard.
    ``progress(done, total)`` is called after each image.
    ``workers > 1`` uses a process pool. Returns a DataFrame with columns path, json_path, rel_path, class_key,
    class_id, subtype, territory, heart_rate, severity, seed.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ConfigError(f"per_class must be a positive integer; received {per_class!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer; received {seed!r}")
    if image_format not in ("png", "jpg", "jpeg"):
        raise ConfigError(f"image_format must be one of 'png', 'jpg'; received {image_format!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer; received {workers!r}")
    class_list = tuple(classes) if classes is not None else CLASS_KEYS
    for c in class_list:
        _check_class(c)
    RenderOptions(px_per_mm=px_per_mm, artifacts=artifacts)  # validate early
    if _exists_non_empty(out_dir) and not overwrite:
        raise DatasetError(
            f"out_dir {str(out_dir)!r} already exists and is not empty; expected a new or empty folder "
            f"(pass overwrite=True to replace it)"
        )
    preset = get_preset(PRESET_NAME)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        opt_kwargs = {"px_per_mm": float(px_per_mm), "artifacts": bool(artifacts), "vary_grid": bool(vary_grid)}
        jobs = []
        for cls in class_list:
            (tmp / cls).mkdir()
            cid = preset.info(cls).id
            jobs += [(seed, cls, cid, i, opt_kwargs, image_format, str(tmp / cls)) for i in range(per_class)]
        total = len(jobs)
        records: list[dict[str, Any]] = []
        if workers == 1:
            for k, job in enumerate(jobs):
                records.append(_dataset_item(job))
                if progress is not None:
                    progress(k + 1, total)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                       initializer=_worker_init)
            try:
                for k, rec in enumerate(pool.map(_dataset_item, jobs, chunksize=4)):
                    records.append(rec)
                    if progress is not None:
                        progress(k + 1, total)
            finally:  # on an error or interrupt, drop the queued images instead of finishing them
                pool.shutdown(wait=True, cancel_futures=True)
        manifest = {
            "generator": "ecg_core.reports.synth",
            "version": SYNTH_VERSION,
            "preset": PRESET_NAME,
            "seed": seed,
            "per_class": per_class,
            "counts": {c: per_class for c in class_list},
            "n_images": total,
            "options": {"px_per_mm": float(px_per_mm), "artifacts": bool(artifacts), "image_format":
                        "jpg" if image_format == "jpeg" else image_format, "vary_grid": bool(vary_grid),
                        "render_defaults": asdict(RenderOptions(px_per_mm=px_per_mm, artifacts=artifacts))},
        }
        (tmp / "synth_manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                                 encoding="utf-8")
        if _exists_non_empty(out_dir) and overwrite:  # swap, then delete the old tree
            trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, trash / "old")
            os.replace(tmp, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            try:
                os.replace(tmp, out_dir)  # atomic; also replaces an empty folder
            except OSError as e:
                raise DatasetError(
                    f"could not move the finished dataset to {str(out_dir)!r}: {e}; another run probably created "
                    f"it meanwhile (expected a new or empty folder)"
                ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    df = pd.DataFrame.from_records(records)
    df.insert(0, "json_path", [str(out_dir / Path(p).with_suffix(".json")) for p in df["rel_path"]])
    df.insert(0, "path", [str(out_dir / p) for p in df["rel_path"]])
    return df


def _exists_non_empty(path: Path) -> bool:
    if not path.exists():
        return False
    if not path.is_dir():
        return True
    return any(path.iterdir())


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


__all__ += ["GRID_STYLES", "COLUMN_S", "PRESET_NAME"]
