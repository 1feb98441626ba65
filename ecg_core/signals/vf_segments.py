"""Ventricular fibrillation as a rhythm: classic VF features of 4 s windows, and which windows lie inside VF.

VF is not a beat: it is detected on windows of the limb lead (:data:`VF_WINDOW_S` s at
:data:`~ecg_core.signals.beat_features.FEATURE_FS`, band-passed 0.5-40 Hz) with the features of the VF-detection
literature (Amann 2005, Figuera 2016), all computed per window without labels:

* ``vf_tcsc``: threshold-crossing sample count (fraction of samples with ``|x| > 0.2 max|x|``, Arafat 2009);
* ``vf_leak``: VF-filter leakage (Kuo & Dillman 1978): a sine at the signal's mean frequency leaks little;
* ``vf_fdom`` (Hz), ``vf_band`` (power fraction in 2.5-7.5 Hz), ``vf_conc`` (fraction within +-1 Hz of the
  dominant frequency), ``vf_hf`` (fraction above 12 Hz), ``vf_sent`` (normalised spectral entropy);
* ``vf_kurt`` (kurtosis: QRS complexes are peaky, VF is sine-like), ``vf_zcr`` (zero crossings per s),
  ``vf_lz`` (normalised Lempel-Ziv (1978) phrase count of the median-binarised window), ``vf_acf`` (highest
  autocorrelation at lags 0.25-2 s: a regular rhythm repeats), ``vf_std_rec`` (window standard deviation divided
  by the record median).

:func:`vf_mask` says which windows lie inside annotated VF/VFL episodes (the labels of training only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecg_core.signals.beat_features import FEATURE_FS
from ecg_core.signals.records import Record
from ecg_core.signals.segments import rhythm_episodes

VF_WINDOW_S = 4.0
VF_RHYTHMS = frozenset({"VF", "VFL", "VFIB"})
VF_FEATURES: tuple[str, ...] = ("vf_tcsc", "vf_leak", "vf_fdom", "vf_band", "vf_conc", "vf_hf", "vf_sent",
                                "vf_kurt", "vf_zcr", "vf_lz", "vf_acf", "vf_std_rec")


def window_matrix(x: np.ndarray, centers: np.ndarray, *, fs: float = FEATURE_FS,
                  win_s: float = VF_WINDOW_S) -> np.ndarray:
    """Windows of ``win_s`` centred on ``centers`` (sample indices at ``fs``), edge-padded: (k, win) float64."""
    half = int(round(win_s * fs / 2))
    xp = np.pad(np.asarray(x, dtype=np.float64), (half, half), mode="edge")
    idx = np.asarray(centers, dtype=np.int64)[:, None] + np.arange(2 * half)[None, :]
    return xp[np.clip(idx, 0, xp.size - 1)]


def _lz_complexity(bits: np.ndarray) -> float:
    """Lempel-Ziv (1978) phrase count of a 0/1 sequence, normalised by n / log2 n."""
    s = np.asarray(bits, dtype=np.uint8).tobytes()
    n = len(s)
    if n < 2:
        return 0.0
    seen: set[bytes] = set()
    i, c = 0, 0
    while i < n:
        j = i + 1
        while j <= n and s[i:j] in seen:
            j += 1
        seen.add(s[i:j])
        c += 1
        i = j
    return c * np.log2(n) / n


def window_features(w: np.ndarray, *, fs: float = FEATURE_FS, record_std: float | None = None) -> pd.DataFrame:
    """:data:`VF_FEATURES` of each row of ``w`` (windows in mV at ``fs``)."""
    w = np.asarray(w, dtype=np.float64)
    k, n = w.shape
    out = {c: np.full(k, np.nan) for c in VF_FEATURES}
    if k == 0 or n < 16:
        return pd.DataFrame(out)
    x = w - w.mean(axis=1, keepdims=True)
    amax = np.abs(x).max(axis=1) + 1e-12
    out["vf_tcsc"] = (np.abs(x) > 0.2 * amax[:, None]).mean(axis=1)
    # VF-filter leakage
    s1 = np.abs(x).sum(axis=1)
    s2 = np.abs(np.diff(x, axis=1)).sum(axis=1) + 1e-12
    half = np.clip(np.rint(np.pi * s1 / s2).astype(np.int64), 1, n // 2)
    leak = np.empty(k)
    for h in np.unique(half):
        rows = half == h
        a, b = x[rows, h:], x[rows, :-h]
        leak[rows] = np.abs(a + b).sum(axis=1) / (np.abs(a).sum(axis=1) + np.abs(b).sum(axis=1) + 1e-12)
    out["vf_leak"] = leak
    # spectrum (Hann window)
    spec = np.abs(np.fft.rfft(x * np.hanning(n)[None, :], axis=1)) ** 2
    f = np.fft.rfftfreq(n, 1.0 / fs)
    band = (f >= 0.5) & (f <= 40.0)
    p = spec[:, band]
    fb = f[band]
    tot = p.sum(axis=1) + 1e-18
    dom = fb[np.argmax(p, axis=1)]
    out["vf_fdom"] = dom
    out["vf_band"] = p[:, (fb >= 2.5) & (fb <= 7.5)].sum(axis=1) / tot
    out["vf_conc"] = (p * (np.abs(fb[None, :] - dom[:, None]) <= 1.0)).sum(axis=1) / tot
    out["vf_hf"] = p[:, fb > 12.0].sum(axis=1) / tot
    q = p / tot[:, None]
    out["vf_sent"] = -(q * np.log(q + 1e-18)).sum(axis=1) / np.log(q.shape[1])
    sd = x.std(axis=1) + 1e-12
    out["vf_kurt"] = ((x / sd[:, None]) ** 4).mean(axis=1)
    out["vf_zcr"] = (np.diff(np.signbit(x), axis=1)).sum(axis=1) / (n / fs)
    med = np.median(x, axis=1, keepdims=True)
    out["vf_lz"] = np.array([_lz_complexity(r) for r in (x > med)])
    # autocorrelation (via FFT) at lags 0.25-2 s
    m = 1 << int(np.ceil(np.log2(2 * n)))
    fx = np.fft.rfft(x, m, axis=1)
    ac = np.fft.irfft(fx * np.conj(fx), m, axis=1)[:, :n]
    ac = ac / (ac[:, :1] + 1e-12)
    lo, hi = int(0.25 * fs), min(int(2.0 * fs), n - 1)
    out["vf_acf"] = ac[:, lo:hi].max(axis=1)
    rs = float(record_std) if record_std else float(np.median(sd))
    out["vf_std_rec"] = sd / (rs + 1e-12)
    return pd.DataFrame(out)


def record_std(x: np.ndarray, *, fs: float = FEATURE_FS, win_s: float = VF_WINDOW_S) -> float:
    """Median standard deviation of consecutive ``win_s`` windows of ``x``: the record's usual amplitude."""
    n = int(win_s * fs)
    k = max(1, x.size // n)
    return float(np.median(np.asarray(x[: k * n]).reshape(k, -1).std(axis=1)))


def vf_mask(record: Record, centers_s: np.ndarray, *, win_s: float = VF_WINDOW_S) -> np.ndarray:
    """Fraction (0..1) of each window (centred at ``centers_s``, s) that lies inside an annotated VF/VFL episode."""
    eps = rhythm_episodes(record)
    c = np.asarray(centers_s, dtype=np.float64)
    a, b = c - win_s / 2, c + win_s / 2
    inside = np.zeros(c.size)
    for ep in eps.itertuples(index=False):
        if str(ep.rhythm).upper() in VF_RHYTHMS:
            inside += np.clip(np.minimum(b, ep.end_s) - np.maximum(a, ep.start_s), 0, None)
    return np.clip(inside / win_s, 0.0, 1.0)


__all__ = ["VF_FEATURES", "VF_RHYTHMS", "VF_WINDOW_S", "record_std", "vf_mask", "window_features", "window_matrix"]
