"""Grad-CAM highlights evidence known by construction, in the original report's coordinates (issue 20).

A tiny Keras model is *wired* (no training): its only convolution is a 7x7 "solid ink" detector
(``ReLU(0.25 - local mean brightness)``), global average pooling and a dense head whose class 0 logit grows with the
detector's response. So the only evidence for class 0 is a solid dark blob; thin ECG traces (local mean stays
bright) and the paper give nothing. The report has such a blob near the top-left corner of the preprocessing crop
(below the cut header) and thin traces elsewhere; Grad-CAM for class 0, mapped back through the crop and the
resize (:func:`ecg_core.xai.overlay.heatmap_to_original`), must be hottest inside the blob.

Planted bugs this catches: Grad-CAM of the wrong class or with flipped gradient weights (the map is zero: no region
increases the class), a heatmap flipped or transposed before mapping, the crop offset forgotten in the mapping (the
maximum moves up by the header's height, out of the blob), the map mapped onto the model input size instead of the
crop size.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf_keras_vis")

from conftest import report_like  # noqa: E402

from ecg_core.imaging.preprocess import PreprocessConfig, preprocess  # noqa: E402
from ecg_core.xai import explainer, overlay  # noqa: E402

CFG = PreprocessConfig(height=64, width=96, clahe=False)
BLOB = (40, 110, 100, 170)  # x0, y0, x1, y1 in the original (480 x 360): just below the cut header, at the left


def wired_model(shape=(64, 96, 1)):
    inp = keras.Input(shape)
    conv = keras.layers.Conv2D(1, 7, padding="same", activation="relu", name="ink_detector")
    feat = conv(inp)
    pooled = keras.layers.GlobalAveragePooling2D()(feat)
    dense = keras.layers.Dense(2, name="head")
    out = keras.layers.Softmax()(dense(pooled))
    model = keras.Model(inp, out)
    conv.set_weights([np.full((7, 7, 1, 1), -1.0 / 49, np.float32), np.array([0.25], np.float32)])
    dense.set_weights([np.array([[4000.0, -4000.0]], np.float32), np.array([-2.0, 2.0], np.float32)])
    return model


def report(with_blob: bool) -> np.ndarray:
    rgb = report_like(7, size=(480, 360))  # pink grid, header text, three thin traces
    if with_blob:
        x0, y0, x1, y1 = BLOB
        rgb[y0:y1, x0:x1] = 20
    return rgb


@pytest.fixture(scope="module")
def gradcam():
    return explainer.Explainer(wired_model(), class_names=["blob", "no blob"])


def test_model_reacts_only_to_the_blob(gradcam):
    p_blob = gradcam.predict_proba(preprocess(report(True), CFG).final)
    p_none = gradcam.predict_proba(preprocess(report(False), CFG).final)
    assert p_blob[0] > 0.9 and p_none[0] < 0.5, (p_blob, p_none)


def test_gradcam_maximum_is_on_the_evidence_in_original_coordinates(gradcam):
    rgb = report(True)
    pre = preprocess(rgb, CFG)
    assert gradcam.layer == "ink_detector"
    x0c, y0c, _, _ = pre.crop_box
    assert y0c > 40  # the header is cut: a forgotten crop offset moves the map by more than the blob's margin
    heat = gradcam.explain(pre.final, method="gradcam", class_index=0)
    assert heat.shape == CFG.input_shape[:2] and float(heat.max()) > 0.95
    orig = overlay.heatmap_to_original(heat, pre.crop_box, pre.original_shape)
    assert orig.shape == rgb.shape[:2]
    y, x = np.unravel_index(int(np.argmax(orig)), orig.shape)
    bx0, by0, bx1, by1 = BLOB
    assert bx0 <= x < bx1 and by0 <= y < by1, f"Grad-CAM maximum at (x={x}, y={y}), the evidence is {BLOB}"
    inside = orig[by0:by1, bx0:bx1]
    outside = orig.copy()
    outside[max(0, by0 - 40):by1 + 40, max(0, bx0 - 40):bx1 + 40] = 0  # the blob with a margin (the map is coarse)
    assert float(inside.mean()) > 0.2  # the detector fires where its 7x7 window is all ink: the blob's core
    assert float(outside.max()) < 0.05, "heat on the traces or paper, which the model ignores"
    assert float(outside.sum()) < 0.01 * float(orig.sum())


def test_gradcam_for_a_class_the_blob_argues_against_is_empty(gradcam):
    pre = preprocess(report(True), CFG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        heat = gradcam.explain(pre.final, method="gradcam", class_index=1)
    assert float(heat.max()) == 0.0
