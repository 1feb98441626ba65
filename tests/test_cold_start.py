"""Cold start: the TensorFlow-free pages never import TensorFlow, the background warm-up of the default model
(app_ui.warmup) and the choice of the default run (registry.default_run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app_ui.warmup import Warmup, WarmupState, warmup_enabled
from ecg_core.ml import registry
from ecg_core.core.errors import ModelLoadError

REPO = Path(__file__).resolve().parents[1]
TF_FREE_PAGES = ("home", "data", "preprocess", "augment", "learn", "train")
CLASS_NAMES = ["Myocardial Infarction", "Abnormal Heartbeat", "Normal", "History of MI"]


# ------------------------------------------------------------------------------------------------ helpers
def fake_run(models: Path, run_id: str, *, status: str = "completed", created: str = "2026-01-01T00:00:00",
             model: bool = True) -> Path:
    """A run folder with a run.json and (optionally) a model.keras that passes the registry's cheap zip check."""
    run = models / run_id
    run.mkdir(parents=True)
    registry.atomic_write_json(run / registry.RUN_JSON, {
        "run_id": run_id, "status": status, "created": created, "arch": "toy", "input_shape": [48, 64, 1],
        "class_names": CLASS_NAMES})
    if model:
        with zipfile.ZipFile(run / registry.MODEL_FILE, "w") as zf:
            zf.writestr("config.json", "{}")
            zf.writestr("model.weights.h5", b"not weights")
    return run


class FakeExplainer:
    input_shape = (8, 12, 1)

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def predict_proba(self, x):
        self.calls.append(("predict", x.shape, x.dtype))
        return np.full(4, 0.25, np.float32)

    def explain(self, x, *, method="gradcam", class_index=None):
        self.calls.append(("explain", x.shape, method, class_index))
        return np.zeros(x.shape[:2], np.float32)

    def predict_and_explain(self, x, *, method="gradcam"):
        self.calls.append(("predict_and_explain", x.shape, method))
        return np.full(4, 0.25), 0, np.zeros(x.shape[:2], np.float32)


class FakeCache:
    """ExplainerCache stand-in: ``get`` waits for ``release`` (to see the "warming" state), then returns or raises."""

    def __init__(self, result) -> None:
        self.result = result
        self.release = threading.Event()
        self.asked: list[str] = []

    def get(self, run):
        self.asked.append(run.run_id)
        assert self.release.wait(30)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


# ------------------------------------------------------------------------------------------------ default_run
def test_default_run_prefers_the_shipped_run_then_falls_back(tmp_path):
    models = tmp_path / "models"
    assert registry.default_run(models) is None  # no folder
    models.mkdir()
    assert registry.default_run(models) is None  # no runs
    fake_run(models, "old", created="2026-01-01T00:00:00")
    fake_run(models, "newest", created="2026-03-01T00:00:00")
    fake_run(models, "broken", created="2026-04-01T00:00:00", model=False)  # newer, but not usable
    fake_run(models, "running", status="failed", created="2026-05-01T00:00:00")
    assert registry.default_run(models).run_id == "newest"  # first usable run in list_runs order
    fake_run(models, registry.DEFAULT_RUN_ID, created="2025-01-01T00:00:00")
    assert registry.DEFAULT_RUN_ID == "cardiac4-mendeley-ensemble"  # issue 15: measurement model + per-lead CNN
    assert registry.default_run(models).run_id == registry.DEFAULT_RUN_ID  # preferred, although the oldest
    assert registry.default_run(models, preferred="old").run_id == "old"
    assert registry.default_run(models, preferred="broken").run_id == "newest"  # preferred but unusable


def test_shipped_models_default_to_the_mendeley_run():
    run = registry.default_run(REPO / "models")
    if run is None:
        pytest.skip("no usable shipped model in models/")
    ids = [r.run_id for r in registry.list_runs(REPO / "models") if r.usable]
    preferred = [r for r in (registry.DEFAULT_RUN_ID, *registry.FALLBACK_RUN_IDS) if r in ids]
    assert run.run_id == (preferred[0] if preferred else ids[0])


# ------------------------------------------------------------------------------------------------ warm-up logic
@pytest.mark.parametrize("value, on", [("", True), ("1", True), ("yes", True), ("0", False), ("false", False),
                                       ("OFF", False), (" no ", False)])
def test_env_var_switches_the_warmup(value, on):
    assert warmup_enabled({"ECG_INSIGHT_WARMUP": value}) is on
    assert warmup_enabled({}) is True


def test_conftest_turns_the_warmup_off():
    assert os.environ.get("ECG_INSIGHT_WARMUP") == "0"
    w = Warmup(lambda: pytest.fail("the cache must not be made when disabled"), REPO / "models").start()
    s = w.state()
    assert s.status == "disabled" and "ECG_INSIGHT_WARMUP=0" in s.message and s.done


def test_warmup_runs_in_the_background_then_is_ready(tmp_path):
    fake_run(tmp_path, "r1")
    explainer = FakeExplainer()
    cache = FakeCache(explainer)
    t0 = time.perf_counter()
    w = Warmup(lambda: cache, tmp_path, enabled=True, preferred="r1").start()
    assert time.perf_counter() - t0 < 1.0  # start() does not wait for the load
    deadline = time.time() + 10
    while w.state().run_id is None and time.time() < deadline:
        time.sleep(0.01)
    s = w.state()
    assert s.status == "warming" and s.run_id == "r1" and not s.done
    assert w.start() is w and cache.asked == ["r1"]  # a second start does nothing
    cache.release.set()
    s = w.wait(30)
    assert s.status == "ready" and s.run_id == "r1" and s.seconds >= 0
    assert set(s.phases) == {"find", "load", "predict", "gradcam"}
    assert explainer.calls[0] == ("predict", (8, 12, 1), np.float32)
    assert explainer.calls[1] == ("predict_and_explain", (8, 12, 1), "gradcam")  # what the Explain page runs first


def test_warmup_failure_is_recorded_not_raised(tmp_path):
    fake_run(tmp_path, "r1")
    cache = FakeCache(ModelLoadError("run 'r1': model.keras cannot be loaded (bad file)."))
    cache.release.set()
    s = Warmup(lambda: cache, tmp_path, enabled=True).start().wait(30)
    assert s == WarmupState("failed", "r1", s.seconds, "run 'r1': model.keras cannot be loaded (bad file).",
                            s.phases)
    # an unexpected error, also in the cache factory itself
    cache = FakeCache(RuntimeError("boom"))
    cache.release.set()
    s = Warmup(lambda: cache, tmp_path, enabled=True).start().wait(30)
    assert s.status == "failed" and s.message == "RuntimeError: boom"

    def no_cache():
        raise ImportError("no module named tensorflow")

    s = Warmup(no_cache, tmp_path, enabled=True).start().wait(30)
    assert s.status == "failed" and "no module named tensorflow" in s.message


def test_warmup_without_a_model(tmp_path):
    s = Warmup(lambda: FakeCache(None), tmp_path / "empty", enabled=True).start().wait(30)
    assert s.status == "failed" and s.run_id is None and "no usable trained model" in s.message


# ------------------------------------------------------------------------------------------------ real model
@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    """A registry with one small, untrained convolutional model ("toy") and one damaged run ("damaged")."""
    keras = pytest.importorskip("keras")
    from ecg_core.imaging.preprocess import PreprocessConfig

    models = tmp_path_factory.mktemp("warmup-models") / "models"
    inp = keras.Input((48, 64, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))
    meta = {"arch": "toy", "preset": "cardiac-4", "input_shape": [48, 64, 1],
            "preprocess": PreprocessConfig(height=48, width=64).to_dict(), "class_names": CLASS_NAMES}
    run = registry.create_run(models, "toy", meta)
    registry.save_model_atomic(model, run / registry.MODEL_FILE)
    registry.update_run(run, status="completed", last_conv_layer="conv")
    # passes the cheap zip check of the registry, but Keras cannot read it
    fake_run(models, "damaged")
    (models / "damaged" / registry.RUN_JSON).write_text(json.dumps({
        **meta, "run_id": "damaged", "status": "completed", "created": "2020-01-01T00:00:00"}))
    return models


def test_warmup_loads_a_real_model_into_the_shared_cache(tiny_models):
    from ecg_core.xai.explainer import ExplainerCache

    cache = ExplainerCache(max_entries=2)
    s = Warmup(lambda: cache, tiny_models, enabled=True, preferred="toy").start().wait(120)
    assert s.status == "ready", s
    assert s.run_id == "toy" and "Grad-CAM" in s.message
    assert cache.loads == 1 and len(cache) == 1
    cache.get(registry.read_run(tiny_models / "toy"))  # the page's later call is a hit
    assert cache.loads == 1


ENSEMBLE_RUNS = ("cardiac4-mendeley-ensemble", "cardiac4-mendeley-measure-lgbm", "cardiac4-mendeley-perlead-pre")


@pytest.mark.skipif(not all((REPO / "models" / r / "run.json").is_file() for r in ENSEMBLE_RUNS),
                    reason="the shipped ensemble or its members are absent")
def test_warmup_of_the_default_ensemble_loads_its_network_where_the_page_finds_it(tmp_path):
    """Issue 15: the default is the ensemble; the warm-up loads its per-lead member into the shared cache under the
    key the page asks for (``app_ui.cache.perlead_model``: the run's last conv layer), so the page loads nothing."""
    import shutil

    from ecg_core.xai.explainer import ExplainerCache

    models = tmp_path / "models"
    for r in ENSEMBLE_RUNS:
        shutil.copytree(REPO / "models" / r, models / r, ignore=shutil.ignore_patterns("tensorboard"))
    cache = ExplainerCache(max_entries=2)
    s = Warmup(lambda: cache, models, enabled=True).start().wait(180)
    assert s.status == "ready", s
    assert s.run_id == registry.DEFAULT_RUN_ID == ENSEMBLE_RUNS[0] and all(r in s.message for r in ENSEMBLE_RUNS[1:])
    assert set(s.phases) == {"find", "load", "predict", "gradcam"}
    assert cache.loads == 1 and len(cache) == 1  # the network only: the measurement member needs no Keras
    member = registry.read_run(models / ENSEMBLE_RUNS[2])
    cache.get(member, layer=member.meta["last_conv_layer"])  # what the page's perlead_model asks for: a hit
    assert cache.loads == 1


def test_warmup_of_a_damaged_model_fails_with_a_message(tiny_models):
    from ecg_core.xai.explainer import ExplainerCache

    s = Warmup(lambda: ExplainerCache(max_entries=1), tiny_models, enabled=True,
               preferred="damaged").start().wait(120)
    assert s.status == "failed" and s.run_id == "damaged"
    assert "damaged" in s.message and "cannot be loaded" in s.message


def test_home_page_shows_the_ready_model(tiny_models, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app_ui import cache

    monkeypatch.setenv("ECG_INSIGHT_WARMUP", "1")
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(tiny_models))
    cache.start_warmup.clear()
    try:
        at = AppTest.from_file(str(REPO / "pages" / "home.py"), default_timeout=120).run()
        assert not at.exception, at.exception
        deadline = time.time() + 120
        while time.time() < deadline:
            text = " ".join(c.value for c in at.caption)
            if "Loading the default model in the background" not in text:
                break
            time.sleep(0.5)
            at.run()
        assert "Default model ready: `cardiac4" not in text
        assert "Default model ready: `toy` (loaded in" in text, text
    finally:
        cache.start_warmup.clear()
        cache.explainer_cache.clear()


# ------------------------------------------------------------------------------------------------ no TensorFlow
PAGES_SCRIPT = r"""
import sys
from streamlit.testing.v1 import AppTest
repo, data = sys.argv[1], sys.argv[2]
for page in sys.argv[3:]:
    at = AppTest.from_file(f"{repo}/pages/{page}.py", default_timeout=120)
    at.session_state["app_dataset_root"] = data
    at.run()
    assert not at.exception, (page, at.exception)
    if page == "home":
        text = " ".join(c.value for c in at.caption)
        assert "Background loading of the default model is off" in text, text
    heavy = sorted(m for m in ("tensorflow", "keras", "tf_keras_vis") if m in sys.modules)
    assert not heavy, f"rendering pages/{page}.py imported {heavy}"
print("ok")
"""


def test_tf_free_pages_never_import_tensorflow(tiny_dataset):
    env = {**os.environ, "ECG_INSIGHT_WARMUP": "0", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PAGES_SCRIPT, str(REPO), str(tiny_dataset), *TF_FREE_PAGES],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_streamlit_does_not_reset_keras_after_every_run(monkeypatch):
    """Streamlit's end-of-run keras.backend.clear_session() (a gc.collect each run, fragments included) is off."""
    from streamlit.runtime.scriptrunner import script_runner

    import app_ui.common  # noqa: F401  (patches at import)

    closed = []
    fake_keras = type(sys)("keras")
    fake_keras.backend = type("B", (), {"clear_session": staticmethod(lambda: pytest.fail("Keras was reset"))})
    fake_plt = type(sys)("matplotlib.pyplot")
    fake_plt.close = closed.append
    monkeypatch.setitem(sys.modules, "keras", fake_keras)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", fake_plt)
    script_runner._clean_problem_modules()
    assert closed == ["all"]  # matplotlib figures are still closed
