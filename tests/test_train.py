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
from ecg_core.ml import jobs, registry
from ecg_core.core.errors import ConfigError, ModelLoadError
from ecg_core.imaging.preprocess import PreprocessConfig
from ecg_core.ml.progress import read_progress
from ecg_core.ml.train import run_training
from ecg_core.ml.train_config import TrainConfig
from ecg_core.ml.train_data import training_rows

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
    # every epoch event carries the training throughput of that epoch (validation not counted)
    ep = [e for e in read_progress(run) if e.get("phase") == "epoch"]
    assert len(ep) == meta["training"]["epochs_run"]
    for e in ep:
        assert e["train_images"] == meta["training"]["steps_per_epoch"] * 4
        assert 0 < e["train_seconds"] <= e["seconds"] + 0.01 and e["images_per_s"] > 0
    from ecg_core.ml.modelcard import write_model_card

    card = write_model_card(run).read_text()
    assert "Research and education use only" in card and "Held-out test split" in card
    assert f"accuracy: {ev['accuracy']:.3f}" in card
    info = registry.read_run(run)
    assert info.usable
    model = registry.load_model(info)
    assert model.output_shape[-1] == 4


def test_micro_batch_choice_fits_the_budget_and_validates(train_set):
    from ecg_core.ml import zoo
    from ecg_core.ml.train import choose_micro_batch

    mib = 2**20
    assert choose_micro_batch(16, 32 * mib) == 16  # 192x320x1 Custom CNN (default): whole batches
    assert choose_micro_batch(16, 78 * mib, budget_mib=640) == 8
    assert choose_micro_batch(16, 78 * mib) == 4  # 384x384x3 Custom CNN under the default budget: passes of 4
    assert choose_micro_batch(16, 206 * mib, budget_mib=640) == 2
    assert choose_micro_batch(12, 100 * mib, budget_mib=640) == 6  # a divisor, never a ragged last pass
    assert choose_micro_batch(16, 10**12, budget_mib=640) == 1
    assert choose_micro_batch(16, 10**12, requested=4) == 4
    model = zoo.build_model("custom_cnn", input_shape=(384, 384, 3), n_classes=4).model
    per = zoo.activation_bytes_per_sample(model)
    assert 70 * mib < per < 90 * mib  # conv/BN/pool outputs of one 384x384 image, float32
    with pytest.raises(ConfigError, match="divisor of batch_size=4"):
        _cfg(train_set, micro_batch=3)
    with pytest.raises(ConfigError, match="micro_batch"):
        _cfg(train_set, micro_batch=-1)


def test_micro_batches_accumulate_to_the_same_effective_batch(train_set, tmp_path):
    run = run_training(_cfg(train_set, micro_batch=2, epochs=1), models_dir=tmp_path / "models", run_id="mb",
                       cache_root=tmp_path / "cache")
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed"
    t = meta["training"]
    assert (t["micro_batch"], t["accumulation_steps"]) == (2, 2)
    assert t["steps_per_epoch"] % 2 == 0 and t["train_images_per_epoch"] == t["steps_per_epoch"] * 2
    start = [e for e in read_progress(run) if e.get("phase") == "start"][0]
    assert (start["micro_batch"], start["accumulation_steps"]) == (2, 2)
    assert registry.read_run(run).usable


def test_gradient_accumulation_updates_once_per_effective_batch():
    from ecg_core.ml import zoo

    model = zoo.build_model("custom_cnn", input_shape=(32, 48, 1), n_classes=4, seed=0).model
    zoo.compile_model(model, lr=1e-3, gradient_accumulation_steps=2)
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 32, 48, 1), dtype=np.float32), np.eye(4, dtype=np.float32)[[0, 1, 2, 3]]
    kernels = lambda: [w.copy() for w in model.get_weights() if w.ndim == 4]  # noqa: E731
    before = kernels()
    model.fit(x, y, batch_size=2, epochs=1, steps_per_epoch=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, kernels()))  # 1 pass: gradients only accumulated
    model.fit(x, y, batch_size=2, epochs=1, steps_per_epoch=1, verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(before, kernels()))  # 2nd pass: the update
    assert int(model.optimizer.iterations.numpy()) == 1
    with pytest.raises(ConfigError, match="gradient_accumulation_steps"):
        zoo.compile_model(model, lr=1e-3, gradient_accumulation_steps=0)


def test_training_rows_expand_only_train():
    df = pd.DataFrame({"class_name": ["a"] * 4 + ["b"] * 2 + ["a", "b"], "split": ["train"] * 6 + ["val", "test"]})
    train = df[df["split"] == "train"]
    rows, plan = training_rows(train, _cfg(Path("/x")))
    assert plan["before"] == {"a": 4, "b": 2} and plan["after"] == {"a": 4, "b": 4}
    assert set(rows["split"]) == {"train"} and len(rows) == 8


def test_dataset_info_contract(tmp_path):
    """dataset_info.json: what a builder tells the run (input kind, run.json additions, files to copy), checked."""
    from ecg_core.ml.train_data import read_dataset_info

    assert read_dataset_info(tmp_path) is None
    (tmp_path / "cfg.json").write_text("{}")
    info_file = tmp_path / "dataset_info.json"
    info_file.write_text(json.dumps({"input_kind": "spectral_beat", "run_meta": {"spectral": {"a": 1}},
                                     "copy_files": ["cfg.json"]}))
    info = read_dataset_info(tmp_path)
    assert (info.input_kind, info.run_meta, info.copy_files) == ("spectral_beat", {"spectral": {"a": 1}}, ("cfg.json",))
    for bad, message in (({"kind": "x"}, "unknown keys"), ({"run_meta": {"status": "completed"}}, "cannot set"),
                         ({"copy_files": ["../x.json"]}, "plain name"), ({"copy_files": ["run.json"]}, "plain name"),
                         ({"copy_files": ["missing.json"]}, "no such file"), ([1], "JSON object")):
        info_file.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=message):
            read_dataset_info(tmp_path)


def test_make_dataset_feeds_float_of_the_uint8_cache_deterministically(tmp_path):
    """uint8 cache arrays cross the Python boundary as uint8 and become float32 x / 255 per batch (exactly the
    values of the former per-element conversion); the same seed gives the same augmented batches."""
    from ecg_core.ml.train_data import make_dataset

    rng = np.random.default_rng(0)
    arrs = [rng.integers(0, 256, (24, 32, c), dtype=np.uint8) for c in (1, 1, 1, 1, 1)]
    paths = []
    for i, a in enumerate(arrs):
        np.save(tmp_path / f"{i}.npy", a)
        paths.append(str(tmp_path / f"{i}.npy"))
    labels = np.array([0, 1, 2, 3, 1])
    ds, steps = make_dataset(paths, labels, n_classes=4, batch_size=2, augment_name=None)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    assert steps == 3 and [len(x) for x in xs] == [2, 2, 1]
    x = np.concatenate(xs)
    assert x.dtype == np.float32 and x.shape == (5, 24, 32, 1)
    assert np.array_equal(x, np.stack(arrs).astype(np.float32) / np.float32(255.0))
    assert np.array_equal(np.concatenate(ys), np.eye(4, dtype=np.float32)[labels])

    def batches(seed):
        d, st = make_dataset(paths, labels, n_classes=4, batch_size=2, augment_name="light", epochs=2, seed=seed,
                             shuffle=True)
        return st, [x.numpy() for x, _ in d]

    st, a = batches(7)
    _, b = batches(7)
    _, c = batches(8)
    assert st == 2 and len(a) == 4 and all(x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 for x in a)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


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


def test_create_run_refuses_reuse_and_readonly(tmp_path, monkeypatch):
    """A read-only models folder gives "not writable". chmod does not stop root (CI runs as root), so the
    permission error is also simulated where the run folder is created; the real chmod case runs for other users.
    Planted bug: create_run's PermissionError branches dropped (the generic OSError message does not say why)."""
    import errno

    registry.create_run(tmp_path / "m", "x", {})
    with pytest.raises(ConfigError, match="already exists"):
        registry.create_run(tmp_path / "m", "x", {})
    with pytest.raises(ConfigError, match="run id"):
        registry.create_run(tmp_path / "m", "../evil", {})
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.geteuid() != 0:
            with pytest.raises(ConfigError, match="not writable"):
                registry.create_run(ro, "y", {})
        real_mkdir = Path.mkdir

        def mkdir(self, *a, **k):
            if self.parent == ro:  # what the OS does for a user without write permission on ro
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_mkdir(self, *a, **k)

        with monkeypatch.context() as m:
            m.setattr(Path, "mkdir", mkdir)
            with pytest.raises(ConfigError, match=r"not writable \(Permission denied\)"):
                registry.create_run(ro, "y", {})
        assert not (ro / "y").exists()
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


@pytest.mark.parametrize("mechanism", ["stop_file", "sigterm"])
def test_each_stop_mechanism_alone_stops_the_job(mechanism, train_set, tmp_path):
    """The STOP file alone, and SIGTERM alone, each stop a running job cleanly (status "stopped", best checkpoint
    evaluated). ``stop_job`` uses both, so the test above passes while either one works.

    Planted bugs: ``StopFlag`` ignoring the STOP file (``return self.signalled``): the stop_file case never stops
    (the job would run 200 epochs); no SIGTERM handler in ``run_training``: SIGTERM kills the job, the sigterm case
    ends "interrupted", not "stopped"."""
    from ecg_core.core.atomic import atomic_write_bytes
    from ecg_core.ml.progress import STOP_FILE

    models = tmp_path / "models"
    run = models / "stop-1"
    h = _start(train_set, models, "stop-1", 200, tmp_path)
    assert _wait_for(lambda: (run / "checkpoints" / "best.keras").exists(), 240), jobs.job_log(run)
    if mechanism == "stop_file":
        atomic_write_bytes(run / STOP_FILE, b"")
    else:
        assert not (run / STOP_FILE).exists()
        os.kill(h.pid, signal.SIGTERM)
    ended = _wait_for(lambda: (os.waitpid(h.pid, os.WNOHANG) and False) or not jobs.is_alive(h.pid), 60)
    if not ended:
        os.killpg(h.pid, signal.SIGKILL)
    assert ended, f"the job did not stop on the {mechanism} within 60 s"
    state = jobs.job_state(run)
    assert state.status == "stopped", (mechanism, state, jobs.job_log(run))
    info = registry.read_run(run)
    assert info.usable and (info.path / "eval.json").exists()
    assert (run / STOP_FILE).exists() == (mechanism == "stop_file")


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
