"""The zoo's transfer models: a Keras application with ImageNet weights on a [0, 1] input, flat in one graph.

:func:`transfer` builds ``[0, 1] input -> (gray -> RGB) -> the weights' input scaling -> application -> GAP head``
from standard layers; ImageNet weights that cannot be loaded (offline, no cache) fall back to random
initialisation, and :func:`freeze_base` freezes the base except its top layers (BatchNorm stays frozen).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecg_core.ml.zoo_blocks import BuildContext, Builder, Built, InputShape, dense_head, keras, layers


@dataclass(frozen=True)
class TransferRecipe:
    """How to put a Keras application on a [0, 1] input.

    ``preprocess(x)`` maps the 3-channel [0, 1] tensor to what the ImageNet weights expect, with standard layers.
    """

    app: str  # the name of the Keras application in ``keras.applications`` (looked up when building)
    preprocess: Callable[[Any], Any]
    app_kwargs: tuple[tuple[str, Any], ...] = ()


def to_minus_one_one(x: Any) -> Any:
    # MobileNetV2: [0, 1] -> [-1, 1]
    return layers.Rescaling(2.0, offset=-1.0, name="preprocess_scale")(x)


def to_0_255(x: Any) -> Any:
    # EfficientNetV2 with include_preprocessing=True rescales/normalises 0..255 inputs itself
    return layers.Rescaling(255.0, name="preprocess_scale")(x)


def to_caffe(x: Any) -> Any:
    # ResNet50 ("caffe" mode): RGB [0, 1] -> BGR 0..255 minus the ImageNet BGR mean. The channel swap uses
    # Cropping2D in channels_first mode (which crops the last axis) so that no Lambda layer is needed and the
    # prefix has no weights (the legacy .h5 loader matches weights by the order of weighted layers).
    x = layers.Rescaling(255.0, name="preprocess_scale")(x)
    blue = layers.Cropping2D(((0, 0), (2, 0)), data_format="channels_first", name="preprocess_b")(x)
    green = layers.Cropping2D(((0, 0), (1, 1)), data_format="channels_first", name="preprocess_g")(x)
    red = layers.Cropping2D(((0, 0), (0, 2)), data_format="channels_first", name="preprocess_r")(x)
    x = layers.Concatenate(axis=-1, name="preprocess_bgr")([blue, green, red])
    return layers.Normalization(mean=[103.939, 116.779, 123.68], variance=[1.0, 1.0, 1.0], name="preprocess_mean")(x)


def transfer(arch: str, recipe: TransferRecipe) -> Builder:
    """Builder of a flat transfer model: [0,1] input -> (gray->RGB) -> preprocess -> application -> GAP head."""

    def graph(input_shape: InputShape, ctx: BuildContext, weights: str | None) -> tuple[keras.Model, keras.Model]:
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
        model = keras.Model(inp, dense_head(y, ctx.n_classes), name=arch)
        return model, base

    def build(input_shape: InputShape, ctx: BuildContext) -> Built:
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
                return Built(model, False, msg)
            n_open = freeze_base(base, ctx.trainable_top_n)
            msg = (
                f"ImageNet weights loaded for {arch!r}; base frozen except its top {ctx.trainable_top_n} layers "
                f"({n_open} of them with trainable weights), BatchNorm layers of the base kept frozen."
            )
            return Built(model, True, msg)
        model, _ = graph(input_shape, ctx, None)
        return Built(model, False, "random initialisation (pretrained=False); all layers train.")

    return build


def freeze_base(base: keras.Model, top_n: int) -> int:
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
