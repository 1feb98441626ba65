"""The ensemble run kind (issue 15, item 4; :mod:`ecg_core.reports.ensemble`): the averaged out-of-fold rows are the
mean of the members' rows, members on different folds or classes are refused, the shipped folder is small, safe
and agrees with its members' files, and ``predict`` gives averaged calibrated probabilities with each member's top
class."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecg_core.core.errors import EcgCoreError
from ecg_core.reports.ensemble import average_oof, build_ensemble, calibrate

REPO = Path(__file__).resolve().parents[1]
RUN_ID = "cardiac4-mendeley-ensemble"
SHIPPED = REPO / "models" / RUN_ID
MEMBERS = ["cardiac4-mendeley-measure-lgbm", "cardiac4-mendeley-perlead-pre"]
NAMES = ["A", "B", "C"]
needs_members = pytest.mark.skipif(not all((REPO / "models" / m / "run.json").is_file() for m in MEMBERS),
                                   reason="the member runs are not shipped")


def _frame(seed: int, *, fold: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(3), size=6)
    df = pd.DataFrame({"path": [f"f{i % 3}.png" for i in range(6)], "true": [NAMES[i % 3] for i in range(6)],
                       "group": [i % 3 for i in range(6)], "repeat": [i // 3 for i in range(6)],
                       **{f"prob_{c}": p[:, j] for j, c in enumerate(NAMES)}})
    if fold:
        df["fold"] = [0, 1, 2, 1, 2, 0]
    return df


def test_average_is_the_mean_of_the_members_rows_in_any_order() -> None:
    a, b = _frame(0, fold=True), _frame(1)
    shuffled = b.sample(frac=1.0, random_state=3)
    avg = average_oof([a, shuffled], [0.5, 0.5], NAMES)
    cols = [f"prob_{c}" for c in NAMES]
    assert avg[["path", "repeat"]].equals(a[["path", "repeat"]])
    np.testing.assert_allclose(avg[cols].to_numpy(), 0.5 * (a[cols].to_numpy() + b[cols].to_numpy()))
    np.testing.assert_allclose(avg[cols].sum(axis=1), 1.0)
    q = calibrate(avg[cols].to_numpy(), 0.7)  # the temperature keeps the top class
    assert (q.argmax(1) == avg[cols].to_numpy().argmax(1)).all()


@pytest.mark.parametrize("change", ["rows", "group", "fold", "true", "classes"])
def test_members_on_different_folds_or_classes_are_refused(change) -> None:
    a, b = _frame(0, fold=True), _frame(1, fold=True)
    if change == "rows":
        b = b.iloc[:-1]
    elif change == "classes":
        b = b.drop(columns=["prob_C"])
    elif change == "true":
        b.loc[0, "true"] = "B"
    else:
        b.loc[0, change] = 7
    with pytest.raises(EcgCoreError):
        average_oof([a, b], [0.5, 0.5], NAMES)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ens_models")
    for m in MEMBERS:
        shutil.copytree(REPO / "models" / m, d / m, ignore=shutil.ignore_patterns("tensorboard"))
    return d


@needs_members
def test_built_run_averages_its_members_oof_and_refuses_other_classes(models) -> None:
    out = build_ensemble(models, "ens-test", MEMBERS, n_boot=20)
    meta = json.loads((out / "run.json").read_text())
    assert meta["model_kind"] == "ensemble" and [m["weight"] for m in meta["members"]] == [0.5, 0.5]
    got = pd.read_csv(out / "predictions_oof.csv")
    cols = [c for c in got.columns if c.startswith("prob_")]
    a, b = (pd.read_csv(models / m / "predictions_oof.csv").set_index(["path", "repeat"]) for m in MEMBERS)
    raw = 0.5 * (a[cols] + b.loc[a.index, cols])
    expected = calibrate(raw.to_numpy(), meta["temperature"])
    np.testing.assert_allclose(got.set_index(["path", "repeat"]).loc[a.index, cols].to_numpy(), expected, atol=1e-9)
    assert not list(models.glob(".ens-test*"))  # the temporary folder was renamed into place
    bad = json.loads((models / MEMBERS[1] / "run.json").read_text())
    bad["class_names"] = bad["class_names"][::-1]
    (models / MEMBERS[1] / "run.json").write_text(json.dumps(bad))
    try:
        with pytest.raises(EcgCoreError, match="different classes"):
            build_ensemble(models, "ens-bad", MEMBERS, n_boot=0)
        assert not (models / "ens-bad").exists()
    finally:
        shutil.copy(REPO / "models" / MEMBERS[1] / "run.json", models / MEMBERS[1] / "run.json")


@pytest.mark.skipif(not (SHIPPED / "run.json").is_file(), reason=f"{SHIPPED} is not shipped")
def test_shipped_folder_is_small_safe_and_its_card_is_measured() -> None:
    from ecg_core.ml import compare, registry

    files = [p for p in SHIPPED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 5 * 2**20
    assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".joblib", ".npy", ".keras")]
    info = registry.read_run(SHIPPED)
    assert info.usable and info.meta["model_kind"] == "ensemble", info.problem
    assert [m["run_id"] for m in info.meta["members"]] == MEMBERS
    card = (SHIPPED / "MODEL_CARD.md").read_text()
    for ev in [json.loads((REPO / "models" / m / "eval_kfold.json").read_text()) for m in MEMBERS] + \
            [json.loads((SHIPPED / "eval_kfold.json").read_text())]:
        assert ev["split"] == "oof" and ev["n"] == 1029
        lo, hi = ev["ci"]["macro_f1"]
        assert f"{ev['macro']['f1']:.3f} ({lo:.3f}-{hi:.3f})" in card
    rec = compare.load_run_record(SHIPPED)
    assert rec.usable and rec.kfold_report is not None
    assert len(compare.compare_table([rec], split="oof")) == 1


@needs_members
@pytest.mark.skipif(not (SHIPPED / "run.json").is_file(), reason=f"{SHIPPED} is not shipped")
def test_predict_two_synthetic_reports(tmp_path, monkeypatch) -> None:
    from ecg_core.cli import main
    from ecg_core.reports.synth import generate_dataset

    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    generate_dataset(tmp_path / "synth", per_class=1, seed=3, px_per_mm=2.5, artifacts=False, image_format="png")
    two = tmp_path / "two"
    two.mkdir()
    for p in sorted((tmp_path / "synth").rglob("*.png"))[:2]:
        shutil.copy(p, two / p.name)
    (two / "notes.png").write_bytes(b"not an image")
    out = tmp_path / "p.csv"
    assert main(["predict", RUN_ID, str(two), "--out", str(out), "--models", str(REPO / "models")]) == 0
    df = pd.read_csv(out, keep_default_na=False).set_index("path")
    names = json.loads((SHIPPED / "run.json").read_text())["class_names"]
    ok = df.drop(index="notes.png")
    assert len(ok) == 2 and (ok["predicted"] != "").all()
    p = ok[[f"prob_{c}" for c in names]].astype(float).to_numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    assert (ok["predicted"].to_numpy() == np.array(names)[p.argmax(1)]).all()
    for m in MEMBERS:
        assert ok[f"top[{m}]"].isin(names).all()
    assert set(ok["in_distribution"]) <= {"true", "false"} and (ok["ood_reason"] != "").all()
    assert df.loc["notes.png", "predicted"] == "" and df.loc["notes.png", "reason"].startswith("unreadable")
    # `predict default` runs the app's default, this ensemble: the same table
    out2 = tmp_path / "default.csv"
    assert main(["predict", "default", str(two), "--out", str(out2), "--models", str(REPO / "models")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out2, keep_default_na=False).set_index("path"), df)


def test_default_alias_names_the_default_run_unless_a_run_is_called_so(tmp_path) -> None:
    from ecg_core.ml import registry

    assert registry.resolve_run("default", models_dir=REPO / "models").run_id == registry.DEFAULT_RUN_ID == RUN_ID
    with pytest.raises(registry.RunNotFoundError, match="not found"):
        registry.resolve_run("default", models_dir=tmp_path)  # no runs: no default
    shutil.copytree(REPO / "models" / MEMBERS[0], tmp_path / "default")
    meta = json.loads((tmp_path / "default" / "run.json").read_text())
    (tmp_path / "default" / "run.json").write_text(json.dumps({**meta, "run_id": "default"}))
    assert registry.resolve_run("default", models_dir=tmp_path).path == tmp_path / "default"  # a run so named wins
