"""Explanations of a trained model's predictions, in the coordinates of the original report.

Attribution methods (tf-keras-vis, one registry dict :data:`METHODS` serves dispatch and error messages):

=============  ===========================================================================================
gradcam        Grad-CAM — Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
               Gradient-based Localization", ICCV 2017 (arXiv:1610.02391)
gradcam++      Grad-CAM++ — Chattopadhyay et al., WACV 2018 (arXiv:1710.11063)
scorecam       Score-CAM — Wang et al., CVPR-W 2020 (arXiv:1910.01279), fast variant: only the ``max_N``
               feature maps with the largest variance are scored (Faster Score-CAM)
layercam       LayerCAM — Jiang et al., IEEE TIP 2021
saliency       vanilla gradient saliency — Simonyan et al., 2013 (arXiv:1312.6034)
smoothgrad     SmoothGrad — Smilkov et al., 2017 (arXiv:1706.03825)
=============  ===========================================================================================

The costly, reusable part lives in :class:`Explainer`, built once per model: one clone of the model whose softmax
is replaced by a linear output (gradients of logits, not of saturated probabilities) and the tf-keras-vis objects
built on that clone. A call explains one preprocessed image (float32 (h, w, c) in [0, 1], see
:func:`ecg_core.imaging.preprocess.preprocess`) for any class, not only the top-1. The CAM methods use the run's
:func:`ecg_core.ml.zoo.last_conv_layer_name` (overridable) with ``seek_penultimate_conv_layer=False``, so tf-keras-vis
uses exactly that layer instead of walking back to a Conv layer.

Heatmaps are mapped back onto the original report with :func:`heatmap_to_original` (inverse of the crop + stretch
resize of the preprocessing; zero outside the crop). :func:`deletion_insertion` and :func:`randomisation_check`
test whether a map is faithful to the model; :func:`pointing_game` and :func:`lead_mass_score` compare it with the
pathology leads of synthetic ground truth. :func:`predict_files` runs a model over a folder (the ``predict``
command and the page's batch mode).

Research and education use only: a heatmap shows what the model used, not where the disease is.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError, EcgCoreError, ModelLoadError

ProgressFn = Callable[[int, int], None]

DISCLAIMER = "Research and education use only — not a diagnosis."


# ============================================================================================= options & methods
@dataclass(frozen=True)
class ExplainOptions:
    """Per-explainer settings of the slower methods.

    ``scorecam_max_n``: number of feature maps Score-CAM scores (Faster Score-CAM; more = slower, smoother);
    ``scorecam_batch_size``: masked images per forward pass; ``smooth_samples``: noisy copies SmoothGrad averages;
    ``smooth_noise``: their noise level as a fraction of the input range.
    """

    scorecam_max_n: int = 16
    scorecam_batch_size: int = 16
    smooth_samples: int = 16
    smooth_noise: float = 0.15

    def __post_init__(self) -> None:
        for name, lo, hi in (("scorecam_max_n", 1, 1024), ("scorecam_batch_size", 1, 256),
                             ("smooth_samples", 1, 200)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"ExplainOptions.{name} must be an int in {lo}..{hi}; received {v!r}")
        v = self.smooth_noise
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < float(v) <= 1.0:
            raise ConfigError(f"ExplainOptions.smooth_noise must be in (0, 1]; received {v!r}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the Keras input-structure notice that every tf-keras-vis call triggers."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


class _Method(ABC):
    """One attribution method bound to a linear-output clone of a model. Subclasses set the class attributes
    and implement :meth:`__call__` -> (h, w) map for one image."""

    name: ClassVar[str]
    title: ClassVar[str]
    reference: ClassVar[str]
    needs_layer: ClassVar[bool] = True
    #: the method's first forward pass sees the clean input, so that pass can also give the prediction
    single_pass: ClassVar[bool] = True

    def __init__(self, linear_model: Any, layer: str | None, options: ExplainOptions) -> None:
        self.layer = layer
        self.options = options

    @abstractmethod
    def __call__(self, x: np.ndarray, class_index: int | Any) -> np.ndarray:
        """``x`` float32 (1, h, w, c) -> float32 (h, w) map in [0, 1]. ``class_index``: an int, or a
        tf-keras-vis score callable (output tensor -> score per image)."""


def _score(class_index: int | Any) -> Any:
    from tf_keras_vis.utils.scores import CategoricalScore

    if callable(class_index):
        return class_index
    return CategoricalScore(int(class_index))


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


class _Cam(_Method):
    _kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self, linear_model: Any, layer: str | None, options: ExplainOptions) -> None:
        super().__init__(linear_model, layer, options)
        self._vis = self._build(linear_model)

    @abstractmethod
    def _build(self, linear_model: Any) -> Any: ...

    def _call_kwargs(self) -> dict[str, Any]:
        return {}

    def __call__(self, x: np.ndarray, class_index: int | Any) -> np.ndarray:
        with _quiet():
            cam = self._vis(_score(class_index), x, penultimate_layer=self.layer, seek_penultimate_conv_layer=False,
                            **self._call_kwargs())
        return np.asarray(cam, dtype=np.float32)[0]


class GradCAM(_Cam):
    name = "gradcam"
    title = "Grad-CAM"
    reference = "Selvaraju et al., ICCV 2017 (arXiv:1610.02391)"

    def _build(self, linear_model: Any) -> Any:
        from tf_keras_vis.gradcam import Gradcam

        return Gradcam(linear_model, clone=False)


class GradCAMPlusPlus(_Cam):
    name = "gradcam++"
    title = "Grad-CAM++"
    reference = "Chattopadhyay et al., WACV 2018 (arXiv:1710.11063)"

    def _build(self, linear_model: Any) -> Any:
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus

        return GradcamPlusPlus(linear_model, clone=False)


class ScoreCAM(_Cam):
    name = "scorecam"
    single_pass = False  # scores masked copies of the input only
    title = "Score-CAM (fast)"
    reference = "Wang et al., CVPR-W 2020 (arXiv:1910.01279); Faster Score-CAM (max_N)"

    def _build(self, linear_model: Any) -> Any:
        from tf_keras_vis.scorecam import Scorecam

        self._channels = int(linear_model.get_layer(self.layer).output.shape[-1]) if self.layer else 1
        return Scorecam(linear_model, clone=False)

    def _call_kwargs(self) -> dict[str, Any]:
        return {"max_N": min(self.options.scorecam_max_n, self._channels),
                "batch_size": self.options.scorecam_batch_size}


class LayerCAM(_Cam):
    name = "layercam"
    title = "LayerCAM"
    reference = "Jiang et al., IEEE TIP 2021"

    def _build(self, linear_model: Any) -> Any:
        from tf_keras_vis.layercam import Layercam

        return Layercam(linear_model, clone=False)


class _SaliencyBase(_Method):
    needs_layer = False
    _smooth: ClassVar[bool] = False

    def __init__(self, linear_model: Any, layer: str | None, options: ExplainOptions) -> None:
        super().__init__(linear_model, layer, options)
        from tf_keras_vis.saliency import Saliency

        self._vis = Saliency(linear_model, clone=False)

    def __call__(self, x: np.ndarray, class_index: int | Any) -> np.ndarray:
        kw: dict[str, Any] = {"smooth_samples": 0}
        if self._smooth:
            kw = {"smooth_samples": self.options.smooth_samples, "smooth_noise": self.options.smooth_noise}
        with _quiet():
            sal = self._vis(_score(class_index), x, keepdims=False, normalize_map=True, **kw)
        return np.asarray(sal, dtype=np.float32)[0]


class VanillaSaliency(_SaliencyBase):
    name = "saliency"
    title = "Vanilla saliency"
    reference = "Simonyan et al., 2013 (arXiv:1312.6034)"


class SmoothGrad(_SaliencyBase):
    name = "smoothgrad"
    title = "SmoothGrad"
    single_pass = False  # sees noisy copies only
    reference = "Smilkov et al., 2017 (arXiv:1706.03825)"
    _smooth = True


#: method name -> implementation; the one table for dispatch, menus and error messages.
METHODS: dict[str, type[_Method]] = {
    cls.name: cls for cls in (GradCAM, GradCAMPlusPlus, ScoreCAM, LayerCAM, VanillaSaliency, SmoothGrad)
}


def method_title(name: str) -> str:
    """Display title of a method name (``'gradcam'`` -> ``'Grad-CAM'``)."""
    return _method_class(name).title


def _method_class(name: str) -> type[_Method]:
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"method must be one of {', '.join(METHODS)}; received {name!r}. Fix: pick a listed method."
        ) from None


# ====================================================================================================== explainer
def _as_batch(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
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
        cls = _method_class(name)
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
        batch = _as_batch(x, self.input_shape)[:1]
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
        batch = _as_batch(x, self.input_shape)[:1]
        impl = self._method(method)
        if impl.single_pass and self._softmax_head:
            score = _TopClassScore()
            raw = impl(batch, score)
            if score.outputs is not None:
                probs = _softmax(score.outputs[0])
                k = int(np.argmax(probs))
                return probs, k, self._finish(impl, raw, k)
        probs = np.asarray(self.predict_proba(batch)[0], dtype=np.float64)
        k = int(np.argmax(probs))
        return probs, k, self._finish(impl, impl(batch, k), k)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


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
    batch = _as_batch(x, shape)
    out = [np.asarray(model(batch[i : i + batch_size], training=False), dtype=np.float64)
           for i in range(0, len(batch), batch_size)]
    probs = np.concatenate(out, axis=0) if out else np.zeros((0, int(model.output_shape[-1])))
    return probs[0] if single else probs


# ==================================================================================================== run cache
def resolve_run(ref: str | Path, *, models_dir: str | Path | None = None) -> Any:
    """A usable :class:`~ecg_core.ml.registry.RunInfo` from a run folder path or a run id in ``models_dir``
    (default :func:`ecg_core.core.paths.models_dir`). Raises :class:`ModelLoadError` with the available ids."""
    from ecg_core.core import paths
    from ecg_core.ml import registry

    p = Path(ref).expanduser()
    if p.is_dir() and (p / registry.RUN_JSON).exists():
        info = registry.read_run(p)
    else:
        root = Path(models_dir) if models_dir is not None else paths.models_dir()
        cand = root / str(ref)
        if not cand.is_dir():
            ids = [r.run_id for r in registry.list_runs(root) if r.usable]
            raise ModelLoadError(
                f"run {str(ref)!r} not found: expected a run folder or a run id in {root}; available: "
                f"{', '.join(ids[:10]) if ids else 'none (train a model first)'}"
            )
        info = registry.read_run(cand)
    if not info.usable:
        raise ModelLoadError(f"run {info.run_id!r} has no usable model: {info.problem or 'status ' + info.status}")
    return info


class ExplainerCache:
    """A small LRU of :class:`Explainer` objects keyed by run (folder, model file time, layer, options).

    ecg_core keeps no global state: the caller owns the cache (the Explain page keeps one in
    ``st.cache_resource``, a command one per process). Thread-safe.
    """

    def __init__(self, max_entries: int = 3) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(f"max_entries must be an int >= 1; received {max_entries!r}")
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[Any, ...], Explainer] = OrderedDict()
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

        info = run if isinstance(run, registry.RunInfo) else resolve_run(run)
        model_file = info.path / registry.MODEL_FILE
        try:
            stamp = model_file.stat().st_mtime_ns
        except OSError as e:
            raise ModelLoadError(f"run {info.run_id!r}: cannot read {model_file.name} ({e})") from e
        key = (str(info.path.resolve()), stamp, layer, options)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        model = registry.load_model(info)
        exp = Explainer(model, layer=layer or info.meta.get("last_conv_layer") or None,
                        class_names=info.class_names or None, options=options)
        with self._lock:
            self.loads += 1
            self._items[key] = exp
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return exp


# ============================================================================================ original coordinates
def heatmap_to_original(heatmap: np.ndarray, crop_box: Sequence[int], original_shape: Sequence[int]) -> np.ndarray:
    """Map a model-input heatmap (h, w) back onto the original image: float32 (H, W), zero outside the crop.

    The preprocessing cut ``crop_box`` (x0, y0, x1, y1; x1/y1 exclusive) out of the original and stretched it to
    (h, w); this resizes the map to the crop's size (bilinear, same pixel-centre convention as OpenCV's resize)
    and pastes it at the crop's place.
    """
    hm = np.asarray(heatmap, dtype=np.float32)
    if hm.ndim != 2 or min(hm.shape) < 1:
        raise ConfigError(f"heatmap must be a 2-D array (h, w); received shape {hm.shape}")
    if len(original_shape) < 2:
        raise ConfigError(f"original_shape must be (H, W); received {original_shape!r}")
    H, W = int(original_shape[0]), int(original_shape[1])
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    if not (0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H):
        raise ConfigError(f"crop_box must satisfy 0 <= x0 < x1 <= {W} and 0 <= y0 < y1 <= {H}; received "
                          f"{tuple(crop_box)}")
    out = np.zeros((H, W), dtype=np.float32)
    out[y0:y1, x0:x1] = cv2.resize(hm, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return out


COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET, "turbo": cv2.COLORMAP_TURBO, "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS, "hot": cv2.COLORMAP_HOT,
}


def colorize(heatmap: np.ndarray, *, colormap: str = "jet") -> np.ndarray:
    """uint8 RGB (h, w, 3) rendering of a [0, 1] heatmap."""
    if colormap not in COLORMAPS:
        raise ConfigError(f"colormap must be one of {', '.join(COLORMAPS)}; received {colormap!r}")
    u8 = np.clip(np.rint(np.asarray(heatmap, np.float32) * 255), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)


def overlay(rgb: np.ndarray, heatmap_orig: np.ndarray, *, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """The report with the heatmap blended on top: uint8 RGB of the report's size.

    Each pixel mixes in the colormap colour with weight ``alpha * heat``, so unattended paper stays readable and
    the most attended regions carry the full ``alpha``.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConfigError(f"rgb must be uint8 (H, W, 3); received {rgb.dtype} {rgb.shape}")
    hm = np.asarray(heatmap_orig, np.float32)
    if hm.shape != rgb.shape[:2]:
        raise ConfigError(f"heatmap_orig must have the image's shape {rgb.shape[:2]}; received {hm.shape}. Fix: map "
                          "it with heatmap_to_original first.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1]; received {alpha!r}")
    colour = colorize(hm, colormap=colormap)
    w = np.float32(alpha) * np.clip(np.nan_to_num(hm, nan=0.0), 0, 1).astype(np.float32)
    # base (1 - w) + colour w, per pixel, rounded; OpenCV does it ~7x faster than the same numpy expression
    return cv2.blendLinear(colour, np.ascontiguousarray(rgb), w, np.float32(1.0) - w)


# ================================================================================================ predictions
@dataclass(frozen=True)
class ClassMessage:
    """What a class probability means, in words, with the clinical description of the class."""

    class_index: int
    class_name: str
    probability: float
    description: str
    look_for: str
    text: str


@dataclass(frozen=True)
class DomainNote:
    """Whether the report resembles the model's training data by source (real vs synthetic reports).

    ``matches`` is False when a synthetic-data model meets a real (or uploaded) report, or a real-data model a
    synthetic report; ``text`` says so in words to show next to the verdict."""

    matches: bool
    text: str


def training_domain_note(data_source: str, input_synthetic: bool) -> DomainNote:
    """Compare what a model was trained on (``run.json`` ``data_source``: ``real``/``synthetic``) with the input.

    ``input_synthetic`` is True for a report of our synthetic generator (it comes with a ground-truth sidecar);
    an uploaded or real dataset image counts as real."""
    what = "a synthetic report (it has a ground-truth sidecar)" if input_synthetic else "a real or uploaded report"
    if data_source == "synthetic" and not input_synthetic:
        return DomainNote(False, f"This model was trained on synthetic reports only, and this is {what}: real "
                                 "reports look different from anything it saw, so its output here is not validated.")
    if data_source == "real" and input_synthetic:
        return DomainNote(False, f"This model was trained on real reports, and this is {what}: it never saw such "
                                 "images, so its output here says little. For the ground truth, choose a model "
                                 "trained on synthetic reports.")
    if data_source not in ("real", "synthetic"):
        return DomainNote(False, f"The model's training data is not recorded ({data_source!r}); this is {what}.")
    return DomainNote(True, f"Trained on {data_source} reports; this is {what}, like its training data.")


def class_messages(probs: Sequence[float], class_names: Sequence[str], *, preset: str = "cardiac-4"
                   ) -> list[ClassMessage]:
    """One message per class (model order): the probability, what the class means and what a reader looks for
    on the ECG (from :mod:`ecg_core.core.labels`), always worded as a model output, not a diagnosis."""
    from ecg_core.core.labels import get_preset

    p = np.asarray(probs, dtype=float)
    if p.shape != (len(class_names),):
        raise ConfigError(f"probs must have one value per class ({len(class_names)}); received shape {p.shape}")
    try:
        pre = get_preset(preset)
    except ConfigError:
        pre = None
    top = int(np.argmax(p)) if p.size else -1
    out = []
    for i, name in enumerate(class_names):
        desc, look = "", ""
        if pre is not None:
            try:
                info = pre.info(name)
                desc, look = info.description, info.look_for
            except ConfigError:
                pass
        lead = "The model's top class" if i == top else "The model"
        text = (f"{lead}: {p[i]:.0%} for “{name}”. "
                + (f"{desc} " if desc else "")
                + (f"A reader would look for: {look} " if look else "")
                + "This is the output of a research model, not a diagnosis.")
        out.append(ClassMessage(i, str(name), float(p[i]), desc, look, text))
    return out


def probability_figure(probs: Sequence[float], class_names: Sequence[str], *, highlight: int | None = None,
                       title: str = "Class probabilities") -> Any:
    """Plotly horizontal bars of the class probabilities (the highlighted class darker)."""
    import plotly.graph_objects as go

    p = np.asarray(probs, dtype=float)
    hi = int(np.argmax(p)) if highlight is None else int(highlight)
    colours = ["#1f77b4" if i == hi else "#9ecae1" for i in range(len(p))]
    # plain lists and one constructor call (plotly validates numpy arrays and incremental updates at length)
    bar = {"type": "bar", "x": [100.0 * float(v) for v in p], "y": [str(c) for c in class_names],
           "orientation": "h", "marker": {"color": colours}, "text": [f"{v:.1%}" for v in p], "textposition": "auto",
           "hovertemplate": "%{y}: %{x:.1f} %<extra></extra>"}
    layout = {"title": {"text": title}, "xaxis": {"title": {"text": "probability (%)"}, "range": [0, 100]},
              "yaxis": {"autorange": "reversed"}, "height": 60 + 45 * len(p),
              "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}
    return go.Figure({"data": [bar], "layout": layout})


# ================================================================================================ faithfulness
def paper_fill(x: np.ndarray) -> np.ndarray:
    """The paper colour of a model input (h, w, c): the per-channel median — most of a report is paper — so
    removed regions look like blank paper, not like black ink."""
    arr = np.asarray(x, dtype=np.float32)
    return np.median(arr.reshape(-1, arr.shape[-1]), axis=0)


@dataclass(frozen=True)
class FaithfulnessResult:
    """Deletion and insertion curves (Petsiuk et al., "RISE", BMVC 2018) against a random-order baseline.

    ``fractions``: share of patches removed (deletion) or restored (insertion) at each step, 0..1;
    ``deletion`` / ``insertion``: probability of the explained class along the way; ``*_random``: the same with
    patches in random order (mean over ``n_random`` orders). AUCs are areas under these curves (trapezoid rule).
    A faithful map makes the probability fall faster than random on deletion (lower AUC) and rise faster on
    insertion (higher AUC).
    """

    class_index: int
    patch: int
    fill: tuple[float, ...]
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_random: np.ndarray
    insertion_random: np.ndarray
    deletion_auc: float
    insertion_auc: float
    deletion_auc_random: float
    insertion_auc_random: float

    @property
    def summary(self) -> str:
        d = "faster" if self.deletion_auc < self.deletion_auc_random else "not faster"
        i = "faster" if self.insertion_auc > self.insertion_auc_random else "not faster"
        return (f"deleting the most attended regions first lowers the probability {d} than a random order "
                f"(AUC {self.deletion_auc:.3f} vs {self.deletion_auc_random:.3f}, lower is better); inserting them "
                f"first raises it {i} (AUC {self.insertion_auc:.3f} vs {self.insertion_auc_random:.3f}, higher is "
                "better)")


def _patch_scores(heatmap: np.ndarray, patch: int) -> tuple[np.ndarray, int, int]:
    h, w = heatmap.shape
    gh, gw = -(-h // patch), -(-w // patch)
    padded = np.zeros((gh * patch, gw * patch), dtype=np.float64)
    padded[:h, :w] = heatmap
    counts = np.zeros_like(padded)
    counts[:h, :w] = 1.0
    s = padded.reshape(gh, patch, gw, patch).sum(axis=(1, 3))
    c = counts.reshape(gh, patch, gw, patch).sum(axis=(1, 3))
    return (s / np.maximum(c, 1)).ravel(), gh, gw


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def deletion_insertion(model: Any, x: np.ndarray, heatmap: np.ndarray, *, class_index: int, patch: int | None = None,
                       steps: int = 16, n_random: int = 3, seed: int = 0, fill: Sequence[float] | None = None,
                       batch_size: int = 32) -> FaithfulnessResult:
    """Deletion/insertion curves of a heatmap (see :class:`FaithfulnessResult`).

    ``x``: the model input (h, w, c); ``heatmap``: (h, w) in model-input coordinates; ``patch``: square patch
    side in px (default: 1/12 of the shorter side, at least 4); patches are ranked by their mean heat; ``steps``:
    points per curve after the start; ``fill``: the replacement colour (default :func:`paper_fill`).
    """
    m = model.model if isinstance(model, Explainer) else model
    shape = tuple(int(v) for v in m.input_shape[1:])
    xb = _as_batch(x, shape)[0]
    hm = np.asarray(heatmap, dtype=np.float64)
    if hm.shape != xb.shape[:2]:
        raise ConfigError(f"heatmap must be in model-input coordinates {xb.shape[:2]}; received {hm.shape}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= 200:
        raise ConfigError(f"steps must be an int in 2..200; received {steps!r}")
    if isinstance(n_random, bool) or not isinstance(n_random, int) or not 1 <= n_random <= 50:
        raise ConfigError(f"n_random must be an int in 1..50; received {n_random!r}")
    h, w = xb.shape[:2]
    patch = int(patch) if patch is not None else max(4, min(h, w) // 12)
    if not 1 <= patch <= min(h, w):
        raise ConfigError(f"patch must be in 1..{min(h, w)} px; received {patch!r}")
    fill_v = np.asarray(fill if fill is not None else paper_fill(xb), dtype=np.float32).reshape(-1)
    if fill_v.size not in (1, xb.shape[2]):
        raise ConfigError(f"fill must have 1 or {xb.shape[2]} values; received {fill_v.size}")
    scores, gh, gw = _patch_scores(hm, patch)
    n_p = scores.size
    order = np.argsort(-scores, kind="stable")
    rng = np.random.default_rng(seed)
    orders = [order] + [rng.permutation(n_p) for _ in range(n_random)]
    ks = np.rint(np.linspace(0, n_p, steps + 1)).astype(int)
    blank = np.broadcast_to(fill_v, xb.shape).astype(np.float32)

    def masks_for(o: np.ndarray) -> np.ndarray:  # (steps+1, h, w) bool: True = patch selected so far
        rank = np.empty(n_p, dtype=np.int64)
        rank[o] = np.arange(n_p)
        grid = rank.reshape(gh, gw)
        full = np.kron(grid, np.ones((patch, patch), dtype=np.int64))[:h, :w]
        return full[None] < ks[:, None, None]

    images = []
    for o in orders:
        sel = masks_for(o)[..., None]
        images.append(np.where(sel, blank, xb))  # deletion: selected patches become paper
        images.append(np.where(sel, xb, blank))  # insertion: selected patches come back
    batch = np.concatenate(images, axis=0)
    probs = predict_proba(m, batch, batch_size=batch_size)[:, int(class_index)].reshape(len(orders), 2, steps + 1)
    fr = ks / float(n_p)
    dele, ins = probs[0, 0], probs[0, 1]
    dr, ir = probs[1:, 0].mean(axis=0), probs[1:, 1].mean(axis=0)
    return FaithfulnessResult(
        class_index=int(class_index), patch=patch, fill=tuple(float(v) for v in fill_v), fractions=fr,
        deletion=dele, insertion=ins, deletion_random=dr, insertion_random=ir,
        deletion_auc=_trapezoid(dele, fr), insertion_auc=_trapezoid(ins, fr),
        deletion_auc_random=float(np.mean([_trapezoid(probs[k, 0], fr) for k in range(1, len(orders))])),
        insertion_auc_random=float(np.mean([_trapezoid(probs[k, 1], fr) for k in range(1, len(orders))])),
    )


def faithfulness_figure(result: FaithfulnessResult) -> Any:
    """Plotly figure: deletion and insertion curves next to their random-order baselines."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"Deletion (AUC {result.deletion_auc:.3f} vs random {result.deletion_auc_random:.3f})",
        f"Insertion (AUC {result.insertion_auc:.3f} vs random {result.insertion_auc_random:.3f})"))
    x = result.fractions * 100
    for col, (curve, rand) in enumerate(((result.deletion, result.deletion_random),
                                         (result.insertion, result.insertion_random)), start=1):
        fig.add_trace(go.Scatter(x=x, y=curve, mode="lines+markers", name="most attended first",
                                 line={"color": "#d62728"}, showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=x, y=rand, mode="lines", name="random order", line={"color": "#7f7f7f",
                                 "dash": "dash"}, showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="patches removed (%)" if col == 1 else "patches restored (%)", row=1, col=col)
        fig.update_yaxes(title_text="class probability", range=[0, 1], row=1, col=col)
    fig.update_layout(height=330, margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.3})
    return fig


@dataclass(frozen=True)
class RandomisationCheck:
    """Model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

    The top ``layers`` of a clone of the model get random weights; a map that barely changes (high Spearman rank
    correlation with the original map) does not depend on what the model learned. ``passed`` when
    ``spearman < threshold``.
    """

    method: str
    layers: tuple[str, ...]
    spearman: float
    threshold: float
    passed: bool
    heatmap_random: np.ndarray

    @property
    def message(self) -> str:
        top = ", ".join(self.layers)
        if self.passed:
            return (f"sanity check passed: after randomising the top layers ({top}) the map changed "
                    f"(rank correlation {self.spearman:.2f} < {self.threshold:.2f}), so it depends on the learned "
                    "weights")
        return (f"sanity check FAILED: after randomising the top layers ({top}) the map stayed similar (rank "
                f"correlation {self.spearman:.2f} >= {self.threshold:.2f}); it may show image structure (edges, "
                "traces) rather than what the model learned")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    sa, sb = np.std(a), np.std(b)
    if sa == 0 and sb == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    if sa == 0 or sb == 0:
        return 0.0
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def randomised_clone(model: Any, *, n_layers: int = 2, seed: int = 0) -> tuple[Any, tuple[str, ...]]:
    """A clone of ``model`` whose top ``n_layers`` layers with a kernel (Dense, Conv, recurrent; BatchNorm is
    skipped) get random normal weights of the same standard deviation as the trained ones (biases zero)."""
    import keras

    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ConfigError(f"n_layers must be an int >= 1; received {n_layers!r}")
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for layer in reversed(clone.layers):
        if len(chosen) >= n_layers:
            break
        if isinstance(layer, keras.layers.BatchNormalization) or not layer.get_weights():
            continue
        if not any("kernel" in v.path for v in layer.weights):
            continue
        new = []
        for v, arr in zip(layer.weights, layer.get_weights()):
            if "bias" in v.path:
                new.append(np.zeros_like(arr))
            else:
                sd = float(np.std(arr)) or 0.05
                new.append(rng.normal(0.0, sd, arr.shape).astype(arr.dtype))
        layer.set_weights(new)
        chosen.append(layer.name)
    if not chosen:
        raise ConfigError(f"model {model.name!r} has no layer with a kernel to randomise")
    return clone, tuple(chosen)


def randomisation_check(explainer: Explainer, x: np.ndarray, *, method: str = "gradcam",
                        class_index: int | None = None, n_layers: int = 2, seed: int = 0,
                        threshold: float = 0.5, heatmap: np.ndarray | None = None) -> RandomisationCheck:
    """Run the model-randomisation sanity check for one image (see :class:`RandomisationCheck`). ``heatmap``: the
    original map when already computed."""
    if class_index is None:
        class_index = int(np.argmax(explainer.predict_proba(x)))
    base = heatmap if heatmap is not None else explainer.explain(x, method=method, class_index=class_index)
    clone, layers = randomised_clone(explainer.model, n_layers=n_layers, seed=seed)
    rnd = Explainer(clone, layer=explainer.layer, class_names=explainer.class_names, options=explainer.options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hr = rnd.explain(x, method=method, class_index=class_index)
    rho = _spearman(base, hr)
    return RandomisationCheck(method, layers, rho, float(threshold), bool(rho < threshold), hr)


# ===================================================================================== ground-truth localisation
def _union_mask(shape: tuple[int, int], boxes: Mapping[str, Sequence[int]], leads: Iterable[str]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for lead in leads:
        if lead not in boxes:
            raise ConfigError(f"lead {lead!r} has no box; boxes are known for {', '.join(boxes)}")
        x0, y0, x1, y1 = (int(v) for v in boxes[lead])
        mask[max(y0, 0):y1, max(x0, 0):x1] = True
    return mask


def pointing_game(heatmap_orig: np.ndarray, boxes: Mapping[str, Sequence[int]], leads: Sequence[str], *,
                  tolerance_px: int = 0) -> bool:
    """Pointing game (Zhang et al., ECCV 2016): is the heatmap's maximum inside one of the ``leads``' boxes
    (grown by ``tolerance_px``)? A map that is zero everywhere points nowhere (False). With several maxima the
    first in row-major order counts."""
    hm = np.asarray(heatmap_orig, dtype=np.float64)
    if hm.ndim != 2:
        raise ConfigError(f"heatmap_orig must be 2-D (H, W); received shape {hm.shape}")
    if not leads or float(hm.max(initial=0.0)) <= 0.0:
        return False
    y, x = np.unravel_index(int(np.argmax(hm)), hm.shape)
    t = int(tolerance_px)
    for lead in leads:
        if lead not in boxes:
            raise ConfigError(f"lead {lead!r} has no box; boxes are known for {', '.join(boxes)}")
        x0, y0, x1, y1 = (int(v) for v in boxes[lead])
        if x0 - t <= x < x1 + t and y0 - t <= y < y1 + t:
            return True
    return False


@dataclass(frozen=True)
class LeadMassScore:
    """Share of the attention inside the pathology leads' boxes (``mass_fraction``) against the share of the
    image area they cover (``area_fraction``, within ``region``): ``ratio`` > 1 means the map concentrates on
    them more than a uniform map would."""

    mass_fraction: float
    area_fraction: float

    @property
    def ratio(self) -> float:
        return self.mass_fraction / self.area_fraction if self.area_fraction > 0 else float("nan")


def lead_mass_score(heatmap_orig: np.ndarray, boxes: Mapping[str, Sequence[int]], leads: Sequence[str], *,
                    region: Sequence[int] | None = None) -> LeadMassScore:
    """:class:`LeadMassScore` of a heatmap for a set of leads. ``region`` (x0, y0, x1, y1): where the map is
    defined (the preprocessing crop); areas are counted inside it (default: the whole image). Overlapping boxes
    count once."""
    hm = np.asarray(heatmap_orig, dtype=np.float64)
    if hm.ndim != 2:
        raise ConfigError(f"heatmap_orig must be 2-D (H, W); received shape {hm.shape}")
    mask = _union_mask(hm.shape, boxes, leads)
    reg = np.zeros(hm.shape, dtype=bool)
    if region is None:
        reg[:] = True
    else:
        x0, y0, x1, y1 = (int(v) for v in region)
        reg[max(y0, 0):y1, max(x0, 0):x1] = True
    total = float(hm[reg].sum())
    mass = float(hm[mask & reg].sum()) / total if total > 0 else 0.0
    area = float((mask & reg).sum()) / max(float(reg.sum()), 1.0)
    return LeadMassScore(mass, area)


def localisation_items(folder: str | Path, *, limit: int | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Images under ``folder`` that have a synthetic sidecar with pathology leads, as (image path, sidecar),
    taken round-robin over the classes (so ``limit`` keeps every class) and sorted by name within a class."""
    from ecg_core.imaging.loader import IMAGE_EXTENSIONS
    from ecg_core.reports.leads import load_sidecar

    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{str(root)!r} is not a folder; pass the folder of a synthetic dataset (with .json "
                          "sidecars)")
    per_class: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() not in IMAGE_EXTENSIONS or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        sc = load_sidecar(p)
        if sc is None or not sc.get("pathology_leads"):
            continue
        per_class.setdefault(str(sc.get("class_name", "?")), []).append((p, sc))
    items: list[tuple[Path, dict[str, Any]]] = []
    queues = [list(v) for _, v in sorted(per_class.items())]
    while any(queues) and (limit is None or len(items) < limit):
        for q in queues:
            if q and (limit is None or len(items) < limit):
                items.append(q.pop(0))
    return items


def evaluate_localisation(explainer: Explainer, cfg: Any, items: Sequence[tuple[Path, Mapping[str, Any]]], *,
                          method: str = "gradcam", target: str = "true", progress: ProgressFn | None = None
                          ) -> pd.DataFrame:
    """Pointing game and lead-mass score of every item (image path, sidecar) against its pathology leads.

    ``target``: explain the true class (``'true'``, when the model knows it) or the predicted one
    (``'predicted'``). Columns: path, class_name, subtype, territory, pathology_leads, predicted, correct,
    explained, pointing_hit, pointing_chance (area share of the pathology boxes in the crop: what a random point
    scores), lead_mass, area_share, mass_ratio, error.
    """
    from ecg_core.imaging.loader import load_image
    from ecg_core.imaging.preprocess import preprocess

    if target not in ("true", "predicted"):
        raise ConfigError(f"target must be 'true' or 'predicted'; received {target!r}")
    _method_class(method)
    rows = []
    for i, (path, sc) in enumerate(items):
        row: dict[str, Any] = {"path": str(path), "class_name": sc.get("class_name", ""),
                               "subtype": sc.get("subtype") or "", "territory": sc.get("territory") or "",
                               "pathology_leads": " ".join(sc.get("pathology_leads", [])), "error": ""}
        try:
            rgb = load_image(path).rgb
            pre = preprocess(rgb, cfg, keep_steps=False)
            probs = explainer.predict_proba(pre.final)
            pred = int(np.argmax(probs))
            true = explainer.class_names.index(row["class_name"]) if row["class_name"] in explainer.class_names \
                else None
            cls = true if (target == "true" and true is not None) else pred
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hm = explainer.explain(pre.final, method=method, class_index=cls)
            hmo = heatmap_to_original(hm, pre.crop_box, pre.original_shape)
            boxes = sc["boxes"]
            leads = list(sc["pathology_leads"])
            lm = lead_mass_score(hmo, boxes, leads, region=pre.crop_box)
            row.update(predicted=explainer.class_names[pred], correct=(true == pred) if true is not None else None,
                       explained=explainer.class_names[cls], pointing_hit=pointing_game(hmo, boxes, leads),
                       pointing_chance=lm.area_fraction, lead_mass=lm.mass_fraction, area_share=lm.area_fraction,
                       mass_ratio=lm.ratio)
        except (EcgCoreError, KeyError, ValueError) as e:
            row["error"] = str(e)
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(items))
    cols = ["path", "class_name", "subtype", "territory", "pathology_leads", "predicted", "correct", "explained",
            "pointing_hit", "pointing_chance", "lead_mass", "area_share", "mass_ratio", "error"]
    return pd.DataFrame(rows, columns=cols)


MI_GROUP = "MI + history of MI"


def summarise_localisation(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean scores of :func:`evaluate_localisation` over the MI and history-of-MI images together (the
    territory classes) and per class. Columns: group, n, pointing_game, pointing_chance, lead_mass, area_share,
    mass_ratio, accuracy."""
    ok = per_image[per_image["error"] == ""].copy()
    groups: list[tuple[str, pd.DataFrame]] = [
        (MI_GROUP, ok[ok["class_name"].isin(["Myocardial Infarction", "History of MI"])])]
    groups += [(str(c), g) for c, g in ok.groupby("class_name", sort=True)]
    rows = []
    for name, g in groups:
        if g.empty:
            continue
        acc = g["correct"].dropna()
        rows.append({"group": name, "n": int(len(g)), "pointing_game": float(g["pointing_hit"].astype(float).mean()),
                     "pointing_chance": float(g["pointing_chance"].mean()), "lead_mass": float(g["lead_mass"].mean()),
                     "area_share": float(g["area_share"].mean()), "mass_ratio": float(g["mass_ratio"].mean()),
                     "accuracy": float(acc.astype(float).mean()) if len(acc) else float("nan")})
    return pd.DataFrame(rows, columns=["group", "n", "pointing_game", "pointing_chance", "lead_mass", "area_share",
                                       "mass_ratio", "accuracy"])


# ================================================================================================= batch predict
REASON_UNREADABLE = "unreadable"
REASON_NOT_ECG = "not an ECG"


def list_batch_files(folder: str | Path) -> list[Path]:
    """Every regular file under ``folder`` (recursive, sorted), except hidden ones and ``.json`` sidecars: each
    becomes one row of :func:`predict_files`, readable or not."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise ConfigError(f"folder {str(root)!r} does not exist; pass a folder of report images (or a zip)")
    if root.is_file():
        return [root]
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or p.suffix.lower() == ".json" or not p.is_file():
            continue
        out.append(p)
    return out


def predict_files(model: Any, cfg: Any, files: Sequence[str | Path], *, class_names: Sequence[str],
                  root: str | Path | None = None, check: bool = True, batch_size: int = 16,
                  progress: ProgressFn | None = None, workers: int | None = None,
                  cache_root: str | Path | None = None) -> pd.DataFrame:
    """Predict every file; a bad file never stops the batch.

    Columns: ``path`` (relative to ``root`` when given), ``predicted`` (class name, or empty), ``reason`` (why
    there is no prediction: ``unreadable: ...``, ``not an ECG: ...``; empty otherwise), ``ecg_score``, then
    ``prob_<class>`` per class (empty when there is no prediction). ``cfg`` is the run's
    :class:`~ecg_core.imaging.preprocess.PreprocessConfig`; ``check`` runs :func:`ecg_core.reports.ecg_check.check_ecg` first.
    Rows follow the order of ``files``.

    Speed: JPEGs are decoded at a reduced DCT scale (Pillow draft mode) no smaller than what the check
    (:data:`~ecg_core.reports.ecg_check.WORK_WIDTH` px wide) and the preprocessing (``preprocess._draft_size``, as for
    the training cache) need, like the Explain page's single-report decode: a JPEG at least twice that size gets
    slightly different probabilities than from a full-size decode. ``workers`` threads (default: the CPU count,
    at most 4) decode, check and preprocess the next files while the model predicts the current batch
    (``predict_on_batch``). ``cache_root`` (the app's cache folder): reuse and fill the on-disk caches of
    preprocessed arrays (shared with training) and of check verdicts, so a folder seen before is not decoded again.
    """
    m = model.model if isinstance(model, Explainer) else model
    names = list(class_names)
    if len(names) != int(m.output_shape[-1]):
        raise ConfigError(f"class_names lists {len(names)} classes; the model has {int(m.output_shape[-1])} outputs")
    from concurrent.futures import Future, ThreadPoolExecutor

    base = Path(root) if root is not None else None
    n = len(files)
    rows = [_batch_row(f, base, names) for f in files]
    caches = _BatchCaches.under(cache_root) if cache_root is not None else None
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        probs = _batch_predict(m, np.stack([x for _, x in pending]))
        for (idx, _), p in zip(pending, probs):
            rows[idx]["predicted"] = names[int(np.argmax(p))]
            for name, v in zip(names, p):
                rows[idx][f"prob_{name}"] = float(v)
        pending.clear()

    n_workers = max(1, int(workers)) if workers is not None else _batch_workers()
    window = max(2 * int(batch_size), 4 * n_workers)  # files prepared ahead of the model
    pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="predict-files")
    futures: dict[int, Future] = {}
    try:
        submitted = 0
        for i in range(n):
            while submitted < n and submitted < i + window:
                futures[submitted] = pool.submit(_batch_prepare, Path(files[submitted]), cfg, check, caches)
                submitted += 1
            x, score, reason = futures.pop(i).result()
            row = rows[i]
            row["ecg_score"] = score
            row["reason"] = reason
            if x is not None:
                pending.append((i, x))
            if len(pending) >= batch_size:
                flush()
            if progress is not None:
                progress(i + 1, n)
        flush()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return pd.DataFrame(rows, columns=["path", "predicted", "reason", "ecg_score"] + [f"prob_{c}" for c in names])


def _batch_row(f: str | Path, base: Path | None, names: Sequence[str]) -> dict[str, Any]:
    """The empty CSV row of one file of :func:`predict_files`."""
    p = Path(f)
    try:
        shown = str(p.relative_to(base)) if base is not None else str(p)
    except ValueError:
        shown = str(p)
    row: dict[str, Any] = {"path": shown, "predicted": "", "reason": "", "ecg_score": np.nan}
    row.update({f"prob_{n}": np.nan for n in names})
    return row


def _batch_workers() -> int:
    import os

    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
                      4))


def _batch_draft_size(cfg: Any) -> tuple[int, int]:
    """The smallest (width, height) a JPEG may be decoded at: the preprocessing's draft size (the one the training
    cache used), at least the check's working width wide. The same with or without the check, so that ``check``
    only decides which files get a prediction, and the same as the Explain page's single-report decode."""
    from ecg_core.reports.ecg_check import WORK_WIDTH
    from ecg_core.imaging.preprocess import _draft_size

    w, h = _draft_size(cfg)
    return (max(w, WORK_WIDTH), h)


@dataclass(frozen=True)
class _BatchCaches:
    """The on-disk caches :func:`predict_files` reuses: preprocessed arrays (the training job's own cache, keyed
    by content hash and configuration) and ECG-check verdicts (keyed by content hash)."""

    arrays: Any  # ecg_core.imaging.preprocess.PreprocessCache
    checks: Any  # ecg_core.reports.ecg_check.CheckCache

    @classmethod
    def under(cls, root: str | Path) -> _BatchCaches:
        from ecg_core.reports.ecg_check import CheckCache
        from ecg_core.imaging.preprocess import PreprocessCache

        return cls(PreprocessCache(Path(root) / "preprocess"), CheckCache(Path(root) / "ecg_check"))


def _batch_prepare(p: Path, cfg: Any, check: bool, caches: _BatchCaches | None = None
                   ) -> tuple[np.ndarray | None, float, str]:
    """Decode, check and preprocess one file (in a worker thread): (model input or None, ECG score, reason).

    With ``caches``, a file whose verdict and array are cached is not decoded at all, and what is computed is
    stored; the model input is then the cached uint8 array / 255 (exactly what training fed the model), also on
    the first run, so that a first and a second run give the same probabilities."""
    from ecg_core.reports.ecg_check import check_ecg
    from ecg_core.imaging.loader import read_bytes
    from ecg_core.reports.pipeline import decode_for_model
    from ecg_core.imaging.preprocess import preprocess

    score = np.nan
    try:
        data = read_bytes(p)
        h = hashlib.sha256(data).hexdigest() if caches is not None else ""
        chk = caches.checks.get(h) if caches is not None and check else None
        if chk is not None and not chk.is_ecg:
            return None, chk.score, f"{REASON_NOT_ECG}: " + "; ".join(chk.failed)
        arr = caches.arrays.get(h, cfg) if caches is not None else None
        if arr is None or (check and chk is None):
            rgb, _ = decode_for_model(data, p.name, cfg)  # the Explain page's decode
            if check and chk is None:
                chk = check_ecg(rgb)
                if caches is not None:
                    caches.checks.put(h, chk)
                if not chk.is_ecg:
                    return None, chk.score, f"{REASON_NOT_ECG}: " + "; ".join(chk.failed)
            if arr is None:
                x = preprocess(rgb, cfg, keep_steps=False).final
                if caches is None:
                    return x, chk.score if chk is not None else score, ""
                arr = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
                caches.arrays.put(h, cfg, arr)
        return arr.astype(np.float32) / np.float32(255.0), chk.score if chk is not None else score, ""
    except EcgCoreError as e:
        return None, score, f"{REASON_UNREADABLE}: {e}"
    except (MemoryError, ValueError, cv2.error) as e:  # a hostile file must not stop the batch
        return None, score, f"{REASON_UNREADABLE}: {type(e).__name__}: {e}"


def _batch_predict(m: Any, x: np.ndarray) -> np.ndarray:
    """Class probabilities (n, k) float64 of one batch: Keras's compiled predict step when there is one."""
    if hasattr(m, "predict_on_batch"):
        return np.asarray(m.predict_on_batch(x), dtype=np.float64)
    return predict_proba(m, x)


def extract_batch_zip(data: bytes, uploads_dir: str | Path) -> tuple[Path, list[tuple[str, str]]]:
    """Extract an uploaded zip into ``uploads_dir/batch-<hash>`` (reused when already there); returns the folder
    and the refused entries (see :func:`ecg_core.ml.dataset.extract_zip`)."""
    from ecg_core.ml.dataset import extract_zip

    dest = Path(uploads_dir) / f"batch-{hashlib.sha256(data).hexdigest()[:16]}"
    if dest.is_dir() and any(dest.iterdir()):
        return dest, []
    res = extract_zip(data, dest)
    return Path(res.root), list(res.skipped)


# ======================================================================================================= helpers
def file_hash(data: bytes) -> str:
    """sha256 hex digest of a file's bytes (the key of the page's preprocessing cache)."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Explanation:
    """A heatmap in both coordinate systems, with what produced it."""

    method: str
    class_index: int
    heatmap: np.ndarray
    heatmap_orig: np.ndarray
    notes: list[str] = field(default_factory=list)


def explain_report(explainer: Explainer, pre: Any, *, method: str = "gradcam", class_index: int | None = None
                   ) -> Explanation:
    """Explain a :class:`~ecg_core.imaging.preprocess.PreprocessResult` and map the map back onto the original; warnings
    (e.g. an empty map) become ``notes``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if class_index is None:
            class_index = int(np.argmax(explainer.predict_proba(pre.final)))
        hm = explainer.explain(pre.final, method=method, class_index=class_index)
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)
             and "The structure of `inputs`" not in str(w.message)]
    return Explanation(method, int(class_index), hm, heatmap_to_original(hm, pre.crop_box, pre.original_shape),
                       notes)
