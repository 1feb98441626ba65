"""What the synthetic ECG generator makes and what it returns: the cardiac-4 classes, their subtypes and
infarction territories (with short teaching notes), heart-rate limits, :class:`SynthSpec` (with its validation and
:func:`resolve_spec` / :func:`random_spec`) and the recording :class:`Signals12`.

Classes of the ``cardiac-4`` preset (folder names = class keys):

- ``normal``: sinus 60-100 bpm, PR 120-200 ms, QRS < 110 ms, T upright in I, II, V3-V6 and inverted in aVR.
- ``myocardial_infarction`` (acute STEMI) in one territory (:data:`MI_TERRITORIES`): ST elevation
  >= 0.1 mV at J+60 ms in every lead of the territory, hyperacute T waves, reciprocal ST depression.
- ``history_of_mi``: pathological Q waves (>= 40 ms or >= 25 % of R) in one territory, possibly T inversion,
  no ST elevation.
- ``abnormal_heartbeat`` with a subtype (:data:`SUBTYPES`): atrial fibrillation (irregular RR, no P waves,
  fibrillatory f waves), premature ventricular contractions (early wide QRS, discordant T, full compensatory
  pause), marked sinus bradycardia (< 50 bpm) or tachycardia (> 110 bpm).

The signals themselves are made by :mod:`ecg_core.reports.synth_model`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import LEADS

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

_LEAD_INDEX: dict[str, int] = {name: i for i, name in enumerate(LEADS)}


# ----------------------------------------------------------------------------------------------------------------
# Specification
# ----------------------------------------------------------------------------------------------------------------


def _choices(values: Sequence[object]) -> str:
    return ", ".join(repr(v) for v in values)


def heart_rate_range(cls: str, subtype: str | None = None) -> tuple[float, float]:
    """Heart-rate limits in bpm that a :class:`SynthSpec` of this class (and subtype) accepts.

    For ``abnormal_heartbeat`` without a subtype the union of all subtypes is returned.
    """
    check_class(cls)
    if cls == "abnormal_heartbeat":
        if subtype is None:
            ranges = [v for (c, _), v in _HR_LIMITS.items() if c == cls]
            return (min(r[0] for r in ranges), max(r[1] for r in ranges))
        _check_subtype(cls, subtype)
        return _HR_LIMITS[(cls, subtype)]
    return _HR_LIMITS[(cls, None)]


def check_class(cls: object) -> None:
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
        check_class(self.cls)
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


def rng_stream(seed: int, stream: int) -> np.random.Generator:
    """Independent, reproducible random stream ``stream`` of ``seed``."""
    return np.random.default_rng([int(seed), 0x5EC6, int(stream)])


def resolve_spec(spec: SynthSpec) -> SynthSpec:
    """Return ``spec`` with subtype, territory, heart rate and axis drawn from its seed where they are ``None``."""
    rng = rng_stream(spec.seed, 1)
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
    check_class(cls)
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

