"""Grad-CAM of a spectral-image classifier, mapped back to time (which part of the beat) and frequency.

:class:`SpectralGradcam` computes the map with the project's Grad-CAM (:class:`ecg_core.xai.explainer.Explainer`,
method ``'gradcam'``; Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization"), the same code path as the report images' explanations. :func:`map_cam` puts a map on a
:class:`~ecg_core.signals.spectral.SpectralImage`'s axes: columns through ``SpectralImage.times`` (seconds), rows
through ``SpectralImage.freqs`` (hertz) or ``amplitudes`` (mV), and sums it per part of the beat
(:data:`BEAT_REGIONS`) and per frequency band (:data:`FREQ_BANDS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecg_core.core.errors import ConfigError
from ecg_core.signals.spectral import SpectralImage

#: Parts of a beat, as (name, start, end) in seconds from the R peak, for the Grad-CAM summary. Typical adult
#: values: P wave and PR segment before the QRS, QRS within about +-60 ms of the R peak, ST segment and T wave after.
BEAT_REGIONS: tuple[tuple[str, float, float], ...] = (
    ("P wave / PR (before the QRS)", -math.inf, -0.06),
    ("QRS complex", -0.06, 0.06),
    ("ST segment / T wave (after the QRS)", 0.06, math.inf),
)
#: Frequency bands, as (name, low, high) in Hz, for the Grad-CAM summary.
FREQ_BANDS: tuple[tuple[str, float, float], ...] = (
    ("< 5 Hz (P and T waves, slow VF)", 0.0, 5.0),
    ("5-15 Hz (main QRS energy)", 5.0, 15.0),
    ("> 15 Hz (sharp QRS edges, noise)", 15.0, math.inf),
)


class SpectralGradcam:
    """Grad-CAM (Selvaraju et al., 2017) of a spectral-image classifier: the project's Grad-CAM,
    :class:`ecg_core.xai.explainer.Explainer` with method ``'gradcam'``.

    Build once per model (the explainer clones the model with a linear output instead of the softmax); call per
    image. The feature map is ``penultimate_layer`` (default :func:`ecg_core.ml.zoo.last_conv_layer_name`).
    """

    def __init__(self, model: Any, *, penultimate_layer: str | None = None) -> None:
        from ecg_core.xai.explainer import Explainer

        self.explainer = Explainer(model, layer=penultimate_layer)
        self.model = model
        self.layer = self.explainer.layer

    def __call__(self, x: np.ndarray, *, class_index: int) -> np.ndarray:
        """Grad-CAM of class ``class_index`` for one model input ``x`` float32 (h, w, c) in [0, 1]: float32 (h, w)
        in [0, 1] (each map normalised to its min..max; an all-zero map stays zero and warns)."""
        n_out = self.explainer.n_classes
        if not 0 <= int(class_index) < n_out:
            raise ConfigError(
                f"SpectralGradcam: class_index={class_index}; the model has {n_out} classes (0..{n_out - 1})."
            )
        return self.explainer.explain(x, method="gradcam", class_index=int(class_index))


@dataclass(frozen=True, eq=False)
class CamMapping:
    """A Grad-CAM map on a spectral image's grid, in time and frequency.

    cam: float (h, w) in [0, 1], row 0 = highest frequency (as the image); times_rel_s: (w,) column centres in s
    from the anchor (R peak); record_times_s: (w,) the same in s from the record start; row_values: (h,) Hz (or mV
    for waveform images), ``row_unit`` says which; time_profile: (w,) mean of ``cam`` over rows, scaled to max 1;
    row_profile: (h,) mean over columns, scaled to max 1; regions / bands: share (0..1) of the map's total mass per
    part of the beat (:data:`BEAT_REGIONS`, beats only) and per frequency band (:data:`FREQ_BANDS`); beat: False
    for rhythm windows, whose time 0 is the window anchor, not an R peak.
    """

    cam: np.ndarray
    times_rel_s: np.ndarray
    record_times_s: np.ndarray
    row_values: np.ndarray
    row_unit: str
    time_profile: np.ndarray
    row_profile: np.ndarray
    peak_time_rel_s: float
    peak_row_value: float
    regions: dict[str, float]
    bands: dict[str, float]
    beat: bool = True

    @property
    def anchor(self) -> str:
        """What time 0 is: the R peak of a beat, or the anchor of a rhythm window (its start + ``pre_s``)."""
        return "R peak" if self.beat else "window anchor"

    @property
    def is_flat(self) -> bool:
        return float(self.cam.max(initial=0.0)) <= 0.0

    def summary(self) -> str:
        """One plain-language sentence: where in the beat and in which frequencies the map is strongest."""
        if self.is_flat:
            return "The Grad-CAM map is flat: the class score does not change with any region of this image."
        where = f"around {self.peak_time_rel_s * 1000:+.0f} ms from the {self.anchor}"
        if self.regions:
            name, share = max(self.regions.items(), key=lambda kv: kv[1])
            where += f" — {share:.0%} of the map lies in the {name.split(' (')[0]}"
        what = f"{self.peak_row_value:.1f} {self.row_unit}"
        if self.bands:
            band, bshare = max(self.bands.items(), key=lambda kv: kv[1])
            what += f" ({bshare:.0%} of the map in {band.split(' (')[0]})"
        return f"The model's evidence is strongest {where}, at {what}."


def map_cam(
    cam: np.ndarray,
    image: SpectralImage,
    *,
    pre_s: float,
    anchor_time_s: float = 0.0,
    beat: bool = True,
) -> CamMapping:
    """Map a Grad-CAM map onto the time and frequency axes of ``image``.

    ``cam`` float (H, W) at the model-input size; it is resized (bilinear) to the image's (h, w) when they differ —
    spectral runs resize without cropping, so the grids coincide. Column ``j`` -> ``image.times[j] - pre_s`` s
    from the anchor and ``anchor_time_s - pre_s + image.times[j]`` s in the record; row ``i`` -> ``image.freqs[i]``
    Hz (``image.amplitudes[i]`` mV for waveform images). ``beat=False`` (rhythm windows, whose anchor is no R peak)
    leaves ``regions`` empty.
    """
    c = np.asarray(cam, dtype=np.float64)
    if c.ndim == 3 and c.shape[-1] == 1:
        c = c[..., 0]
    if c.ndim != 2:
        raise ConfigError(f"map_cam: cam must be 2-D (h, w), received shape {c.shape}.")
    h, w = image.image.shape[:2]
    if c.shape != (h, w):
        import cv2

        c = cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR)
    c = np.clip(np.nan_to_num(c, nan=0.0), 0.0, None)
    if image.freqs is not None:
        rows, unit = np.asarray(image.freqs, dtype=np.float64), "Hz"
    elif image.amplitudes is not None:
        rows, unit = np.asarray(image.amplitudes, dtype=np.float64), "mV"
    else:
        raise ConfigError("map_cam: the image has neither a frequency nor an amplitude axis.")
    times_rel = np.asarray(image.times, dtype=np.float64) - float(pre_s)
    t_prof, r_prof = c.mean(axis=0), c.mean(axis=1)
    total = float(c.sum())

    def _scaled(v: np.ndarray) -> np.ndarray:
        m = float(v.max(initial=0.0))
        return v / m if m > 0 else np.zeros_like(v)

    regions: dict[str, float] = {}
    if beat:
        col_mass = c.sum(axis=0)
        for name, lo, hi in BEAT_REGIONS:
            sel = (times_rel >= lo) & (times_rel < hi)
            regions[name] = float(col_mass[sel].sum() / total) if total > 0 else 0.0
    bands: dict[str, float] = {}
    if unit == "Hz":
        row_mass = c.sum(axis=1)
        for name, lo, hi in FREQ_BANDS:
            sel = (rows >= lo) & (rows < hi)
            bands[name] = float(row_mass[sel].sum() / total) if total > 0 else 0.0
    return CamMapping(
        cam=c,
        times_rel_s=times_rel,
        record_times_s=float(anchor_time_s) + times_rel,
        row_values=rows,
        row_unit=unit,
        time_profile=_scaled(t_prof),
        row_profile=_scaled(r_prof),
        peak_time_rel_s=float(times_rel[int(np.argmax(t_prof))]),
        peak_row_value=float(rows[int(np.argmax(r_prof))]),
        regions=regions,
        bands=bands,
        beat=bool(beat),
    )



__all__ = [
    "BEAT_REGIONS",
    "FREQ_BANDS",
    "CamMapping",
    "SpectralGradcam",
    "map_cam",
]
