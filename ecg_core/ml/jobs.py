"""Long jobs as subprocesses: start, poll, stop.

Pages never train or batch-predict inside the Streamlit script: they start ``python -m ecg_core <command>`` with
:func:`start_job`, which survives page reruns and navigation, then poll the run folder (``progress.jsonl``,
``run.json``) with :func:`job_state`. :func:`stop_job` writes the run's ``STOP`` file (the job finishes its
current batch, keeps the best checkpoint and marks the run ``stopped``) and sends SIGTERM as well; after a grace
period it kills the process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecg_core.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from ecg_core.core.errors import EcgCoreError
from ecg_core.core.paths import REPO_ROOT
from ecg_core.ml import registry

LOG_FILE = "log.txt"
PID_FILE = "job.pid"


@dataclass(frozen=True)
class JobHandle:
    run_dir: Path
    pid: int


def start_job(args: list[str], run_dir: str | Path, *, env: dict[str, str] | None = None) -> JobHandle:
    """Start ``python -m ecg_core *args`` in its own process session.

    The run folder itself is created by the job (so a failed start never leaves a half-made run); the log
    (``<run>.log``) and pid file go into a sibling ``.jobs`` folder that the registry ignores.
    """
    run_dir = Path(run_dir)
    jobs = run_dir.parent / ".jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    log = open(jobs / f"{run_dir.name}.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecg_core", *args],
        cwd=str(REPO_ROOT),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    log.close()
    atomic_write_text(jobs / f"{run_dir.name}.pid", str(proc.pid))
    return JobHandle(run_dir, proc.pid)


def job_log(run_dir: str | Path, *, tail: int = 60) -> str:
    p = Path(run_dir).parent / ".jobs" / f"{Path(run_dir).name}.log"
    try:
        lines = p.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-tail:])


def job_pid(run_dir: str | Path) -> int | None:
    p = Path(run_dir).parent / ".jobs" / f"{Path(run_dir).name}.pid"
    try:
        return int(p.read_text().strip())
    except (OSError, ValueError):
        return None


def is_alive(pid: int | None) -> bool:
    return registry._pid_alive(pid)


@dataclass(frozen=True)
class JobState:
    """What a page shows about a job: status, latest progress events and the per-epoch history so far."""

    run_id: str
    status: str
    alive: bool
    last: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    eta_s: float | None = None


def job_state(run_dir: str | Path) -> JobState:
    """Read a job's state from its files (never raises)."""
    from ecg_core.ml.progress import read_progress

    run_dir = Path(run_dir)
    pid = job_pid(run_dir)
    alive = is_alive(pid)
    info = registry.read_run(run_dir) if (run_dir / registry.RUN_JSON).exists() else None
    events = read_progress(run_dir)
    epochs = [e for e in events if e.get("phase") == "epoch"]
    last = events[-1] if events else {}
    status = info.status if info else ("starting" if alive else "failed to start")
    if info and info.status == "running" and alive:
        status = "running"
    message = (info.meta.get("error", "") if info else "") or (info.problem if info else "")
    if not info and not alive:
        message = job_log(run_dir, tail=5)
    return JobState(run_dir.name, status, alive, last, epochs, message, _eta(events))


def _eta(events: list[dict[str, Any]]) -> float | None:
    """Seconds left, from the pace of finished epochs (or batches within the first epoch)."""
    train = [e for e in events if e.get("phase") in ("train", "epoch")]
    if not train:
        return None
    last = train[-1]
    epochs_total = last.get("epochs")
    start = next((e["t"] for e in events if e.get("phase") == "start"), None)
    if not epochs_total or start is None:
        return None
    batches = last.get("batches") or next((e.get("batches") for e in reversed(events) if e.get("batches")), None)
    if not batches:
        return None
    done = (last["epoch"] - 1) * batches + last.get("batch", batches) if last.get("phase") == "train" \
        else last["epoch"] * batches
    if done <= 0:
        return None
    rate = (last["t"] - start) / done
    return max(0.0, rate * (epochs_total * batches - done))


def stop_job(run_dir: str | Path, *, grace_s: float = 20.0, wait: bool = False) -> bool:
    """Ask a job to stop (STOP file + SIGTERM); with ``wait``, block until it ends, killing it after ``grace_s``.

    Returns True when the process is gone.
    """
    run_dir = Path(run_dir)
    from ecg_core.ml.progress import STOP_FILE

    if run_dir.exists():
        atomic_write_bytes(run_dir / STOP_FILE, b"")
    pid = job_pid(run_dir)
    if pid and is_alive(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if not wait:
        return not is_alive(pid)
    deadline = time.time() + grace_s
    while time.time() < deadline:
        _reap(pid)
        if not is_alive(pid):
            return True
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, TypeError):
        pass
    _reap(pid)
    return not is_alive(pid)


def _reap(pid: int | None) -> None:
    if not pid:
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def train_args(run_id: str, models_dir: str | Path, data_dir: str, arch: str, *, options: dict[str, Any]) -> list[str]:
    """CLI arguments of a training job (``options`` maps long option names to values; True = flag)."""
    args = ["train", "--data", str(data_dir), "--arch", arch, "--run-id", run_id, "--models", str(models_dir)]
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            args.append(flag)
        elif v is False or v is None:
            continue
        else:
            args += [flag, str(v)]
    return args


# ----------------------------------------------------------------------------------------------------- queues
QUEUE_STOP_SUFFIX = ".stop"


def queue_file(models_dir: str | Path, queue_id: str) -> Path:
    return Path(models_dir) / ".jobs" / f"queue-{registry.check_run_id(queue_id)}.json"


def start_queue(models_dir: str | Path, queue_id: str, runs: list[dict[str, Any]]) -> JobHandle:
    """Start a runner that trains ``runs`` (each ``{"run_id": ..., "args": [...]}``) one after another.

    The runner is itself a subprocess (``python -m ecg_core queue FILE``, its pid in ``queue-<id>.pid``); each run
    is a child job of its own, so stopping one run (``stop_job``) stops that run only -- the next one then starts --
    and :func:`stop_queue` cancels the runs that have not started yet.
    """
    qf = queue_file(models_dir, queue_id)
    atomic_write_json(qf, {"queue_id": queue_id, "runs": runs})
    log = open(qf.with_suffix(".log"), "ab")
    proc = subprocess.Popen([sys.executable, "-m", "ecg_core", "queue", str(qf)], cwd=str(REPO_ROOT), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    log.close()
    atomic_write_text(qf.with_suffix(".pid"), str(proc.pid))
    return JobHandle(Path(models_dir) / runs[0]["run_id"], proc.pid)


def running_jobs(models_dir: str | Path) -> list[str]:
    """Run ids of the training jobs running now in ``models_dir``, whichever session or queue started them: a job
    pid file (``.jobs/<run>.pid``) whose process is alive and whose run has not ended (no ``run.json`` yet, or
    status ``running``)."""
    jobs_dir = Path(models_dir) / ".jobs"
    if not jobs_dir.is_dir():
        return []
    out = []
    for pid_file in sorted(jobs_dir.glob("*.pid")):
        if pid_file.name.startswith("queue-"):
            continue
        run_dir = Path(models_dir) / pid_file.stem
        if not is_alive(job_pid(run_dir)):
            continue
        if (run_dir / registry.RUN_JSON).exists() and registry.read_run(run_dir).status != "running":
            continue
        out.append(pid_file.stem)
    return out


def _max_jobs(spec: dict[str, Any]) -> int:
    from ecg_core.core.quota import limits_from_env

    try:
        return max(1, int(spec.get("max_jobs") or limits_from_env(os.environ).max_jobs))
    except (ValueError, TypeError, EcgCoreError):
        return 1


def start_when_free(models_dir: Path, run_id: str, args: list[str], *, max_jobs: int, stop_file: Path | None = None,
                    poll_s: float = 1.0) -> JobHandle | None:
    """Start the job once fewer than ``max_jobs`` jobs run in ``models_dir`` (all sessions and queues count); the
    check and the start hold ``.jobs/start.lock``, so two runners never both take the last slot. Returns None when
    ``stop_file`` appears while waiting."""
    import fcntl

    jobs_dir = models_dir / ".jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    while True:
        if stop_file is not None and stop_file.exists():
            return None
        with open(jobs_dir / "start.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if len(running_jobs(models_dir)) < max_jobs:
                return start_job(args, models_dir / run_id)
        time.sleep(poll_s)


def _models_quota_problem(models_dir: Path) -> str:
    from ecg_core.core import quota

    try:
        limits = quota.limits_from_env(os.environ)
        quota.check_quota(models_dir, 0, limits.models_quota_bytes, what="trained runs",
                          env_name=quota.MODELS_QUOTA_ENV, hint="Delete runs on the Train page.")
    except EcgCoreError as e:
        return str(e)
    return ""


def run_queue(path: str | Path) -> int:
    """Body of the queue runner: start each run when a job slot is free (at most ``max_jobs`` of the queue file,
    else ``ECG_INSIGHT_MAX_JOBS``, jobs at once over all queues), wait for it; stop when the queue's stop file
    appears or the trained runs are over their disk quota (the waiting runs then read "cancelled")."""
    import json

    qf = Path(path)
    spec = json.loads(qf.read_text())
    models_dir = qf.parent.parent
    stop_file = qf.with_name(qf.name + QUEUE_STOP_SUFFIX)
    atomic_write_text(qf.with_suffix(".pid"), str(os.getpid()))
    max_jobs = _max_jobs(spec)
    for item in spec["runs"]:
        if stop_file.exists():
            break
        problem = _models_quota_problem(models_dir)
        if problem:  # checked before each run starts writing
            print(f"queue {spec.get('queue_id')}: {problem}", flush=True)
            stop_queue(models_dir, str(spec.get("queue_id", qf.stem[len("queue-"):])))
            break
        h = start_when_free(models_dir, item["run_id"], list(item["args"]), max_jobs=max_jobs, stop_file=stop_file)
        if h is None:
            break
        while True:
            try:
                pid, _ = os.waitpid(h.pid, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:
                continue
    return 0


def stop_queue(models_dir: str | Path, queue_id: str) -> None:
    """Cancel the runs of a queue that have not started yet (the running one is stopped with stop_job)."""
    qf = queue_file(models_dir, queue_id)
    atomic_write_bytes(qf.with_name(qf.name + QUEUE_STOP_SUFFIX), b"")


def queue_runs(models_dir: str | Path, queue_id: str) -> list[str]:
    import json

    try:
        return [r["run_id"] for r in json.loads(queue_file(models_dir, queue_id).read_text())["runs"]]
    except (OSError, ValueError, KeyError):
        return []


QUEUED, STARTED, CANCELLED, ORPHANED = "queued", "started", "cancelled", "not started"
"""States of a queue entry (:func:`queue_state`)."""


def queue_state(models_dir: str | Path, queue_id: str) -> list[tuple[str, str]]:
    """``(run_id, state)`` for each run of a queue, in order: ``started`` (its job exists), ``cancelled`` (the
    queue was stopped before it started), ``queued`` (waiting for the runs before it; the runner is alive) or
    ``not started`` (the runner has ended without starting it: it never will)."""
    models_dir = Path(models_dir)
    qf = queue_file(models_dir, queue_id)
    stopped = qf.with_name(qf.name + QUEUE_STOP_SUFFIX).exists()
    try:
        runner = int(qf.with_suffix(".pid").read_text().strip())
    except (OSError, ValueError):
        runner = None
    alive = is_alive(runner)
    out = []
    for run_id in queue_runs(models_dir, queue_id):
        if (models_dir / run_id).exists() or job_pid(models_dir / run_id) is not None:
            out.append((run_id, STARTED))
        elif stopped:
            out.append((run_id, CANCELLED))
        else:
            out.append((run_id, QUEUED if alive else ORPHANED))
    return out


def list_queues(models_dir: str | Path) -> list[str]:
    """Ids of the queues in ``models_dir/.jobs`` that still have runs waiting (state ``queued``), oldest first."""
    jobs_dir = Path(models_dir) / ".jobs"
    if not jobs_dir.is_dir():
        return []
    ids = sorted(p.stem[len("queue-"):] for p in jobs_dir.glob("queue-*.json"))
    return [q for q in ids if any(s == QUEUED for _, s in queue_state(models_dir, q))]
