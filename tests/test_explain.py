"""Explanations: every method on every zoo family, heatmaps back in original coordinates, faithfulness curves on a
model whose evidence is known by construction, the randomisation sanity check, and the pointing game / lead-mass
scores against synthetic ground truth (hand-made heatmaps, then end to end on a tiny model trained here)."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf_keras_vis")

from ecg_core.ml import registry, zoo  # noqa: E402
from ecg_core.reports import leads, localisation, messages  # noqa: E402
from ecg_core.viz import explain as viz_explain  # noqa: E402
from ecg_core.xai import explainer, faithfulness, methods, overlay  # noqa: E402
from ecg_core.core.errors import ConfigError, ModelLoadError  # noqa: E402
from ecg_core.imaging.preprocess import PreprocessConfig, preprocess  # noqa: E402

FAST = methods.ExplainOptions(scorecam_max_n=2, scorecam_batch_size=8, smooth_samples=2)
# one representative per zoo family (cnn, recurrent x2, attention, transfer), at tiny inputs
FAMILIES = {
    "custom_cnn": (32, 48, 1),
    "cnn_lstm": (32, 64, 3),
    "cnn_gru_attention": (32, 64, 1),
    "residual_attention": (32, 32, 3),
    "mobilenet_v2": (32, 32, 1),
}


@pytest.fixture(scope="module")
def explainers() -> dict[str, explainer.Explainer]:
    out = {}
    for arch, shape in FAMILIES.items():
        model = zoo.build_model(arch, input_shape=shape, n_classes=3, seed=1, pretrained=False).model
        out[arch] = explainer.Explainer(model, class_names=["a", "b", "c"], options=FAST)
    return out


def test_the_families_are_covered() -> None:
    assert {zoo.get_arch(a).family for a in FAMILIES} == set(zoo.FAMILIES)


@pytest.mark.parametrize("arch", list(FAMILIES))
@pytest.mark.parametrize("method", list(methods.METHODS))
def test_every_method_runs_on_every_family(explainers, arch: str, method: str) -> None:
    e = explainers[arch]
    x = np.random.default_rng(0).random(FAMILIES[arch], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a random model may give an all-zero CAM (ReLU); that is allowed here
        hm = explainer.explain_image(e, x, method=method, class_index=1)
    assert hm.shape == FAMILIES[arch][:2] and hm.dtype == np.float32
    assert np.all(np.isfinite(hm)) and hm.min() >= 0.0 and hm.max() <= 1.0


def test_cam_layer_is_the_zoo_layer_used_exactly(explainers) -> None:
    for arch, e in explainers.items():
        assert e.layer == zoo.last_conv_layer_name(e.model)
    # the default for custom_cnn is the conv itself, for residual_attention the activation after it (tf-keras-vis
    # would walk back to a Conv layer without seek_penultimate_conv_layer=False)
    assert explainers["residual_attention"].layer == "block3_out"


def test_method_and_class_errors_list_the_choices(explainers) -> None:
    e = explainers["custom_cnn"]
    x = np.zeros(FAMILIES["custom_cnn"], np.float32)
    with pytest.raises(ConfigError, match="method must be one of " + ", ".join(map(str, methods.METHODS))
                       .replace("+", r"\+")):
        e.explain(x, method="occlusion")
    with pytest.raises(ConfigError, match=r"class_index must be an int in 0..2 \(a, b, c\); received 3"):
        e.explain(x, class_index=3)
    with pytest.raises(ConfigError, match=r"expects input of shape \(32, 48, 1\).*received \(48, 32, 1\)"):
        e.explain(np.zeros((48, 32, 1), np.float32))
    with pytest.raises(ConfigError, match="not in model"):
        explainer.Explainer(e.model, layer="nope")


def test_model_without_conv_offers_saliency_only() -> None:
    inp = keras.Input((8, 8, 1))
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp))
    e = explainer.Explainer(keras.Model(inp, out), options=FAST)
    assert e.layer is None and e.methods == ["saliency", "smoothgrad"]
    with pytest.raises(ConfigError, match="needs a convolutional feature map"):
        e.explain(np.zeros((8, 8, 1), np.float32), method="gradcam")
    assert e.explain(np.random.default_rng(1).random((8, 8, 1), dtype=np.float32), method="saliency").shape == (8, 8)


def test_predict_proba_shapes(explainers) -> None:
    e = explainers["custom_cnn"]
    x = np.random.default_rng(2).random((5, *FAMILIES["custom_cnn"]), dtype=np.float32)
    p1, pn = explainer.predict_proba(e.model, x[0]), e.predict_proba(x)
    assert p1.shape == (3,) and pn.shape == (5, 3)
    np.testing.assert_allclose(pn.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p1, pn[0], atol=1e-5)


# ------------------------------------------------------------------------------------------ original coordinates
def test_heatmap_hot_region_lands_in_the_matching_original_region() -> None:
    # original 300 x 500 (H x W), crop (x0, y0, x1, y1) = (50, 40, 450, 280) stretched to a 60 x 100 model input:
    # 4 original px per model px along x, 4 along y
    hm = np.zeros((60, 100), np.float32)
    hm[10:20, 30:50] = 1.0
    orig = overlay.heatmap_to_original(hm, (50, 40, 450, 280), (300, 500))
    assert orig.shape == (300, 500)
    assert orig[:40].max() == 0 and orig[280:].max() == 0 and orig[:, :50].max() == 0 and orig[:, 450:].max() == 0
    ys, xs = np.nonzero(orig > 0.5)
    assert abs(xs.min() - (50 + 30 * 4)) <= 2 and abs(xs.max() - (50 + 50 * 4 - 1)) <= 2
    assert abs(ys.min() - (40 + 10 * 4)) <= 2 and abs(ys.max() - (40 + 20 * 4 - 1)) <= 2
    # non-uniform stretch: a 120 x 240 crop onto 60 x 60 (2 px per model px along y, 4 along x)
    hm2 = np.zeros((60, 60), np.float32)
    hm2[30, 15] = 1.0
    o2 = overlay.heatmap_to_original(hm2, (10, 20, 250, 140), (200, 300))
    y, x = np.unravel_index(int(np.argmax(o2)), o2.shape)
    assert abs(x - (10 + 15.5 * 4)) <= 2 and abs(y - (20 + 30.5 * 2)) <= 2


def test_mapping_inverts_the_real_preprocessing() -> None:
    """A dark blob in the original, found in the model input, maps back onto the blob."""
    rgb = np.full((400, 640, 3), 255, np.uint8)
    cv2.circle(rgb, (470, 250), 14, (0, 0, 0), -1)
    cfg = PreprocessConfig(crop_top=0.2, crop_bottom=0.05, crop_left=0.1, crop_right=0.02, height=48, width=64,
                           clahe=False, median_ksize=0)
    pre = preprocess(rgb, cfg)
    heat = 1.0 - pre.final[:, :, 0]  # the blob is the only dark thing: its own heatmap
    orig = overlay.heatmap_to_original(heat / heat.max(), pre.crop_box, pre.original_shape)
    ys, xs = np.nonzero(orig > 0.5)
    assert abs(xs.mean() - 470) < 6 and abs(ys.mean() - 250) < 6
    # the lead-box mapping helpers agree with it
    box = leads.model_box_to_original(leads.original_box_to_model((456, 236, 484, 264), pre.crop_box, (48, 64)),
                                      pre.crop_box, (48, 64))
    np.testing.assert_allclose(box, (456, 236, 484, 264), atol=1e-6)


@pytest.mark.parametrize("args, match", [
    ((np.zeros((4, 4, 1)), (0, 0, 4, 4), (4, 4)), "2-D"),
    ((np.zeros((4, 4)), (0, 0, 5, 4), (4, 4)), "crop_box must satisfy"),
    ((np.zeros((4, 4)), (3, 0, 2, 4), (4, 4)), "crop_box must satisfy"),
])
def test_heatmap_to_original_validates(args, match) -> None:
    with pytest.raises(ConfigError, match=match):
        overlay.heatmap_to_original(*args)


def test_overlay_blends_by_heat() -> None:
    rgb = np.full((20, 30, 3), 200, np.uint8)
    hm = np.zeros((20, 30), np.float32)
    hm[5:10, 5:10] = 1.0
    out = overlay.overlay(rgb, hm, alpha=0.6)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert np.array_equal(out[15:, 20:], rgb[15:, 20:])  # cold paper stays untouched
    assert not np.array_equal(out[5:10, 5:10], rgb[5:10, 5:10])
    assert np.array_equal(overlay.overlay(rgb, hm, alpha=0.0), rgb)
    with pytest.raises(ConfigError, match="colormap must be one of"):
        overlay.overlay(rgb, hm, colormap="rainbow")
    with pytest.raises(ConfigError, match="heatmap_to_original"):
        overlay.overlay(rgb, np.zeros((5, 5)))


def test_class_messages_are_not_a_diagnosis() -> None:
    names = ["Myocardial Infarction", "Abnormal Heartbeat", "Normal", "History of MI"]
    msgs = messages.class_messages([0.1, 0.2, 0.6, 0.1], names)
    assert [m.class_name for m in msgs] == names
    assert all("not a diagnosis" in m.text for m in msgs)
    assert "ST-segment elevation" in msgs[0].text and msgs[2].text.startswith("The model's top class: 60%")
    fig = viz_explain.probability_figure([0.1, 0.2, 0.6, 0.1], names)
    assert list(fig.data[0].y) == names


# ------------------------------------------------------------------------------------------------ faithfulness
def _left_half_model(h: int = 32, w: int = 48) -> keras.Model:
    """p(class 0) is high when the LEFT half holds ink (dark pixels); the right half is ignored by construction."""
    inp = keras.Input((h, w, 1))
    left = keras.layers.Cropping2D(((0, 0), (0, w // 2)))(inp)
    mean = keras.layers.GlobalAveragePooling2D()(left)
    out = keras.layers.Dense(2, activation="softmax")(mean)
    model = keras.Model(inp, out)
    k = 40.0
    model.layers[-1].set_weights([np.array([[-k, k]], np.float32), np.array([0.9 * k, -0.9 * k], np.float32)])
    return model


def test_deletion_insertion_separate_a_faithful_map_from_a_wrong_one() -> None:
    model = _left_half_model()
    x = np.ones((32, 48, 1), np.float32)  # white paper ...
    x[8:24, 4:20] = 0.3  # ... with ink on the left half (the evidence)
    x[8:24, 28:44] = 0.3  # and the same ink on the right half (ignored by the model)
    assert faithfulness.paper_fill(x)[0] == pytest.approx(1.0)  # paper colour, not black
    p0 = float(explainer.predict_proba(model, x)[0])
    assert p0 > 0.9
    right = np.zeros((32, 48), np.float32)
    right[:, 24:] = 1.0
    good = faithfulness.deletion_insertion(model, x, right[:, ::-1].copy(), class_index=0, patch=4, steps=12)
    bad = faithfulness.deletion_insertion(model, x, right, class_index=0, patch=4, steps=12)
    assert good.deletion[0] == pytest.approx(p0, abs=1e-5) and good.fractions[-1] == 1.0
    assert good.deletion_auc < good.deletion_auc_random < bad.deletion_auc
    assert good.insertion_auc > good.insertion_auc_random > bad.insertion_auc
    assert "faster than a random order" in good.summary and "not faster" in bad.summary
    fig = viz_explain.faithfulness_figure(good)
    assert len(fig.data) == 4
    with pytest.raises(ConfigError, match="model-input coordinates"):
        faithfulness.deletion_insertion(model, x, np.zeros((10, 10)), class_index=0)


def test_randomisation_check_uses_a_clone_and_reports_rank_correlation(explainers) -> None:
    e = explainers["custom_cnn"]
    before = [w.copy() for w in e.model.get_weights()]
    x = np.random.default_rng(3).random(FAMILIES["custom_cnn"], dtype=np.float32)
    res = faithfulness.randomisation_check(e, x, method="saliency", class_index=0, n_layers=2)
    assert res.layers == ("predictions", "fc1")
    assert -1.0 <= res.spearman <= 1.0 and res.passed == (res.spearman < 0.5)
    assert res.heatmap_random.shape == FAMILIES["custom_cnn"][:2]
    assert all(np.array_equal(a, b) for a, b in zip(before, e.model.get_weights()))  # original untouched
    # identical maps are perfectly correlated: the check must fail on them
    assert faithfulness._spearman(np.arange(12.0), np.arange(12.0)) == pytest.approx(1.0)
    assert faithfulness._spearman(np.zeros(5), np.arange(5.0)) == 0.0


def _faith_result(del_auc: float, del_rand: float, ins_auc: float, ins_rand: float) -> faithfulness.FaithfulnessResult:
    """A FaithfulnessResult with the given AUCs (curves falling/rising from 0.9 / 0.1 so that the model reacts)."""
    fr = np.linspace(0, 1, 5)
    down, up = np.linspace(0.9, 0.05, 5), np.linspace(0.1, 0.9, 5)
    return faithfulness.FaithfulnessResult(0, 4, (1.0,), fr, down, up, down, up, del_auc, ins_auc, del_rand, ins_rand)


def test_faithfulness_verdicts_fail_a_map_no_better_than_random() -> None:
    """Issue 19.7: deletion 0.294 vs random 0.287 and insertion 0.162 vs random 0.295 must read as two failures
    (each with its rule), not as numbers above a green box; the sanity check gets its own verdict."""
    bad = _faith_result(0.294, 0.287, 0.162, 0.295)
    sanity = faithfulness.RandomisationCheck("gradcam", ("predictions", "fc1"), 0.21, 0.5, True, np.zeros((2, 2)))
    v = faithfulness.faithfulness_verdicts(bad, sanity)
    assert [x.test for x in v] == ["Deletion vs random", "Insertion vs random", "Model-randomisation sanity check"]
    assert [x.status for x in v] == ["fail", "fail", "pass"]
    assert "at least 0.02 lower than the random order" in v[0].rule
    assert "at least 0.02 higher than the random order" in v[1].rule
    assert "below 0.50" in v[2].rule and "0.294 vs random 0.287" in v[0].text and "FAIL" in v[0].text
    assert faithfulness.verdict_summary(v).startswith("1 of 3 faithfulness tests passed")
    good = faithfulness.faithfulness_verdicts(_faith_result(0.20, 0.287, 0.40, 0.295))
    assert [x.status for x in good] == ["pass", "pass"]
    close = faithfulness.faithfulness_verdicts(_faith_result(0.28, 0.287, 0.30, 0.295))  # better, by < 0.02
    assert [x.status for x in close] == ["inconclusive", "inconclusive"]
    flat = _faith_result(0.20, 0.287, 0.40, 0.295)
    flat = faithfulness.FaithfulnessResult(0, 4, (1.0,), flat.fractions, np.full(5, 0.5), np.full(5, 0.5),
                                           flat.deletion_random, flat.insertion_random, 0.2, 0.4, 0.287, 0.295)
    assert all(x.status == "inconclusive" for x in faithfulness.faithfulness_verdicts(flat))  # model ignores it
    # blank paper gets the class (0.97) more than the report does (0.44): a "lower" deletion AUC proves nothing
    fr = np.linspace(0, 1, 5)
    rising = faithfulness.FaithfulnessResult(0, 4, (1.0,), fr, np.linspace(0.44, 0.97, 5), np.linspace(0.97, 0.44, 5),
                                             fr, fr, 0.557, 0.877, 0.671, 0.716)
    assert [x.status for x in faithfulness.faithfulness_verdicts(rising)] == ["inconclusive", "inconclusive"]
    assert "0.44 on the full image and 0.97 on blank paper" in faithfulness.faithfulness_verdicts(rising)[0].text
    failed = faithfulness.RandomisationCheck("gradcam", ("fc1",), 0.8, 0.5, False, np.zeros((2, 2)))
    assert faithfulness.faithfulness_verdicts(None, failed)[0].status == "fail"


def test_pdf_shows_names_not_server_paths_and_the_faithfulness_verdicts(monkeypatch) -> None:
    """Issue 19.9: the model card said "images from /work/shared/data/mendeley-dev"; the PDF names the folder only,
    and the faithfulness verdicts, when computed, are in it."""
    from ecg_core.reports import pdf

    meta = {"run_id": "r1", "arch": "custom_cnn", "data_source": "real", "data_dir": "/work/shared/data/mendeley-dev",
            "class_names": ["a", "b"]}
    assert ("training data", "real images from mendeley-dev") in pdf.model_card_lines(meta)
    assert pdf.strip_paths("note: cached in /home/u/.ecg_insight/cache/x.npy (C:\\data\\ecg\\r.png)") == (
        "note: cached in x.npy (r.png)")
    assert pdf.strip_paths("1/12 of the side, mV/s, a / b") == "1/12 of the side, mV/s, a / b"
    written: list[str] = []
    real_t = pdf._Pdf.t
    monkeypatch.setattr(pdf._Pdf, "t", lambda self, text: written.append(real_t(self, text)) or written[-1])
    img = np.full((40, 60, 3), 255, np.uint8)
    verdicts = faithfulness.faithfulness_verdicts(_faith_result(0.294, 0.287, 0.162, 0.295))
    content = pdf.ReportContent(img, img, [0.3, 0.7], ["a", "b"], meta, "Grad-CAM", "b",
                                image_name="r.png", notes=["read from /srv/ecg/uploads/r.png"],
                                faithfulness=verdicts)
    assert pdf.build_report(content).startswith(b"%PDF")
    text = "\n".join(written)
    assert "/work/" not in text and "/srv/" not in text and "mendeley-dev" in text
    assert "Deletion vs random: FAIL" in text and "Insertion vs random: FAIL" in text
    assert "Rule: the AUC must be at least 0.02 lower" in text
    written.clear()
    pdf.build_report(pdf.ReportContent(img, img, [0.3, 0.7], ["a", "b"], meta, "Grad-CAM", "b"))
    assert not any("faithful" in t for t in written)  # not computed: not in the PDF


# ------------------------------------------------------------------------------------- ground-truth localisation
BOXES = {"II": (0, 0, 50, 20), "III": (0, 20, 50, 40), "aVF": (50, 20, 100, 40), "V2": (50, 0, 100, 20)}


def test_pointing_game_on_hand_made_heatmaps() -> None:
    hm = np.zeros((40, 100))
    hm[25, 70] = 1.0  # inside aVF
    assert localisation.pointing_game(hm, BOXES, ["II", "III", "aVF"])
    assert not localisation.pointing_game(hm, BOXES, ["V2"])
    assert localisation.pointing_game(hm, BOXES, ["V2"], tolerance_px=6)  # 5 px below V2's box
    assert not localisation.pointing_game(np.zeros((40, 100)), BOXES, ["aVF"])  # an empty map points nowhere
    assert not localisation.pointing_game(hm, BOXES, [])
    with pytest.raises(ConfigError, match="has no box"):
        localisation.pointing_game(hm, BOXES, ["V6"])


def test_lead_mass_score_on_hand_made_heatmaps() -> None:
    hm = np.zeros((40, 100))
    hm[20:40, 0:50] = 1.0  # all the attention uniformly over III
    s = localisation.lead_mass_score(hm, BOXES, ["III", "aVF"])
    assert s.mass_fraction == pytest.approx(1.0) and s.area_fraction == pytest.approx(0.5)
    assert s.ratio == pytest.approx(2.0)
    hm[0:20, 50:100] = 3.0  # V2 gets 3x the heat on the same area
    s = localisation.lead_mass_score(hm, BOXES, ["III"])
    assert s.mass_fraction == pytest.approx(0.25) and s.ratio == pytest.approx(1.0)
    # inside a region (the crop): areas count inside it only
    s = localisation.lead_mass_score(hm, BOXES, ["III"], region=(0, 20, 100, 40))
    assert s.mass_fraction == pytest.approx(1.0) and s.area_fraction == pytest.approx(0.5)
    assert localisation.lead_mass_score(np.zeros((40, 100)), BOXES, ["III"]).mass_fraction == 0.0


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny custom_cnn trained for 2 epochs on 16 synthetic reports (with sidecars)."""
    from ecg_core.reports.synth import generate_dataset
    from ecg_core.ml.train import run_training
    from ecg_core.ml.train_config import TrainConfig

    tmp = tmp_path_factory.mktemp("explain")
    data = tmp / "synth"
    generate_dataset(data, per_class=4, seed=11, px_per_mm=2.0, artifacts=False, image_format="png")
    cfg = TrainConfig(data_dir=str(data), arch="custom_cnn", preprocess=PreprocessConfig(height=64, width=96),
                      epochs=2, batch_size=4, val_frac=0.25, test_frac=0.25, augment="none")
    run = run_training(cfg, models_dir=tmp / "models", run_id="tiny", cache_root=tmp / "cache")
    return run, data


def test_localisation_end_to_end_against_sidecars(trained_run) -> None:
    run_dir, data = trained_run
    cache = explainer.ExplainerCache(max_entries=2)
    info = registry.resolve_run(run_dir)
    e = cache.get(info)
    assert cache.get(run_dir) is e and cache.loads == 1  # built once per model, whatever names the run
    assert e.layer == info.meta["last_conv_layer"] == "block4_conv"
    cfg = registry.preprocess_config_of(info)
    items = localisation.localisation_items(data, limit=9)
    assert len(items) == 9 and {sc["class_name"] for _, sc in items} == {
        "Myocardial Infarction", "History of MI", "Abnormal Heartbeat"}  # normal reports have no pathology leads
    df = localisation.evaluate_localisation(e, cfg, items, method="gradcam")
    assert (df["error"] == "").all(), df["error"].tolist()
    assert df["pointing_chance"].between(0.0, 1.0).all() and df["lead_mass"].between(0.0, 1.0).all()
    # one row recomputed by hand: same pipeline, same numbers
    from ecg_core.imaging.loader import load_image

    path, sc = items[0]
    rgb = load_image(path).rgb
    pre = preprocess(rgb, cfg, keep_steps=False)
    cls = e.class_names.index(sc["class_name"])
    hmo = overlay.heatmap_to_original(e.explain(pre.final, class_index=cls), pre.crop_box, pre.original_shape)
    assert bool(df.loc[0, "pointing_hit"]) == localisation.pointing_game(hmo, sc["boxes"], sc["pathology_leads"])
    lm = localisation.lead_mass_score(hmo, sc["boxes"], sc["pathology_leads"], region=pre.crop_box)
    assert df.loc[0, "lead_mass"] == pytest.approx(lm.mass_fraction) and df.loc[0, "area_share"] == pytest.approx(
        lm.area_fraction)
    summary = localisation.summarise_localisation(df)
    mi = summary.set_index("group").loc[localisation.MI_GROUP]
    assert mi["n"] == df["class_name"].isin(["Myocardial Infarction", "History of MI"]).sum()
    assert set(summary["group"]) >= {localisation.MI_GROUP, "Abnormal Heartbeat"}
    # attention per lead on the same map, with the sidecar layout
    table = leads.lead_attention(hmo, leads.layout_from_sidecar(sc, rgb.shape[:2]))
    assert len(table) == 13 and table["rank"].tolist() == list(range(1, 14))


def test_resolve_run_errors(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="not found.*none \\(train a model first\\)"):
        registry.resolve_run("missing", models_dir=tmp_path)
    with pytest.raises(ConfigError, match="max_entries"):
        explainer.ExplainerCache(max_entries=0)
    with pytest.raises(ConfigError, match="smooth_noise"):
        methods.ExplainOptions(smooth_noise=0)


def test_localisation_items_under_a_hidden_parent_folder(trained_run, tmp_path) -> None:
    """The app's own data lives under ``.ecg_insight/``: only hidden entries *inside* the folder are skipped."""
    import shutil

    _, data = trained_run
    root = tmp_path / ".ecg_insight" / "demo"
    shutil.copytree(data / "myocardial_infarction", root / "myocardial_infarction")
    (root / ".trash").mkdir()
    shutil.copy(next(data.glob("history_of_mi/*.png")), root / ".trash")
    shutil.copy(next(data.glob("history_of_mi/*.json")), root / ".trash")
    items = localisation.localisation_items(root)
    assert len(items) == 4 and all(".trash" not in str(p) for p, _ in items)


# ------------------------------------------------------------------------------ per-lead runs (explain-eval)
@pytest.fixture(scope="module")
def perlead_run(tmp_path_factory) -> Path:
    """An untrained per-lead CNN saved as a completed run (``arch`` ``perlead_cnn``): the scoring, not the model,
    is under test."""
    from ecg_core.reports.perlead import mosaic_shape

    shape = mosaic_shape()
    built = zoo.build_model("perlead_cnn", input_shape=shape, n_classes=4, seed=0)
    names = ["Myocardial Infarction", "Abnormal Heartbeat", "Normal", "History of MI"]
    path = registry.create_run(tmp_path_factory.mktemp("perlead_models"), "pl", {
        "arch": "perlead_cnn", "preset": "cardiac-4", "class_names": names, "input_shape": list(shape),
        "input_kind": "report_panels"})
    registry.save_model_atomic(built.model, path / registry.MODEL_FILE)
    registry.update_run(path, status="completed", last_conv_layer=built.last_conv_layer)
    return path


def _perlead_eval(run_dir: Path, items):
    e = explainer.ExplainerCache(max_entries=1).get(registry.resolve_run(run_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return e, localisation.evaluate_localisation(e, None, items, method="gradcam", perlead=True)


def test_perlead_localisation_scores_the_panel_map_in_report_pixels(perlead_run, trained_run) -> None:
    from ecg_core.imaging.loader import load_image
    from ecg_core.reports.perlead_predict import explain_report

    _, data = trained_run
    items = localisation.localisation_items(data, limit=6)
    e, df = _perlead_eval(perlead_run, items)
    assert e.layer == "block3_relu" and (df["error"] == "").all(), df["error"].tolist()
    for i in (0, 3):
        path, sc = items[i]
        rgb = load_image(path).rgb
        cls = e.class_names.index(sc["class_name"])
        hm = explain_report(e.model, rgb, sidecar=sc, class_index=cls, explainer=e).heatmap
        assert hm.shape == rgb.shape[:2]
        union = np.zeros(hm.shape, bool)
        for x0, y0, x1, y1 in sc["boxes"].values():
            union[y0:y1, x0:x1] = True
        assert hm.max() > 0 and not hm[~union].any()  # the map lives in the lead boxes only
        leads_ = list(sc["pathology_leads"])
        assert bool(df.loc[i, "pointing_hit"]) == localisation.pointing_game(hm, sc["boxes"], leads_)
        assert df.loc[i, "max_lead"] == localisation.max_lead(hm, sc["boxes"]) != ""
        assert df.loc[i, "explained"] == sc["class_name"]
        # chance = the pathology boxes' share of the lead-box union, higher than their share of the whole page
        patho = np.zeros(hm.shape, bool)
        for lead in leads_:
            x0, y0, x1, y1 = sc["boxes"][lead]
            patho[y0:y1, x0:x1] = True
        assert df.loc[i, "pointing_chance"] == pytest.approx(patho.sum() / union.sum())
        assert df.loc[i, "pointing_chance"] > patho.mean()
        assert df.loc[i, "lead_mass"] == pytest.approx(hm[patho].sum() / hm.sum(), rel=1e-5)


def test_perlead_pointing_game_hits_the_box_of_the_maximum_and_misses_the_others(perlead_run, trained_run) -> None:
    """The same reports scored with the pathology leads forced onto the lead that holds each map's maximum (every
    map must hit), then onto every lead whose box does not hold it (every map must miss; neighbouring synthetic
    boxes share a 4 px border, so a maximum there lies in two boxes): the game can fail and can pass."""
    from ecg_core.imaging.loader import load_image
    from ecg_core.reports.perlead_predict import explain_report

    _, data = trained_run
    items = localisation.localisation_items(data, limit=6)
    e, df = _perlead_eval(perlead_run, items)
    at_max, others = [], []
    for i, (p, sc) in enumerate(items):
        hm = explain_report(e.model, load_image(p).rgb, sidecar=sc, class_index=e.class_names.index(sc["class_name"]),
                            explainer=e).heatmap
        y, x = np.unravel_index(int(np.argmax(hm)), hm.shape)
        holding = {k for k, (x0, y0, x1, y1) in sc["boxes"].items() if x0 <= x < x1 and y0 <= y < y1}
        assert df.loc[i, "max_lead"] in holding
        at_max.append((p, {**sc, "pathology_leads": [df.loc[i, "max_lead"]]}))
        others.append((p, {**sc, "pathology_leads": [k for k in sc["boxes"] if k not in holding]}))
    _, hit = _perlead_eval(perlead_run, at_max)
    _, miss = _perlead_eval(perlead_run, others)
    assert hit["pointing_hit"].astype(bool).all() and hit["lead_mass"].gt(0).all()
    assert not miss["pointing_hit"].astype(bool).any()
    assert (hit["max_lead"] == df["max_lead"]).all()  # deterministic maps


def test_explain_eval_cli_on_a_perlead_run(perlead_run, trained_run, tmp_path, capsys) -> None:
    import pandas as pd

    from ecg_core.cli import main

    _, data = trained_run
    csv = tmp_path / "per_image.csv"
    assert main(["explain-eval", str(perlead_run), str(data), "--limit", "4", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "layer block3_relu" in out and "per-lead CNN" in out and "MI + history of MI" in out
    per = pd.read_csv(csv, keep_default_na=False)
    assert len(per) == 4 and (per["error"] == "").all() and per["max_lead"].ne("").all()
