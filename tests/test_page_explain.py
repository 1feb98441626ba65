"""AppTest of the Explain page with a tiny model trained here: an image (linked by path, or uploaded) -> input check
-> prediction -> overlay -> PDF bytes; the second method reuses the cached preprocessing; no runs, unusable runs,
a non-ECG image; and the Batch predict page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import write_image

REPO = Path(__file__).resolve().parents[1]
PAGE = str(REPO / "pages" / "explain.py")
BATCH_PAGE = str(REPO / "pages" / "explain_batch.py")
TIMEOUT = 300


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(models folder with one tiny run trained on synthetic reports, the synthetic dataset)."""
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.reports.synth import generate_dataset
    from ecg_core.ml.train import run_training
    from ecg_core.ml.train_config import TrainConfig

    tmp = tmp_path_factory.mktemp("page")
    data = tmp / "synth"
    generate_dataset(data, per_class=3, seed=21, px_per_mm=2.5, artifacts=False, image_format="png")
    cfg = TrainConfig(data_dir=str(data), arch="custom_cnn", preprocess=PreprocessConfig(height=64, width=96),
                      epochs=2, batch_size=4, val_frac=0.25, test_frac=0.25, augment="none")
    run_training(cfg, models_dir=tmp / "models", run_id="tiny", cache_root=tmp / "cache")
    return tmp / "models", data


@pytest.fixture
def page(trained, monkeypatch, tmp_path):
    models, _ = trained
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    st.cache_data.clear()  # other tests' cached values must not hide the calls counted here

    def make(script: str = PAGE, **state) -> AppTest:
        at = AppTest.from_file(script, default_timeout=TIMEOUT)
        for k, v in state.items():
            at.session_state[k] = v
        return at

    return make


def _captions(at: AppTest) -> str:
    return " ".join(str(el.proto) for el in at.get("imgs")) + " ".join(str(el.proto) for el in at.get("image"))


def _class_selector(at: AppTest):
    """The "Explain class" selector (its key names the model and the image, so that a new image starts afresh)."""
    found = [s for s in at.selectbox if s.label == "Explain class"]
    assert len(found) == 1, [s.label for s in at.selectbox]
    return found[0]


def _top_class(at: AppTest) -> str:
    out = [m.value for m in at.markdown if m.value.startswith("**Model output:**")]
    assert out, "no model output shown"
    return out[0].removeprefix("**Model output:** ").rsplit(" (", 1)[0]


def test_linked_image_prediction_overlay_pdf(page, trained, monkeypatch) -> None:
    import ecg_core.imaging.preprocess as pp
    import ecg_core.reports.pdf as report

    calls = {"preprocess": 0}
    real_pre = pp.preprocess

    def counting(*a, **k):
        calls["preprocess"] += 1
        return real_pre(*a, **k)

    monkeypatch.setattr(pp, "preprocess", counting)
    pdfs: list[bytes] = []
    real_build = report.build_report

    def recording(content):
        out = real_build(content)
        pdfs.append(out)
        return out

    monkeypatch.setattr(report, "build_report", recording)

    _, data = trained
    image = sorted((data / "myocardial_infarction").glob("*.png"))[0]
    at = page(explain_path=str(image)).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("recognised as an ECG report" in s.value for s in at.success)
    assert any(m.value.startswith("**Model output:**") for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 2  # probabilities and attention per lead
    assert "on the report (shown at" in _captions(at) and "original" in _captions(at)
    assert any("ground truth" in c.value for c in at.caption)  # the sidecar's pathology leads were used
    assert calls["preprocess"] == 1

    # another method and class, a lower opacity, the comparison and the PDF in one rerun
    at.selectbox(key="explain_method").set_value("gradcam++")
    _class_selector(at).set_value(2)
    at.slider(key="explain_alpha").set_value(0.3)
    at.toggle(key="explain_compare").set_value(True)
    at.toggle(key="explain_pdf_on").set_value(True)
    at.run()
    assert not at.exception, at.exception
    assert calls["preprocess"] == 1  # another method: the cached PreprocessResult is reused
    assert "Grad-CAM++" in _captions(at)
    assert pdfs and pdfs[-1].startswith(b"%PDF") and len(pdfs[-1]) > 10_000
    assert [b.key for b in at.get("download_button")] == ["explain_overlay_png", "explain_pdf"]

    at.button(key="explain_faith_run").click().run()
    assert not at.exception, at.exception
    assert calls["preprocess"] == 1
    assert any("random order" in m.value for m in at.markdown)
    assert any("sanity check" in m.value for m in list(at.success) + list(at.warning))
    # issue 19.7: one coloured verdict per test with the rule that decided it; green overall only if all passed
    boxes = [m.value for m in list(at.success) + list(at.error) + list(at.warning) if "Rule:" in m.value]
    for test in ("Deletion vs random", "Insertion vs random", "Model-randomisation sanity check"):
        assert sum(b.startswith(test + ":") for b in boxes) == 1, (test, boxes)
    overall = [m for m in list(at.success) + list(at.warning) if "faithfulness tests passed" in m.value]
    assert len(overall) == 1
    assert (overall[0] in list(at.success)) == overall[0].value.startswith("3 of 3")


def test_upload_branch(page, trained) -> None:
    _, data = trained
    image = sorted((data / "normal").glob("*.png"))[0]
    at = page(explain_source="Upload").run()
    assert not at.exception and any("Upload a scan" in i.value for i in at.info)
    at.file_uploader(key="explain_upload").set_value(("report.png", image.read_bytes(), "image/png")).run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("**Model output:**") for m in at.markdown)
    # an upload has no sidecar: the leads are detected (or the template says so)
    assert not any("ground truth" in c.value for c in at.caption)
    at.file_uploader(key="explain_upload").set_value(("bad.png", b"%PDF-1.4 not an image", "image/png")).run()
    assert not at.exception
    assert any("a PDF document" in e.value for e in at.error)


def test_not_an_ecg_gets_no_diagnosis(page, tmp_path) -> None:
    rng = np.random.default_rng(0)
    noise = write_image(tmp_path / "noise.png", rng.integers(0, 256, (400, 560, 3), dtype=np.uint8))
    at = page(explain_path=str(noise)).run()
    assert not at.exception, at.exception
    assert any("Not recognised as an ECG report" in e.value for e in at.error)
    assert not any(m.value.startswith("**Model output:**") for m in at.markdown)
    at.checkbox(key="explain_force").check().run()
    assert not at.exception and any(m.value.startswith("**Model output:**") for m in at.markdown)


def test_no_runs_and_unusable_runs(monkeypatch, tmp_path) -> None:
    models = tmp_path / "models"
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and any("No trained model" in i.value for i in at.info)
    (models / "broken").mkdir(parents=True)
    (models / "broken" / "run.json").write_text(json.dumps({"run_id": "broken", "status": "failed"}))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("1 runs cannot be used" in e.label for e in at.expander)
    assert any("No trained model" in i.value for i in at.info)


def test_batch_mode_with_a_bad_file(page, trained, tmp_path, monkeypatch) -> None:
    _, data = trained
    folder = tmp_path / "batch"
    monkeypatch.setenv("ECG_INSIGHT_DATA_ROOTS", str(folder))  # a typed folder must lie inside the data roots
    folder.mkdir()
    for p in sorted(data.glob("*/*.png"))[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    at = page(BATCH_PAGE).run()
    assert not at.exception
    at.text_input(key="explain_batch_dir").set_value(str(folder)).run()
    at.button(key="explain_batch_run").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"files": "3", "predicted": "2", "not an ECG": "0", "unreadable": "1"}
    assert [b.key for b in at.get("download_button")] == ["explain_batch_csv"]
    # issue 19.9: the class column is wide enough to read and the constant ecg_score is not shown
    frame = at.dataframe[0]
    assert "ecg_score" not in frame.value.columns and "predicted" in frame.value.columns
    config = json.loads(frame.proto.columns)
    assert config["predicted"]["width"] in ("medium", "large") and config["predicted"]["label"] == "predicted class"


def test_new_image_explains_its_own_top_class(page, trained) -> None:
    """Issue 19.1: after a class was chosen for one report, a new report must be explained for *its* top class.

    Before the fix the selector had one fixed key: its stored choice (the previous report's class) was used for the
    heatmap while the selector showed the new report's top class."""
    _, data = trained
    first = sorted((data / "myocardial_infarction").glob("*.png"))[0]
    second = sorted((data / "normal").glob("*.png"))[0]
    probe = page(explain_path=str(second)).run()
    assert not probe.exception, probe.exception
    top_second = _top_class(probe)
    names = _class_selector(probe).options  # labels "Class (p%)" in model order
    names = [n.rsplit(" (", 1)[0] for n in names]

    at = page(explain_path=str(first)).run()
    assert not at.exception, at.exception
    top_first = _top_class(at)
    other = next(i for i, n in enumerate(names) if n not in (top_first, top_second))
    _class_selector(at).set_value(other).run()
    assert f"for “{names[other]}”" in _captions(at)

    at.session_state["explain_path"] = str(second)
    at.run()
    assert not at.exception, at.exception
    assert _top_class(at) == top_second
    assert names[_class_selector(at).value] == top_second
    assert f"for “{top_second}”" in _captions(at), _captions(at)
    assert f"for “{names[other]}”" not in _captions(at)


def _add_spectral_run(models: Path, tmp_path: Path) -> Path:
    """A copy of the tiny report model registered as a spectral-beat arrhythmia model (what the Explain page must not
    offer for report images)."""
    import shutil

    target = tmp_path / "models"
    shutil.copytree(models, target)
    spec = target / "arrhythmia-like"
    shutil.copytree(target / "tiny", spec)
    meta = json.loads((spec / "run.json").read_text())
    meta.update(run_id="arrhythmia-like", preset="arrhythmia-6", spectral={"segment_config": {}, "spectral_config": {}},
                data_source="real")
    meta.pop("input_kind", None)  # as in runs written before input kinds were stored: derived from the preset
    (spec / "run.json").write_text(json.dumps(meta))
    return target


def test_only_report_image_models_are_offered(page, trained, monkeypatch, tmp_path) -> None:
    """Issue 19.2: a spectral-beat model must not be listed for report images (it answered "ventricular
    fibrillation" on an MI report)."""
    models, data = trained
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(_add_spectral_run(models, tmp_path)))
    image = sorted((data / "normal").glob("*.png"))[0]
    at = page(explain_path=str(image)).run()
    assert not at.exception, at.exception
    assert [o.split(" ", 1)[0] for o in at.selectbox(key="explain_run").options] == ["tiny"]


def test_training_domain_is_named_next_to_the_verdict(page, trained) -> None:
    """Issue 19.2: a synthetic-data model applied to a real (uploaded) report says so next to its verdict; on a
    synthetic report (with its sidecar) it says that the input is the same kind of source."""
    _, data = trained
    image = sorted((data / "normal").glob("*.png"))[0]
    at = page(explain_path=str(image)).run()
    assert not at.exception, at.exception
    assert not any("synthetic reports only" in w.value for w in at.warning)
    assert any("the same kind of source" in c.value for c in at.caption)

    at = page(explain_source="Upload").run()
    at.file_uploader(key="explain_upload").set_value(("report.png", image.read_bytes(), "image/png")).run()
    assert not at.exception, at.exception
    assert any("trained on synthetic reports only" in w.value for w in at.warning)


def test_domain_note_both_ways() -> None:
    from ecg_core.reports.messages import training_domain_note

    assert not training_domain_note("synthetic", input_synthetic=False).matches
    assert not training_domain_note("real", input_synthetic=True).matches
    assert "never saw such" in training_domain_note("real", input_synthetic=True).text
    assert training_domain_note("real", input_synthetic=False).matches
    assert training_domain_note("synthetic", input_synthetic=True).matches
    assert not training_domain_note("unknown", input_synthetic=False).matches


def test_batch_page_runs_the_shipped_measurement_model(trained, tmp_path, monkeypatch) -> None:
    """The default model is a measurement model (issue 15): the Batch predict page offers it and reads + measures
    each report like ``python -m ecg_core predict`` (before: the page listed CNN runs only)."""
    import shutil

    shipped = REPO / "models" / "cardiac4-mendeley-measure-lgbm"
    if not shipped.is_dir():
        pytest.skip(f"the shipped measurement run {shipped} is missing")
    _, data = trained
    models, folder = tmp_path / "models", tmp_path / "batch"
    shutil.copytree(shipped, models / shipped.name)
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ECG_INSIGHT_DATA_ROOTS", str(folder))
    folder.mkdir()
    for p in sorted(data.glob("*/*.png"))[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    st.cache_data.clear()
    at = AppTest.from_file(BATCH_PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and at.selectbox(key="explain_run").value == shipped.name
    at.text_input(key="explain_batch_dir").set_value(str(folder)).run()
    at.button(key="explain_batch_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"files": "3", "predicted": "2", "not an ECG": "0", "unreadable": "1"}
    frame = at.dataframe[0].value
    assert {"reading", "in_distribution", "ood_reason"} <= set(frame.columns)
    assert set(frame.loc[frame["predicted"] != "", "predicted"]) <= set(json.loads(
        (shipped / "run.json").read_text())["class_names"])
