"""Model files and the registry under attack or failure: unsafe model files are refused with a message (and their
code never runs), damaged files are listed as unusable without breaking the model pickers, and a full disk, a
read-only or misplaced models folder, or a SIGKILL never leaves a half-written file.

Extends tests/test_train.py (class-count and input-size mismatches, damaged run.json, SIGKILL during training).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import report_like, write_image
from streamlit.testing.v1 import AppTest

from ecg_core.core import atomic
from ecg_core.ml import registry
from ecg_core.core.errors import ConfigError, EcgCoreError, ModelLoadError
from ecg_core.imaging.preprocess import PreprocessConfig

REPO = Path(__file__).resolve().parents[1]
SMALL = PreprocessConfig(height=48, width=64)
CLASS_NAMES = ["Myocardial Infarction", "Abnormal Heartbeat", "Normal", "History of MI"]

keras = pytest.importorskip("keras")


# ------------------------------------------------------------------------------------------------------ helpers
def tiny_model(*, channels: int = 1, n_out: int = 4, extra=None):
    """A 48x64 toy classifier; ``extra(x)`` may insert a layer after the input."""
    inp = keras.Input((48, 64, channels))
    x = extra(inp) if extra else inp
    x = keras.layers.Conv2D(2, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(n_out, activation="softmax")(x))


def make_run(models: Path, run_id: str, model=None, **meta_changes) -> Path:
    """A completed run folder as the training job leaves it (model.keras + run.json)."""
    meta = {"arch": "toy", "preset": "cardiac-4", "input_shape": [48, 64, 1], "preprocess": SMALL.to_dict(),
            "class_names": CLASS_NAMES}
    run = registry.create_run(models, run_id, meta)
    if model is not None:
        registry.save_model_atomic(model, run / registry.MODEL_FILE)
    registry.update_run(run, status="completed", **meta_changes)
    return run


def rewrite_config(src: Path, dst: Path, edit) -> None:
    """Copy a .keras archive, editing its config.json with ``edit(config)`` (a crafted, hostile model file)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "config.json":
                cfg = json.loads(data)
                edit(cfg)
                data = json.dumps(cfg).encode()
            zout.writestr(name, data)


@pytest.fixture
def models(tmp_path, monkeypatch) -> Path:
    m = tmp_path / "models"
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(m))
    return m


# ------------------------------------------------------------------------------------------ 1. unsafe models
@pytest.mark.parametrize("kind, message", [
    ("python-lambda", r"contains code \(a Lambda layer\) and is refused in safe mode"),
    ("named-function", r"needs the custom function 'leave_a_mark', which this app does not provide"),
], ids=["python-lambda", "named-function"])
def test_lambda_layer_is_refused_and_its_code_never_runs(kind, message, models, tmp_path):
    marker = tmp_path / "lambda-ran"
    code = f"(__import__('pathlib').Path({str(marker)!r}).write_text('ran'), t * 2.0)[1]"
    if kind == "python-lambda":  # saved as marshalled bytecode
        fn = eval(f"lambda t: {code}")  # noqa: S307 - a literal written here
    else:  # saved by name
        scope: dict = {}
        exec(f"def leave_a_mark(t):\n    return {code}", scope)  # noqa: S102
        fn = scope["leave_a_mark"]
    run = make_run(models, "lambda", tiny_model(extra=keras.layers.Lambda(fn)))
    marker.unlink()  # it ran while the model was built here; loading must not run it again
    with pytest.raises(ModelLoadError, match=message):
        registry.load_model(run)
    assert not marker.exists()


def test_unregistered_custom_layer_is_refused(models):
    @keras.saving.register_keras_serializable(package="outside")
    class Sneaky(keras.layers.Layer):
        def call(self, x):
            return x

    run = make_run(models, "custom", tiny_model(extra=Sneaky()))
    keras.saving.get_custom_objects().pop("outside>Sneaky")  # the app has never heard of it
    with pytest.raises(ModelLoadError, match=r"needs the custom class 'Sneaky', which this app does not provide"):
        registry.load_model(run)


@pytest.mark.parametrize("edit, message", [
    # a layer whose class is any importable Python callable
    (lambda c: c["config"]["layers"][-1].update(module="subprocess", class_name="Popen", registered_name=None),
     "needs the custom class 'Popen'"),
    # an activation that names a function of the standard library
    (lambda c: c["config"]["layers"][-1]["config"].update(
        activation={"module": "os", "class_name": "function", "config": "system", "registered_name": "system"}),
     "needs the custom function 'system'"),
    # CVE-2025-9906: a config that calls keras.config.enable_unsafe_deserialization to switch safe mode off
    (lambda c: c["config"]["layers"][-1]["config"].update(activation={
        "module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization",
        "registered_name": "enable_unsafe_deserialization"}),
     "refused in safe mode"),
], ids=["popen-layer", "os-system-activation", "enable-unsafe-deserialization"])
def test_crafted_config_is_refused(edit, message, models, tmp_path):
    from keras.src.saving import serialization_lib

    run = make_run(models, "crafted", tiny_model())
    rewrite_config(run / registry.MODEL_FILE, tmp_path / "crafted.keras", edit)
    os.replace(tmp_path / "crafted.keras", run / registry.MODEL_FILE)
    with pytest.raises(ModelLoadError, match=message):
        registry.load_model(run)
    assert serialization_lib.in_safe_mode() is not False  # safe mode was not switched off for the process


# ----------------------------------------------------------------------- 2. models that disagree with run.json
@pytest.mark.parametrize("model_kw, meta, message", [
    ({"channels": 3}, {}, r"expects input \[48, 64, 3\] but run.json says \[48, 64, 1\]"),
    ({"n_out": 6}, {}, "the model has 6 outputs but run.json lists 4 classes"),
    ({}, {"class_names": []}, "run.json does not give the class names"),
    ({}, {"input_shape": None}, "run.json does not give the input size"),
], ids=["rgb-model-gray-run", "six-outputs", "no-class-names", "no-input-shape"])
def test_model_disagreeing_with_run_json_is_refused(model_kw, meta, message, models):
    run = make_run(models, "mismatch", tiny_model(**model_kw), **meta)
    with pytest.raises(ModelLoadError, match=message):
        registry.load_model(run)


def test_two_output_model_is_refused(models):
    inp = keras.Input((48, 64, 1))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    model = keras.Model(inp, [keras.layers.Dense(4)(x), keras.layers.Dense(4)(x)])
    run = make_run(models, "two-heads", model)
    with pytest.raises(ModelLoadError, match="1 inputs and 2 outputs; a classifier with one image input"):
        registry.load_model(run)


# ------------------------------------------------------------------ 3. damaged model files and the pickers
def _damage(models: Path) -> dict[str, str]:
    """Runs with damaged model files; returns run id -> the problem list_runs must report."""
    good = make_run(models, "good", tiny_model())
    blob = (good / registry.MODEL_FILE).read_bytes()
    cases = {
        "truncated": (blob[: len(blob) // 2], "not a Keras archive"),
        "random-bytes": (np.random.default_rng(0).bytes(5000), "not a Keras archive"),
        "empty": (b"", "not a Keras archive"),
    }
    out = {}
    for run_id, (data, problem) in cases.items():
        run = make_run(models, run_id)
        (run / registry.MODEL_FILE).write_bytes(data)
        out[run_id] = problem
    run = make_run(models, "no-config")
    with zipfile.ZipFile(run / registry.MODEL_FILE, "w") as zf:
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    out["no-config"] = "no config.json inside"
    return out


def test_damaged_model_files_are_listed_as_unusable(models):
    problems = _damage(models)
    runs = {r.run_id: r for r in registry.list_runs(models)}
    assert runs["good"].usable and registry.load_model(runs["good"]).output_shape[-1] == 4
    for run_id, problem in problems.items():
        assert not runs[run_id].usable, run_id
        assert problem in runs[run_id].problem and "cannot be loaded" in runs[run_id].problem
        with pytest.raises(ModelLoadError, match="has no usable model: model.keras is damaged"):
            registry.load_model(runs[run_id])


def test_bit_flipped_weights_pass_the_listing_but_are_refused_on_load(models):
    good = make_run(models, "good", tiny_model())
    run = make_run(models, "flipped")
    with zipfile.ZipFile(good / registry.MODEL_FILE) as zin, zipfile.ZipFile(run / registry.MODEL_FILE, "w") as zout:
        for name in zin.namelist():
            data = bytearray(zin.read(name))
            if name == "model.weights.h5":
                data[: len(data) // 2] = bytes(len(data) // 2)  # HDF5 superblock and tree destroyed
            zout.writestr(name, bytes(data))
    with pytest.raises(ModelLoadError, match="model.keras cannot be loaded"):
        registry.load_model(run)


PICKER_PAGES = [p for p in ("train.py", "compare.py", "explain.py") if (REPO / "pages" / p).exists()]


@pytest.mark.parametrize("page", PICKER_PAGES)
def test_model_pages_render_with_damaged_runs(page, models, tmp_path):
    problems = _damage(models)
    (models / "broken-json").mkdir()
    (models / "broken-json" / "run.json").write_text("{not json")
    at = AppTest.from_file(str(REPO / "pages" / page), default_timeout=120)
    at.session_state["app_dataset_root"] = str(tmp_path / "no-dataset")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page == "train.py":  # the runs table names every damaged run and says why
        table = next(df.value for df in at.dataframe if "problem" in df.value.columns)
        shown = dict(zip(table["run"], table["problem"], strict=True))
        for run_id, problem in problems.items():
            assert problem in shown[run_id]
        assert "unreadable" in shown["broken-json"]


# --------------------------------------------------------------------------------------- 4. crash safety
def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


@pytest.mark.parametrize("where", ["fsync", "replace", "mkstemp"])
def test_full_disk_during_atomic_write(where, tmp_path, monkeypatch):
    run = tmp_path / "run"
    registry.atomic_write_json(run / "run.json", {"status": "completed", "n": 1})
    before = (run / "run.json").read_bytes()
    target = {"fsync": (os, "fsync"), "replace": (os, "replace"),
              "mkstemp": (atomic.tempfile, "mkstemp")}[where]
    monkeypatch.setattr(*target, _enospc)
    with pytest.raises(ConfigError, match=r"No space left on device \(the disk is full; free some space"):
        registry.atomic_write_json(run / "run.json", {"status": "failed", "n": 2})
    with pytest.raises(ConfigError, match="disk is full"):
        registry.atomic_write_bytes(run / "history.csv", b"epoch,loss\n1,0.5\n")
    monkeypatch.undo()
    assert (run / "run.json").read_bytes() == before  # the old content survives, complete
    assert not (run / "history.csv").exists()
    assert _leftovers(run) == []  # no half-written temporary file


def test_full_disk_while_saving_a_model(models, monkeypatch):
    run = make_run(models, "r", tiny_model())
    before = (run / registry.MODEL_FILE).read_bytes()
    model = tiny_model()

    def save_half_then_fail(self, path, *a, **k):
        Path(path).write_bytes(b"PK\x03\x04 half a model")
        _enospc()

    monkeypatch.setattr(type(model), "save", save_half_then_fail)
    with pytest.raises(ConfigError, match="disk is full"):
        registry.save_model_atomic(model, run / registry.MODEL_FILE)
    monkeypatch.undo()
    assert (run / registry.MODEL_FILE).read_bytes() == before and _leftovers(run) == []
    assert registry.read_run(run).usable


def test_full_disk_when_creating_a_run_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(ConfigError, match="disk is full"):
        registry.create_run(tmp_path / "m", "r1", {})
    assert list((tmp_path / "m").iterdir()) == []


@pytest.mark.parametrize("layout", ["models-is-a-file", "models-under-a-file"])
def test_models_folder_that_cannot_be_a_folder(layout, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    models = blocker if layout == "models-is-a-file" else blocker / "models"
    with pytest.raises(ConfigError, match="the models folder or one of its parents is a file"):
        registry.create_run(models, "r1", {})
    with pytest.raises(ConfigError, match="a part of the path is a file, not a folder"):
        registry.atomic_write_json(models / "r1" / "run.json", {})
    assert blocker.read_text() == "a file where a folder should be"
    assert registry.list_runs(models) == []


def test_read_only_models_folder(tmp_path, monkeypatch):
    """chmod does not stop root, so the read-only file system is simulated where the files are created."""
    real_mkdir = Path.mkdir

    def erofs_mkdir(self, *a, **k):
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", erofs_mkdir)
    monkeypatch.setattr(atomic.tempfile, "mkstemp",
                        lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EROFS, os.strerror(errno.EROFS))))
    with pytest.raises(ConfigError, match="Read-only file system"):
        registry.create_run(tmp_path / "ro" / "models", "r1", {})
    with pytest.raises(ConfigError, match=r"Read-only file system \(the file system is read-only"):
        registry.atomic_write_json(tmp_path / "elsewhere" / "x.json", {})


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("safety") / "ds"
    for ci, c in enumerate(("MI", "HB", "Normal", "PMI")):
        for i in range(5):
            img = report_like(900 + 10 * ci + i, size=(320, 240))
            img[int(0.3 * 240):, :: 4 + ci] //= 2
            write_image(root / c / f"{c}_{i}.png", img)
    return root


def test_training_job_with_a_full_disk_fails_cleanly(small_set, tmp_path, monkeypatch):
    """The disk fills up while the job writes its evaluation: the run is marked failed with the reason, no
    model.keras or temporary file is left, and the registry lists the run as unusable."""
    from ecg_core.ml.train import run_training
    from ecg_core.ml.train_config import TrainConfig

    real_replace = os.replace

    def replace(src, dst, *a, **k):  # the disk is full when predictions.csv is written
        if Path(dst).name == "predictions.csv":
            _enospc()
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    cfg = TrainConfig(data_dir=str(small_set), arch="custom_cnn", preprocess=SMALL, epochs=1, batch_size=4,
                      augment="none", val_frac=0.2, test_frac=0.2)
    with pytest.raises(EcgCoreError, match="disk is full"):
        run_training(cfg, models_dir=tmp_path / "models", run_id="full", cache_root=tmp_path / "cache")
    monkeypatch.undo()
    info = registry.read_run(tmp_path / "models" / "full")
    assert info.status == "failed" and "disk is full" in info.meta["error"] and not info.usable
    assert not (info.path / registry.MODEL_FILE).exists()
    assert [p for p in _leftovers(info.path) if "checkpoints" not in p] == []


_WRITER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[2])
    from ecg_core.ml import registry
    i = 0
    while True:
        i += 1
        registry.atomic_write_json(sys.argv[1], {"i": i, "payload": "x" * 2_000_000, "end": i})
""")


def test_sigkill_during_atomic_writes_never_leaves_a_torn_file(tmp_path):
    """SIGKILL a process that rewrites a 2 MB run.json in a loop, at 12 random moments: the file is always a
    complete JSON document (old or new), never a torn one. (test_train.py kills whole training jobs.)"""
    target = tmp_path / "run" / "run.json"
    rng = np.random.default_rng(1)
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), str(REPO)])
        deadline = time.time() + 60
        while not target.exists():
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.0, 0.4)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        doc = json.loads(target.read_text())
        assert doc["i"] == doc["end"] and len(doc["payload"]) == 2_000_000
    stale = [p for p in target.parent.iterdir() if p.name != "run.json"]
    assert all(p.name.startswith(".run.json.") and p.name.endswith(".tmp") for p in stale)


def test_sigkill_leftovers_are_hidden_from_the_registry(tmp_path):
    """Temporary files a killed write leaves are dot-files: never listed as runs, never taken for model.keras."""
    models = tmp_path / "models"
    run = make_run(models, "r", tiny_model())
    (run / ".model.1234abcd.tmp.keras").write_bytes(b"PK half")
    (run / ".run.json.abc.tmp").write_text('{"status": "comp')
    (models / ".zipimport-xyz").mkdir()
    runs = registry.list_runs(models)
    assert [r.run_id for r in runs] == ["r"] and runs[0].usable

