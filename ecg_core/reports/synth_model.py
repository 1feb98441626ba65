"""The parametric signal model of the synthetic 12-lead ECGs: :func:`synth_signals` turns a
:class:`~ecg_core.reports.synth_spec.SynthSpec` into a :class:`~ecg_core.reports.synth_spec.Signals12`.

The model is our own, written for control rather than taken from ``neurokit2.ecg_simulate``: every beat is a sum of
(asymmetric) Gaussian waves P, q, R, S, T plus a smooth ST-plateau term, in the spirit of McSharry et al., "A
dynamical model for generating synthetic electrocardiogram signals", IEEE TBME 50(3), 2003 — but written directly
as a function of time, per lead, so that each clinical feature (ST elevation in one territory, a pathological Q
wave, a wide premature beat) is one parameter that tests can measure back.

* Limb leads come from *frontal-plane vectors*: a wave with vector (magnitude m in mV, angle phi in degrees, 0 =
  leftward, +90 = downward) contributes ``m cos(phi)`` to lead I and ``m cos(phi - 60)`` to lead II. Only I and II
  (plus V1-V6) are synthesised, the other limb leads are derived so that Einthoven's and Goldberger's relations
  hold exactly, noise included: ``III = II - I``, ``aVR = -(I + II) / 2``, ``aVL = I - II / 2``,
  ``aVF = II - I / 2``. The QRS vector's angle is the electrical axis.
* Precordial leads V1-V6 get per-lead amplitudes (normal R-wave progression, septal r in V1, septal q in V5-V6).
* Noise (``noise`` in [0, 1]): baseline wander (respiration + slow drift), power-line interference (50/60 Hz) and
  EMG (band-limited white noise with bursts). Units: time in seconds, sampling rate in Hz, amplitudes in mV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import LEADS
from ecg_core.reports.layout import RHYTHM_KEY, lead_windows
from ecg_core.reports.synth_spec import MI_TERRITORIES, Signals12, SynthSpec, resolve_spec, rng_stream

# Independent leads that are synthesised (rows of the (8, n) arrays): I, II, V1-V6; the other limb leads are derived.
_PREC = slice(2, 8)
_LIMB_ANGLE: dict[str, float] = {"I": 0.0, "II": 60.0, "III": 120.0, "aVF": 90.0, "aVL": -30.0, "aVR": -150.0}
_AUG_SCALE = math.sqrt(3.0) / 2.0  # augmented leads (as derived above) see a frontal vector scaled by sqrt(3)/2


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
    mrng, trng, nrng = rng_stream(spec.seed, 2), rng_stream(spec.seed, 3), rng_stream(spec.seed, 4)

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
        windows = lead_windows()  # the 3x4 cells whose time window shows a PVC
        leads = {name for name in LEADS for t in pvc_t if windows[name][0] <= t < windows[name][1]}
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
