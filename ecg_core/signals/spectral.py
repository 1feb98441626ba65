"""Signal segments -> 2-D images: STFT spectrogram, CWT scalogram, waveform plot.

Units: sampling rates in Hz, frequencies in Hz, times in seconds relative to the *start of the segment*,
amplitudes in mV. Images are uint8, shape (h, w) in grayscale or (h, w, 3) RGB with a colormap.

Image axes (the contract Grad-CAM relies on):

* column ``j`` is time ``SpectralImage.times[j]`` = ``(j + 0.5) * duration / w`` s after the segment start;
* row ``i`` is frequency ``SpectralImage.freqs[i]`` Hz with **row 0 = the highest frequency** (``fmax``, image
  top) and the last row = ``fmin``, linearly or logarithmically spaced (``freq_scale``), as a spectrogram is drawn;
* for ``method='waveform'`` ``freqs`` is ``None`` and row ``i`` is amplitude ``SpectralImage.amplitudes[i]`` mV
  (row 0 = highest amplitude).

The segment start in the record is ``segment.time_s - seg_cfg.pre_s`` (see :mod:`ecg_core.signals.segments`), so an
image column maps to record time ``segment.time_s - pre_s + times[j]``.

* ``'stft'``: power of ``scipy.signal.ShortTimeFFT`` (``window`` of ``nperseg`` samples, hop
  ``nperseg - noverlap``, FFT length ``nfft``), bilinearly interpolated onto the (freqs, times) grid.
* ``'cwt'``: ``pywt.cwt`` at exactly the row frequencies (scales from ``pywt.frequency2scale``), power
  ``|W|^2 / scale`` (scale-normalised so that a sine peaks at its own frequency), columns interpolated in time.
* ``'waveform'``: the samples drawn as an anti-aliased polyline (``cv2.polylines``), white on black.

Intensity: ``10*log10(power)`` clipped to the top ``dynamic_range_db`` dB of each image when ``log_scale``, else
power divided by the image maximum; then 0..255. Normalisation is per image (absolute level is not kept).

The dataset of such images (folder per class, record-level splits) is built by
:mod:`ecg_core.signals.spectral_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ecg_core.core.config import FrozenConfig
from ecg_core.core.errors import ConfigError
from ecg_core.signals.filters import resample

#: OpenCV colormaps by name (``None`` = grayscale); the keys are the valid ``SpectralConfig.colormap`` values.
COLORMAPS: dict[str, str] = {
    "viridis": "COLORMAP_VIRIDIS",
    "magma": "COLORMAP_MAGMA",
    "inferno": "COLORMAP_INFERNO",
    "plasma": "COLORMAP_PLASMA",
    "jet": "COLORMAP_JET",
    "turbo": "COLORMAP_TURBO",
    "hot": "COLORMAP_HOT",
    "bone": "COLORMAP_BONE",
}
METHODS: tuple[str, ...] = ("stft", "cwt", "waveform")


@dataclass(frozen=True)
class SpectralConfig(FrozenConfig):
    """How one segment becomes an image.

    method: ``'stft'``, ``'cwt'`` or ``'waveform'``.
    fs_target: resample the input to this rate (Hz) first; ``None`` keeps the input rate.
    size: image (h, w) in pixels.
    fmin, fmax: frequency range of the rows, Hz (``fmax`` must stay below the Nyquist frequency).
    freq_scale: ``'linear'`` or ``'log'`` spacing of the row frequencies.
    nperseg, noverlap, nfft, window: STFT window length, overlap and FFT length in samples, scipy window name.
    wavelet: continuous wavelet for CWT (``'cmor1.5-1.0'`` complex Morlet, ``'morl'`` real Morlet, any
        ``pywt.ContinuousWavelet`` name).
    log_scale, dynamic_range_db: dB intensity clipped to the top ``dynamic_range_db`` dB, or linear power.
    colormap: ``None`` for grayscale (h, w), or a :data:`COLORMAPS` name for RGB (h, w, 3).
    line_thickness, amplitude_range_mv: waveform drawing; ``amplitude_range_mv=None`` fits the segment's min..max,
        a number fixes the rows to ``-range..+range`` mV (keeps absolute amplitude).

    ``to_dict`` / ``from_dict`` / ``config_hash`` (sha1 of the sorted JSON) come from
    :class:`~ecg_core.core.config.FrozenConfig`.
    """

    method: Literal["stft", "cwt", "waveform"] = "stft"
    fs_target: float | None = None
    size: tuple[int, int] = (128, 128)
    fmin: float = 1.0
    fmax: float = 40.0
    freq_scale: Literal["linear", "log"] = "linear"
    nperseg: int = 64
    noverlap: int = 56
    nfft: int = 256
    window: str = "hann"
    wavelet: str = "cmor1.5-1.0"
    log_scale: bool = True
    dynamic_range_db: float = 60.0
    colormap: str | None = None
    line_thickness: int = 1
    amplitude_range_mv: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        if self.method not in METHODS:
            raise ConfigError(
                f"SpectralConfig.method={self.method!r}; expected one of {', '.join(map(repr, METHODS))}."
            )
        if len(self.size) != 2 or not all(8 <= v <= 2048 for v in self.size):
            raise ConfigError(f"SpectralConfig.size={self.size!r}; expected (h, w) with 8 <= h, w <= 2048 pixels.")
        if self.fs_target is not None and not (np.isfinite(self.fs_target) and self.fs_target > 0):
            raise ConfigError(f"SpectralConfig.fs_target={self.fs_target!r}; expected None or a positive rate in Hz.")
        if not 0 < self.fmin < self.fmax:
            raise ConfigError(
                f"SpectralConfig: expected 0 < fmin < fmax (Hz), received fmin={self.fmin}, fmax={self.fmax}."
            )
        if self.fs_target is not None and self.fmax >= self.fs_target / 2:
            raise ConfigError(
                f"SpectralConfig.fmax={self.fmax} Hz must be below fs_target/2={self.fs_target / 2:g} Hz."
            )
        if self.freq_scale not in ("linear", "log"):
            raise ConfigError(f"SpectralConfig.freq_scale={self.freq_scale!r}; expected 'linear' or 'log'.")
        if not 4 <= self.nperseg <= self.nfft:
            raise ConfigError(
                f"SpectralConfig: expected 4 <= nperseg <= nfft samples, received nperseg={self.nperseg}, "
                f"nfft={self.nfft}."
            )
        if not 0 <= self.noverlap < self.nperseg:
            raise ConfigError(
                f"SpectralConfig.noverlap={self.noverlap}; expected 0 <= noverlap < nperseg={self.nperseg}."
            )
        if self.method == "stft":
            from scipy.signal import get_window

            try:
                get_window(self.window, self.nperseg)
            except ValueError as e:
                raise ConfigError(
                    f"SpectralConfig.window={self.window!r} is not a scipy window ({e}); use e.g. 'hann'."
                ) from e
        if self.method == "cwt":
            import pywt

            try:
                pywt.ContinuousWavelet(self.wavelet)
            except ValueError as e:
                raise ConfigError(
                    f"SpectralConfig.wavelet={self.wavelet!r} is not a continuous wavelet ({e}); use 'cmor1.5-1.0' "
                    "or 'morl' (see pywt.wavelist(kind='continuous'))."
                ) from e
        if not self.dynamic_range_db > 0:
            raise ConfigError(f"SpectralConfig.dynamic_range_db={self.dynamic_range_db}; expected > 0 dB.")
        if self.colormap is not None and self.colormap not in COLORMAPS:
            raise ConfigError(
                f"SpectralConfig.colormap={self.colormap!r}; expected None (grayscale) or one of "
                f"{', '.join(map(repr, COLORMAPS))}."
            )
        if not 1 <= self.line_thickness <= 8:
            raise ConfigError(f"SpectralConfig.line_thickness={self.line_thickness}; expected 1..8 pixels.")
        if self.amplitude_range_mv is not None and not self.amplitude_range_mv > 0:
            raise ConfigError(
                f"SpectralConfig.amplitude_range_mv={self.amplitude_range_mv}; expected None (autoscale) or > 0 mV."
            )

    @property
    def channels(self) -> int:
        """1 for grayscale images, 3 with a colormap (waveform images too, the line replicated)."""
        return 1 if self.colormap is None else 3


@dataclass(frozen=True, eq=False)
class SpectralImage:
    """An image and its axes.

    image: uint8 (h, w) or (h, w, 3); times: float64 (w,) s from the segment start (pixel centres);
    freqs: float64 (h,) Hz, row 0 = highest, or ``None`` for waveform images; amplitudes: float64 (h,) mV for
    waveform images (row 0 = highest), else ``None``; fs: rate of the analysed samples, Hz; method: the method.
    """

    image: np.ndarray
    times: np.ndarray
    freqs: np.ndarray | None
    amplitudes: np.ndarray | None
    fs: float
    method: str

    def row_of_freq(self, freq_hz: float) -> int:
        """Index of the row whose frequency is closest to ``freq_hz``."""
        if self.freqs is None:
            raise ConfigError("row_of_freq: a waveform image has no frequency axis; use amplitudes.")
        return int(np.argmin(np.abs(self.freqs - freq_hz)))

    def col_of_time(self, time_s: float) -> int:
        """Index of the column whose time (s from the segment start) is closest to ``time_s``."""
        return int(np.argmin(np.abs(self.times - time_s)))


@dataclass(frozen=True, eq=False)
class SpectralStack:
    """Images of many segments of equal length sharing one set of axes: ``images`` uint8 (n, h, w[, 3])."""

    images: np.ndarray
    times: np.ndarray
    freqs: np.ndarray | None
    amplitudes: np.ndarray | None
    fs: float
    method: str

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> SpectralImage:
        amps = self.amplitudes[i] if self.amplitudes is not None else None
        return SpectralImage(self.images[i], self.times, self.freqs, amps, self.fs, self.method)


# --------------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------------
def row_freqs(cfg: SpectralConfig) -> np.ndarray:
    """Row frequencies in Hz, float64 (h,), from ``fmax`` (row 0) down to ``fmin``."""
    h = cfg.size[0]
    if cfg.freq_scale == "log":
        return np.geomspace(cfg.fmax, cfg.fmin, h)
    return np.linspace(cfg.fmax, cfg.fmin, h)


def segment_to_image(x: np.ndarray, fs: float, *, cfg: SpectralConfig | None = None) -> SpectralImage:
    """Render one 1-D segment ``x`` (mV, sampled at ``fs`` Hz) as a :class:`SpectralImage` (see module docstring)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ConfigError(f"segment_to_image: x must be 1-D (samples,), received shape {arr.shape}.")
    return segments_to_images(arr[None, :], fs, cfg=cfg)[0]


def segments_to_images(X: np.ndarray, fs: float, *, cfg: SpectralConfig | None = None) -> SpectralStack:
    """Render segments ``X`` float (n, samples) in mV at ``fs`` Hz in one vectorised pass: a :class:`SpectralStack`."""
    cfg = cfg or SpectralConfig()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 8:
        raise ConfigError(f"segments_to_images: X must be (n, samples) with >= 8 samples, received shape {X.shape}.")
    if not np.isfinite(X).all():
        raise ConfigError("segments_to_images: X contains NaN or inf; clean the signal first (signals.clean).")
    if not (np.isfinite(fs) and fs > 0):
        raise ConfigError(f"segments_to_images: fs={fs!r}; expected the sampling rate in Hz (> 0).")
    if cfg.fs_target is not None and cfg.fs_target != fs:
        X = resample(X.T, fs, cfg.fs_target).T
        fs = float(cfg.fs_target)
    if cfg.method != "waveform" and cfg.fmax >= fs / 2:
        raise ConfigError(
            f"segments_to_images: fmax={cfg.fmax} Hz is not below the Nyquist frequency {fs / 2:g} Hz of fs={fs}; "
            "lower SpectralConfig.fmax or set fs_target."
        )
    h, w = cfg.size
    n_samples = X.shape[1]
    times = (np.arange(w) + 0.5) * (n_samples / fs) / w
    if cfg.method == "waveform":
        images, amps = _render_waveform(X, cfg)
        return SpectralStack(_colorize(images, cfg), times, None, amps, float(fs), cfg.method)
    freqs = row_freqs(cfg)
    power = _RENDERERS[cfg.method](X, fs, cfg, freqs, times)  # (n, h, w) float64 >= 0
    images = _to_uint8(power, cfg)
    return SpectralStack(_colorize(images, cfg), times, freqs, None, float(fs), cfg.method)


def _interp_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Linear-interpolation weights (len(dst), len(src)) from increasing ``src`` points to ``dst`` (clamped)."""
    d = np.clip(dst, src[0], src[-1])
    hi = np.clip(np.searchsorted(src, d, side="right"), 1, len(src) - 1)
    lo = hi - 1
    span = src[hi] - src[lo]
    frac = np.where(span > 0, (d - src[lo]) / np.where(span > 0, span, 1), 0.0)
    m = np.zeros((len(dst), len(src)))
    rows = np.arange(len(dst))
    m[rows, lo] += 1 - frac
    m[rows, hi] += frac
    return m


def _stft_power(X: np.ndarray, fs: float, cfg: SpectralConfig, freqs: np.ndarray, times: np.ndarray) -> np.ndarray:
    from scipy.signal import ShortTimeFFT, get_window

    n = X.shape[1]
    if cfg.nperseg > n:
        raise ConfigError(
            f"segments_to_images: nperseg={cfg.nperseg} samples is longer than the segment ({n} samples at {fs:g} "
            "Hz); lower SpectralConfig.nperseg."
        )
    hop = cfg.nperseg - cfg.noverlap
    sft = ShortTimeFFT(get_window(cfg.window, cfg.nperseg), hop, fs, mfft=cfg.nfft, scale_to="psd")
    spec = sft.spectrogram(X.astype(np.float32), axis=-1)  # (n_seg, n_freq, n_frames), frames p_min..p_max
    f = sft.f
    keep = slice(max(int(np.searchsorted(f, freqs.min())) - 1, 0), int(np.searchsorted(f, freqs.max())) + 1)
    wf = _interp_matrix(f[keep], freqs).astype(np.float32)  # (h, n_freq in band)
    wt = _interp_matrix(sft.t(n), times).astype(np.float32)  # (w, n_frames)
    return wf @ spec[:, keep, :] @ wt.T


def _cwt_power(X: np.ndarray, fs: float, cfg: SpectralConfig, freqs: np.ndarray, times: np.ndarray) -> np.ndarray:
    import pywt

    scales = pywt.frequency2scale(cfg.wavelet, freqs / fs)
    coef, _ = pywt.cwt(X.astype(np.float32), scales, cfg.wavelet, sampling_period=1.0 / fs, method="fft", axis=-1)
    power = np.square(coef.real) if not np.iscomplexobj(coef) else np.square(coef.real) + np.square(coef.imag)
    power /= scales.astype(np.float32)[:, None, None]  # (h, n_seg, samples), scale-normalised (Liu et al. 2007)
    t_samples = (np.arange(X.shape[1]) + 0.5) / fs
    wt = _interp_matrix(t_samples, times).astype(np.float32)  # (w, samples)
    h, n_seg, m = power.shape
    out = (power.reshape(h * n_seg, m) @ wt.T).reshape(h, n_seg, -1)
    return np.moveaxis(out, 0, 1)  # (n_seg, h, w)


_RENDERERS: dict[str, Callable[[np.ndarray, float, SpectralConfig, np.ndarray, np.ndarray], np.ndarray]] = {
    "stft": _stft_power,
    "cwt": _cwt_power,
}


def _to_uint8(power: np.ndarray, cfg: SpectralConfig) -> np.ndarray:
    p = np.maximum(power, 0.0, dtype=np.float32)
    peak = p.max(axis=(1, 2), keepdims=True)
    if cfg.log_scale:
        # dB relative to the image peak, clipped to [-dynamic_range_db, 0], mapped to 0..1 (in place, float32)
        np.maximum(p, np.maximum(peak, 1e-30) * np.float32(10 ** (-cfg.dynamic_range_db / 10)), out=p)
        np.divide(p, np.maximum(peak, 1e-30), out=p)
        np.log10(p, out=p)
        p *= np.float32(10.0 / cfg.dynamic_range_db)
        p += np.float32(1.0)
    else:
        np.divide(p, np.where(peak > 0, peak, 1.0), out=p)
    p *= np.float32(255.0)
    p[np.broadcast_to(peak <= 0, p.shape)] = 0.0  # a flat (all-zero) segment gives a black image
    return np.rint(np.clip(p, 0.0, 255.0, out=p)).astype(np.uint8)


def _render_waveform(X: np.ndarray, cfg: SpectralConfig) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = cfg.size
    n, m = X.shape
    if cfg.amplitude_range_mv is not None:
        top = np.full(n, cfg.amplitude_range_mv)
        bottom = -top
    else:
        lo, hi = X.min(axis=1), X.max(axis=1)
        pad = np.maximum(0.05 * (hi - lo), 1e-3)
        top, bottom = hi + pad, lo - pad
    amps = np.linspace(top, bottom, h).T  # (n, h): row i <-> amplitude amps[k, i]
    images = np.zeros((n, h, w), dtype=np.uint8)
    xs = (np.arange(m) + 0.5) * w / m - 0.5  # sample centres -> pixel columns
    shift = 4  # sub-pixel precision for polylines (coordinates * 2**shift)
    for k in range(n):
        ys = (top[k] - X[k]) / (top[k] - bottom[k]) * (h - 1)
        pts = np.rint(np.column_stack([xs, np.clip(ys, 0, h - 1)]) * (1 << shift)).astype(np.int32)
        cv2.polylines(images[k], [pts], False, 255, cfg.line_thickness, cv2.LINE_AA, shift)
    return images, amps


def _colorize(images: np.ndarray, cfg: SpectralConfig) -> np.ndarray:
    if cfg.colormap is None:
        return images
    import cv2

    if cfg.method == "waveform":
        return np.repeat(images[..., None], 3, axis=-1)
    code = getattr(cv2, COLORMAPS[cfg.colormap])
    out = np.empty(images.shape + (3,), dtype=np.uint8)
    for k in range(images.shape[0]):
        out[k] = cv2.cvtColor(cv2.applyColorMap(images[k], code), cv2.COLOR_BGR2RGB)
    return out


__all__ = [
    "COLORMAPS",
    "METHODS",
    "SpectralConfig",
    "SpectralImage",
    "SpectralStack",
    "row_freqs",
    "segment_to_image",
    "segments_to_images",
]
