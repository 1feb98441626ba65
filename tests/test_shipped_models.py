"""The shipped models in ``models/`` keep loading and predict the same classes as before the package was layered.

``tests/data/shipped_reference.json`` was written by the 0.1 code (commit 7164b32, flat modules) with
``python -m ecg_core predict RUN ../shared/data/mendeley-fullres-samples --no-cache`` for the report models, the
Explain pipeline's top class (``ReportPipeline.analyse``) for the two cardiac models, and the per-beat classes of the
arrhythmia model on the three synthetic demo records. Only class names are stored, no data.
The per-lead CNN (``cardiac4-mendeley-perlead-pre``, input ``report_panels``) was added later with the same
``predict`` command (its 8 entries re-recorded alone).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
REFERENCE = json.loads((REPO / "tests" / "data" / "shipped_reference.json").read_text())
FULLRES = SHARED_DATA / "mendeley-fullres-samples"
needs_fullres = pytest.mark.skipif(not FULLRES.is_dir(), reason=f"{FULLRES} is absent (../shared/data not here)")


def test_every_shipped_run_is_usable_and_names_its_input() -> None:
    import ecg_core

    runs = {r.run_id: r for r in ecg_core.list_runs(REPO / "models")}
    assert set(REFERENCE["reports"]) | {"arrhythmia6-shallow_cnn-ds1", "arrhythmia6-lightgbm-ds1"} <= set(runs)
    for run in runs.values():
        assert run.usable, (run.run_id, run.problem)
        assert run.input_kind in ("report_image", "report_panels", "spectral_beat"), run.run_id
        assert run.meta.get("model_kind", "keras") in ("keras", "measurement", "lightgbm_beat_vf", "ensemble"), \
            run.run_id
        assert ecg_core.load_model(run) is not None


@needs_fullres
@pytest.mark.parametrize("run_id", sorted(REFERENCE["reports"]))
def test_batch_predict_gives_the_same_classes(run_id, tmp_path, monkeypatch) -> None:
    from ecg_core.cli import main

    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    out = tmp_path / "preds.csv"
    assert main(["predict", str(REPO / "models" / run_id), str(FULLRES), "--out", str(out), "--no-cache"]) == 0
    got = dict(zip(*[pd.read_csv(out, keep_default_na=False)[c] for c in ("path", "predicted")]))
    assert got == REFERENCE["reports"][run_id]


@needs_fullres
@pytest.mark.parametrize("run_id", sorted(REFERENCE["explain_pipeline"]))
def test_explain_pipeline_gives_the_same_top_class(run_id) -> None:
    import ecg_core

    run = ecg_core.read_run(REPO / "models" / run_id)
    explainer = ecg_core.ExplainerCache(max_entries=1).get(run)
    pipe = ecg_core.ReportPipeline(explainer, ecg_core.PreprocessConfig.from_dict(run.meta["preprocess"]))
    got = {}
    for p in sorted(FULLRES.rglob("*.jpg")):
        _, first = pipe.analyse(p.read_bytes(), p.name, method="gradcam")
        got[str(p.relative_to(FULLRES))] = explainer.class_names[first.top]
    assert got == REFERENCE["explain_pipeline"][run_id]


def test_arrhythmia_model_gives_the_same_beat_classes(tmp_path) -> None:
    import ecg_core

    bundle = ecg_core.load_arrhythmia_model(REPO / "models" / "arrhythmia6-shallow_cnn-ds1")
    for path in ecg_core.ensure_demo_records(tmp_path / "demo-signals"):
        record = ecg_core.load_record(path)
        segments = ecg_core.record_segments(record, bundle.seg_cfg, mode="beats")
        table = ecg_core.predict_segments(bundle, segments)
        assert table["pred"].tolist() == REFERENCE["arrhythmia"][Path(path).stem], Path(path).stem
