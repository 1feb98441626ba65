"""The per-lead CNN (issue 15): one shared-weight encoder over the 13 panels of a report, attention over leads.

Input: a **mosaic** of the report's 13 panels (12 leads + rhythm strip, in :data:`ecg_core.reports.layout.LEAD_KEYS`
order) stacked vertically, each panel in its own slot of ``slot = height / 13`` rows (the panel, then zero rows that
keep neighbouring panels apart); the mosaic is built by :mod:`ecg_core.reports.perlead` (``ml`` never reads reports).
Float32 ink in ``[0, 1]`` (0 = paper), one channel.

Graph (flat, standard layers only, so that tf-keras-vis Grad-CAM reaches every conv and safe-mode loading works):

* plain convolutions over the whole mosaic (``stem`` 5x5 stride 2, then 3 x conv-BN-ReLU + 2x2 max-pool): a conv
  applies the same weights at every position, so the encoder's weights are shared across the 13 panels by
  construction (16x down-sampling; each slot becomes ``slot / 16`` feature rows);
* per-panel pooling: ``MaxPooling2D`` and ``AveragePooling2D`` with a pool of one slot's feature rows x the full
  width -> ``(13, 1, C)`` each, reshaped to ``(13, C)`` and concatenated;
* ``panel_embed``: Dense on the last axis (per panel, shared);
* attention over leads: ``score = Dense(1)(Dense(32, tanh)(e))``, ``lead_attention = Softmax(axis=1)`` (13 weights
  summing to 1: the per-lead explanation), ``context = Dot(axes=1)([alpha, e])``;
* ``predictions``: Dense softmax on the context.

Grad-CAM on the last conv stage (``block3_relu``, ``(13 * slot/16, width/16)``) maps back to each panel's slot and
from there to the panel's box on the report (:func:`ecg_core.reports.perlead.cam_to_report`).
"""

from __future__ import annotations

from typing import Any

from ecg_core.core.errors import ConfigError
from ecg_core.ml.zoo_blocks import BuildContext, Built, InputShape, bn, conv_bn_relu, keras, layers

__all__ = ["ATTENTION_LAYER", "DOWNSAMPLE", "N_PANELS", "check_mosaic_shape", "perlead_builder"]

#: panels of a report: the 12 leads and the rhythm strip
N_PANELS = 13
#: total down-sampling of the encoder (stem stride 2 x three 2x2 pools... see the module docstring)
DOWNSAMPLE = 16
#: name of the layer whose output holds the 13 attention weights, shape (batch, 13, 1)
ATTENTION_LAYER = "lead_attention"


def check_mosaic_shape(shape: InputShape) -> tuple[int, int]:
    """``(slot, width)`` of a mosaic input shape; raises :class:`ConfigError` unless height = 13 slots and both the
    slot and the width are multiples of 16 (the encoder's down-sampling)."""
    h, w, c = shape
    unit = N_PANELS * DOWNSAMPLE
    if h % unit or w % DOWNSAMPLE or h // N_PANELS < DOWNSAMPLE or c != 1:
        raise ConfigError(
            f"the per-lead CNN reads a mosaic of {N_PANELS} panel slots: height a multiple of {unit}, width a "
            f"multiple of {DOWNSAMPLE}, 1 channel; received {h}x{w}x{c}; fix: use e.g. 624x128x1 "
            "(ecg_core.reports.perlead builds it)."
        )
    return h // N_PANELS, w


def _encoder(inp: Any, ctx: BuildContext) -> Any:
    x = layers.Conv2D(16, 5, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = bn("stembn", ctx)(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for i, filters in enumerate((32, 64), start=1):
        x = conv_bn_relu(x, filters, f"block{i}", ctx)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return conv_bn_relu(x, 96, "block3", ctx)  # the Grad-CAM layer: block3_relu


def perlead_builder(input_shape: InputShape, ctx: BuildContext) -> Built:
    """The :data:`~ecg_core.ml.zoo_blocks.Builder` of ``perlead_cnn`` (see the module docstring)."""
    slot, width = check_mosaic_shape(input_shape)
    inp = keras.Input(shape=input_shape, name="image")
    fmap = _encoder(inp, ctx)
    rows, cols, ch = slot // DOWNSAMPLE, width // DOWNSAMPLE, int(fmap.shape[-1])
    pmax = layers.MaxPooling2D((rows, cols), name="panel_maxpool")(fmap)  # (B, 13, 1, C)
    pavg = layers.AveragePooling2D((rows, cols), name="panel_avgpool")(fmap)
    pmax = layers.Reshape((N_PANELS, ch), name="panel_max")(pmax)
    pavg = layers.Reshape((N_PANELS, ch), name="panel_avg")(pavg)
    e = layers.Concatenate(axis=-1, name="panel_features")([pmax, pavg])  # (B, 13, 2C)
    e = layers.Dropout(0.2, name="panel_dropout")(e)
    e = layers.Dense(64, activation="relu", name="panel_embed")(e)  # per panel, shared weights
    score = layers.Dense(32, activation="tanh", name="attention_hidden")(e)
    score = layers.Dense(1, name="attention_score")(score)  # (B, 13, 1)
    alpha = layers.Softmax(axis=1, name=ATTENTION_LAYER)(score)
    context = layers.Dot(axes=1, name="attention_pool")([alpha, e])  # (B, 1, 64)
    x = layers.Flatten(name="attention_context")(context)
    x = layers.Dropout(0.3, name="context_dropout")(x)
    out = layers.Dense(ctx.n_classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inp, out, name="perlead_cnn")
    msg = "random initialisation; all layers train (synthetic pretraining, when used, loads weights afterwards)."
    return Built(model, False, msg)
