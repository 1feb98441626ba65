"""The shipped per-lead CNN candidate (``models/cardiac4-mendeley-perlead-pre``, input ``report_panels``): its
out-of-fold report agrees with its model card and Compare reads it; ``evaluate --data`` and ``predict`` run it
(with its descriptor-only OOD profile); the OOD builder skips the feature space for panel runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
RUN_ID = "cardiac4-mendeley-perlead-pre"
SHIPPED = REPO / "models" / RUN_ID
needs_run = pytest.mark.skipif(not (SHIPPED / "model.keras").is_file(), reason=f"{SHIPPED} is not shipped")


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    from ecg_core.reports.synth import generate_dataset

    out = tmp_path_factory.mktemp("perlead_ship") / "synth"
    generate_dataset(out, per_class=1, seed=3, px_per_mm=2.5, artifacts=False, image_format="png")
    return out


@needs_run
def test_shipped_folder_is_small_safe_and_its_cv_matches_the_card() -> None:
    files = [p for p in SHIPPED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 5 * 2**20
    assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".joblib", ".npy")]
    assert "/work/cache" not in (SHIPPED / "run.json").read_text()
    kfold = json.loads((SHIPPED / "eval_kfold.json").read_text())
    assert kfold["split"] == "oof" and kfold["n"] == 1029
    card = (SHIPPED / "MODEL_CARD.md").read_text()
    assert f"{kfold['macro']['f1']:.3f} ({kfold['ci']['macro_f1'][0]:.3f}-{kfold['ci']['macro_f1'][1]:.3f})" in card
    mi = kfold["per_class"][0]
    assert mi["name"] == "Myocardial Infarction" and f"{mi['recall']:.3f}" in card

    from ecg_core.ml import compare

    rec = compare.load_run_record(SHIPPED)
    assert rec.usable and rec.kfold_report is not None and rec.report is not None
    table = compare.compare_table([rec], split="oof")
    assert len(table) == 1


def test_ood_builder_skips_the_feature_space_for_panel_runs() -> None:
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.reports import ood_build

    run = SimpleNamespace(input_kind="report_panels", is_measurement=False, meta={}, run_id="x", path=Path("."))
    assert ood_build.decode_config(run) == PreprocessConfig()  # no preprocessing config needed


@needs_run
@pytest.mark.skipif(not (SHARED_DATA / "mendeley-dev").is_dir(), reason="../shared/data/mendeley-dev is absent")
def test_ood_profile_of_the_shipped_run_is_descriptor_only(tmp_path) -> None:
    from ecg_core.ml import registry
    from ecg_core.reports import ood_build

    shutil.copytree(SHIPPED, tmp_path / RUN_ID)
    profile, summary = ood_build.build_profile(registry.read_run(tmp_path / RUN_ID), SHARED_DATA / "mendeley-dev",
                                               write=False)
    assert profile.embedding is None and summary["n_used"] > 200
    assert any("per-lead CNN" in n for n in profile.notes)


@needs_run
def test_evaluate_on_a_folder_and_predict_with_ood(reports, tmp_path, monkeypatch) -> None:
    from ecg_core.cli import main

    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    assert main(["evaluate", str(SHIPPED), "--data", str(reports), "--out", str(tmp_path), "--boot", "20"]) == 0
    [ev] = list(tmp_path.glob("eval_external-*.json"))
    assert json.loads(ev.read_text())["n"] == len(list(reports.rglob("*.png")))
    out = tmp_path / "preds.csv"
    assert main(["predict", str(SHIPPED), str(reports), "--out", str(out), "--no-check"]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    done = df[df["predicted"] != ""]
    assert len(done) and (done["in_distribution"].astype(str) != "").all()  # the shipped OOD profile was used
    assert not done["ood_reason"].astype(str).str.contains("no outside-the-training-data profile").any()


@needs_run
def test_compare_page_shows_the_candidates_side_by_side(tmp_path, monkeypatch) -> None:
    """Issue 15 must-show: Compare lists the per-lead CNN beside the CNN and the measurement model, in the test-split
    table and in the out-of-fold table (its eval_kfold.json)."""
    from streamlit.testing.v1 import AppTest

    models = tmp_path / "models"
    ids = [RUN_ID, "cardiac4-mendeley-measure-lgbm", "cardiac4-mendeley-custom_cnn"]
    for rid in ids:
        if (REPO / "models" / rid).is_dir():
            shutil.copytree(REPO / "models" / rid, models / rid)
    ids = [r for r in ids if (models / r).is_dir()]
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(REPO / "pages" / "compare.py"), default_timeout=300)
    at.session_state["compare_runs"] = ids
    at.run()
    assert not at.exception, at.exception
    tables = [df.value for df in at.dataframe if "run" in getattr(df.value, "columns", [])]
    assert any(set(ids) <= set(t["run"]) for t in tables), [list(t["run"]) for t in tables]
    n_col = [c for c in tables[0].columns if "files" in str(c)][0]
    oof = [t for t in tables if (t.loc[t["run"] == RUN_ID, n_col] == 1029).any()]  # its 1029 out-of-fold rows
    assert oof, "the per-lead run's out-of-fold report is not on Compare"
