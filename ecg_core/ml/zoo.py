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

The builders live in :mod:`ecg_core.ml.zoo_cnn` (trained from scratch) and :mod:`ecg_core.ml.zoo_transfer` (ImageNet
bases), their shared blocks in :mod:`ecg_core.ml.zoo_blocks`; this module holds the registry and the public API.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ecg_core.core.errors import ConfigError
from ecg_core.ml.zoo_blocks import BuildContext, Builder, InputShape, check_input_shape, keras, layers
from ecg_core.ml.zoo_cnn import (
    cnn_gru_attention,
    cnn_lstm,
    custom_cnn,
    deep_cnn,
    functional,
    optimized_cnn,
    residual_attention,
    shallow_cnn,
)
from ecg_core.ml.zoo_perlead import perlead_builder
from ecg_core.ml.zoo_transfer import TransferRecipe, to_0_255, to_caffe, to_minus_one_one, transfer

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


# --------------------------------------------------------------------------------------------- data classes


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
        check_input_shape(self.default_input_size, min_side=self.min_side, arch=self.name)

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


# --------------------------------------------------------------------------------------------- registry

_ARCHS: Mapping[str, ArchSpec] = MappingProxyType({
    spec.name: spec
    for spec in (
        ArchSpec(
            "custom_cnn", "Custom CNN (seed)", functional("custom_cnn", custom_cnn), (384, 384, 3),
            "The seed's 4-block CNN (32-256 filters, BN, max-pool, GAP, Dense 128); 423,748 parameters.", "cnn",
        ),
        ArchSpec(
            "optimized_cnn", "Optimized CNN", functional("optimized_cnn", optimized_cnn), (256, 256, 3),
            "Deeper regularised CNN: 5 double-conv stages (32-512), L2, spatial dropout, 1024-512 head.", "cnn",
            min_side=32,
        ),
        ArchSpec(
            "shallow_cnn", "Shallow CNN", functional("shallow_cnn", shallow_cnn), (128, 128, 3),
            "Small 3-conv CNN (32/64/128) with a Dense 256 head; also for spectral beat images.", "cnn",
            min_side=8,
        ),
        ArchSpec(
            "deep_cnn", "Deep CNN", functional("deep_cnn", deep_cnn), (128, 128, 3),
            "3 stages of double conv-BN-ReLU (32/64/128) with dropout and a Dense 256 head.", "cnn", min_side=8,
        ),
        ArchSpec(
            "cnn_lstm", "CNN + LSTM", functional("cnn_lstm", cnn_lstm), (128, 256, 3),
            "Conv features read left to right (time axis) by an LSTM.", "recurrent", min_side=8,
        ),
        ArchSpec(
            "cnn_gru_attention", "CNN + GRU + attention", functional("cnn_gru_attention", cnn_gru_attention),
            (128, 256, 3), "Conv features along time -> GRU -> additive attention pooling over time.", "recurrent",
            min_side=8,
        ),
        ArchSpec(
            "residual_attention", "Residual attention CNN", functional("residual_attention", residual_attention),
            (224, 224, 3), "Light residual CNN with squeeze-excitation and spatial attention gates (~0.7M).",
            "attention", min_side=8,
        ),
        ArchSpec(
            "perlead_cnn", "Per-lead CNN (13 panels, attention over leads)", perlead_builder, (624, 128, 1),
            "Shared-weight conv encoder over a mosaic of the 12 lead panels + rhythm strip cut from the detected "
            "layout, attention pooling over leads (the per-lead explanation); fixed 624x128 mosaic and recipe "
            "(the size, augmentation, balance and k-fold options do not apply).",
            "attention", min_side=16,
        ),
        ArchSpec(
            "mobilenet_v2", "MobileNetV2 (transfer)",
            transfer("mobilenet_v2", TransferRecipe("MobileNetV2", to_minus_one_one)),
            (224, 224, 3), "MobileNetV2 ImageNet base (inputs scaled to [-1, 1]) + GAP/Dropout/softmax head.",
            "transfer", min_side=32,
        ),
        ArchSpec(
            "efficientnetv2_b0", "EfficientNetV2-B0 (transfer)",
            transfer(
                "efficientnetv2_b0",
                TransferRecipe("EfficientNetV2B0", to_0_255, (("include_preprocessing", True),)),
            ),
            (224, 224, 3), "EfficientNetV2-B0 ImageNet base (own preprocessing on 0..255) + GAP/Dropout/softmax.",
            "transfer", min_side=32,
        ),
        ArchSpec(
            "efficientnetv2_s", "EfficientNetV2-S (transfer)",
            transfer(
                "efficientnetv2_s",
                TransferRecipe("EfficientNetV2S", to_0_255, (("include_preprocessing", True),)),
            ),
            (384, 384, 3), "EfficientNetV2-S ImageNet base (larger, slower) + GAP/Dropout/softmax head.",
            "transfer", min_side=32,
        ),
        ArchSpec(
            "resnet50", "ResNet50 (transfer)",
            transfer("resnet50", TransferRecipe("ResNet50", to_caffe)),
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
    shape = check_input_shape(shape, min_side=spec.min_side, arch=arch)
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
    ctx = BuildContext(n_classes, pretrained, trainable_top_n, float(bn_momentum))
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
            dims = tuple(getattr(out, "shape", ()))[1:]
            if dims and all(isinstance(d, int) for d in dims):
                total += 4 * math.prod(dims)
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
