"""Print a real 12-lead recording as a standard 3x4 + II report with the synthetic reports' renderer
(:func:`ecg_core.reports.synth_render.render_report`): the record is resampled to 500 Hz, its first 10 s are
wrapped in a :class:`~ecg_core.reports.synth_spec.Signals12` (beats from neurokit2) and the sidecar says that the
class is unknown."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ecg_core.core.errors import ConfigError
from ecg_core.reports.synth_render import RenderOptions, render_report
from ecg_core.reports.synth_spec import Signals12, SynthSpec

FS = 500.0


def as_signals12(signals: np.ndarray, fs: float) -> Signals12:
    """(12, n) mV at ``fs`` -> a 10 s :class:`Signals12` at 500 Hz (baseline removed with neurokit2's cleaning
    high-pass, so that wander does not push a trace into its neighbours)."""
    import neurokit2 as nk
    from scipy.signal import resample_poly

    sig = np.nan_to_num(np.asarray(signals, dtype=np.float64))
    if sig.ndim != 2 or sig.shape[0] != 12:
        raise ConfigError(f"signals must have shape (12, n); received {sig.shape}")
    if sig.shape[1] < 10 * fs:
        raise ConfigError(f"the record must be at least 10 s long; it has {sig.shape[1] / fs:.1f} s")
    sig = sig[:, : int(round(10 * fs))]
    if abs(fs - FS) > 1e-6:
        from fractions import Fraction

        fr = Fraction(FS / fs).limit_denominator(1000)
        sig = resample_poly(sig, fr.numerator, fr.denominator, axis=1)
    sig = sig[:, : int(10 * FS)]
    if sig.shape[1] < int(10 * FS):
        sig = np.pad(sig, ((0, 0), (0, int(10 * FS) - sig.shape[1])), mode="edge")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sig = np.stack([nk.signal_filter(x, sampling_rate=int(FS), lowcut=0.5, method="butterworth", order=2)
                        for x in sig])
        _, info = nk.ecg_peaks(nk.ecg_clean(sig[1], sampling_rate=int(FS)), sampling_rate=int(FS))
    r = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    none = np.full(len(r), -1, dtype=np.int64)
    hr = float(np.clip(60.0 * FS / np.mean(np.diff(r)), 60, 100)) if len(r) > 1 else 75.0
    spec = SynthSpec("normal", heart_rate=hr, seed=0, axis_deg=0.0, subtype=None)
    return Signals12(fs=FS, data=sig, spec=spec, r_peaks=r, beat_types=("N",) * len(r), qrs_onsets=none.copy(),
                     j_points=none.copy(), t_ends=none.copy(), p_onsets=none.copy(), p_offsets=none.copy(),
                     rhythm="unknown", pathology_leads=())


def render_record(signals: np.ndarray, fs: float, options: RenderOptions | None = None, *, seed: int = 0
                  ) -> tuple[np.ndarray, dict[str, Any], Signals12]:
    """(RGB image, sidecar, the Signals12 printed) of a real recording; the sidecar's class fields are None and
    its heart rate is the record's."""
    s12 = as_signals12(signals, fs)
    image, sidecar = render_report(s12, options, seed=seed)
    for k in ("class_key", "class_id", "class_name", "subtype", "territory", "axis_deg"):
        sidecar[k] = None
    sidecar["generator"] = "ecg_core.reports.reading.render"
    if len(s12.r_peaks) > 1:
        sidecar["heart_rate_bpm"] = round(float(60.0 * FS / np.mean(np.diff(s12.r_peaks))), 1)
    return image, sidecar, s12
