"""Several users at once while a training job runs: two Explain sessions never see each other's uploads, state or
results; the cached model they share is only read; the same holds for threads sharing one Explainer.

(The browser test drives two real browser sessions against the served app as well: tests/e2e/test_browser.py.)
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import report_like, write_image
from PIL import Image
from streamlit.testing.v1 import AppTest

from ecg_core.ml import jobs, registry
from ecg_core.ml.progress import read_progress

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240


# ------------------------------------------------------------------------------------------------------ fixtures
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _weights_digest(model) -> str:
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A registry with one usable cardiac-4 Keras run (these tests share one explainer between sessions): a shipped
    one when available, else a tiny one trained here."""
    root = tmp_path_factory.mktemp("conc") / "models"
    root.mkdir()
    shipped = [r for r in registry.list_runs(REPO / "models")
               if r.usable and r.meta.get("preset") == "cardiac-4" and r.meta.get("class_names")
               and not r.is_measurement and r.input_kind == "report_image"
               and r.meta.get("model_kind") != registry.ENSEMBLE_KIND]  # a Keras whole-page CNN
    if shipped:
        shutil.copytree(shipped[0].path, root / shipped[0].path.name, ignore=shutil.ignore_patterns("checkpoints"))
    else:
        from ecg_core.imaging.preprocess import PreprocessConfig
        from ecg_core.ml.train import run_training
        from ecg_core.ml.train_config import TrainConfig

        data = tmp_path_factory.mktemp("conc-train") / "ds"
        for ci, c in enumerate(("MI", "HB", "Normal", "PMI")):
            for i in range(5):
                img = report_like(800 + 10 * ci + i, size=(320, 240))
                img[int(0.3 * 240):, :: 4 + ci] //= 2
                write_image(data / c / f"{c}_{i}.png", img)
        small = PreprocessConfig(height=48, width=64)
        run_training(TrainConfig(data_dir=str(data), arch="custom_cnn", preprocess=small, epochs=1, batch_size=4,
                                 augment="none", val_frac=0.2, test_frac=0.2),
                     models_dir=root, run_id="tiny", cache_root=root.parent / "cache")
    return root


@pytest.fixture(scope="module")
def run(models) -> registry.RunInfo:
    (info,) = [r for r in registry.list_runs(models) if r.usable]
    return info


def _report_jpeg(cls: str, seed: int) -> bytes:
    from ecg_core.reports import synth

    rgb, _ = synth.make_report(synth.SynthSpec(cls=cls, seed=seed))
    b = io.BytesIO()
    Image.fromarray(rgb).save(b, "JPEG", quality=90)
    return b.getvalue()


@pytest.fixture(scope="module")
def uploads() -> dict[str, tuple[str, bytes]]:
    """Two different reports, one per session."""
    return {"a": ("alice_mi.jpg", _report_jpeg("myocardial_infarction", 11)),
            "b": ("bob_normal.jpg", _report_jpeg("normal", 12))}


def _expected(run: registry.RunInfo, data: bytes, name: str) -> tuple[str, np.ndarray]:
    """The Explain page's headline for this upload, computed directly with the library."""
    from ecg_core.xai.explainer import Explainer
    from ecg_core.imaging.loader import load_image
    from ecg_core.imaging.preprocess import preprocess

    exp = Explainer(registry.load_model(run), class_names=run.class_names)
    pre = preprocess(load_image(data, name=name).rgb, registry.preprocess_config_of(run))
    probs = exp.predict_proba(pre.final)
    top = int(np.argmax(probs))
    return f"Model output: {run.class_names[top]} ({probs[top]:.0%})", probs


@pytest.fixture
def training_job(tmp_path, models):
    """A real training subprocess writing into the same registry, in its training phase while the test runs."""
    data = tmp_path / "train-ds"
    for ci, c in enumerate(("MI", "HB", "Normal", "PMI")):
        for i in range(4):
            write_image(data / c / f"{i}.png", report_like(950 + 10 * ci + i, size=(320, 240)))
    run_id = f"busy-{os.getpid()}-{int(time.time())}"
    args = jobs.train_args(run_id, models, str(data), "custom_cnn", options={
        "height": 96, "width": 128, "epochs": 300, "batch_size": 2, "val": 0.25, "test": 0.25, "patience": 300})
    handle = jobs.start_job(args, models / run_id, env={"ECG_INSIGHT_HOME": str(tmp_path / "job-home")})
    deadline = time.time() + 300
    while not any(e.get("phase") == "train" for e in read_progress(models / run_id)):
        assert time.time() < deadline and jobs.is_alive(handle.pid), jobs.job_log(models / run_id)
        time.sleep(0.3)
    yield handle
    try:
        os.killpg(handle.pid, signal.SIGKILL)
        os.waitpid(handle.pid, 0)  # our own child: reap it
    except (ProcessLookupError, ChildProcessError):
        pass
    shutil.rmtree(models / run_id, ignore_errors=True)


# --------------------------------------------------------------------------------------- two AppTest sessions
def _session(models: Path, upload: tuple[str, bytes]) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / "explain.py"), default_timeout=TIMEOUT)
    at.session_state["explain_source"] = "Upload"
    at.run()
    at.file_uploader(key="explain_upload").set_value((upload[0], upload[1], "image/jpeg"))
    return at


def _text(at: AppTest) -> str:
    out: list[str] = []

    def walk(node) -> None:
        if getattr(node, "proto", None) is not None:
            out.append(str(node.proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def _headline(at: AppTest) -> str:
    found = re.search(r"Model output:\*\* ([^\n\"\\]+? \(\d+%\))", _text(at))
    assert found, _text(at)[:2000]
    return "Model output: " + found[1]


def _class_labels(at: AppTest, class_names: list[str]) -> list[str]:
    """The per-class expanders of the prediction ("Normal: 3%"...)."""
    return sorted(e.label for e in at.expander if any(e.label.startswith(f"{c}: ") for c in class_names))


def test_two_explain_sessions_while_training(models, run, uploads, training_job, monkeypatch):
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    model_file = run.path / registry.MODEL_FILE
    before = {"model": _sha256(model_file), "run.json": _sha256(run.path / registry.RUN_JSON)}
    expected = {k: _expected(run, data, name) for k, (name, data) in uploads.items()}
    want = {k: v[0] for k, v in expected.items()}
    want_labels = {k: sorted(f"{c}: {p:.0%}" for c, p in zip(run.class_names, v[1], strict=True))
                   for k, v in expected.items()}
    assert want_labels["a"] != want_labels["b"]  # the two uploads are told apart by what the page shows

    sessions = {k: _session(models, up) for k, up in uploads.items()}
    order = ["a", "b", "a", "b", "b", "a"]  # interleaved reruns: b changes its method in the middle
    for step, k in enumerate(order):
        at = sessions[k]
        if step == 4:
            at.selectbox(key="explain_method").set_value(at.selectbox(key="explain_method").options[-1])
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        mine, other = uploads[k][0], uploads["b" if k == "a" else "a"][0]
        assert at.session_state["explain_upload"].name == mine
        assert _headline(at) == want[k], (k, step)
        assert _class_labels(at, run.class_names) == want_labels[k], (k, step)  # every class's probability
        assert Path(other).stem not in _text(at)  # nothing of the other session's upload anywhere on the page
    # each session keeps its own choices
    assert sessions["a"].selectbox(key="explain_method").value != sessions["b"].selectbox(key="explain_method").value
    # the shared model was only read; the training job went on undisturbed in the same registry
    assert _sha256(model_file) == before["model"] and _sha256(run.path / registry.RUN_JSON) == before["run.json"]
    assert jobs.is_alive(training_job.pid)
    listed = {r.run_id: r for r in registry.list_runs(models)}
    assert listed[run.run_id].usable and any(r.status == "running" for r in listed.values())


# -------------------------------------------------------------------------------- threads sharing one Explainer
def test_threads_sharing_one_explainer(run, uploads):
    """What st.cache_resource does for sessions served in parallel threads: one Explainer for all. Results per
    thread equal the single-threaded ones, and the shared model is never modified (weights, softmax output)."""
    from ecg_core.xai.explainer import ExplainerCache
    from ecg_core.imaging.loader import load_image
    from ecg_core.imaging.preprocess import preprocess

    cache = ExplainerCache(max_entries=2)
    shared = cache.get(run)
    cfg = registry.preprocess_config_of(run)
    inputs = {k: preprocess(load_image(d, name=n).rgb, cfg).final for k, (n, d) in uploads.items()}
    reference = {k: (shared.predict_proba(x), shared.explain(x, method="gradcam", class_index=0))
                 for k, x in inputs.items()}
    weights = _weights_digest(shared.model)
    errors: list[BaseException] = []
    results: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    barrier = threading.Barrier(4)

    def work(k: str, i: int) -> None:
        try:
            barrier.wait(timeout=60)
            exp = cache.get(run)  # every "session" asks the cache, as the page does
            for _ in range(3):
                results[(k, i)] = (exp.predict_proba(inputs[k]), exp.explain(inputs[k], method="gradcam",
                                                                               class_index=0))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k, i)) for k in inputs for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not errors, errors
    assert len(results) == 4 and cache.loads == 1  # one model in memory for everybody
    for (k, _), (probs, heat) in results.items():
        np.testing.assert_allclose(probs, reference[k][0], atol=1e-5)
        np.testing.assert_allclose(heat, reference[k][1], atol=1e-4)
    assert _weights_digest(shared.model) == weights
    probs = shared.predict_proba(inputs["a"])
    assert abs(float(probs.sum()) - 1.0) < 1e-4  # still softmax: the linear clone did not leak into the model


# ------------------------------------------------------------------------------------- the same zip, twice at once
def test_same_zip_imported_by_two_sessions_at_once(tmp_path, monkeypatch):
    """Two users upload the same archive at the same moment: both end up on the one imported folder (named by the
    archive's hash), neither gets an error, and no temporary folder is left behind."""
    import zipfile

    from app_ui import common

    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as zf:
        for c in ("MI", "Normal"):
            for i in range(20):
                img = io.BytesIO()
                Image.fromarray(report_like(i, size=(320, 240))).save(img, "PNG")
                zf.writestr(f"{c}/{i}.png", img.getvalue())
    data = b.getvalue()
    for trial in range(5):
        monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / f"home{trial}"))
        results: list[str] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(3)

        def work() -> None:
            try:
                barrier.wait(timeout=30)
                results.append(common.import_zip(data, "same.zip"))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        uploads = tmp_path / f"home{trial}" / "uploads"
        assert len(set(results)) == 1 and results[0], results
        assert Path(results[0]).parent.parent == uploads  # the (one, thread-shared) session folder of uploads
        assert sorted(p.name for p in Path(results[0]).parent.iterdir()) == [Path(results[0]).name]  # no temp left
        assert len(list(Path(results[0]).rglob("*.png"))) == 40
