"""AppTest for the Train and Augment pages, including a real Stop of a subprocess job from the Train page."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import report_like, write_image
from ecg_core.ml import jobs, registry

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pt") / "ds"
    seed = 500
    for ci, c in enumerate(("MI", "HB", "Normal", "PMI")):
        for i in range(6 + 2 * ci):
            seed += 1
            write_image(root / c / f"{i}.png", report_like(seed, size=(320, 240)))
    return root


def _page(name: str, data: Path, models: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    at = AppTest.from_file(str(REPO / "pages" / name), default_timeout=120)
    at.session_state["app_dataset_root"] = str(data)
    return at


def test_augment_page_grid_plan_and_hflip_warning(small_set, tmp_path, monkeypatch):
    at = _page("augment.py", small_set, tmp_path / "m", monkeypatch).run()
    assert not at.exception
    captions = " ".join(str(i.proto) for i in at.get("image"))
    assert "original (untouched)" in captions and "variant 8" in captions
    table = at.dataframe[0].value
    assert list(table["after balancing"]) == [
        b * int(m[1:]) for b, m in zip(table["training images"], table["multiplier"])]
    assert not at.warning
    at.checkbox(key="aug_hflip").check().run()
    assert any("reverses time" in w.value for w in at.warning)


def test_train_page_renders_without_runs(small_set, tmp_path, monkeypatch):
    at = _page("train.py", small_set, tmp_path / "m", monkeypatch).run()
    assert not at.exception
    assert any("No runs yet" in i.value for i in at.info)


def test_train_page_stop_button_stops_subprocess(small_set, tmp_path, monkeypatch):
    models = tmp_path / "models"
    args = jobs.train_args("live", models, str(small_set), "custom_cnn", options={
        "height": 96, "width": 128, "epochs": 200, "batch_size": 2, "patience": 50, "val": 0.2, "test": 0.2})
    h = jobs.start_job(args, models / "live", env={"ECG_INSIGHT_HOME": str(tmp_path / "home")})
    deadline = time.time() + 240
    while not (models / "live" / "checkpoints" / "best.keras").exists():
        assert time.time() < deadline, jobs.job_log(models / "live")
        time.sleep(0.3)
    at = _page("train.py", small_set, models, monkeypatch).run()
    assert not at.exception
    assert any("live" in m.value for m in at.markdown)  # leaving and returning shows the running job
    t0 = time.time()
    at.button(key="train_stop_live").click().run()
    assert not at.exception
    while jobs.is_alive(h.pid):
        jobs._reap(h.pid)
        assert time.time() - t0 < 30, "the job did not stop"
        time.sleep(0.2)
    info = registry.read_run(models / "live")
    assert info.status == "stopped" and info.usable


# ---------------------------------------------------------------------------- issue 19 item 5 (Train page)
def _fake_run(models: Path, run_id: str, status: str = "completed", **meta) -> Path:
    """A run folder without training: run.json and a Keras-archive-shaped model.keras (no TensorFlow needed)."""
    import json
    import os
    import zipfile

    d = models / run_id
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({
        "run_id": run_id, "status": status, "created": meta.pop("created", "2026-01-01T00:00:00"),
        "arch": "custom_cnn", "class_names": ["A", "B"], "input_shape": [48, 64, 1], "data_source": "synthetic",
        "pid": os.getpid(), **meta}))
    with zipfile.ZipFile(d / "model.keras", "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", "")
    return d


def _chart(at: AppTest, key: str) -> dict:
    import json

    return next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if el.proto.id.endswith(key))


def test_train_page_integer_epoch_ticks_and_model_card(small_set, tmp_path, monkeypatch):
    import json

    models = tmp_path / "models"
    _fake_run(models, "done-run", created="2026-01-02T00:00:00")
    live = _fake_run(models, "live-run", status="running")  # pid = this test process: alive
    (live / "progress.jsonl").write_text("\n".join(json.dumps(
        {"phase": "epoch", "epoch": e, "epochs": 5, "loss": 0.48 / e, "val_loss": 0.5 / e, "accuracy": 0.241 * e,
         "val_accuracy": 0.2 * e, "t": float(e)}) for e in (1, 2, 3)))
    at = _page("train.py", small_set, models, monkeypatch).run()
    assert not at.exception, at.exception
    layout = _chart(at, "train_curve_live-run")["layout"]
    assert layout["xaxis"]["dtick"] == 1 and layout["xaxis"]["tickformat"] == "d"  # epochs 1, 2, 3 -- no 1.5
    assert layout["yaxis"]["tickformat"] == ".3~g" and layout["yaxis2"]["tickformat"] == ".1f"
    # the model card of a run, rendered from run.json when the run has none (viewing it writes nothing)
    assert at.selectbox(key="train_manage_run").value == "done-run"
    assert any(e.label == "Model card of done-run" for e in at.expander)
    assert any(m.value.startswith("# Model card — done-run") for m in at.markdown)
    assert not (models / "done-run" / "MODEL_CARD.md").exists()
    assert at.get("download_button")
    # a running run cannot be deleted
    at.selectbox(key="train_manage_run").set_value("live-run").run()
    assert not [b for b in at.button if b.key == "train_delete"]


def test_train_page_delete_run_needs_confirmation_and_twice_for_shipped(small_set, tmp_path, monkeypatch):
    models = tmp_path / "models"
    _fake_run(models, "mine", created="2026-01-03T00:00:00")
    _fake_run(models, registry.DEFAULT_RUN_ID)
    at = _page("train.py", small_set, models, monkeypatch).run()
    assert at.selectbox(key="train_manage_run").value == "mine"
    at.button(key="train_delete").click().run()
    assert (models / "mine").is_dir()  # nothing deleted before the confirmation
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="train_delete_cancel").click().run()
    assert (models / "mine").is_dir() and not [b for b in at.button if b.key == "train_delete_confirm"]
    at.button(key="train_delete").click().run()
    at.button(key="train_delete_confirm").click().run()
    assert not at.exception, at.exception
    assert not (models / "mine").exists()
    assert list(at.dataframe[0].value["run"]) == [registry.DEFAULT_RUN_ID]
    assert any("Deleted run mine" in s.value for s in at.success)
    assert not any((models / ".trash").iterdir())
    # the shipped default: a second confirmation
    at.selectbox(key="train_manage_run").set_value(registry.DEFAULT_RUN_ID).run()
    at.button(key="train_delete").click().run()
    assert at.button(key="train_delete_confirm").disabled
    at.checkbox(key="train_delete_shipped").check().run()
    assert not at.button(key="train_delete_confirm").disabled
    at.button(key="train_delete_confirm").click().run()
    assert not at.exception and not (models / registry.DEFAULT_RUN_ID).exists()
    assert any("No runs yet" in i.value for i in at.info)


def test_delete_run_is_atomic_and_refuses_running_and_shipped(tmp_path, monkeypatch):
    import shutil

    from ecg_core.core.errors import ConfigError

    models = tmp_path / "models"
    _fake_run(models, "busy", status="running")
    _fake_run(models, "cardiac4-synthetic-custom_cnn")  # shipped in the repo's models/
    _fake_run(models, "gone")
    with pytest.raises(ConfigError, match="still training"):
        registry.delete_run(models, "busy")
    with pytest.raises(ConfigError, match="ships with the app"):
        registry.delete_run(models, "cardiac4-synthetic-custom_cnn")
    with pytest.raises(ConfigError, match="not a run folder"):
        registry.delete_run(models, "nope")
    # removal dies half-way: the run is already out of the registry (moved to the hidden trash first)
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)
    registry.delete_run(models, "gone")
    assert "gone" not in {r.run_id for r in registry.list_runs(models)}
    assert [p.name.startswith("gone-") for p in (models / ".trash").iterdir()] == [True]
    registry.delete_run(models, "cardiac4-synthetic-custom_cnn", allow_shipped=True)
    assert {r.run_id for r in registry.list_runs(models)} == {"busy"}


def test_train_page_stop_runs_the_next_queued_job(small_set, tmp_path, monkeypatch):
    """Stop stops one run; the queued run after it then starts (it used to stay "Queued" for ever)."""
    models = tmp_path / "models"
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    opts = {"height": 48, "width": 64, "batch_size": 2, "val": 0.2, "test": 0.2, "augment": "none"}
    qid = "q-test"
    runs = [{"run_id": "q1", "args": jobs.train_args("q1", models, str(small_set), "custom_cnn",
                                                      options={**opts, "epochs": 300, "patience": 300})},
            {"run_id": "q2", "args": jobs.train_args("q2", models, str(small_set), "custom_cnn",
                                                      options={**opts, "epochs": 1})}]
    runner = jobs.start_queue(models, qid, runs)
    try:
        deadline = time.time() + 240
        while not (models / "q1" / "checkpoints" / "best.keras").exists():
            assert time.time() < deadline, jobs.job_log(models / "q1")
            time.sleep(0.3)
        assert jobs.queue_state(models, qid) == [("q1", jobs.STARTED), ("q2", jobs.QUEUED)]
        at = _page("train.py", small_set, models, monkeypatch)
        at.session_state["train_queue"] = qid
        at.run()
        assert any("Queued" in c.value and "q2" in c.value for c in at.caption)
        at.button(key="train_stop_q1").click().run()
        assert not at.exception, at.exception
        deadline = time.time() + 300  # q1 finishes its batch and is evaluated, then q2 starts (TensorFlow import)
        while not (models / "q2").exists():  # the next run starts
            assert time.time() < deadline, "the queued run never started after Stop"
            time.sleep(0.5)
        assert registry.read_run(models / "q1").status in ("stopped", "running")
        at.run()
        assert not any("Queued" in c.value for c in at.caption)
    finally:
        jobs.stop_queue(models, qid)
        for rid in ("q1", "q2"):
            jobs.stop_job(models / rid, wait=True, grace_s=30)
        deadline = time.time() + 60
        while jobs.is_alive(runner.pid) and time.time() < deadline:
            jobs._reap(runner.pid)
            time.sleep(0.2)


def test_queue_state_cancelled_and_orphaned(tmp_path):
    """A stopped queue's waiting runs read "cancelled"; a queue whose runner is gone, "not started" (never
    "queued" for ever)."""
    models = tmp_path / "models"
    qf = jobs.queue_file(models, "q")
    qf.parent.mkdir(parents=True)
    qf.write_text('{"queue_id": "q", "runs": [{"run_id": "a", "args": []}, {"run_id": "b", "args": []}]}')
    qf.with_suffix(".pid").write_text("999999999")  # no such process
    (models / "a").mkdir()
    assert jobs.queue_state(models, "q") == [("a", jobs.STARTED), ("b", jobs.ORPHANED)]
    assert jobs.list_queues(models) == []
    jobs.stop_queue(models, "q")
    assert jobs.queue_state(models, "q") == [("a", jobs.STARTED), ("b", jobs.CANCELLED)]


@pytest.fixture(scope="module")
def copies_set(tmp_path_factory) -> Path:
    """Class MI: 10 distinct images with 7 byte-identical copies each (80 files); Normal: 20 distinct images."""
    root = tmp_path_factory.mktemp("copies") / "ds"
    for i in range(10):
        first = write_image(root / "MI" / f"{i}.png", report_like(900 + i, size=(160, 120)))
        for k in range(7):
            (root / "MI" / f"{i}_copy{k}.png").write_bytes(first.read_bytes())
    for i in range(20):
        write_image(root / "Normal" / f"{i}.png", report_like(950 + i, size=(160, 120)))
    return root


def test_augment_plan_is_the_training_jobs_plan_one_file_per_group(copies_set, tmp_path, monkeypatch):
    """Issue 19.3: the page counted files (copies included); the job trains on one file per duplicate group."""
    from ecg_core.ml.train_config import TrainConfig
    from ecg_core.ml.train_data import prepare_data, training_rows

    at = _page("augment.py", copies_set, tmp_path / "m", monkeypatch).run()
    assert not at.exception
    table = at.dataframe[0].value
    cfg = TrainConfig(data_dir=str(copies_set))
    data = prepare_data(cfg, cache_root=tmp_path / "cache")  # what a training job really does
    _, plan = training_rows(data.index[data.index["split"] == "train"], cfg)
    assert table["training images"].to_dict() == plan["before"]
    assert table["after balancing"].to_dict() == plan["after"]
    assert table["multiplier"].to_dict() == {c: f"x{m}" for c, m in plan["multipliers"].items()}
    mi = next(c for c in table.index if "Infarction" in c)
    assert table.loc[mi, "training files (copies included)"] == 8 * table.loc[mi, "training images"] > 0
    before, after = plan["before"], plan["after"]
    import json

    titles = [json.loads(f.proto.spec)["layout"].get("title", {}).get("text", "") for f in at.get("plotly_chart")]
    want = (f"imbalance {max(before.values()) / min(before.values()):.1f}:1 → "
            f"{max(after.values()) / min(after.values()):.1f}:1")
    assert want in titles, titles


def test_train_page_trains_with_the_preprocess_pages_settings_or_says_it_does_not(small_set, tmp_path, monkeypatch):
    """Issue 19.4: the Train page silently trained with default preprocessing, whatever the Preprocess page showed.
    Now the user chooses, the page says which settings the job gets, and the job really gets them."""
    import json

    from ecg_core.cli.app import build_parser
    from ecg_core.cli.training import cmd_train
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml import train

    class Captured(Exception):
        pass

    def job_preprocess(args: list[str]) -> PreprocessConfig:
        """The PreprocessConfig the training job builds from these arguments (``python -m ecg_core train``)."""
        def capture(cfg, **_):
            raise Captured(cfg)
        monkeypatch.setattr(train, "run_training", capture)
        with pytest.raises(Captured) as got:
            cmd_train(build_parser().parse_args(args))
        return got.value.args[0].preprocess

    started = []
    monkeypatch.setattr(jobs, "start_queue", lambda models_dir, qid, runs: started.append(runs))
    tuned = PreprocessConfig(crop_top=0.28, median_ksize=7, clahe=False, height=96, width=160)
    at = _page("train.py", small_set, tmp_path / "m", monkeypatch)
    at.session_state["app_preprocess"] = tuned.to_dict()  # what the Preprocess page leaves in the session
    at.run()
    assert not at.exception
    assert at.radio(key="train_pre_source").value == "preprocess_page"
    said = " ".join(c.value for c in at.caption)
    assert "Trains with the settings of the Preprocess page" in said and "crop top 0.28" in said and "median 7" in said
    at.button(key="train_start").click().run()
    assert not at.exception and len(started) == 1
    args = started[0][0]["args"]
    assert "--config" in args and "--height" not in args
    assert job_preprocess(args) == tuned

    at.radio(key="train_pre_source").set_value("defaults").run()
    assert any("**not** the Preprocess page's settings" in c.value for c in at.caption)
    at.button(key="train_start").click().run()
    args = started[1][0]["args"]
    assert "--config" not in args and args[args.index("--height") + 1] == "192"
    assert job_preprocess(args) == PreprocessConfig()


def test_augment_page_does_not_claim_the_job_uses_its_sliders(small_set, tmp_path, monkeypatch):
    """Issue 19.3 follow-up: the page said "The training job uses exactly these presets", but a job uses the preset
    named on the Train page with its stored values; the page must say so."""
    at = _page("augment.py", small_set, tmp_path / "m", monkeypatch).run()
    assert not at.exception
    text = " ".join(c.value for c in at.caption)
    assert "exactly these presets" not in text
    assert "chosen on the Train page" in text and "not these sliders" in text


SHIPPED = REPO / "models"
MEMBERS = ("cardiac4-mendeley-measure-lgbm", "cardiac4-mendeley-perlead-pre")
needs_members = pytest.mark.skipif(not all((SHIPPED / r / "run.json").is_file() for r in MEMBERS),
                                   reason="the shipped measurement and per-lead runs are absent")


def _copy_runs(models: Path, ids) -> None:
    import shutil

    for r in ids:
        shutil.copytree(SHIPPED / r, models / r, ignore=shutil.ignore_patterns("tensorboard"))


@needs_members
def test_train_page_starts_a_per_lead_job_from_a_runs_weights(small_set, tmp_path, monkeypatch):
    """Issue 15: the per-lead CNN with synthetic pretraining is trained from the Train page too: the job gets the
    chosen run's model file as ``--init-weights``, and those weights load into a fresh per-lead CNN."""
    import numpy as np

    from ecg_core.cli.app import build_parser
    from ecg_core.ml.zoo import build_model

    models = tmp_path / "m"
    _copy_runs(models, MEMBERS[1:])
    started = []
    monkeypatch.setattr(jobs, "start_queue", lambda models_dir, qid, runs: started.append(runs))
    at = _page("train.py", small_set, models, monkeypatch)
    at.session_state["train_archs"] = ["perlead_cnn"]
    at.run()
    assert not at.exception, at.exception
    box = at.selectbox(key="train_perlead_init")
    assert box.options == ["(random initialisation)", MEMBERS[1]]
    at.button(key="train_start").click().run()
    assert "--init-weights" not in started[0][0]["args"]  # random initialisation unless chosen
    box.set_value(MEMBERS[1]).run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    args = build_parser().parse_args(started[1][0]["args"])
    assert args.arch == "perlead_cnn" and Path(args.init_weights) == models / MEMBERS[1] / registry.MODEL_FILE
    source = registry.load_model(registry.read_run(models / MEMBERS[1]))
    fresh = build_model("perlead_cnn", input_shape=tuple(source.input_shape[1:]), n_classes=4).model
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), source.get_weights()))
    fresh.load_weights(args.init_weights)  # what train_perlead does with --init-weights
    assert all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), source.get_weights()))


@needs_members
def test_train_page_builds_an_ensemble_of_finished_runs(small_set, tmp_path, monkeypatch):
    """Issue 15: the ensemble candidate is built from the Train page: the same run as ``python -m ecg_core
    ensemble`` (the shipped ensemble's out-of-fold figures for the same members); an existing id is refused."""
    import json

    models = tmp_path / "m"
    _copy_runs(models, MEMBERS)
    at = _page("train.py", small_set, models, monkeypatch).run()
    assert not at.exception, at.exception
    assert set(at.multiselect(key="train_ens_members").options) == set(MEMBERS)
    at.multiselect(key="train_ens_members").set_value(list(MEMBERS))
    at.text_input(key="train_ens_name").set_value("my-ensemble").run()
    at.button(key="train_ens_build").click().run()
    assert not at.exception, at.exception
    made = registry.read_run(models / "my-ensemble")
    assert made.usable and made.meta["model_kind"] == registry.ENSEMBLE_KIND
    assert [m["run_id"] for m in made.meta["members"]] == list(MEMBERS)
    shipped = json.loads((SHIPPED / "cardiac4-mendeley-ensemble" / "run.json").read_text())
    assert made.meta["metrics"]["macro_f1"] == pytest.approx(shipped["metrics"]["macro_f1"], abs=1e-9)
    assert made.meta["temperature"] == pytest.approx(shipped["temperature"], abs=1e-9)
    assert any("Built my-ensemble: out-of-fold macro-F1" in s.value for s in at.success)
    at.button(key="train_ens_build").click().run()  # the same id again
    assert any("exists already" in e.value for e in at.error)
