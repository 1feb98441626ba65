"""The single-report explain pipeline (ecg_core.reports.pipeline): one pass gives prediction and map, the caches keep a
second method / class from preprocessing again, the display copy and its coordinates are consistent, and the
shared trace analysis gives exactly what the separate check and lead detection give."""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")
pytest.importorskip("tf_keras_vis")

from ecg_core.ml import zoo  # noqa: E402
from ecg_core.reports import ecg_check, leads, pipeline  # noqa: E402
from ecg_core.viz import explain as viz_explain  # noqa: E402
from ecg_core.xai import explainer as xai_explainer, methods  # noqa: E402
from ecg_core.imaging import preprocess as pp  # noqa: E402
from ecg_core.core.errors import ConfigError  # noqa: E402
from ecg_core.reports.synth import RenderOptions, SynthSpec, make_report  # noqa: E402

CFG = pp.PreprocessConfig(height=32, width=48, channels=1)
NAMES = ["MI", "History of MI", "Abnormal", "Normal"]


@pytest.fixture(scope="module")
def explainer() -> xai_explainer.Explainer:
    model = zoo.build_model("custom_cnn", input_shape=CFG.input_shape, n_classes=4, seed=3).model
    return xai_explainer.Explainer(model, class_names=NAMES,
                             options=methods.ExplainOptions(scorecam_max_n=2, smooth_samples=2))


@pytest.fixture(scope="module")
def report() -> tuple[np.ndarray, dict]:
    return make_report(SynthSpec("myocardial_infarction", territory="inferior", seed=7), RenderOptions(px_per_mm=8.0))


def _jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam", "saliency", "scorecam"])
def test_one_pass_gives_the_same_prediction_and_map_as_two(explainer, method: str) -> None:
    x = np.random.default_rng(1).random(CFG.input_shape, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probs, top, hm = explainer.predict_and_explain(x, method=method)
        ref = explainer.predict_proba(x)
        ref_hm = explainer.explain(x, method=method, class_index=int(np.argmax(ref)))
    assert probs.shape == (4,) and abs(float(probs.sum()) - 1.0) < 1e-6
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    assert top == int(np.argmax(ref))
    np.testing.assert_allclose(hm, ref_hm, atol=1e-5)


def test_single_pass_is_used_for_gradient_methods_only() -> None:
    assert {m for m, c in methods.METHODS.items() if not c.single_pass} == {"scorecam", "smoothgrad"}


def test_prepare_once_then_every_method_and_class_from_the_cache(explainer, report, monkeypatch) -> None:
    calls = {"n": 0}
    real = pp.preprocess

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(pp, "preprocess", counting)
    pipe = pipeline.ReportPipeline(explainer, CFG)
    data = _jpeg(report[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = pipe.prepare(data, "r.jpg")
        first = pipe.explain(prepared, method="gradcam")
        again = pipe.prepare(data, "renamed.jpg")  # same bytes: a cache hit whatever the name
        pipe.explain(again, method="gradcam++")
        pipe.explain(again, method="layercam", class_index=(first.top + 1) % 4)
        assert pipe.explain(again, method="gradcam") is first
    assert calls["n"] == 1
    assert (pipe.stats.prepared, pipe.stats.prepare_hits) == (1, 1)
    assert (pipe.stats.explained, pipe.stats.explain_hits) == (3, 1)
    assert first.class_index == first.top == int(np.argmax(first.probs))


def test_display_copy_coordinates_and_maps(explainer, report) -> None:
    rgb, sidecar = report
    h, w = rgb.shape[:2]
    assert w > 2 * pipeline.DISPLAY_MIN_WIDTH  # a JPEG of this size is decoded at half scale at most
    pipe = pipeline.ReportPipeline(explainer, CFG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = pipe.prepare(_jpeg(rgb), "r.jpg")
        ex = pipe.explain(prepared, method="gradcam")
    dh, dw = prepared.rgb.shape[:2]
    assert prepared.original_size == (w, h)
    assert pipeline.DISPLAY_MIN_WIDTH <= dw < 2 * pipeline.DISPLAY_MIN_WIDTH and abs(dw / w - dh / h) < 0.01
    # the crop in display pixels is the preprocessing's crop scaled
    full_box, _ = pp.crop_box_for(rgb, CFG)
    for got, ref, scale in zip(prepared.crop_box, full_box, (dw / w, dh / h) * 2):
        assert abs(got - ref * scale) <= 2
    assert ex.heatmap.shape == CFG.input_shape[:2] and ex.heatmap_display.shape == (dh, dw)
    x0, y0, x1, y1 = prepared.crop_box
    outside = np.ones((dh, dw), bool)
    outside[y0:y1, x0:x1] = False
    assert float(ex.heatmap_display[outside].max(initial=0.0)) == 0.0
    assert set(ex.lead_table["lead"]) == set(prepared.layout.boxes)
    figs = viz_explain.figures(prepared, ex, NAMES, alpha=0.5)
    assert figs.overlay.shape == prepared.rgb.shape and figs.overlay.dtype == np.uint8
    assert figs.probability is not None and figs.lead_attention is not None
    full = pipeline.full_resolution_overlay(_jpeg(rgb), "r.jpg", ex)
    assert full.shape == rgb.shape


def test_sidecar_boxes_are_scaled_to_the_display_copy(explainer, report) -> None:
    rgb, sidecar = report
    pipe = pipeline.ReportPipeline(explainer, CFG)
    prepared = pipe.prepare(_png(rgb), "r.png", sidecar=sidecar)
    k = rgb.shape[1] / prepared.rgb.shape[1]
    assert k >= 2 and prepared.layout.source == "sidecar"
    for lead, box in sidecar["boxes"].items():
        got = prepared.layout.boxes[lead]
        assert all(abs(g * k - b) <= 2 * k for g, b in zip(got, box)), lead


def test_display_copy_uses_an_integer_factor_and_stays_wide_enough_for_the_check() -> None:
    img = np.zeros((900, 3400, 3), np.uint8)
    out, k = pipeline.display_copy(img)
    assert k == 3 and out.shape[1] == 1133
    for w, want in ((2199, 1), (2200, 2), (1400, 1), (1000, 1)):
        out, k = pipeline.display_copy(img[:, :w])
        assert k == want and (out.shape[1] >= pipeline.DISPLAY_MIN_WIDTH or w < pipeline.DISPLAY_MIN_WIDTH)


def test_check_and_layout_equals_the_separate_calls(report) -> None:
    rgb = cv2.resize(report[0], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    check, layout = leads.check_and_layout(rgb)
    ref_check, ref_layout = ecg_check.check_ecg(rgb), leads.detect_layout(rgb)
    assert (check.is_ecg, check.score, check.failed) == (ref_check.is_ecg, ref_check.score, ref_check.failed)
    assert layout.source == ref_layout.source and dict(layout.boxes) == dict(ref_layout.boxes)


@pytest.mark.parametrize("photo", [False, True])
def test_inspect_gives_what_the_separate_calls_give(photo) -> None:
    from ecg_core.reports import ood
    from ecg_core.reports.synth import variant_options

    img, _ = make_report(SynthSpec("normal", seed=11), variant_options("3x4+1", "pink", photo=photo, px_per_mm=5.0))
    rgb, _ = pipeline.display_copy(img)
    check, layout, desc = pipeline.ReportPipeline._inspect(rgb, None, (2000, 1400))
    ta = ecg_check.analyse_traces(ecg_check.to_work(rgb))
    ref_check, ref_layout = ecg_check.check_ecg(rgb), leads.detect_layout(rgb, analysis=ta)
    assert (check.is_ecg, check.score, check.reasons, check.features) == \
        (ref_check.is_ecg, ref_check.score, ref_check.reasons, ref_check.features)
    assert (layout.source, layout.message, layout.layout, layout.boxes, layout.windows) == \
        (ref_layout.source, ref_layout.message, ref_layout.layout, ref_layout.boxes, ref_layout.windows)
    assert desc == ood.describe_report(rgb, analysis=ta, original_size=(2000, 1400))
    assert (leads.photo_layout(rgb) is not None) == photo  # both paths of the one look for a photographed page


def test_pipeline_refuses_a_foreign_config(explainer) -> None:
    with pytest.raises(ConfigError, match="expects"):
        pipeline.ReportPipeline(explainer, pp.PreprocessConfig(height=64, width=48, channels=1))
    with pytest.raises(ConfigError, match="PreprocessConfig"):
        pipeline.ReportPipeline(explainer, {"height": 32})
    pipe = pipeline.ReportPipeline(explainer, CFG)
    other = pipeline.ReportPipeline(explainer, pp.PreprocessConfig(height=32, width=48, channels=1, clahe=False))
    prepared = other.prepare(_png(np.full((200, 300, 3), 255, np.uint8)), "blank.png")
    with pytest.raises(ConfigError, match="another model"):
        pipe.explain(prepared)


def test_analyse_overlaps_but_gives_what_prepare_then_explain_give(explainer, report) -> None:
    data = _jpeg(report[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seq = pipeline.ReportPipeline(explainer, CFG)
        p1 = seq.prepare(data, "r.jpg")
        e1 = seq.explain(p1, method="gradcam")
        par = pipeline.ReportPipeline(explainer, CFG)
        p2, e2 = par.analyse(data, "r.jpg", method="gradcam")
        p3, e3 = par.analyse(data, "r.jpg", method="gradcam")  # all from the caches now
    assert p3 is p2 and e3 is e2
    assert (par.stats.prepared, par.stats.prepare_hits, par.stats.explained, par.stats.explain_hits) == (1, 1, 1, 1)
    np.testing.assert_allclose(e2.probs, e1.probs, atol=1e-6)
    np.testing.assert_allclose(e2.heatmap_display, e1.heatmap_display, atol=1e-6)
    assert (p2.check.is_ecg, p2.check.score) == (p1.check.is_ecg, p1.check.score)
    assert dict(p2.layout.boxes) == dict(p1.layout.boxes) and p2.crop_box == p1.crop_box
    assert e2.lead_table.equals(e1.lead_table)


def test_analyse_reports_a_model_failure_and_caches_nothing(explainer, report, monkeypatch) -> None:
    pipe = pipeline.ReportPipeline(explainer, CFG)

    def broken(*a, **k):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(explainer, "predict_and_explain", broken)
    with pytest.raises(RuntimeError, match="exploded"):
        pipe.analyse(_jpeg(report[0]), "r.jpg")
    assert pipe.stats.prepared == 0 and pipe.stats.explained == 0
