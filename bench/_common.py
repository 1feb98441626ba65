"""Shared helpers of the benchmark scripts: machine description, timing, JSON-line output, target check.

Every bench prints JSON lines (one object per measurement) on stdout and a final ``"result"`` line with its ratio,
its target and ``"pass"``; it exits 1 when the ratio misses the target, 2 when it could not run (e.g. missing
data), 0 otherwise. ``make bench`` runs them all and keeps the lines in ``bench/results/latest.jsonl``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the scripts run as `python bench/x.py` from the repository root
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED_DATA = Path(os.environ.get("ECG_INSIGHT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def machine() -> dict[str, Any]:
    """Where the numbers come from: CPU model, cores, memory, OS, Python and the main library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    versions = {}
    for mod in ("tensorflow", "keras", "numpy", "cv2", "streamlit"):
        m = sys.modules.get(mod)
        if m is not None:
            versions[mod] = getattr(m, "__version__", "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gb": mem_gb, "os": platform.platform(terse=True),
            "python": platform.python_version(), "gpu": _gpu(), **versions}


def _gpu() -> str:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return "not checked"
    try:
        gpus = tf.config.list_physical_devices("GPU")
    except Exception:  # noqa: BLE001 - a description only
        return "unknown"
    return ", ".join(g.name for g in gpus) if gpus else "none"


def emit(bench: str, **fields: Any) -> dict[str, Any]:
    """Print one JSON line ``{"bench": bench, ...}`` and return it."""
    row = {"bench": bench, **fields}
    print(json.dumps(row, default=_plain), flush=True)
    return row


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    return str(v)


def median_seconds(fn: Callable[[], Any], *, repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` unmeasured runs, and all the times."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def finish(bench: str, *, ratio: float, target: float, higher_is_better: bool, **fields: Any) -> int:
    """Print the result line and return the exit code (0 pass, 1 miss)."""
    ok = ratio >= target if higher_is_better else ratio <= target
    emit(bench, result=True, ratio=round(float(ratio), 3), target=target,
         target_rule=(">=" if higher_is_better else "<=") + f" {target}", passed=bool(ok), machine=machine(),
         **fields)
    return 0 if ok else 1


def cannot_run(bench: str, why: str) -> int:
    """Print why a bench could not run (e.g. missing shared data) and return exit code 2."""
    emit(bench, result=True, skipped=True, reason=why, machine=machine())
    print(f"{bench}: cannot run: {why}", file=sys.stderr)
    return 2


def bench_run(ref: str | None, *, keras: bool = False) -> Any:
    """The run a bench measures: ``ref`` (an id or a folder), else the app's default model; None when there is none.
    ``keras``: the bench times a Keras model (a forward pass, Grad-CAM): without ``ref``, the default among the
    whole-page Keras runs when the app's default is not one (a measurement model or an ensemble)."""
    from ecg_core.core import paths
    from ecg_core.ml import registry

    if ref is None:
        runs = registry.list_runs(paths.models_dir())
        if keras:  # a whole-page Keras CNN: not a measurement model, an ensemble or a per-lead CNN
            runs = [r for r in runs if not r.is_measurement and r.meta.get("model_kind") != registry.ENSEMBLE_KIND
                    and r.input_kind == "report_image"]
        default = registry.choose_default(runs)
        if default is None:
            return None
        ref = default.run_id
    return registry.resolve_run(ref, usable=True)
