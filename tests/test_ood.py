"""Issue 16.4, "outside the training data": the report descriptor (layout, paper, size), the feature-space distance
with its leave-fold-out threshold, the stored profile, the ``predict`` CSV columns and the Explain page's warning.

Layouts other than 3x4 + rhythm strip are built here by re-arranging the lead cells of a rendered 3x4 report (each
cell's band around its baseline, repeated to the panel's width), so these tests do not depend on the renderer's
own layouts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_image
from test_page_explain import page, trained  # noqa: F401 - the tiny run and the page factory

from ecg_core.reports import ood

LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")
CHEST = ("V1", "V2", "V3", "V4", "V5", "V6")
SIX_BY_TWO = ("This report's layout (6x2) differs from the reports this model was trained on (3x4 + rhythm strip): "
              "treat the prediction as unreliable.")


def rearranged(layout: str, seed: int = 0, ppm: float = 4.0) -> np.ndarray:
    """A rendered 3x4 + rhythm report ('3x4+1'), or its lead cells re-arranged into 6 rows x 2 ('6x2') or 12 rows
    ('12x1') on the same paper."""
    from ecg_core.reports.synth import make_report
    from ecg_core.reports.synth_render import RenderOptions
    from ecg_core.reports.synth_spec import SynthSpec

    spec = SynthSpec(cls="normal", seed=seed)
    img, side = make_report(spec, RenderOptions(px_per_mm=ppm))
    if layout == "3x4+1":
        return img
    blank, _ = make_report(spec, RenderOptions(px_per_mm=ppm, draw_traces=False, draw_text=False))
    boxes = side["boxes"]
    x0, y0, x1, y1 = boxes["I"][0], boxes["I"][1], boxes["II_rhythm"][2], boxes["II_rhythm"][3]
    grid = [[a, b] for a, b in zip(LIMB, CHEST)] if layout == "6x2" else [[lead] for lead in LIMB + CHEST]
    rh, cw = (y1 - y0) / len(grid), (x1 - x0) / len(grid[0])
    w, h = int(cw), int(rh)
    out = blank.copy()
    for r, row in enumerate(grid):
        for c, lead in enumerate(row):
            bx0, by0, bx1, by1 = boxes[lead]
            cy = (by0 + by1) // 2
            cell = img[cy - h // 2 : cy - h // 2 + h, bx0:bx1]
            strip = np.concatenate([cell] * (w // cell.shape[1] + 1), axis=1)[:, :w]
            ty, tx = int(y0 + r * rh), int(x0 + c * cw)
            out[ty : ty + h, tx : tx + w] = strip
    return out


@pytest.fixture(scope="module")
def reports() -> dict[str, np.ndarray]:
    return {lay: rearranged(lay) for lay in ("3x4+1", "6x2", "12x1")}


def test_descriptor_detects_the_layout(reports) -> None:
    for layout, img in reports.items():
        d = ood.describe_report(img)
        assert d.layout == layout, (layout, d)
    assert ood.describe_report(reports["12x1"]).n_rows == 12
    assert ood.describe_report(reports["6x2"]).n_rows == 6


def test_descriptor_paper_colour_and_size(reports) -> None:
    img = reports["3x4+1"]
    grey = np.repeat(img.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    blue = img.copy()
    blue[..., 0] = (blue[..., 0] * 0.75).astype(np.uint8)  # less red: a blue-green tint
    d_grey, d_blue = ood.describe_report(grey), ood.describe_report(blue, original_size=(2240, 1592))
    assert d_grey.paper_saturation < 0.02 and d_grey.colour_name in ("white", "grey")
    assert d_blue.paper_saturation > 0.15 and 150 < d_blue.paper_hue < 230
    assert (d_blue.width, d_blue.height) == (2240, 1592) and d_blue.aspect == pytest.approx(2240 / 1592)
    assert ood.ReportDescriptor.from_dict(json.loads(json.dumps(d_blue.to_dict()))) == d_blue


def _reference(rng: np.random.Generator, n: int = 150, dim: int = 16, quantile: float = 0.95
               ) -> ood.EmbeddingReference:
    from ecg_core.reports.ood_build import leave_fold_out

    emb = rng.normal(size=(n, dim)).astype(np.float32)
    held = leave_fold_out(emb, np.arange(n) % 5, k=5, dim=8)
    thr = float(np.quantile(held, quantile))
    mean, comp = ood.fit_pca(emb, 8)
    return ood.EmbeddingReference("fc", mean, comp, (emb - mean) @ comp.T, 5, thr, quantile, 5, n,
                                  float(np.mean(held <= thr)))


def test_leave_fold_out_threshold_passes_fresh_training_like_points_and_flags_far_ones() -> None:
    rng = np.random.default_rng(0)
    ref = _reference(rng)
    fresh = ref.distance(rng.normal(size=(300, 16)))
    far = ref.distance(rng.normal(size=(50, 16)) + 6.0)
    assert 0.85 <= float(np.mean(fresh <= ref.threshold)) <= 1.0
    assert bool(np.all(far > ref.threshold))
    assert 0.9 <= ref.heldout_in_rate <= 1.0


def test_profile_round_trips_without_pickle(tmp_path, reports) -> None:
    rng = np.random.default_rng(1)
    descs = [ood.describe_report(reports["3x4+1"])] * 3 + [ood.describe_report(reports["6x2"])]
    prof = ood.profile_from_descriptors("run-x", descs, embedding=_reference(rng), source="test")
    ood.save_profile(prof, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {ood.PROFILE_FILE, ood.REFERENCE_FILE, ood.PCA_FILE}
    back = ood.load_profile(tmp_path)
    assert back is not None and back.layouts == {"3x4+1": 3, "6x2": 1} and back.ranges == prof.ranges
    assert back.training_layouts == ["3x4+1", "6x2"]  # 25 % each is more than the 2 % floor
    e, b = prof.embedding, back.embedding
    assert b.threshold == pytest.approx(e.threshold) and b.k == e.k and b.layer == "fc"
    np.testing.assert_allclose(b.reference, e.reference, rtol=1e-6)
    np.testing.assert_allclose(b.components, e.components, rtol=1e-6)
    (tmp_path / ood.REFERENCE_FILE).write_bytes(b"garbage")
    with pytest.raises(ood.ConfigError, match="unreadable"):
        ood.load_profile(tmp_path)
    assert ood.load_profile(tmp_path / "absent") is None


def test_verdicts_say_why_in_plain_words(reports) -> None:
    rng = np.random.default_rng(2)
    train = ood.describe_report(reports["3x4+1"])
    ref = _reference(rng)
    prof = ood.profile_from_descriptors("run-x", [train] * 5, embedding=ref)
    near = np.zeros((1, 16), np.float32)
    ok = ood.assess(train, prof, embedding=near)
    assert ok.in_distribution is True and ok.reason == "" and ok.message == "" and ok.csv_value == "true"
    six = ood.assess(ood.describe_report(reports["6x2"]), prof, embedding=near)
    assert six.in_distribution is False and six.csv_value == "false"
    assert six.message == SIX_BY_TWO
    assert six.reason.startswith("layout (6x2) differs from the reports this model was trained on")
    far = ood.assess(train, prof, embedding=np.full((1, 16), 8.0, np.float32))
    assert far.in_distribution is False and "feature space" in far.reason and f"> {ref.threshold:.2f}" in far.reason
    small = ood.ReportDescriptor(**{**train.to_dict(), "row_spans": train.row_spans, "width": 300, "height": 213})
    assert "resolution (300 px wide)" in ood.assess(small, prof).reason
    unknown = ood.assess(ood.describe_report(reports["12x1"]), None)
    assert unknown.in_distribution is None and unknown.csv_value == ""
    assert unknown.reason.startswith("unknown: this model has no OOD profile") and "12x1" in unknown.reason
    # a model without a feature space (a measurement model): the descriptor part alone
    desc_only = ood.profile_from_descriptors("lgbm", [train] * 5)
    assert ood.assess(ood.describe_report(reports["12x1"]), desc_only).in_distribution is False
    assert ood.assess(train, desc_only, embedding=near).in_distribution is True


def test_descriptor_cache_round_trip(tmp_path, reports) -> None:
    cache = ood.DescriptorCache(tmp_path)
    d = ood.describe_report(reports["6x2"])
    assert cache.get("ab12") is None
    cache.put("ab12", d)
    assert cache.get("ab12") == d
    assert cache.get("../x") is None  # a path, not a hash: never read
    with pytest.raises(ood.ConfigError):
        cache.put("../x", d)


# ------------------------------------------------------------------------------------------ with a tiny run
@pytest.fixture(scope="module")
def profiled(trained, tmp_path_factory) -> tuple[Path, Path, Path]:  # noqa: F811
    """(the tiny run's folder, now with an OOD profile built from its training split; a folder with one of its
    training reports and a 6x2 re-arrangement; the 6x2 image)."""
    from ecg_core.ml import registry
    from ecg_core.reports.ood_build import build_profile

    models, data = trained
    run = registry.read_run(models / "tiny")
    profile, summary = build_profile(run, data)
    assert summary["n_used"] >= 3 and profile.training_layouts == ["3x4+1"]
    assert profile.embedding is not None and profile.embedding.n_heldout == summary["n_used"]
    folder = tmp_path_factory.mktemp("ood-batch")
    split = pd.read_csv(run.path / "split.csv")
    train_file = data / split.loc[split["split"] == "train", "rel_path"].iloc[0]
    shutil.copy(train_file, folder / "a_training_report.png")
    six = write_image(folder / "b_six_by_two.png", rearranged("6x2", seed=3))
    return run.path, folder, six


def test_predict_csv_has_the_ood_columns(profiled, tmp_path, monkeypatch) -> None:
    from ecg_core.cli import main

    run_dir, folder, _ = profiled
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    out = tmp_path / "p.csv"
    assert main(["predict", str(run_dir), str(folder), "--out", str(out)]) == 0
    df = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("path")
    assert list(df.columns[-2:]) == ["in_distribution", "ood_reason"]
    assert df.loc["b_six_by_two.png", "in_distribution"] == "false"
    assert df.loc["b_six_by_two.png", "ood_reason"].startswith("layout (6x2) differs")
    assert df.loc["a_training_report.png", "in_distribution"] == "true", df.loc["a_training_report.png"].to_dict()
    # a second run reads the cached descriptors: the same verdicts
    out2 = tmp_path / "p2.csv"
    assert main(["predict", str(run_dir), str(folder), "--out", str(out2)]) == 0
    df2 = pd.read_csv(out2, dtype=str, keep_default_na=False).set_index("path")
    assert df2["in_distribution"].to_dict() == df["in_distribution"].to_dict()
    # a run without a profile says so plainly, and still names the layout
    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns("ood_*"))
    assert main(["predict", str(bare), str(folder), "--out", str(out), "--no-cache"]) == 0
    df = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("path")
    assert set(df["in_distribution"]) == {""}
    assert df.loc["b_six_by_two.png", "ood_reason"].startswith("unknown: this model has no OOD profile")
    assert "6x2" in df.loc["b_six_by_two.png", "ood_reason"]


def test_explain_page_warns_beside_the_verdict(page, profiled, monkeypatch) -> None:  # noqa: F811
    _, folder, six = profiled
    monkeypatch.setenv("ECG_INSIGHT_DATA_ROOTS", str(folder))
    at = page(explain_path=str(six)).run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("**Model output:**") for m in at.markdown)
    # the layout first, in the words (other differences, e.g. the paper colour, follow in brackets)
    head, tail = SIX_BY_TWO.split(": treat")
    assert any(w.value.startswith(head) and w.value.endswith("treat" + tail) for w in at.warning), [
        w.value for w in at.warning]
    at = page(explain_path=str(folder / "a_training_report.png")).run()
    assert not at.exception, at.exception
    assert not any("treat the prediction as unreliable" in w.value for w in at.warning)
    assert any("resembles the reports this model was trained on" in c.value for c in at.caption)


def test_training_command_writes_the_profile(profiled, trained, tmp_path, capsys) -> None:  # noqa: F811
    """What ``python -m ecg_core train`` runs after a completed Keras run (``cli.common.write_ood_profile``)."""
    from ecg_core.cli.common import write_ood_profile as _write_ood_profile

    run_dir, _, _ = profiled
    _, data = trained
    fresh = tmp_path / "fresh"
    shutil.copytree(run_dir, fresh, ignore=shutil.ignore_patterns("ood_*"))
    _write_ood_profile(fresh, str(data))
    assert "OOD profile:" in capsys.readouterr().out
    prof = ood.load_profile(fresh)
    assert prof is not None and prof.embedding is not None and prof.training_layouts == ["3x4+1"]
    empty = tmp_path / "empty"
    empty.mkdir()
    _write_ood_profile(fresh, str(empty))  # no training file there: a note, never a failed training
    assert "OOD profile not built" in capsys.readouterr().out


def test_descriptor_only_columns_for_a_model_without_a_feature_space(tmp_path, reports) -> None:
    """A measurement model's ``predict`` (``ood_build.add_ood_columns``): the descriptor part alone, rows without a
    prediction left empty, and the descriptors cached by content hash."""
    from ecg_core.reports.ood_build import add_ood_columns

    files = [write_image(tmp_path / f"{n}.png", reports[lay]) for n, lay in (("a", "3x4+1"), ("b", "12x1"),
                                                                             ("c", "6x2"))]
    prof = ood.profile_from_descriptors("lgbm", [ood.describe_report(reports["3x4+1"])] * 3)
    df = pd.DataFrame({"path": ["a.png", "b.png", "c.png"], "predicted": ["Normal", "Normal", ""]})
    out = add_ood_columns(df, files, prof, cache_root=tmp_path / "cache")
    assert out["in_distribution"].tolist() == ["true", "false", ""]
    assert out.loc[1, "ood_reason"].startswith("layout (12x1) differs") and out.loc[2, "ood_reason"] == ""
    assert len(list((tmp_path / "cache" / "ood_descriptor").rglob("*.json"))) == 2
    unknown = add_ood_columns(df, files, None)
    assert unknown["in_distribution"].tolist() == ["", "", ""]
    assert unknown.loc[0, "ood_reason"].startswith("unknown: this model has no OOD profile")


def test_batch_page_shows_the_ood_columns(page, profiled, monkeypatch) -> None:  # noqa: F811
    from test_page_explain import BATCH_PAGE

    _, folder, _ = profiled
    monkeypatch.setenv("ECG_INSIGHT_DATA_ROOTS", str(folder))
    at = page(BATCH_PAGE).run()
    at.text_input(key="explain_batch_dir").set_value(str(folder)).run()
    at.button(key="explain_batch_run").click().run()
    assert not at.exception, at.exception
    frame = at.dataframe[0].value.set_index("path")
    assert frame.loc["b_six_by_two.png", "in_distribution"] == "false"
    assert frame.loc["a_training_report.png", "in_distribution"] == "true"
    config = json.loads(at.dataframe[0].proto.columns)
    assert config["ood_reason"]["label"] == "why out of distribution"
    assert any("1 predicted reports look unlike" in w.value for w in at.warning)


def test_batch_descriptor_reuses_the_check_scan(reports, tmp_path, monkeypatch) -> None:
    """Issue 16.5: in batch prediction the descriptor reads the layout off the ECG check's reduced copy and trace
    components; no second, full-resolution trace analysis (``analyse_traces``) for a known layout."""
    import cv2

    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.reports import batch, ecg_check, traces

    def no_analysis(*a, **k):
        raise AssertionError("the full trace analysis ran")

    monkeypatch.setattr(traces, "analyse_traces", no_analysis)
    for layout, img in reports.items():
        chk = ecg_check.check_ecg(img, keep_scan=True)
        assert chk.is_ecg and chk.scan is not None and ecg_check.check_ecg(img).scan is None
        assert chk.scan.trace.shape == chk.scan.work.shape[:2] and chk.scan.work.shape[1] < img.shape[1]
        assert ood.describe_report(img, scan=chk.scan).layout == layout
    calls = []
    real = ecg_check.check_ecg
    monkeypatch.setattr(ecg_check, "check_ecg", lambda rgb, **k: calls.append(k) or real(rgb, **k))
    p = tmp_path / "six.png"
    cv2.imwrite(str(p), reports["6x2"][:, :, ::-1])
    x, _, reason, desc = batch._batch_prepare(p, PreprocessConfig(), True, None, True)
    assert x is not None and reason == "" and desc.layout == "6x2"
    assert calls == [{"keep_scan": True}]  # one scan: the check's, reused by the descriptor


def test_descriptor_drops_a_header_rule_the_check_kept() -> None:
    """A header rule with its text at one end (kept by the check as a long curve) is no row of traces."""
    band = np.zeros((20, 400), bool)
    band[10, 5:395] = True
    rule = band.copy()
    rule[2:10, 10:60:6] = True  # glyphs hanging on the rule's left end
    trace = band.copy()
    trace[2:10, 20:400:45] = True  # QRS spikes all along
    assert not ood._spiky(rule) and ood._spiky(trace) and not ood._spiky(band)


@pytest.mark.parametrize("photo", [False, True])
def test_descriptor_given_the_photo_layout_is_the_same(photo) -> None:
    from ecg_core.reports import leads
    from ecg_core.reports.synth import SynthSpec, make_report, variant_options

    img, _ = make_report(SynthSpec("normal", seed=4), variant_options("6x2", "green", photo=photo, px_per_mm=5.0))
    got = leads.photo_layout(img)
    assert (got is not None) == photo
    assert ood.describe_report(img, photo=got) == ood.describe_report(img)
