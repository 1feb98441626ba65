"""Shared pieces of the model zoo (:mod:`ecg_core.ml.zoo`): lazy Keras, the builder protocol, building blocks.

Keras is imported on first use (:data:`keras`, :data:`layers`, :data:`regularizers`), so that listing the
architectures does not import TensorFlow. A :data:`Builder` turns an input shape and a :class:`BuildContext` into a
:class:`Built` model; the blocks (:func:`conv_bn_relu`, :func:`conv_frontend`...) use standard layers only and
create every BatchNormalization with the context's momentum.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
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

InputShape = tuple[int, int, int]


# --------------------------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class BuildContext:
    """Per-call options handed to a builder (validated by :func:`ecg_core.ml.zoo.build_model`)."""

    n_classes: int
    pretrained: bool
    trainable_top_n: int
    bn_momentum: float


@dataclass(frozen=True)
class Built:
    """What a builder returns: the model, whether ImageNet weights were loaded, and a one-line explanation."""

    model: keras.Model
    pretrained_loaded: bool
    message: str


Builder = Callable[[InputShape, BuildContext], Built]


# --------------------------------------------------------------------------------------------- building blocks


def bn(name: str, ctx: BuildContext) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=ctx.bn_momentum, name=name)


def conv_bn_relu(x: Any, filters: int, prefix: str, ctx: BuildContext, *, l2: float = 0.0) -> Any:
    """Conv2D 3x3 (no bias, BN follows) -> BatchNorm -> ReLU, named ``{prefix}_conv/bn/_relu``."""
    reg = regularizers.L2(l2) if l2 > 0 else None
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg, name=f"{prefix}_conv")(x)
    x = bn(f"{prefix}bn", ctx)(x)
    return layers.Activation("relu", name=f"{prefix}_relu")(x)


def dense_head(x: Any, n_classes: int) -> Any:
    return layers.Dense(n_classes, activation="softmax", name="predictions")(x)


def conv_to_sequence(x: Any, name: str) -> Any:
    """(B, H', W', C) feature map -> (B, W', H'*C) sequence: the width (time) axis becomes the sequence axis."""
    _, h, w, c = x.shape
    x = layers.Permute((2, 1, 3), name=f"{name}_time_major")(x)  # (B, W', H', C)
    return layers.Reshape((w, h * c), name=f"{name}_sequence")(x)  # (B, W', H'*C)


def conv_frontend(inp: Any, ctx: BuildContext) -> Any:
    """Shared feature extractor of the recurrent models: 3 x (conv-BN-ReLU, 2x2 max-pool), 32/64/128 filters."""
    x = inp
    for i, filters in enumerate((32, 64, 128), start=1):
        x = conv_bn_relu(x, filters, f"block{i}", ctx)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return x


def check_input_shape(shape: object, *, min_side: int, arch: str) -> InputShape:
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
