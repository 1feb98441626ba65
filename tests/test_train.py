"""Training job, registry and job control: a run folder is complete and valid; Stop keeps the best checkpoint;
SIGKILL never corrupts the registry."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import report_like, write_image
from ecg_core import jobs, registry
from ecg_core.errors import ConfigError, ModelLoadError
from ecg_core.preprocess import PreprocessConfig
from ecg_core.train import TrainConfig, read_progress, run_training, training_rows

REPO = Path(__file__).resolve().parents[1]
SMALL = PreprocessConfig(height=48, width=64)
CLASSES = ("MI", "HB", "Normal", "PMI")


@pytest.fixture(scope="module")
def train_set(tmp_path_factory) -> Path:
    """4 classes with unequal sizes (12/6/9/6) of distinct report-like images, class-specific intensity."""
    root = tmp_path_factory.mktemp("train") / "ds"
    seed = 100
    for ci, (c, n) in enumerate(zip(CLASSES, (12, 6, 9, 6))):
        for i in range(n):
            seed += 1
            img = report_like(seed, size=(320, 240))
            img[int(0.3 * 240):, :: 4 + ci] //= 2  # class-dependent vertical stripes: learnable
            write_image(root / c / f"{c}_{i}.png", img)
    return root


def _cfg(data: Path, **kw) -> TrainConfig:
    base = dict(data_dir=str(data), arch="custom_cnn", preprocess=SMALL, epochs=2, batch_size=4, augment="light",
                val_frac=0.2, test_frac=0.2)
    base.update(kw)
    return TrainConfig(**base)


def test_train_config_validation(train_set):
    with pytest.raises(ConfigError, match="balance must be one of"):
        _cfg(train_set, balance="magic")
    with pytest.raises(ConfigError, match="kfold"):
        _cfg(train_set, kfold=50)
    c = _cfg(train_set)
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_training_run_folder_is_complete(train_set, tmp_path):
    run = run_training(_cfg(train_set), models_dir=tmp_path / "models", run_id="r1", cache_root=tmp_path / "cache")
    for f in ("run.json", "model.keras", "history.csv", "progress.jsonl", "split.csv", "predictions.csv", "eval.json"):
        assert (run / f).is_file(), f
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed" and meta["arch"] == "custom_cnn" and meta["preset"] == "cardiac-4"
    assert meta["class_names"] == ["Myocardial Infarction", "Abnormal Heartbeat", "Normal", "History of MI"]
    assert meta["input_shape"] == [48, 64, 1] and meta["preprocess"] == SMALL.to_dict()
    assert meta["data_source"] == "real" and len(meta["data_fingerprint"]) == 16
    assert meta["pretrained"]["loaded"] is False and "tensorflow" in meta["versions"]
    assert meta["split"]["by"] == "group" and meta["n_params"] > 0
    split = pd.read_csv(run / "split.csv")
    assert (split.groupby("group")["split"].nunique() == 1).all()
    ev = json.loads((run / "eval.json").read_text())
    assert ev["split"] == "test" and ev["n"] == (split["split"] == "test").sum()
    # the balancing plan's counts are what the job trained on, and only training rows were expanded
    plan = meta["training"]["plan"]
    train_counts = split[split["split"] == "train"].groupby("class_name").size().to_dict()
    assert plan["before"] == train_counts
    assert all(plan["after"][c] == plan["before"][c] * plan["multipliers"][c] for c in plan["before"])
    assert meta["training"]["train_rows"] == sum(plan["after"].values())
    assert len(pd.read_csv(run / "history.csv")) == meta["training"]["epochs_run"]
    from ecg_core.modelcard import write_model_card

    card = write_model_card(run).read_text()
    assert "Research and education use only" in card and "Held-out test split" in card
    assert f"accuracy: {ev['accuracy']:.3f}" in card
    info = registry.read_run(run)
    assert info.usable
    model = registry.load_model(info)
    assert model.output_shape[-1] == 4


def test_training_rows_expand_only_train():
    df = pd.DataFrame({"class_name": ["a"] * 4 + ["b"] * 2 + ["a", "b"], "split": ["train"] * 6 + ["val", "test"]})
    train = df[df["split"] == "train"]
    rows, plan = training_rows(train, _cfg(Path("/x")))
    assert plan["before"] == {"a": 4, "b": 2} and plan["after"] == {"a": 4, "b": 4}
    assert set(rows["split"]) == {"train"} and len(rows) == 8


def test_registry_lists_damaged_runs_as_unusable(train_set, tmp_path):
    models = tmp_path / "models"
    run_training(_cfg(train_set, epochs=1), models_dir=models, run_id="good", cache_root=tmp_path / "cache")
    (models / "broken-json").mkdir()
    (models / "broken-json" / "run.json").write_text("{not json")
    (models / "no-model").mkdir()
    registry.atomic_write_json(models / "no-model" / "run.json", {"run_id": "no-model", "status": "completed"})
    bad = models / "corrupt-model"
    bad.mkdir()
    meta = json.loads((models / "good" / "run.json").read_text())
    registry.atomic_write_json(bad / "run.json", {**meta, "run_id": "corrupt-model"})
    (bad / "model.keras").write_bytes(b"PK\x03\x04 not a keras file")
    runs = {r.run_id: r for r in registry.list_runs(models)}
    assert runs["good"].usable
    assert not runs["broken-json"].usable and "unreadable" in runs["broken-json"].problem
    assert not runs["no-model"].usable and "missing" in runs["no-model"].problem
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        registry.load_model(runs["corrupt-model"])


def test_registry_refuses_shape_mismatch(train_set, tmp_path):
    models = tmp_path / "models"
    run = run_training(_cfg(train_set, epochs=1), models_dir=models, run_id="r", cache_root=tmp_path / "cache")
    registry.update_run(run, class_names=["a", "b"])
    with pytest.raises(ModelLoadError, match="4 outputs but run.json lists 2 classes"):
        registry.load_model(run)
    registry.update_run(run, class_names=["a", "b", "c", "d"], input_shape=[99, 64, 1])
    with pytest.raises(ModelLoadError, match="run.json says"):
        registry.load_model(run)


def test_create_run_refuses_reuse_and_readonly(tmp_path):
    registry.create_run(tmp_path / "m", "x", {})
    with pytest.raises(ConfigError, match="already exists"):
        registry.create_run(tmp_path / "m", "x", {})
    with pytest.raises(ConfigError, match="run id"):
        registry.create_run(tmp_path / "m", "../evil", {})
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.geteuid() == 0:
            pytest.skip("running as root: a read-only folder is still writable")
        with pytest.raises(ConfigError, match="not writable"):
            registry.create_run(ro, "y", {})
    finally:
        ro.chmod(0o700)


# ----------------------------------------------------------------------------------------- subprocess job control
def _start(train_set: Path, models: Path, run_id: str, epochs: int, tmp_path: Path) -> jobs.JobHandle:
    args = jobs.train_args(run_id, models, str(train_set), "custom_cnn", options={
        "height": 96, "width": 128, "epochs": epochs, "batch_size": 2, "val": 0.2, "test": 0.2, "patience": 50,
    })
    return jobs.start_job(args, models / run_id, env={"ECG_INSIGHT_HOME": str(tmp_path / "home")})


def _wait_for(pred, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_cli_train_subprocess_and_stop_keeps_best(train_set, tmp_path):
    models = tmp_path / "models"
    h = _start(train_set, models, "stopme", 200, tmp_path)
    # wait until at least one epoch has finished (a best checkpoint exists), then press "Stop"
    assert _wait_for(lambda: (models / "stopme" / "checkpoints" / "best.keras").exists(), 240), \
        jobs.job_log(models / "stopme")
    t0 = time.time()
    assert jobs.stop_job(models / "stopme", wait=True, grace_s=30)
    took = time.time() - t0
    state = jobs.job_state(models / "stopme")
    assert state.status == "stopped", (state, jobs.job_log(models / "stopme"))
    assert took < 30
    info = registry.read_run(models / "stopme")
    assert info.usable and (info.path / "eval.json").exists()
    assert registry.load_model(info).output_shape[-1] == 4
    assert any(e.get("phase") == "epoch" for e in read_progress(models / "stopme"))


def test_sigkill_mid_epoch_leaves_registry_intact(train_set, tmp_path):
    models = tmp_path / "models"
    run_training(_cfg(train_set, epochs=1), models_dir=models, run_id="other", cache_root=tmp_path / "cache")
    before = (models / "other" / "run.json").read_bytes()
    rng = np.random.default_rng(0)
    for trial in range(3):
        rid = f"killed{trial}"
        h = _start(train_set, models, rid, 200, tmp_path)
        assert _wait_for(lambda: any(e.get("phase") == "train" for e in read_progress(models / rid)), 240), \
            jobs.job_log(models / rid)
        time.sleep(float(rng.uniform(0.0, 3.0)))
        os.killpg(h.pid, signal.SIGKILL)
        assert _wait_for(lambda: (os.waitpid(h.pid, os.WNOHANG) and False) or not jobs.is_alive(h.pid), 20)
        info = registry.read_run(models / rid)
        assert info.status == "interrupted" and not info.usable
        assert not (models / rid / "model.keras").exists()
    runs = {r.run_id: r for r in registry.list_runs(models)}
    assert set(runs) == {"other", "killed0", "killed1", "killed2"}
    assert runs["other"].usable and (models / "other" / "run.json").read_bytes() == before
    assert not list(models.rglob("*.tmp")) or all("checkpoints" in str(p) for p in models.rglob("*.tmp"))


def test_cli_bad_input_exit_code(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ecg_core", "train", "--data", str(tmp_path / "none"), "--models",
                        str(tmp_path / "m")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "error:" in r.stderr and "does not exist" in r.stderr
