"""Issue 18.4: per-session uploads cleaned after an age, disk quotas for uploads and trained runs checked before
anything is written (nothing stored is lost, no half-written file), and at most N training jobs at once over all
sessions (``ecg_core.core.quota``, ``app_ui.common``, ``ecg_core.ml.jobs``)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from conftest import report_like, write_image
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300
MB = 1024 * 1024


# --------------------------------------------------------------------------------------------- pure functions
def test_limits_from_env_defaults_and_bad_values():
    from ecg_core.core.errors import ConfigError
    from ecg_core.core.quota import Limits, limits_from_env

    assert limits_from_env({}) == Limits(2048 * MB, 4096 * MB, 24 * 3600.0, 1)
    got = limits_from_env({"ECG_INSIGHT_UPLOAD_QUOTA_MB": "0.5", "ECG_INSIGHT_MODELS_QUOTA_MB": "10",
                           "ECG_INSIGHT_UPLOAD_MAX_AGE_H": "2", "ECG_INSIGHT_MAX_JOBS": "3"})
    assert got == Limits(MB // 2, 10 * MB, 7200.0, 3)
    for name, bad in (("ECG_INSIGHT_UPLOAD_QUOTA_MB", "lots"), ("ECG_INSIGHT_MAX_JOBS", "0"),
                      ("ECG_INSIGHT_MAX_JOBS", "1.5"), ("ECG_INSIGHT_UPLOAD_MAX_AGE_H", "-1")):
        with pytest.raises(ConfigError, match=name):
            limits_from_env({name: bad})


def test_folder_size_and_check_quota(tmp_path):
    from ecg_core.core.errors import EcgCoreError
    from ecg_core.core.quota import QuotaError, check_quota, folder_size

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "x.bin").write_bytes(b"1" * 1000)
    (tmp_path / "a" / "b" / "y.bin").write_bytes(b"2" * 500)
    (tmp_path / "a" / "link").symlink_to("/usr")  # not followed
    assert folder_size(tmp_path / "a") == 1500 and folder_size(tmp_path / "missing") == 0
    assert check_quota(tmp_path / "a", 400, 2000, what="uploads", env_name="Q", hint="h") == 100
    assert check_quota(tmp_path / "a", 500, 2000, what="uploads", env_name="Q", hint="h") == 0  # exactly full
    with pytest.raises(QuotaError) as err:
        check_quota(tmp_path / "a", 501, 2000, what="uploads", env_name="Q", hint="Delete something.")
    assert isinstance(err.value, EcgCoreError)
    assert "uploads quota is reached" in str(err.value) and "nothing was written" in str(err.value)
    assert "Delete something." in str(err.value) and "Q" in str(err.value)


def test_clean_old_removes_stale_session_folders_only(tmp_path):
    from ecg_core.core.quota import clean_old

    up = tmp_path / "uploads"
    now = 1_000_000.0
    for name, age_h in (("s-old", 30), ("s-fresh", 1), ("s-mine", 50), ("s-old-with-new-file", 30)):
        (up / name / "zip-1").mkdir(parents=True)
        f = up / name / "zip-1" / "a.png"
        f.write_bytes(b"x")
        for p in (f, f.parent, f.parent.parent):
            os.utime(p, (now - age_h * 3600, now - age_h * 3600))
    os.utime(up / "s-old-with-new-file" / "zip-1" / "a.png", (now - 60, now - 60))  # touched a minute ago
    (up / "stale.tmp").write_bytes(b"x")
    os.utime(up / "stale.tmp", (now - 100 * 3600,) * 2)
    removed = clean_old(up, 24 * 3600, now, keep=[up / "s-mine"])
    assert sorted(p.name for p in removed) == ["s-old", "stale.tmp"]
    assert sorted(p.name for p in up.iterdir()) == ["s-fresh", "s-mine", "s-old-with-new-file"]
    assert clean_old(tmp_path / "missing", 1, now) == []


# ----------------------------------------------------------------------------------------- uploads (AppTest)
def _zip(entries: dict[str, bytes]) -> bytes:
    """The same bytes for the same entries (a fixed date: the name of an imported folder is the archive's hash)."""
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return b.getvalue()


def _payload(n: int, seed: int) -> dict[str, bytes]:
    """``n`` entries of 300 kB (incompressible bytes named .png: the import checks names, the scan decodes)."""
    rng = __import__("random").Random(seed)
    return {f"{('MI', 'Normal')[i % 2]}/{seed}-{i}.png": rng.randbytes(300_000) for i in range(n)}


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _sidebar() -> None:
    from app_ui import common

    common.dataset_sidebar()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("ECG_INSIGHT_UPLOAD_QUOTA_MB", "1")  # 1 MiB: one 600 kB archive fits, not two
    return tmp_path / "home"


def test_uploads_beyond_the_quota_are_refused_and_stored_files_kept(home):
    at = AppTest.from_function(_sidebar, default_timeout=TIMEOUT)
    at.session_state["app_dataset_pick"] = "Upload a zip..."
    at.run()
    at.file_uploader(key="app_dataset_zip").set_value(("first.zip", _zip(_payload(2, 1)), "application/zip")).run()
    assert not at.exception and not at.sidebar.error, [e.value for e in at.sidebar.error]
    first = Path(at.session_state["app_dataset_root"])
    session = first.parent
    assert session.parent == home / "uploads" and session.name.startswith("s-")  # one folder per session
    before = _tree(home / "uploads")
    assert len(before) == 2

    at.file_uploader(key="app_dataset_zip").set_value(("second.zip", _zip(_payload(2, 2)), "application/zip")).run()
    assert not at.exception
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and errors[0].startswith("second.zip: The uploads quota is reached"), errors
    assert "ECG_INSIGHT_UPLOAD_QUOTA_MB" in errors[0] and "nothing was written" in errors[0]
    assert at.session_state["app_dataset_root"] == ""  # the refused archive is not used
    assert _tree(home / "uploads") == before  # the stored archive is intact; no half-written file or temp folder
    assert sorted(p.name for p in (home / "uploads").iterdir()) == [session.name]
    assert sorted(p.name for p in session.iterdir()) == [first.name]

    # the first archive again: already stored, reused without counting against the quota
    at.file_uploader(key="app_dataset_zip").set_value(("first.zip", _zip(_payload(2, 1)), "application/zip")).run()
    assert not at.sidebar.error and at.session_state["app_dataset_root"] == str(first)


def test_two_sessions_get_separate_folders_and_stale_ones_are_cleaned(home, monkeypatch):
    monkeypatch.setenv("ECG_INSIGHT_UPLOAD_QUOTA_MB", "100")
    monkeypatch.setenv("ECG_INSIGHT_UPLOAD_MAX_AGE_H", "1")
    from app_ui import common

    monkeypatch.setattr(common, "CLEAN_EVERY_S", 0.0)  # sweep on every upload (the app: at most once a minute)
    stale = home / "uploads" / "s-gone" / "zip-old"
    stale.mkdir(parents=True)
    (stale / "a.png").write_bytes(b"x")
    for p in (stale / "a.png", stale, stale.parent):
        os.utime(p, (time.time() - 7200,) * 2)
    roots = []
    for _ in range(2):
        at = AppTest.from_function(_sidebar, default_timeout=TIMEOUT)
        at.session_state["app_dataset_pick"] = "Upload a zip..."
        at.run()
        at.file_uploader(key="app_dataset_zip").set_value(("same.zip", _zip(_payload(2, 1)), "application/zip")).run()
        assert not at.sidebar.error
        roots.append(Path(at.session_state["app_dataset_root"]))
    assert roots[0].name == roots[1].name and roots[0].parent != roots[1].parent  # same archive, own folders
    assert not stale.parent.exists()  # not touched for more than ECG_INSIGHT_UPLOAD_MAX_AGE_H: removed


def test_batch_zip_beyond_the_quota_is_refused(home, monkeypatch):
    from types import SimpleNamespace

    from app_ui import cache, widgets

    monkeypatch.setattr(widgets, "pick_report_model", lambda *a, **k: SimpleNamespace(
        key="m", explainer=None, cfg=None, run_id="m",
        run=SimpleNamespace(is_measurement=False, meta={}, input_kind="report_image")))
    asked = []
    monkeypatch.setattr(cache, "batch_predictions", lambda key, folder, *a, **k: asked.append(folder))
    monkeypatch.setattr(cache, "ood_profile", lambda run: (None, ""), raising=False)
    (home / "uploads" / "s-other").mkdir(parents=True)
    (home / "uploads" / "s-other" / "big.bin").write_bytes(b"0" * 900_000)  # another session's upload
    at = AppTest.from_file(str(REPO / "pages" / "explain_batch.py"), default_timeout=TIMEOUT)
    at.session_state["explain_batch_source"] = "Zip upload"
    at.run()
    at.file_uploader(key="explain_batch_zip").set_value(("b.zip", _zip(_payload(1, 3)), "application/zip")).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "Extracting b.zip failed: The uploads quota is reached" in errors[0], errors
    assert not asked and sorted(p.name for p in (home / "uploads").iterdir()) == ["s-other"]
    assert (home / "uploads" / "s-other" / "big.bin").stat().st_size == 900_000


def test_signal_upload_beyond_the_quota_writes_nothing(home):
    from app_ui import common
    from ecg_core.core.quota import QuotaError
    from ecg_core.signals import sources

    dest = home / "uploads" / "s-x"
    csv = b"time,II\n" + b"".join(f"{i / 360:.4f},0.1\n".encode() for i in range(50_000))
    assert len(csv) > 0.5 * MB
    first = sources.save_upload([("a.csv", csv)], dest, before_write=common.check_upload_quota)
    assert first.is_file()
    with pytest.raises(QuotaError, match="uploads quota is reached"):
        sources.save_upload([("b.csv", csv + b"0,0\n")], dest, before_write=common.check_upload_quota)
    assert [p.name for p in dest.iterdir()] == [first.parent.name] and first.read_bytes() == csv
    assert sources.save_upload([("a.csv", csv)], dest, before_write=common.check_upload_quota) == first  # reused


# ------------------------------------------------------------------------------------- trained runs and jobs
def test_train_page_refuses_a_job_when_the_models_quota_is_reached(tmp_path, monkeypatch):
    from ecg_core.ml import jobs

    data = tmp_path / "data"
    for i, c in enumerate(("MI", "Normal", "MI", "Normal")):
        write_image(data / c / f"{i}.png", report_like(i, size=(160, 120)))
    models = tmp_path / "models"
    (models / "old-run").mkdir(parents=True)
    (models / "old-run" / "model.keras").write_bytes(b"0" * 600_000)
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    monkeypatch.setenv("ECG_INSIGHT_MODELS_QUOTA_MB", "0.5")
    started = []
    monkeypatch.setattr(jobs, "start_queue", lambda models_dir, qid, runs: started.append(runs))
    at = AppTest.from_file(str(REPO / "pages" / "train.py"), default_timeout=TIMEOUT)
    at.session_state["app_dataset_root"] = str(data)
    at.run()
    at.button(key="train_start").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("trained runs quota is reached" in e and "ECG_INSIGHT_MODELS_QUOTA_MB" in e for e in errors), errors
    assert not started and not (models / ".jobs").exists()  # nothing written
    assert (models / "old-run" / "model.keras").stat().st_size == 600_000
    monkeypatch.setenv("ECG_INSIGHT_MODELS_QUOTA_MB", "10")
    at.button(key="train_start").click().run()
    assert not at.exception and len(started) == 1


def _sleeper(models: Path, run_id: str) -> subprocess.Popen:
    """A stand-in job: a live process with a job pid file and no run.json yet (a job that is starting)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (models / ".jobs").mkdir(parents=True, exist_ok=True)
    (models / ".jobs" / f"{run_id}.pid").write_text(str(proc.pid))
    return proc


def test_running_jobs_counts_live_unfinished_jobs_of_every_session(tmp_path):
    import json

    from ecg_core.ml import jobs

    models = tmp_path / "models"
    a, b = _sleeper(models, "a"), _sleeper(models, "b")
    try:
        (models / ".jobs" / "gone.pid").write_text("999999999")  # a job that ended
        (models / ".jobs" / "queue-q.pid").write_text(str(a.pid))  # a queue runner is not a job
        assert jobs.running_jobs(models) == ["a", "b"]
        (models / "b").mkdir()
        (models / "b" / "run.json").write_text(json.dumps({"run_id": "b", "status": "completed", "pid": b.pid}))
        assert jobs.running_jobs(models) == ["a"]  # its run has ended (the pid may belong to someone else now)
    finally:
        for p in (a, b):
            p.kill()
            p.wait()
    assert jobs.running_jobs(models) == []


def test_start_when_free_waits_for_a_slot(tmp_path):
    from ecg_core.ml import jobs

    models = tmp_path / "models"
    busy = _sleeper(models, "other-session")
    stop = tmp_path / "stop"
    try:
        # the one slot is taken: the job waits, and the queue's stop file ends the wait without starting it
        threading.Timer(1.5, stop.write_text, ("",)).start()
        t0 = time.time()
        assert jobs.start_when_free(models, "mine", ["--help"], max_jobs=1, stop_file=stop, poll_s=0.2) is None
        assert time.time() - t0 >= 1.4 and not (models / ".jobs" / "mine.pid").exists()
        stop.unlink()
        # two slots: it starts at once
        h = jobs.start_when_free(models, "mine", ["--help"], max_jobs=2, stop_file=stop, poll_s=0.2)
        assert h is not None and (models / ".jobs" / "mine.pid").read_text() == str(h.pid)
        os.waitpid(h.pid, 0)
        # the other job ends: the slot frees up and the next job starts
        threading.Timer(1.0, busy.kill).start()
        h = jobs.start_when_free(models, "next", ["--help"], max_jobs=1, stop_file=stop, poll_s=0.2)
        assert h is not None and busy.poll() is not None
        os.waitpid(h.pid, 0)
    finally:
        busy.kill()
        busy.wait()


def test_queue_runner_stops_at_the_models_quota(tmp_path, monkeypatch):
    """A queued run does not start when the trained runs are over their quota: the queue is cancelled (the page
    lists the runs as "cancelled") and no job is started."""
    from ecg_core.ml import jobs

    models = tmp_path / "models"
    (models / "big").mkdir(parents=True)
    (models / "big" / "model.keras").write_bytes(b"0" * 200_000)
    monkeypatch.setenv("ECG_INSIGHT_MODELS_QUOTA_MB", "0.1")
    qf = jobs.queue_file(models, "q")
    qf.parent.mkdir(parents=True, exist_ok=True)
    qf.write_text('{"queue_id": "q", "runs": [{"run_id": "r1", "args": ["--help"]}]}')
    assert jobs.run_queue(qf) == 0
    assert jobs.queue_state(models, "q") == [("r1", jobs.CANCELLED)]
    assert not (models / ".jobs" / "r1.pid").exists()
