"""Attribution methods (tf-keras-vis), one class per method on one base, :class:`_Method`.

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

One registry dict, :data:`METHODS`, serves dispatch, menus and error messages. Each method is bound to a
linear-output clone of a model (built by :class:`ecg_core.xai.explainer.Explainer`). The CAM methods use the given
layer with ``seek_penultimate_conv_layer=False``, so tf-keras-vis uses exactly that layer instead of walking back to
a Conv layer. Nothing here imports TensorFlow at module import time.
"""

from __future__ import annotations

import contextlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ecg_core.core.errors import ConfigError


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
    return method_class(name).title


def method_class(name: str) -> type[_Method]:
    """The implementation of a method name; :class:`ConfigError` listing the methods when it is unknown."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"method must be one of {', '.join(METHODS)}; received {name!r}. Fix: pick a listed method."
        ) from None
