"""Model zoo: every architecture as one flat functional Keras 3 graph, plus a registry of names.

Why flat: tf-keras-vis builds ``Model(model.inputs, [layer.output, model.output])`` around the layer it explains;
when a pretrained base is nested inside the model as a single layer, its inner layers are not reachable from the
outer graph and Grad-CAM fails. Every builder here therefore wires its layers directly onto the one ``Input``; the
transfer builders call ``App(include_top=False, input_tensor=x, weights=...)`` and continue from ``base.output``.

Why only standard layers: run folders are loaded with ``keras.models.load_model(..., safe_mode=True)``, which refuses
``Lambda`` layers. Attention pooling, SE gates, channel replication and ImageNet input scaling are all expressed
with standard layers (``Dense``, ``Softmax``, ``Dot``, ``Multiply``, ``Concatenate``, ``Rescaling``,
``Normalization``, ``Cropping2D``).

Input convention: every model receives float32 images in ``[0, 1]`` of shape ``(h, w, c)`` with ``c`` in
``{1, 3}``; transfer models rescale internally to what their ImageNet weights expect.

BatchNorm momentum: with Keras' default momentum 0.99 and a few hundred training images the moving statistics lag
far behind the weights, and models collapsed to a single class at validation; every BatchNormalization created
here uses ``momentum=bn_momentum`` (default 0.9). Momentum does not change parameter counts.

Example::

    res = build_model("custom_cnn", n_classes=4)       # 384x384x3, 423,748 parameters
    compile_model(res.model, lr=1e-3)
    res.last_conv_layer                                  # 'block4_conv' -> Grad-CAM penultimate layer
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ecg_core.core.errors import ConfigError


class _LazyModule:
    """A module imported on its first attribute access.

    Listing the architectures (the Train page, the CLI's help) must not import TensorFlow, which takes seconds;
    Keras is imported the first time a model is built or inspected.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        import importlib

        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


keras: Any = _LazyModule("keras")
layers: Any = _LazyModule("keras.layers")
regularizers: Any = _LazyModule("keras.regularizers")

__all__ = [
    "ArchSpec",
    "BuildResult",
    "activation_bytes_per_sample",
    "FAMILIES",
    "build_model",
    "compile_model",
    "get_arch",
    "last_conv_layer_name",
    "list_architectures",
]

FAMILIES: tuple[str, ...] = ("cnn", "recurrent", "transfer", "attention")

InputShape = tuple[int, int, int]


# --------------------------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class _BuildContext:
    """Per-call options handed to a builder (validated by :func:`build_model`)."""

    n_classes: int
    pretrained: bool
    trainable_top_n: int
    bn_momentum: float


@dataclass(frozen=True)
class _Built:
    """What a builder returns: the model, whether ImageNet weights were loaded, and a one-line explanation."""

    model: keras.Model
    pretrained_loaded: bool
    message: str


Builder = Callable[[InputShape, _BuildContext], _Built]


@dataclass(frozen=True)
class ArchSpec:
    """One registered architecture.

    ``default_input_size`` is ``(height, width, channels)`` in pixels; ``min_side`` the smallest height/width in
    pixels the graph accepts (its total down-sampling, or the Keras application's minimum).
    """

    name: str
    title: str
    builder: Builder
    default_input_size: InputShape
    description: str
    family: str
    min_side: int = 16

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(
                f"ArchSpec {self.name!r}: family must be one of {list(FAMILIES)}, received {self.family!r}; "
                "fix: pick one of the listed families."
            )
        _check_input_shape(self.default_input_size, min_side=self.min_side, arch=self.name)

    @property
    def supports_pretrained(self) -> bool:
        """True when ImageNet weights exist for this architecture."""
        return self.family == "transfer"


@dataclass(frozen=True)
class BuildResult:
    """A freshly built (uncompiled) model and what happened while building it.

    ``message`` is one human-readable line: why ImageNet weights were or were not loaded and which layers train.
    ``last_conv_layer`` is :func:`last_conv_layer_name` of the model (the Grad-CAM penultimate layer).
    """

    model: keras.Model
    arch: str
    input_shape: InputShape
    n_params: int
    n_trainable_params: int
    pretrained_requested: bool
    pretrained_loaded: bool
    message: str
    last_conv_layer: str


# --------------------------------------------------------------------------------------------- building blocks


def _bn(name: str, ctx: _BuildContext) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=ctx.bn_momentum, name=name)


def _conv_bn_relu(x: Any, filters: int, prefix: str, ctx: _BuildContext, *, l2: float = 0.0) -> Any:
    """Conv2D 3x3 (no bias, BN follows) -> BatchNorm -> ReLU, named ``{prefix}_conv/_bn/_relu``."""
    reg = regularizers.L2(l2) if l2 > 0 else None
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg, name=f"{prefix}_conv")(x)
    x = _bn(f"{prefix}_bn", ctx)(x)
    return layers.Activation("relu", name=f"{prefix}_relu")(x)


def _dense_head(x: Any, n_classes: int) -> Any:
    return layers.Dense(n_classes, activation="softmax", name="predictions")(x)


def _conv_to_sequence(x: Any, name: str) -> Any:
    """(B, H', W', C) feature map -> (B, W', H'*C) sequence: the width (time) axis becomes the sequence axis."""
    _, h, w, c = x.shape
    x = layers.Permute((2, 1, 3), name=f"{name}_time_major")(x)  # (B, W', H', C)
    return layers.Reshape((w, h * c), name=f"{name}_sequence")(x)  # (B, W', H'*C)


def _conv_frontend(inp: Any, ctx: _BuildContext) -> Any:
    """Shared feature extractor of the recurrent models: 3 x (conv-BN-ReLU, 2x2 max-pool), 32/64/128 filters."""
    x = inp
    for i, filters in enumerate((32, 64, 128), start=1):
        x = _conv_bn_relu(x, filters, f"block{i}", ctx)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return x


# --------------------------------------------------------------------------------------------- CNN builders


def _functional(arch: str, body: Callable[[Any, _BuildContext], Any]) -> Builder:
    """Wrap ``body(input_tensor, ctx) -> output_tensor`` into a :data:`Builder` (no pretrained weights)."""

    def build(input_shape: InputShape, ctx: _BuildContext) -> _Built:
        inp = keras.Input(shape=input_shape, name="image")
        model = keras.Model(inp, body(inp, ctx), name=arch)
        if ctx.pretrained:
            msg = (
                f"{arch!r} has no ImageNet weights (only transfer models do); random initialisation, "
                "all layers train."
            )
        else:
            msg = "random initialisation (pretrained=False); all layers train."
        return _Built(model, False, msg)

    return build


def _custom_cnn(inp: Any, ctx: _BuildContext) -> Any:
    """The seed's CNN: 4 x (Conv2D 3x3 relu same -> BN -> MaxPool 2), GAP, Dense 128 relu, Dropout 0.5, softmax.

    Exactly 423,748 parameters for 4 classes at any input size (the head follows global pooling).
    """
    x = inp
    for i, filters in enumerate((32, 64, 128, 256), start=1):
        x = layers.Conv2D(filters, 3, activation="relu", padding="same", name=f"block{i}_conv")(x)
        x = _bn(f"block{i}_bn", ctx)(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    return _dense_head(x, ctx.n_classes)


def _optimized_cnn(inp: Any, ctx: _BuildContext) -> Any:
    """5 stages of double conv-BN-ReLU (32..512 filters, L2 1e-4) with growing spatial dropout; 1024-512 head."""
    l2 = 1e-4
    x = inp
    for i, (filters, drop) in enumerate(((32, 0.05), (64, 0.1), (128, 0.15), (256, 0.2), (512, 0.25)), start=1):
        x = _conv_bn_relu(x, filters, f"block{i}a", ctx, l2=l2)
        x = _conv_bn_relu(x, filters, f"block{i}b", ctx, l2=l2)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.SpatialDropout2D(drop, name=f"block{i}_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    for j, units in enumerate((1024, 512), start=1):
        x = layers.Dense(units, activation="relu", kernel_regularizer=regularizers.L2(l2), name=f"fc{j}")(x)
        x = layers.Dropout(0.5, name=f"fc{j}_dropout")(x)
    return _dense_head(x, ctx.n_classes)


def _shallow_cnn(inp: Any, ctx: _BuildContext) -> Any:
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
    return _dense_head(x, ctx.n_classes)


def _deep_cnn(inp: Any, ctx: _BuildContext) -> Any:
    """The 3-stage design made deeper: 2 x conv-BN-ReLU per stage (32/64/128), pool + dropout, Dense 256 head."""
    x = inp
    for i, filters in enumerate((32, 64, 128), start=1):
        x = _conv_bn_relu(x, filters, f"block{i}a", ctx)
        x = _conv_bn_relu(x, filters, f"block{i}b", ctx)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Dropout(0.25, name=f"block{i}_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(256, use_bias=False, name="fc1")(x)
    x = _bn("fc1_bn", ctx)(x)
    x = layers.Activation("relu", name="fc1_relu")(x)
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    return _dense_head(x, ctx.n_classes)


def _cnn_lstm(inp: Any, ctx: _BuildContext) -> Any:
    """Conv front end -> width axis as a sequence of column features -> Dense 128 -> LSTM 64 -> softmax."""
    x = _conv_to_sequence(_conv_frontend(inp, ctx), "rnn")
    x = layers.Dense(128, activation="relu", name="rnn_proj")(x)  # Dense on the last axis, per time step
    x = layers.LSTM(64, name="lstm")(x)
    x = layers.Dropout(0.3, name="lstm_dropout")(x)
    return _dense_head(x, ctx.n_classes)


def _cnn_gru_attention(inp: Any, ctx: _BuildContext) -> Any:
    """Conv front end -> sequence along width -> GRU(return_sequences) -> additive attention pooling -> softmax.

    Attention (Bahdanau-style pooling) from standard layers: score_t = v . tanh(W h_t) (two Dense layers),
    alpha = softmax over time (``Softmax(axis=1)``), context = sum_t alpha_t h_t (``Dot(axes=1)``).
    """
    x = _conv_to_sequence(_conv_frontend(inp, ctx), "rnn")
    x = layers.Dense(128, activation="relu", name="rnn_proj")(x)
    seq = layers.GRU(64, return_sequences=True, name="gru")(x)  # (B, T, 64)
    score = layers.Dense(64, activation="tanh", name="attention_hidden")(seq)  # (B, T, 64)
    score = layers.Dense(1, name="attention_score")(score)  # (B, T, 1)
    alpha = layers.Softmax(axis=1, name="attention_weights")(score)  # (B, T, 1), sums to 1 over T
    context = layers.Dot(axes=1, name="attention_pool")([alpha, seq])  # (B, 1, 64)
    x = layers.Flatten(name="attention_context")(context)  # (B, 64)
    x = layers.Dropout(0.3, name="context_dropout")(x)
    return _dense_head(x, ctx.n_classes)


def _residual_attention(inp: Any, ctx: _BuildContext) -> Any:
    """Lightweight residual CNN with CBAM-style attention (SE channel gate + 7x7 spatial gate) in every block."""

    def block(x: Any, filters: int, name: str) -> Any:
        shortcut = x
        y = _conv_bn_relu(x, filters, f"{name}_a", ctx)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
        y = _bn(f"{name}_b_bn", ctx)(y)
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
            shortcut = _bn(f"{name}_shortcut_bn", ctx)(shortcut)
        y = layers.Add(name=f"{name}_add")([y, shortcut])
        return layers.Activation("relu", name=f"{name}_out")(y)

    x = _conv_bn_relu(inp, 24, "stem", ctx)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for i, filters in enumerate((48, 96, 192), start=1):
        x = block(x, filters, f"block{i}")
        if i < 3:
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.3, name="gap_dropout")(x)
    return _dense_head(x, ctx.n_classes)


# --------------------------------------------------------------------------------------------- transfer builders


@dataclass(frozen=True)
class _TransferRecipe:
    """How to put a Keras application on a [0, 1] input.

    ``preprocess(x)`` maps the 3-channel [0, 1] tensor to what the ImageNet weights expect, with standard layers.
    """

    app: str  # the name of the Keras application in ``keras.applications`` (looked up when building)
    preprocess: Callable[[Any], Any]
    app_kwargs: tuple[tuple[str, Any], ...] = ()


def _to_minus_one_one(x: Any) -> Any:
    # MobileNetV2: [0, 1] -> [-1, 1]
    return layers.Rescaling(2.0, offset=-1.0, name="preprocess_scale")(x)


def _to_0_255(x: Any) -> Any:
    # EfficientNetV2 with include_preprocessing=True rescales/normalises 0..255 inputs itself
    return layers.Rescaling(255.0, name="preprocess_scale")(x)


def _to_caffe(x: Any) -> Any:
    # ResNet50 ("caffe" mode): RGB [0, 1] -> BGR 0..255 minus the ImageNet BGR mean. The channel swap uses
    # Cropping2D in channels_first mode (which crops the last axis) so that no Lambda layer is needed and the
    # prefix has no weights (the legacy .h5 loader matches weights by the order of weighted layers).
    x = layers.Rescaling(255.0, name="preprocess_scale")(x)
    blue = layers.Cropping2D(((0, 0), (2, 0)), data_format="channels_first", name="preprocess_b")(x)
    green = layers.Cropping2D(((0, 0), (1, 1)), data_format="channels_first", name="preprocess_g")(x)
    red = layers.Cropping2D(((0, 0), (0, 2)), data_format="channels_first", name="preprocess_r")(x)
    x = layers.Concatenate(axis=-1, name="preprocess_bgr")([blue, green, red])
    return layers.Normalization(mean=[103.939, 116.779, 123.68], variance=[1.0, 1.0, 1.0], name="preprocess_mean")(x)


def _transfer(arch: str, recipe: _TransferRecipe) -> Builder:
    """Builder of a flat transfer model: [0,1] input -> (gray->RGB) -> preprocess -> application -> GAP head."""

    def graph(input_shape: InputShape, ctx: _BuildContext, weights: str | None) -> tuple[keras.Model, keras.Model]:
        inp = keras.Input(shape=input_shape, name="image")
        x = inp
        if input_shape[-1] == 1:
            # ImageNet weights need 3 channels; replicate always so the graph is the same with or without them
            x = layers.Concatenate(axis=-1, name="gray_to_rgb")([inp, inp, inp])
        x = recipe.preprocess(x)
        # input_shape as well as input_tensor: without it MobileNetV2 cannot see the size and always picks the
        # 224-px ImageNet weights (with a warning) even where weights for 96..192 px exist
        rgb_shape = (*input_shape[:2], 3)
        base = getattr(keras.applications, recipe.app)(
            include_top=False, weights=weights, input_tensor=x, input_shape=rgb_shape, **dict(recipe.app_kwargs)
        )
        y = layers.GlobalAveragePooling2D(name="head_gap")(base.output)
        y = layers.Dropout(0.3, name="head_dropout")(y)
        model = keras.Model(inp, _dense_head(y, ctx.n_classes), name=arch)
        return model, base

    def build(input_shape: InputShape, ctx: _BuildContext) -> _Built:
        if ctx.pretrained:
            try:
                model, base = graph(input_shape, ctx, "imagenet")
            except Exception as e:  # noqa: BLE001 - any failure (offline, no cache, bad file) -> random init
                reason = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
                model, _ = graph(input_shape, ctx, None)
                msg = (
                    f"ImageNet weights for {arch!r} could not be loaded ({reason}); fell back to random "
                    "initialisation, all layers train. Fix: connect to the internet once, or put the weight file "
                    "into ~/.keras/models/."
                )
                return _Built(model, False, msg)
            n_open = _freeze_base(base, ctx.trainable_top_n)
            msg = (
                f"ImageNet weights loaded for {arch!r}; base frozen except its top {ctx.trainable_top_n} layers "
                f"({n_open} of them with trainable weights), BatchNorm layers of the base kept frozen."
            )
            return _Built(model, True, msg)
        model, _ = graph(input_shape, ctx, None)
        return _Built(model, False, "random initialisation (pretrained=False); all layers train.")

    return build


def _freeze_base(base: keras.Model, top_n: int) -> int:
    """Freeze every base layer, then unfreeze the last ``top_n`` base layers except BatchNormalization.

    Returns how many of the unfrozen layers carry trainable weights. Counting follows the Keras fine-tuning guide
    (``base.layers[-top_n:]``), so the prefix layers (input scaling) are counted too but hold no weights.
    """
    for layer in base.layers:
        layer.trainable = False
    opened = 0
    if top_n > 0:
        for layer in base.layers[-top_n:]:
            if isinstance(layer, layers.BatchNormalization):
                continue  # BN in inference mode: fine-tuning on small data would wreck its ImageNet statistics
            layer.trainable = True
            opened += int(bool(layer.trainable_weights))
    return opened


def _check_input_shape(shape: object, *, min_side: int, arch: str) -> InputShape:
    ok = (
        isinstance(shape, (tuple, list))
        and len(shape) == 3
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shape)
    )
    if not ok:
        raise ConfigError(
            f"input_shape must be a tuple (height, width, channels) of 3 ints, received {shape!r}; "
            "fix: pass e.g. (224, 224, 3)."
        )
    h, w, c = (int(v) for v in shape)  # type: ignore[union-attr]
    if c not in (1, 3):
        raise ConfigError(
            f"input_shape channels must be 1 (grayscale) or 3 (RGB), received {c}; fix: convert the images."
        )
    if h < min_side or w < min_side:
        raise ConfigError(
            f"input_shape for {arch!r} needs height and width >= {min_side} px, received {h}x{w}; "
            "fix: use a larger input size."
        )
    return (h, w, c)


# --------------------------------------------------------------------------------------------- registry

_ARCHS: Mapping[str, ArchSpec] = MappingProxyType({
    spec.name: spec
    for spec in (
        ArchSpec(
            "custom_cnn", "Custom CNN (seed)", _functional("custom_cnn", _custom_cnn), (384, 384, 3),
            "The seed's 4-block CNN (32-256 filters, BN, max-pool, GAP, Dense 128); 423,748 parameters.", "cnn",
        ),
        ArchSpec(
            "optimized_cnn", "Optimized CNN", _functional("optimized_cnn", _optimized_cnn), (256, 256, 3),
            "Deeper regularised CNN: 5 double-conv stages (32-512), L2, spatial dropout, 1024-512 head.", "cnn",
            min_side=32,
        ),
        ArchSpec(
            "shallow_cnn", "Shallow CNN", _functional("shallow_cnn", _shallow_cnn), (128, 128, 3),
            "Small 3-conv CNN (32/64/128) with a Dense 256 head; also for spectral beat images.", "cnn",
            min_side=8,
        ),
        ArchSpec(
            "deep_cnn", "Deep CNN", _functional("deep_cnn", _deep_cnn), (128, 128, 3),
            "3 stages of double conv-BN-ReLU (32/64/128) with dropout and a Dense 256 head.", "cnn", min_side=8,
        ),
        ArchSpec(
            "cnn_lstm", "CNN + LSTM", _functional("cnn_lstm", _cnn_lstm), (128, 256, 3),
            "Conv features read left to right (time axis) by an LSTM.", "recurrent", min_side=8,
        ),
        ArchSpec(
            "cnn_gru_attention", "CNN + GRU + attention", _functional("cnn_gru_attention", _cnn_gru_attention),
            (128, 256, 3), "Conv features along time -> GRU -> additive attention pooling over time.", "recurrent",
            min_side=8,
        ),
        ArchSpec(
            "residual_attention", "Residual attention CNN", _functional("residual_attention", _residual_attention),
            (224, 224, 3), "Light residual CNN with squeeze-excitation and spatial attention gates (~0.7M).",
            "attention", min_side=8,
        ),
        ArchSpec(
            "mobilenet_v2", "MobileNetV2 (transfer)",
            _transfer("mobilenet_v2", _TransferRecipe("MobileNetV2", _to_minus_one_one)),
            (224, 224, 3), "MobileNetV2 ImageNet base (inputs scaled to [-1, 1]) + GAP/Dropout/softmax head.",
            "transfer", min_side=32,
        ),
        ArchSpec(
            "efficientnetv2_b0", "EfficientNetV2-B0 (transfer)",
            _transfer(
                "efficientnetv2_b0",
                _TransferRecipe("EfficientNetV2B0", _to_0_255, (("include_preprocessing", True),)),
            ),
            (224, 224, 3), "EfficientNetV2-B0 ImageNet base (own preprocessing on 0..255) + GAP/Dropout/softmax.",
            "transfer", min_side=32,
        ),
        ArchSpec(
            "efficientnetv2_s", "EfficientNetV2-S (transfer)",
            _transfer(
                "efficientnetv2_s",
                _TransferRecipe("EfficientNetV2S", _to_0_255, (("include_preprocessing", True),)),
            ),
            (384, 384, 3), "EfficientNetV2-S ImageNet base (larger, slower) + GAP/Dropout/softmax head.",
            "transfer", min_side=32,
        ),
        ArchSpec(
            "resnet50", "ResNet50 (transfer)",
            _transfer("resnet50", _TransferRecipe("ResNet50", _to_caffe)),
            (224, 224, 3), "ResNet50 ImageNet base (caffe BGR mean preprocessing) + GAP/Dropout/softmax head.",
            "transfer", min_side=32,
        ),
    )
})


def list_architectures() -> list[ArchSpec]:
    """All registered architectures, in registry order."""
    return list(_ARCHS.values())


def get_arch(name: str) -> ArchSpec:
    """The :class:`ArchSpec` called ``name``; raises :class:`ConfigError` listing the valid names."""
    try:
        return _ARCHS[name]
    except (KeyError, TypeError) as e:
        raise ConfigError(
            f"arch must be one of {sorted(_ARCHS)}, received {name!r}; fix: pick a listed architecture."
        ) from e


# --------------------------------------------------------------------------------------------- public API


def build_model(
    arch: str,
    *,
    input_shape: tuple[int, int, int] | None = None,
    n_classes: int,
    pretrained: bool = False,
    trainable_top_n: int = 0,
    seed: int | None = None,
    bn_momentum: float = 0.9,
) -> BuildResult:
    """Build an uncompiled flat functional model.

    Args:
        arch: registry name (see :func:`list_architectures`).
        input_shape: ``(height, width, channels)`` in pixels, channels 1 or 3; ``None`` -> the spec's default.
            Inputs are float images in [0, 1].
        n_classes: number of softmax outputs (>= 2).
        pretrained: try ImageNet weights (transfer models only). Without internet or cache the model falls back
            to random initialisation; ``pretrained_loaded`` and ``message`` say so.
        trainable_top_n: with loaded ImageNet weights the base is frozen except its last ``trainable_top_n``
            layers (BatchNorm layers stay frozen). With random weights everything trains (a frozen random base
            would leave only the head to learn) and this option has no effect.
        seed: seeds Python, NumPy and TensorFlow (``keras.utils.set_random_seed``) before building, for
            reproducible initial weights.
        bn_momentum: momentum of every BatchNormalization created here (default 0.9; see the module docstring).
    """
    spec = get_arch(arch)
    shape = spec.default_input_size if input_shape is None else input_shape
    shape = _check_input_shape(shape, min_side=spec.min_side, arch=arch)
    if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 2:
        raise ConfigError(f"n_classes must be an int >= 2, received {n_classes!r}; fix: pass the class count.")
    if not isinstance(pretrained, bool):
        raise ConfigError(f"pretrained must be True or False, received {pretrained!r}.")
    if not isinstance(trainable_top_n, int) or isinstance(trainable_top_n, bool) or trainable_top_n < 0:
        raise ConfigError(
            f"trainable_top_n must be an int >= 0, received {trainable_top_n!r}; fix: 0 keeps the base frozen."
        )
    if not isinstance(bn_momentum, (int, float)) or not 0.0 < float(bn_momentum) < 1.0:
        raise ConfigError(
            f"bn_momentum must be a float in (0, 1), received {bn_momentum!r}; fix: use 0.9 (the default)."
        )
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"seed must be an int >= 0 or None, received {seed!r}.")
        keras.utils.set_random_seed(seed)
    ctx = _BuildContext(n_classes, pretrained, trainable_top_n, float(bn_momentum))
    built = spec.builder(shape, ctx)
    model = built.model
    n_trainable = sum(int(v.numpy().size) for v in model.trainable_weights)
    return BuildResult(
        model=model,
        arch=arch,
        input_shape=shape,
        n_params=int(model.count_params()),
        n_trainable_params=n_trainable,
        pretrained_requested=pretrained,
        pretrained_loaded=built.pretrained_loaded,
        message=built.message,
        last_conv_layer=last_conv_layer_name(model),
    )


def activation_bytes_per_sample(model: keras.Model) -> int:
    """Bytes of the forward activations (every layer's output, float32) of one sample: the part of the training
    memory that grows with the batch size (the backward pass keeps these and as much again in gradients)."""
    total = 0
    for layer in model.layers:
        try:
            outs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        except (AttributeError, ValueError):
            continue
        for out in outs:
            dims = [d for d in tuple(getattr(out, "shape", ()))[1:]]
            if dims and all(isinstance(d, int) for d in dims):
                n = 1
                for d in dims:
                    n *= d
                total += 4 * n
    return total


def compile_model(model: keras.Model, *, lr: float, label_smoothing: float = 0.0,
                  gradient_accumulation_steps: int = 1) -> keras.Model:
    """Compile for one-hot labels: Adam(lr), categorical cross-entropy (optional label smoothing), accuracy.

    ``gradient_accumulation_steps`` > 1: the optimizer averages the gradients of that many batches before each
    update (micro-batches: the effective batch is that many times the fed batch, for a fraction of the memory).
    Returns the same model (compiled in place).
    """
    if isinstance(gradient_accumulation_steps, bool) or not isinstance(gradient_accumulation_steps, int) or \
            gradient_accumulation_steps < 1:
        raise ConfigError(f"gradient_accumulation_steps must be an int >= 1, received {gradient_accumulation_steps!r}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise ConfigError(f"lr must be a float > 0, received {lr!r}; fix: try 1e-3 (scratch) or 1e-4 (fine-tune).")
    if not isinstance(label_smoothing, (int, float)) or not 0.0 <= float(label_smoothing) < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1), received {label_smoothing!r}; fix: 0.0 or 0.1.")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(lr), gradient_accumulation_steps=(
            gradient_accumulation_steps if gradient_accumulation_steps > 1 else None)),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=float(label_smoothing)),
        metrics=["accuracy"],
    )
    return model


def _conv_types() -> tuple[type, ...]:
    return (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)


def _activation_types() -> tuple[type, ...]:
    return (layers.Activation, layers.ReLU, layers.LeakyReLU, layers.ELU, layers.PReLU)


def _out_shape(layer: layers.Layer) -> tuple[Any, ...] | None:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(out, (list, tuple)):
        return None
    return tuple(out.shape)


def last_conv_layer_name(model: keras.Model) -> str:
    """Name of the layer whose 4-D feature map Grad-CAM should use.

    Rule: take the last convolution (Conv2D / DepthwiseConv2D / SeparableConv2D, spatial size > 1x1) in
    topological order; if an activation layer with a 4-D output of the same spatial size follows it (conv -> BN
    -> ReLU, or ResNet's conv -> BN -> Add -> ReLU), take the last such activation instead; otherwise the conv
    itself (whose own activation is then applied, e.g. ``Conv2D(activation='relu')``). For the recurrent models
    this is the last conv stage before the feature map is reshaped into a sequence.

    Note for tf-keras-vis: when this returns an activation layer, call Grad-CAM with
    ``seek_penultimate_conv_layer=False``; otherwise tf-keras-vis walks back to the preceding Conv layer.

    Raises :class:`ConfigError` when the model has no such convolution.
    """
    names = [layer.name for layer in model.layers]
    conv_types, activation_types = _conv_types(), _activation_types()
    conv_idx = None
    for i, layer in enumerate(model.layers):
        shape = _out_shape(layer)
        if isinstance(layer, conv_types) and shape is not None and len(shape) == 4:
            if (shape[1] or 2) * (shape[2] or 2) > 1:
                conv_idx = i
    if conv_idx is None:
        raise ConfigError(
            f"model {model.name!r} has no 2-D convolution with a spatial output, so Grad-CAM has no feature map; "
            f"received layers {names[:8]}{'...' if len(names) > 8 else ''}; fix: explain with a gradient method "
            "that needs no feature map (e.g. saliency)."
        )
    conv = model.layers[conv_idx]
    hw = _out_shape(conv)[1:3]  # type: ignore[index]
    chosen = conv
    for layer in model.layers[conv_idx + 1 :]:
        shape = _out_shape(layer)
        if isinstance(layer, activation_types) and shape is not None and len(shape) == 4 and shape[1:3] == hw:
            chosen = layer
    return chosen.name
