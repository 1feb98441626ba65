"""Per-lead CNN (issue 15 item 2): panel mosaic, flat graph with attention over leads, Grad-CAM, a tiny training job."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecg_core.reports.layout import LEAD_KEYS
from ecg_core.reports.leads import LeadLayout
from ecg_core.reports.perlead import (
    GAP,
    PANEL_HW,
    attention_table,
    cam_to_report,
    mosaic_shape,
    panels_to_mosaic,
    report_mosaic,
)

SLOT = PANEL_HW[0] + GAP


def _layout(h: int = 400, w: int = 600) -> LeadLayout:
    """A 3x4 + rhythm layout of boxes on an h x w page (no overlap)."""
    boxes = {}
    cw, rh = w // 4, h // 4
    for i, k in enumerate(LEAD_KEYS[:-1]):
        r, c = divmod(i, 4)
        boxes[k] = (c * cw, r * rh, (c + 1) * cw, (r + 1) * rh)
    boxes[LEAD_KEYS[-1]] = (0, 3 * rh, w, h)
    return LeadLayout(boxes, "detected", "test layout", (h, w))


def test_mosaic_puts_each_lead_in_its_own_slot():
    lay = _layout()
    rgb = np.full((400, 600, 3), 255, np.uint8)
    rgb[:, :, 1:] = 200  # a pink page: bright in the red channel, so no ink
    target = "V2"
    x0, y0, x1, y1 = lay.boxes[target]
    rgb[(y0 + y1) // 2 - 2:(y0 + y1) // 2 + 2, x0 + 10:x1 - 10] = 0  # a black trace in V2 only
    m = report_mosaic(rgb, layout=lay)
    assert m.image.shape == mosaic_shape() == (13 * SLOT, PANEL_HW[1], 1)
    assert m.image.dtype == np.float32 and 0.0 <= m.image.min() and m.image.max() <= 1.0
    ink = m.image[..., 0].reshape(13, SLOT, -1)
    per_slot = ink.sum(axis=(1, 2))
    k = LEAD_KEYS.index(target)
    assert per_slot[k] > 10 and np.delete(per_slot, k).max() < 1e-3  # only V2's slot has ink; the grid-free paper none
    assert np.all(ink[:, PANEL_HW[0]:] == 0)  # the separating rows are empty


def test_panels_to_mosaic_and_cam_back_to_the_box():
    panels = np.random.default_rng(0).random((13, *PANEL_HW)).astype(np.float32)
    mos = panels_to_mosaic(panels)
    assert np.array_equal(mos[SLOT * 5:SLOT * 5 + PANEL_HW[0], :, 0], panels[5])
    lay = _layout()
    cam = np.zeros(mosaic_shape()[:2], np.float32)
    k = LEAD_KEYS.index("aVF")
    cam[k * SLOT:k * SLOT + PANEL_HW[0]] = 1.0
    heat = cam_to_report(cam, lay)
    x0, y0, x1, y1 = lay.boxes["aVF"]
    assert heat.shape == (400, 600)
    assert heat[y0:y1, x0:x1].min() > 0.99 and heat.sum() == pytest.approx((x1 - x0) * (y1 - y0), rel=1e-3)


def test_attention_table_ranks():
    w = np.full(13, 0.05)
    w[LEAD_KEYS.index("V3")] = 0.4
    rows = attention_table(w)
    assert [r["lead"] for r in rows][-1] == "rhythm"
    assert next(r for r in rows if r["lead"] == "V3")["rank"] == 1


@pytest.fixture(scope="module")
def built():
    from ecg_core.ml import zoo

    return zoo.build_model("perlead_cnn", n_classes=4, seed=0)


def test_model_is_flat_with_attention_over_13_leads(built):
    import keras

    from ecg_core.ml.zoo_perlead import ATTENTION_LAYER

    model = built.model
    assert built.input_shape == (624, 128, 1)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)  # flat: no nested model
    assert built.last_conv_layer == "block3_relu"
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(abs(layer.momentum - 0.9) < 1e-9 for layer in bns)
    att = keras.Model(model.inputs, model.get_layer(ATTENTION_LAYER).output)
    x = np.random.default_rng(1).random((2, 624, 128, 1)).astype(np.float32)
    a = np.asarray(att(x))
    assert a.shape == (2, 13, 1) and np.allclose(a.sum(axis=1), 1.0, atol=1e-5)
    # the encoder is shared: a panel slot is encoded by the same conv weights wherever it sits (the feature map
    # of block3 has 13 equal slots of rows)
    fm = model.get_layer("block3_relu").output
    assert fm.shape[1] == 13 * (SLOT // 16)


def test_bad_mosaic_shape_is_refused():
    from ecg_core.core.errors import ConfigError
    from ecg_core.ml import zoo

    with pytest.raises(ConfigError, match="mosaic"):
        zoo.build_model("perlead_cnn", n_classes=4, input_shape=(600, 128, 1))


def test_gradcam_runs_on_the_perlead_model(built):
    from ecg_core.xai.explainer import Explainer

    ex = Explainer(built.model, layer=built.last_conv_layer)
    x = np.zeros((624, 128, 1), np.float32)
    x[5 * SLOT + 20:5 * SLOT + 23, 10:120] = 1.0
    cam = np.asarray(ex.explain(x[None], method="gradcam"))
    cam = cam[0] if cam.ndim == 3 else cam
    assert cam.shape == (624, 128) and np.all(np.isfinite(cam))
    heat = cam_to_report(cam, _layout())
    assert heat.shape == (400, 600)


def test_tiny_training_job_writes_a_complete_run(tmp_path):
    import keras

    from ecg_core.ml import registry
    from ecg_core.reports.perlead_train import train_perlead
    from ecg_core.reports.synth import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, per_class=4, seed=3, artifacts=False, image_format="png")
    run = train_perlead(data, tmp_path / "models", run_id="pl-tiny", epochs=1, batch_size=4, val_frac=0.25,
                        test_frac=0.25, cache_root=tmp_path / "cache", n_boot=20)
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed", meta.get("error")
    assert meta["arch"] == "perlead_cnn" and meta["input_kind"] == "report_panels"
    assert meta["last_conv_layer"] == "block3_relu" and meta["attention_layer"] == "lead_attention"
    for name in ("model.keras", "eval.json", "predictions.csv", "MODEL_CARD.md", "progress.jsonl", "split.csv"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").rglob("*tfevents*"))
    model = keras.models.load_model(str(run / "model.keras"), compile=False, safe_mode=True)
    assert model.input_shape[1:] == (624, 128, 1)
    phases = {json.loads(line)["phase"] for line in (run / "progress.jsonl").read_text().splitlines()}
    assert {"preprocess", "start", "epoch", "evaluate", "done"} <= phases
    assert registry.read_run(run).usable
    card = (run / "MODEL_CARD.md").read_text()  # trained on synthetic reports: no Mendeley credit or limits
    assert meta["data_source"] == "synthetic" and "Synthetic 12-lead reports" in card and "Mendeley" not in card
    # the mosaics were cached per file content: a second job reads them back
    assert any((tmp_path / "cache").rglob("*.npy"))
    # fine-tuning from given weights (the synthetic pretraining path): the second run starts from them
    weights = tmp_path / "pre.weights.h5"
    model.save_weights(str(weights))
    run2 = train_perlead(data, tmp_path / "models", run_id="pl-tiny-ft", epochs=1, batch_size=4, val_frac=0.25,
                         test_frac=0.25, cache_root=tmp_path / "cache", n_boot=0, init_weights=weights)
    meta2 = json.loads((run2 / "run.json").read_text())
    assert meta2["status"] == "completed" and meta2["pretrained"]["loaded"] is True
    assert meta2["train"]["init_weights"] == str(weights)


def test_cli_train_then_predict_and_explain(tmp_path, monkeypatch):
    """The Train page's job (``python -m ecg_core train --arch perlead_cnn``), then ``predict`` and the per-lead
    explanation on the trained run."""
    import pandas as pd

    from ecg_core.cli.app import main
    from ecg_core.imaging.loader import load_image
    from ecg_core.ml import registry
    from ecg_core.reports.perlead_predict import explain_report
    from ecg_core.reports.synth import generate_dataset

    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    data = tmp_path / "data"
    generate_dataset(data, per_class=3, seed=5, artifacts=False, image_format="png")
    models = tmp_path / "models"
    assert main(["train", "--data", str(data), "--arch", "perlead_cnn", "--run-id", "pl-cli", "--models", str(models),
                 "--epochs", "1", "--batch-size", "4", "--height", "192", "--width", "320"]) == 0
    run = registry.resolve_run("pl-cli", models_dir=models, usable=True)
    out = tmp_path / "pred.csv"
    assert main(["predict", "pl-cli", str(data), "--models", str(models), "--out", str(out), "--no-check"]) == 0
    df = pd.read_csv(out)
    assert len(df) == 12 and (df["predicted"].fillna("") != "").all()
    assert df["top_leads"].str.count(",").eq(2).all() and set(df["layout"]) == {"sidecar"}
    img = min(data.rglob("*.png"))
    ex = explain_report(registry.load_model(run), load_image(img).rgb,
                        sidecar=json.loads(img.with_suffix(".json").read_text()))
    assert ex.probs.shape == (4,) and abs(ex.probs.sum() - 1) < 1e-5
    assert ex.attention.shape == (13,) and abs(ex.attention.sum() - 1) < 1e-5
    assert ex.heatmap.shape == load_image(img).rgb.shape[:2] and np.isfinite(ex.heatmap).all()
    # the map lives inside the lead boxes only
    inside = np.zeros(ex.heatmap.shape, bool)
    for x0, y0, x1, y1 in ex.mosaic.layout.boxes.values():
        inside[y0:y1, x0:x1] = True
    assert ex.heatmap[~inside].max() == 0


def test_stop_file_before_training_marks_the_run_stopped(tmp_path, monkeypatch):
    from ecg_core.ml import progress
    from ecg_core.reports.perlead_train import train_perlead
    from ecg_core.reports.synth import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, per_class=2, seed=4, artifacts=False, image_format="png")
    monkeypatch.setattr(progress.StopFlag, "__call__", lambda self: True)
    run = train_perlead(data, tmp_path / "models", run_id="pl-stop", epochs=1, batch_size=4, val_frac=0.25,
                        test_frac=0.25, cache_root=tmp_path / "cache", n_boot=0)
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "stopped" and not (run / "model.keras").exists()


def test_fit_starts_from_the_given_weights(tmp_path):
    from ecg_core.ml import zoo
    from ecg_core.reports.perlead_train import fit_perlead

    rng = np.random.default_rng(0)
    x, y = rng.random((8, 208, 16, 1)).astype(np.float32), np.array([0, 1, 2, 3] * 2)
    src = zoo.build_model("perlead_cnn", input_shape=(208, 16, 1), n_classes=4, seed=123).model
    weights = tmp_path / "src.weights.h5"
    src.save_weights(str(weights))
    model, _, _ = fit_perlead(x, y, n_classes=4, epochs=1, batch_size=8, lr=1e-12, seed=0, init_weights=weights,
                              augment=False)
    kernel = model.get_layer("stem_conv").get_weights()[0]
    assert np.allclose(kernel, src.get_layer("stem_conv").get_weights()[0], atol=1e-6)
    fresh, _, _ = fit_perlead(x, y, n_classes=4, epochs=1, batch_size=8, lr=1e-12, seed=0, augment=False)
    assert not np.allclose(fresh.get_layer("stem_conv").get_weights()[0], kernel, atol=1e-3)
