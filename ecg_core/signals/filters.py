"""Signal filters: resampling (``scipy.signal.resample_poly``), cleaning (Butterworth band-pass / high-pass with
``scipy.signal.sosfiltfilt`` or ``neurokit2.ecg_clean``) and R-peak detection (``neurokit2.ecg_peaks``).

Signals are float arrays in mV along axis 0, sampling rates in Hz.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from ecg_core.core.errors import ConfigError
from ecg_core.signals.records import _check_positive, _fill_nan


def resample(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample along axis 0 from ``fs_in`` to ``fs_out`` Hz with ``scipy.signal.resample_poly`` (polyphase FIR,
    anti-aliased). The up/down ratio is the closest fraction with a denominator <= 1000. Returns float64."""
    from scipy.signal import resample_poly

    _check_positive("fs_in", fs_in)
    _check_positive("fs_out", fs_out)
    x = np.asarray(signal, dtype=np.float64)
    if fs_in == fs_out:
        return x.copy()
    ratio = Fraction(float(fs_out) / float(fs_in)).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=0)


def resample_index(sample: np.ndarray | int, fs_in: float, fs_out: float) -> np.ndarray:
    """Map sample indices at ``fs_in`` to the nearest indices at ``fs_out`` (int64)."""
    return np.rint(np.asarray(sample, dtype=np.float64) * (float(fs_out) / float(fs_in))).astype(np.int64)


def _clean_bandpass(x: np.ndarray, fs: float, lowcut: float, highcut: float, order: int) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(order, [lowcut, highcut], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, x, axis=0, padlen=min(3 * (2 * len(sos) + 1), x.shape[0] - 1))


def _clean_highpass(x: np.ndarray, fs: float, lowcut: float, highcut: float, order: int) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(order, lowcut, btype="highpass", fs=fs, output="sos")
    return sosfiltfilt(sos, x, axis=0, padlen=min(3 * (2 * len(sos) + 1), x.shape[0] - 1))


def _clean_neurokit(x: np.ndarray, fs: float, lowcut: float, highcut: float, order: int) -> np.ndarray:
    try:
        import neurokit2 as nk
    except ImportError as e:  # pragma: no cover - listed in requirements.txt
        raise ConfigError("clean(method='neurokit') needs neurokit2: pip install neurokit2") from e
    cols = x.reshape(x.shape[0], -1)
    out = np.column_stack([nk.ecg_clean(cols[:, j], sampling_rate=int(round(fs)), method="neurokit") for j in
                           range(cols.shape[1])])
    return out.reshape(x.shape)


#: Cleaning methods: name -> implementation ``(x, fs, lowcut, highcut, order) -> x``; also the error message.
CLEAN_METHODS: dict[str, Callable[[np.ndarray, float, float, float, int], np.ndarray]] = {
    "bandpass": _clean_bandpass,  # Butterworth band-pass lowcut..highcut Hz, zero phase (sosfiltfilt)
    "highpass": _clean_highpass,  # baseline-wander removal only: Butterworth high-pass at lowcut Hz, zero phase
    "neurokit": _clean_neurokit,  # neurokit2.ecg_clean(method='neurokit'): 0.5 Hz high-pass + 50 Hz powerline
}


def clean(
    signal: np.ndarray,
    fs: float,
    *,
    method: str = "bandpass",
    lowcut: float = 0.5,
    highcut: float = 40.0,
    order: int = 3,
) -> np.ndarray:
    """Remove baseline wander and high-frequency noise along axis 0; returns float64 mV of the same shape.

    ``method``: ``'bandpass'`` (Butterworth ``order``, ``lowcut``-``highcut`` Hz, zero phase), ``'highpass'``
    (baseline removal at ``lowcut`` Hz only) or ``'neurokit'`` (``neurokit2.ecg_clean``; ignores the cut-offs).
    """
    if method not in CLEAN_METHODS:
        raise ConfigError(f"clean: method={method!r}; expected one of {', '.join(map(repr, CLEAN_METHODS))}.")
    _check_positive("fs", fs)
    if not 0 < lowcut < highcut:
        raise ConfigError(f"clean: expected 0 < lowcut < highcut, received lowcut={lowcut}, highcut={highcut} Hz.")
    if method == "bandpass" and highcut >= fs / 2:
        raise ConfigError(
            f"clean: highcut={highcut} Hz must be below the Nyquist frequency fs/2={fs / 2:g} Hz; lower highcut or "
            "use method='highpass'."
        )
    x = np.asarray(signal, dtype=np.float64)
    if x.shape[0] < 8:
        raise ConfigError(f"clean: the signal has {x.shape[0]} samples; expected at least 8.")
    x = _fill_nan(x.copy(), what="clean")
    return CLEAN_METHODS[method](x, float(fs), float(lowcut), float(highcut), int(order))


def detect_rpeaks(signal: np.ndarray, fs: float, *, method: str = "neurokit") -> np.ndarray:
    """R-peak sample indices (int64, at ``fs``) of a 1-D signal in mV, found by ``neurokit2.ecg_peaks``.

    ``method`` is any ``neurokit2.ecg_peaks`` method (``'neurokit'``, ``'pantompkins1985'``, ``'hamilton2002'``,
    ...). The signal is cleaned by ``neurokit2.ecg_clean`` first. A failed detection warns and returns no peaks.
    """
    import neurokit2 as nk

    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise ConfigError(f"detect_rpeaks: expected a 1-D signal, received shape {x.shape}; pick one channel.")
    rate = int(round(fs))
    try:
        cleaned = nk.ecg_clean(x, sampling_rate=rate, method="neurokit")
        _, info = nk.ecg_peaks(cleaned, sampling_rate=rate, method=method)
    except Exception as e:  # neurokit raises plain ValueErrors/IndexErrors on flat or too short signals
        warnings.warn(f"detect_rpeaks: no R peaks found ({type(e).__name__}: {e}).", UserWarning, stacklevel=2)
        return np.zeros(0, dtype=np.int64)
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)



__all__ = [
    "CLEAN_METHODS",
    "clean",
    "detect_rpeaks",
    "resample",
    "resample_index",
]
