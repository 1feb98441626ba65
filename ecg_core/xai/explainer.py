"""The explainer of one model: attribution maps of preprocessed images for any class, and predictions.

The costly, reusable part lives in :class:`Explainer`, built once per model: one clone of the model whose softmax
is replaced by a linear output (gradients of logits, not of saturated probabilities) and the tf-keras-vis objects
(:mod:`ecg_core.xai.methods`) built on that clone. A call explains one preprocessed image (float32 (h, w, c) in
[0, 1], see :func:`ecg_core.imaging.preprocess.preprocess`) for any class, not only the top-1. The CAM methods use the
run's :func:`ecg_core.ml.zoo.last_conv_layer_name` (overridable). :class:`ExplainerCache` keeps the explainers of the
last few runs.

Research and education use only: a heatmap shows what the model used, not where the disease is.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from cachetools import LRUCache

from ecg_core.core.errors import ConfigError, ModelLoadError
from ecg_core.xai.methods import METHODS, ExplainOptions, _Method, method_class


class _TopClassScore:
    """A tf-keras-vis score that explains the top class and keeps the (linear) outputs of the first forward
    pass: one pass gives both the prediction and the gradients. The gradient of ``max(logits)`` equals the
    gradient of the top class's logit, i.e. what ``CategoricalScore(argmax)`` gives."""

    def __init__(self) -> None:
        self.outputs: np.ndarray | None = None

    def __call__(self, output: Any) -> Any:
        import tensorflow as tf

        if self.outputs is None:
            self.outputs = np.asarray(output, dtype=np.float64)
        return tf.reduce_max(output, axis=-1)


def as_batch(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as a float32 batch (n, *input_shape) (one image gets a batch axis); :class:`ConfigError` when its
    shape or dtype does not fit the model."""
    arr = np.asarray(x)
    if arr.ndim == len(input_shape):
        arr = arr[None]
    if arr.ndim != len(input_shape) + 1 or tuple(arr.shape[1:]) != tuple(input_shape):
        raise ConfigError(
            f"the model expects input of shape {tuple(input_shape)} (height, width, channels); received "
            f"{tuple(np.asarray(x).shape)}. Fix: preprocess the image with the run's PreprocessConfig."
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise ConfigError(f"model input must be float in [0, 1]; received dtype {arr.dtype}. Fix: use "
                          "PreprocessResult.final (float32 in [0, 1]).")
    return arr.astype(np.float32, copy=False)


class Explainer:
    """Attribution maps of one model; build once (it clones the model), call per image.

    ``layer``: the feature-map layer of the CAM methods (default: :func:`ecg_core.ml.zoo.last_conv_layer_name`;
    a model without a 2-D convolution offers the saliency methods only). ``class_names``: the output order.
    """

    def __init__(self, model: Any, *, layer: str | None = None, class_names: Sequence[str] | None = None,
                 options: ExplainOptions | None = None) -> None:
        import keras

        from ecg_core.ml import zoo

        if not isinstance(model, keras.Model):
            raise ConfigError(f"model must be a keras.Model; received {type(model).__name__}")
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ConfigError(f"the explainer needs a model with one input and one output; received "
                              f"{len(model.inputs)} inputs and {len(model.outputs)} outputs")
        self.model = model
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in model.input_shape[1:])
        self.n_classes = int(model.output_shape[-1])
        names = list(class_names) if class_names else [f"class {i}" for i in range(self.n_classes)]
        if len(names) != self.n_classes:
            raise ConfigError(f"class_names lists {len(names)} classes but the model has {self.n_classes} outputs")
        self.class_names = names
        self.options = options or ExplainOptions()
        if layer is None:
            try:
                layer = zoo.last_conv_layer_name(model)
            except ConfigError:
                layer = None
        else:
            try:
                out = model.get_layer(layer).output
            except (ValueError, KeyError) as e:
                raise ConfigError(f"layer {layer!r} is not in model {model.name!r}; fix: leave layer=None for the "
                                  "last convolutional layer") from e
            if len(out.shape) != 4:
                raise ConfigError(f"layer {layer!r} has output shape {tuple(out.shape)}; the CAM methods need a "
                                  "4-D feature map (batch, h, w, channels)")
        self.layer = layer
        self._linear = self._linear_clone(model)
        self._impl: dict[str, _Method] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _linear_clone(model: Any) -> Any:
        import keras
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        ReplaceToLinear()(clone)

        def eager_predict(x: Any, batch_size: int = 32, **_: Any) -> np.ndarray:
            # Score-CAM calls predict(); an eager call avoids predict's tf.function tracing (seconds per model)
            # and its progress bar
            xs = x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x
            return np.concatenate([np.asarray(clone(xs[i : i + batch_size], training=False))
                                   for i in range(0, len(xs), batch_size)], axis=0)

        clone.predict = eager_predict
        return clone

    @property
    def methods(self) -> list[str]:
        """Method names usable with this model (all, or the saliency methods when there is no feature map)."""
        return [m for m, cls in METHODS.items() if self.layer is not None or not cls.needs_layer]

    def _method(self, name: str) -> _Method:
        cls = method_class(name)
        if cls.needs_layer and self.layer is None:
            raise ConfigError(f"{cls.title} needs a convolutional feature map and model {self.model.name!r} has "
                              f"none; use one of {', '.join(self.methods)}")
        with self._lock:
            if name not in self._impl:
                self._impl[name] = cls(self._linear, self.layer, self.options)
            return self._impl[name]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities: (k,) for one image (h, w, c), (n, k) for a batch."""
        return predict_proba(self.model, x)

    def explain(self, x: np.ndarray, *, method: str = "gradcam", class_index: int | None = None) -> np.ndarray:
        """Attribution map of ``x`` (float32 (h, w, c) in [0, 1]) for ``class_index`` (default: the top class):
        float32 (h, w) in [0, 1], 1 = most important. Warns when the map is zero everywhere."""
        batch = as_batch(x, self.input_shape)[:1]
        impl = self._method(method)
        if class_index is None:
            class_index = int(np.argmax(self.predict_proba(batch)[0]))
        if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) or not (
            0 <= int(class_index) < self.n_classes
        ):
            raise ConfigError(f"class_index must be an int in 0..{self.n_classes - 1} ({', '.join(self.class_names)})"
                              f"; received {class_index!r}")
        return self._finish(impl, impl(batch, int(class_index)), int(class_index))

    def _finish(self, impl: _Method, raw: np.ndarray, class_index: int) -> np.ndarray:
        heat = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
        heat = np.clip(heat, 0.0, 1.0).astype(np.float32)
        if heat.shape != tuple(self.input_shape[:2]):
            heat = cv2.resize(heat, (self.input_shape[1], self.input_shape[0]), interpolation=cv2.INTER_LINEAR)
        if float(heat.max()) <= 0.0:
            warnings.warn(
                f"the {impl.title} map for class {self.class_names[class_index]!r} is zero everywhere: no "
                "region increases this class's score. Try another method or class.", stacklevel=3)
        return heat

    @property
    def _softmax_head(self) -> bool:
        """True when the model ends in a softmax, so softmax(linear clone's output) is its prediction."""
        import keras

        act = getattr(self.model.layers[-1], "activation", None)
        return act is keras.activations.softmax or getattr(act, "__name__", "") == "softmax"

    def predict_and_explain(self, x: np.ndarray, *, method: str = "gradcam") -> tuple[np.ndarray, int, np.ndarray]:
        """Prediction and the map of the top class: (probabilities (k,), top class index, map (h, w)).

        For Grad-CAM, Grad-CAM++, LayerCAM and vanilla saliency (methods whose first forward pass sees the clean
        input) on a softmax model, one pass gives both: the linear clone's outputs of that pass, through a
        softmax, are the model's probabilities. Otherwise (Score-CAM, SmoothGrad) a forward pass comes first.
        """
        batch = as_batch(x, self.input_shape)[:1]
        impl = self._method(method)
        if impl.single_pass and self._softmax_head:
            from scipy.special import softmax  # lazy: scipy.special costs ~0.5 s to import

            score = _TopClassScore()
            raw = impl(batch, score)
            if score.outputs is not None:
                probs = softmax(score.outputs[0], axis=-1)
                k = int(np.argmax(probs))
                return probs, k, self._finish(impl, raw, k)
        probs = np.asarray(self.predict_proba(batch)[0], dtype=np.float64)
        k = int(np.argmax(probs))
        return probs, k, self._finish(impl, impl(batch, k), k)


def explain_image(explainer: Explainer, x_model_input: np.ndarray, *, method: str = "gradcam",
                  class_index: int | None = None) -> np.ndarray:
    """Heatmap (h, w) in [0, 1] of a preprocessed image for ``class_index`` (default: top class)."""
    return explainer.explain(x_model_input, method=method, class_index=class_index)


def predict_proba(model: Any, x: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """Class probabilities of a Keras model (or :class:`Explainer`): (k,) for one image, (n, k) for a batch."""
    if isinstance(model, Explainer):
        model = model.model
    shape = tuple(int(v) for v in model.input_shape[1:])
    single = np.asarray(x).ndim == len(shape)
    batch = as_batch(x, shape)
    out = [np.asarray(model(batch[i : i + batch_size], training=False), dtype=np.float64)
           for i in range(0, len(batch), batch_size)]
    probs = np.concatenate(out, axis=0) if out else np.zeros((0, int(model.output_shape[-1])))
    return probs[0] if single else probs


class ExplainerCache:
    """A small LRU of :class:`Explainer` objects keyed by run (folder, model file time, layer, options).

    ecg_core keeps no global state: the caller owns the cache (the Explain page keeps one in
    ``st.cache_resource``, a command one per process). Thread-safe.
    """

    def __init__(self, max_entries: int = 3) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(f"max_entries must be an int >= 1; received {max_entries!r}")
        self.max_entries = max_entries
        self._items: LRUCache[tuple[Any, ...], Explainer] = LRUCache(maxsize=max_entries)
        self._lock = threading.Lock()
        self.loads = 0

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get(self, run: Any, *, layer: str | None = None, options: ExplainOptions | None = None) -> Explainer:
        """The explainer of ``run`` (RunInfo, run folder or run id), loading the model on first use."""
        from ecg_core.ml import registry

        info = run if isinstance(run, registry.RunInfo) else registry.resolve_run(run, usable=True)
        model_file = info.path / registry.MODEL_FILE
        try:
            stamp = model_file.stat().st_mtime_ns
        except OSError as e:
            raise ModelLoadError(f"run {info.run_id!r}: cannot read {model_file.name} ({e})") from e
        layer = layer or info.meta.get("last_conv_layer") or None  # the effective layer: one key per explainer
        key = (str(info.path.resolve()), stamp, layer, options)
        with self._lock:
            hit = self._items.get(key)  # a hit becomes the most recently used
            if hit is not None:
                return hit
        model = registry.load_model(info)
        exp = Explainer(model, layer=layer,
                        class_names=info.class_names or None, options=options)
        with self._lock:
            self.loads += 1
            self._items[key] = exp  # evicts the least recently used beyond max_entries
        return exp
