"""The zoo's architectures trained from scratch: CNNs, CNN + recurrent, and the residual attention CNN.

Each ``body(input_tensor, ctx) -> output_tensor`` is wrapped into a :data:`~ecg_core.ml.zoo_blocks.Builder` by
:func:`functional`; all of them wire standard layers onto the one ``Input`` (see :mod:`ecg_core.ml.zoo`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ecg_core.ml.zoo_blocks import (
    BuildContext,
    Builder,
    Built,
    InputShape,
    bn,
    conv_bn_relu,
    conv_frontend,
    conv_to_sequence,
    dense_head,
    keras,
    layers,
    regularizers,
)


def functional(arch: str, body: Callable[[Any, BuildContext], Any]) -> Builder:
    """Wrap ``body(input_tensor, ctx) -> output_tensor`` into a :data:`Builder` (no pretrained weights)."""

    def build(input_shape: InputShape, ctx: BuildContext) -> Built:
        inp = keras.Input(shape=input_shape, name="image")
        model = keras.Model(inp, body(inp, ctx), name=arch)
        if ctx.pretrained:
            msg = (
                f"{arch!r} has no ImageNet weights (only transfer models do); random initialisation, "
                "all layers train."
            )
        else:
            msg = "random initialisation (pretrained=False); all layers train."
        return Built(model, False, msg)

    return build


def custom_cnn(inp: Any, ctx: BuildContext) -> Any:
    """The seed's CNN: 4 x (Conv2D 3x3 relu same -> BN -> MaxPool 2), GAP, Dense 128 relu, Dropout 0.5, softmax.

    Exactly 423,748 parameters for 4 classes at any input size (the head follows global pooling).
    """
    x = inp
    for i, filters in enumerate((32, 64, 128, 256), start=1):
        x = layers.Conv2D(filters, 3, activation="relu", padding="same", name=f"block{i}_conv")(x)
        x = bn(f"block{i}bn", ctx)(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    return dense_head(x, ctx.n_classes)


def optimized_cnn(inp: Any, ctx: BuildContext) -> Any:
    """5 stages of double conv-BN-ReLU (32..512 filters, L2 1e-4) with growing spatial dropout; 1024-512 head."""
    l2 = 1e-4
    x = inp
    for i, (filters, drop) in enumerate(((32, 0.05), (64, 0.1), (128, 0.15), (256, 0.2), (512, 0.25)), start=1):
        x = conv_bn_relu(x, filters, f"block{i}a", ctx, l2=l2)
        x = conv_bn_relu(x, filters, f"block{i}b", ctx, l2=l2)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.SpatialDropout2D(drop, name=f"block{i}_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    for j, units in enumerate((1024, 512), start=1):
        x = layers.Dense(units, activation="relu", kernel_regularizer=regularizers.L2(l2), name=f"fc{j}")(x)
        x = layers.Dropout(0.5, name=f"fc{j}_dropout")(x)
    return dense_head(x, ctx.n_classes)


def shallow_cnn(inp: Any, ctx: BuildContext) -> Any:
    """The seed's 3-conv design: 3 x (Conv2D 3x3 relu -> MaxPool), GAP, Dense 256 relu, Dropout 0.5, softmax.

    Global average pooling instead of Flatten keeps the model input-size independent and small (Flatten at
    128x128 would put 8.4M parameters into the first dense layer).
    """
    x = inp
    for i, filters in enumerate((32, 64, 128), start=1):
        x = layers.Conv2D(filters, 3, activation="relu", padding="same", name=f"block{i}_conv")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(256, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    return dense_head(x, ctx.n_classes)


def deep_cnn(inp: Any, ctx: BuildContext) -> Any:
    """The 3-stage design made deeper: 2 x conv-BN-ReLU per stage (32/64/128), pool + dropout, Dense 256 head."""
    x = inp
    for i, filters in enumerate((32, 64, 128), start=1):
        x = conv_bn_relu(x, filters, f"block{i}a", ctx)
        x = conv_bn_relu(x, filters, f"block{i}b", ctx)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Dropout(0.25, name=f"block{i}_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(256, use_bias=False, name="fc1")(x)
    x = bn("fc1_bn", ctx)(x)
    x = layers.Activation("relu", name="fc1_relu")(x)
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    return dense_head(x, ctx.n_classes)


def cnn_lstm(inp: Any, ctx: BuildContext) -> Any:
    """Conv front end -> width axis as a sequence of column features -> Dense 128 -> LSTM 64 -> softmax."""
    x = conv_to_sequence(conv_frontend(inp, ctx), "rnn")
    x = layers.Dense(128, activation="relu", name="rnn_proj")(x)  # Dense on the last axis, per time step
    x = layers.LSTM(64, name="lstm")(x)
    x = layers.Dropout(0.3, name="lstm_dropout")(x)
    return dense_head(x, ctx.n_classes)


def cnn_gru_attention(inp: Any, ctx: BuildContext) -> Any:
    """Conv front end -> sequence along width -> GRU(return_sequences) -> additive attention pooling -> softmax.

    Attention (Bahdanau-style pooling) from standard layers: score_t = v . tanh(W h_t) (two Dense layers),
    alpha = softmax over time (``Softmax(axis=1)``), context = sum_t alpha_t h_t (``Dot(axes=1)``).
    """
    x = conv_to_sequence(conv_frontend(inp, ctx), "rnn")
    x = layers.Dense(128, activation="relu", name="rnn_proj")(x)
    seq = layers.GRU(64, return_sequences=True, name="gru")(x)  # (B, T, 64)
    score = layers.Dense(64, activation="tanh", name="attention_hidden")(seq)  # (B, T, 64)
    score = layers.Dense(1, name="attention_score")(score)  # (B, T, 1)
    alpha = layers.Softmax(axis=1, name="attention_weights")(score)  # (B, T, 1), sums to 1 over T
    context = layers.Dot(axes=1, name="attention_pool")([alpha, seq])  # (B, 1, 64)
    x = layers.Flatten(name="attention_context")(context)  # (B, 64)
    x = layers.Dropout(0.3, name="context_dropout")(x)
    return dense_head(x, ctx.n_classes)


def residual_attention(inp: Any, ctx: BuildContext) -> Any:
    """Lightweight residual CNN with CBAM-style attention (SE channel gate + 7x7 spatial gate) in every block."""

    def block(x: Any, filters: int, name: str) -> Any:
        shortcut = x
        y = conv_bn_relu(x, filters, f"{name}_a", ctx)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
        y = bn(f"{name}_b_bn", ctx)(y)
        # squeeze-excitation: channel weights from globally pooled features
        s = layers.GlobalAveragePooling2D(name=f"{name}_se_squeeze")(y)
        s = layers.Dense(max(filters // 8, 4), activation="relu", name=f"{name}_se_reduce")(s)
        s = layers.Dense(filters, activation="sigmoid", name=f"{name}_se_expand")(s)
        s = layers.Reshape((1, 1, filters), name=f"{name}_se_reshape")(s)
        y = layers.Multiply(name=f"{name}_se_scale")([y, s])
        # spatial gate: one sigmoid map broadcast over channels
        g = layers.Conv2D(1, 7, padding="same", activation="sigmoid", name=f"{name}_spatial_gate")(y)
        y = layers.Multiply(name=f"{name}_spatial_scale")([y, g])
        if shortcut.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_shortcut_conv")(shortcut)
            shortcut = bn(f"{name}_shortcut_bn", ctx)(shortcut)
        y = layers.Add(name=f"{name}_add")([y, shortcut])
        return layers.Activation("relu", name=f"{name}_out")(y)

    x = conv_bn_relu(inp, 24, "stem", ctx)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for i, filters in enumerate((48, 96, 192), start=1):
        x = block(x, filters, f"block{i}")
        if i < 3:
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.3, name="gap_dropout")(x)
    return dense_head(x, ctx.n_classes)
