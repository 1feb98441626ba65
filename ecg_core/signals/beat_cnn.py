"""The 1-D beat CNN (issue 17, model 4c): the per-record-normalised beat window of both leads + the RR context.

* :func:`beat_windows`: for each R peak (at :data:`~ecg_core.signals.beat_features.FEATURE_FS`) the window
  -0.256..+0.448 s (176 samples) of the limb lead and of V1 (zeros when the record has no V1), each divided by its
  record's median QRS peak-to-peak amplitude and centred on the record's median level: (n, 176, 2) float32;
* :data:`CNN_RR_FEATURES` / :func:`rr_matrix`: the second input, RR ratios to the record / local rhythm (no
  absolute interval: a record-wide rate names the patient), log-transformed and clipped, plus a "has V1" flag;
* :func:`build_beat_cnn`: a small flat functional Keras graph (three Conv1D blocks -> global average pooling,
  concatenated with a Dense embedding of the RR input -> softmax over the beat classes); standard layers only, so
  that the ``.keras`` file loads in safe mode;
* :func:`build_spectral_rr_cnn`: the same idea on the seed's spectral image of the beat (issue 17, item 4a): three
  Conv2D blocks over the (64, 64, 1) STFT image, flattened at 4 x 4 (time and frequency position kept), concatenated
  with the Dense embedding of the same RR input -> softmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ecg_core.signals.beat_features import FEATURE_FS, PreparedRecord

PRE_S, POST_S = 0.256, 0.448
CNN_RR_FEATURES: tuple[str, ...] = ("pre_rr_rec", "post_rr_rec", "local_rr_rec", "pre_local", "post_pre",
                                    "pre_local_med", "post_local", "local_cv")


def _lead_windows(x: np.ndarray, peaks: np.ndarray, pre: int, post: int) -> np.ndarray:
    xp = np.pad(np.asarray(x, dtype=np.float64), (pre, post), mode="edge")
    w = xp[np.asarray(peaks, dtype=np.int64)[:, None] + np.arange(pre + post)[None, :]]
    if len(w) == 0:
        return w
    c = round(0.06 * FEATURE_FS)
    q = w[:, pre - c: pre + c]
    amp = float(np.median(q.max(axis=1) - q.min(axis=1))) or 1.0
    return (w - float(np.median(w))) / amp


def beat_windows(prep: PreparedRecord, peaks: np.ndarray) -> np.ndarray:
    """(n, 176, 2) float32 windows of the limb lead and V1 around ``peaks`` (see the module)."""
    pre, post = round(PRE_S * FEATURE_FS), round(POST_S * FEATURE_FS)
    peaks = np.clip(np.asarray(peaks, dtype=np.int64), 0, max(prep.n - 1, 0))
    ml = _lead_windows(prep.ml, peaks, pre, post)
    v1 = _lead_windows(prep.v1, peaks, pre, post) if prep.v1 is not None else np.zeros_like(ml)
    return np.clip(np.stack([ml, v1], axis=-1), -8.0, 8.0).astype(np.float32)


def rr_matrix(rows: pd.DataFrame) -> np.ndarray:
    """(n, len(CNN_RR_FEATURES) + 1) float32: log of the RR ratios (clipped to +-2; ``local_cv`` as is, clipped to
    0..2; missing -> 0) and a last column 1.0 when the row has V1 features (``v1_term`` finite)."""
    cols = []
    for f in CNN_RR_FEATURES:
        v = rows[f].to_numpy(dtype=np.float64) if f in rows else np.full(len(rows), np.nan)
        v = np.clip(v, 0.0, 2.0) if f == "local_cv" else np.clip(np.log(np.clip(v, 1e-3, None)), -2.0, 2.0)
        cols.append(np.nan_to_num(v, nan=0.0))
    has_v1 = np.isfinite(rows["v1_term"].to_numpy(dtype=np.float64)) if "v1_term" in rows else np.zeros(len(rows))
    cols.append(has_v1.astype(np.float64))
    return np.column_stack(cols).astype(np.float32)


def build_beat_cnn(n_classes: int, *, n_samples: int = 176, n_leads: int = 2, n_rr: int = len(CNN_RR_FEATURES) + 1,
                   width: int = 16, dropout: float = 0.3, seed: int = 0) -> Any:
    """The flat functional beat CNN: inputs ``beat`` (n_samples, n_leads) and ``rr`` (n_rr,), softmax output."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    beat = keras.Input(shape=(n_samples, n_leads), name="beat")
    rr = keras.Input(shape=(n_rr,), name="rr")
    x = beat
    for i, (f, k) in enumerate(((width, 7), (2 * width, 5), (2 * width, 5)), start=1):
        x = _conv_block(x, layers.Conv1D(f, k, padding="same", use_bias=False, name=f"conv{i}"),
                        layers.MaxPooling1D(2, name=f"pool{i}"), i)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model([beat, rr], _rr_head(x, rr, n_classes, dropout), name="beat_cnn_rr")


def _conv_block(x: Any, conv: Any, pool: Any, i: int, **bn: Any) -> Any:
    """``conv`` -> BatchNormalization(``bn``) -> ReLU -> ``pool`` (layers named ``bn<i>``, ``relu<i>``)."""
    from keras import layers

    x = layers.BatchNormalization(name=f"bn{i}", **bn)(conv(x))
    return pool(layers.Activation("relu", name=f"relu{i}")(x))


def _rr_head(x: Any, rr: Any, n_classes: int, dropout: float) -> Any:
    """The image / window features ``x`` concatenated with Dense(16, relu) of the RR input -> Dense(32, relu) ->
    Dropout -> softmax over ``n_classes``: the head both CNNs share."""
    from keras import layers

    r = layers.Dense(16, activation="relu", name="rr_dense")(rr)
    h = layers.Concatenate(name="concat")([x, r])
    h = layers.Dense(32, activation="relu", name="fc")(h)
    h = layers.Dropout(dropout, name="fc_dropout")(h)
    return layers.Dense(n_classes, activation="softmax", name="probs")(h)


def build_spectral_rr_cnn(n_classes: int, *, image_shape: tuple[int, int, int] = (64, 64, 1),
                          n_rr: int = len(CNN_RR_FEATURES) + 1, width: int = 16, dropout: float = 0.3,
                          seed: int = 0) -> Any:
    """The flat functional spectral-image CNN with the RR context as a second input (issue 17, item 4a).

    Inputs: ``spectral`` float32 ``image_shape`` (height, width, channels) in [0, 1] -- the seed's STFT image of the
    beat window as :func:`ecg_core.signals.arrhythmia.model_inputs` feeds it (uint8 / 255) -- and ``rr`` float32
    (n_rr,) from :func:`rr_matrix`. Graph: Conv2D(``width``, 3x3, stride 2) and two Conv2D(2 x ``width``, 3x3), each
    followed by BatchNorm (momentum 0.9, the seed's), ReLU and 2x2 max-pooling ('same' padding, so small test images
    work); the last map (4 x 4 at 64 x 64) is flattened rather than averaged, because a spectrogram is not
    shift-invariant (the row is the frequency, the column the time from the R peak). The RR input goes through
    Dense(16, relu); both are concatenated -> Dense(32, relu) -> Dropout(``dropout``) -> softmax over
    ``n_classes``. About 31 000 parameters at 64 x 64 x 1 with ``width=16``; standard layers only (safe-mode
    ``.keras``).
    """
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    img = keras.Input(shape=tuple(int(v) for v in image_shape), name="spectral")
    rr = keras.Input(shape=(n_rr,), name="rr")
    x = img
    for i, (f, stride) in enumerate(((width, 2), (2 * width, 1), (2 * width, 1)), start=1):
        x = _conv_block(x, layers.Conv2D(f, 3, strides=stride, padding="same", use_bias=False, name=f"conv{i}"),
                        layers.MaxPooling2D(2, padding="same", name=f"pool{i}"), i, momentum=0.9)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model([img, rr], _rr_head(x, rr, n_classes, dropout), name="spectral_cnn_rr")


__all__ = ["CNN_RR_FEATURES", "beat_windows", "build_beat_cnn", "build_spectral_rr_cnn", "rr_matrix"]
