"""Memory: peak RSS of a real training job over ALL files of mendeley-dev at 384 px. Target <= 2.5 GB.

Runs the CLI (``python -m ecg_core train``) in a subprocess with a fresh ``ECG_INSIGHT_HOME`` (cold preprocessing
cache) and ``--keep-copies``: every file of the dataset is used (duplicate copies included; the split stays by
duplicate group, so copies never straddle train/val/test), every file goes through the preprocessing cache, and
the tf.data pipelines are built over all training/validation files; the test split is predicted at the end.
Input 384x384x3 (the zoo's native custom_cnn size; the 3-channel variant is the larger one), batch 16 (which the
job runs as micro-batches within its activation budget, ``TrainConfig.micro_batch``: 4 x 4 images at this size,
gradients accumulated), one epoch, capped at ``--steps`` training batches (the pipeline and the model are the same whatever the cap; the peak grows
during the first ~10 steps as TensorFlow's allocator pools fill, then levels off).

A reference child process then fits the same model (arch, input, batch size, steps) on random float32 arrays,
with no data pipeline and whole batches of 16: what a plain ``model.fit`` needs at this size.

Memory is measured three ways, and the largest counts:

* polling ``/proc/<pid>/status`` ``VmRSS`` of the job and all its descendants (summed) every ``--interval`` s;
* the kernel's own high-water mark ``VmHWM`` of each process of the tree (last value read before it exits);
* ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after the job exits (largest single child).

GB = 10^9 bytes. ratio = peak GB (target <= 2.5, lower is better).

    python bench/train_memory.py
    python bench/train_memory.py --size 384x384x1 --steps 4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, SHARED_DATA, cannot_run, emit, finish

BENCH = "train_memory"
GB = 1e9


def _size(text: str) -> tuple[int, int, int]:
    try:
        h, w, c = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"size must look like 384x384x3 (height x width x channels); got {text!r}") from e
    return h, w, c


def _status_kb(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    except (OSError, ValueError):
        pass
    return out


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (via /proc/<pid>/task/*/children)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                pass
    return pids


def _reference(shape: tuple[int, int, int], arch: str, batch_size: int, steps: int) -> None:
    """Child process: the model alone (same arch, input, batch size) fitted for ``steps`` steps on random float32
    arrays of 2 batches; prints its peak RSS. Shows how much of the job's peak is the model's training itself."""
    import numpy as np

    from ecg_core.ml import zoo

    def hwm_kb() -> int:
        return _status_kb(os.getpid()).get("VmHWM", 0)

    import tensorflow  # noqa: F401 - imported first, to measure the runtime alone

    after_import = hwm_kb()
    built = zoo.build_model(arch, input_shape=shape, n_classes=4, seed=0)
    zoo.compile_model(built.model, lr=1e-3)
    x = np.random.default_rng(0).random((2 * batch_size, *shape), dtype=np.float32)
    y = np.eye(4, dtype=np.float32)[np.arange(2 * batch_size) % 4]
    for _ in range(math.ceil(steps / 2)):  # 2 batches of data per call
        built.model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    print(json.dumps({"tf_import_kb": after_import, "peak_kb": hwm_kb()}))


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 6 and sys.argv[1] == "--_reference":
        _reference(_size(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED_DATA / "mendeley-dev")
    ap.add_argument("--arch", default="custom_cnn")
    ap.add_argument("--size", type=_size, default=(384, 384, 3), help="model input HxWxC (default 384x384x3)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=16,
                    help="training batches of the one epoch (0 = the whole epoch); the peak grows over the first "
                         "~10 steps (allocator pools) and then levels off")
    ap.add_argument("--interval", type=float, default=0.05, help="RSS polling interval, seconds")
    ap.add_argument("--target-gb", type=float, default=2.5)
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the reference run of the model alone (same arch/input/batch on random arrays)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (cache, run folder)")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        return cannot_run(BENCH, f"dataset folder {args.data} is absent (set ECG_INSIGHT_SHARED_DATA or pass --data)")
    if not Path("/proc/self/status").exists():
        return cannot_run(BENCH, "needs /proc (Linux) to read the job's RSS")

    h, w, c = args.size
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-memory-"))
    proc = None
    try:
        env = dict(os.environ, ECG_INSIGHT_HOME=str(tmp / "home"), ECG_INSIGHT_MODELS=str(tmp / "models"),
                   TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
        cmd = [sys.executable, "-m", "ecg_core", "train", "--data", str(args.data), "--arch", args.arch,
               "--keep-copies", "--height", str(h), "--width", str(w), "--channels", str(c), "--epochs", "1",
               "--batch-size", str(args.batch_size), "--steps-per-epoch", str(args.steps),
               "--models", str(tmp / "models"), "--run-id", "mem"]
        emit(BENCH, config={"data": str(args.data), "arch": args.arch, "input_shape": [h, w, c],
                            "batch_size": args.batch_size, "steps_per_epoch": args.steps, "epochs": 1,
                            "keep_copies": True, "split_by": "group", "augment": "light (default)"},
             command=" ".join(cmd[1:]))
        log = open(tmp / "job.log", "w")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        peak_tree_kb = peak_main_kb = 0
        hwm: dict[int, int] = {}
        phase_peak: dict[str, int] = {}
        progress = tmp / "models" / "mem" / "progress.jsonl"
        phase = "startup"
        n_polls = 0
        while proc.poll() is None:
            total = 0
            for p in _tree(proc.pid):
                st = _status_kb(p)
                total += st.get("VmRSS", 0)
                if "VmHWM" in st:
                    hwm[p] = max(hwm.get(p, 0), st["VmHWM"])
                if p == proc.pid:
                    peak_main_kb = max(peak_main_kb, st.get("VmRSS", 0))
            peak_tree_kb = max(peak_tree_kb, total)
            n_polls += 1
            if n_polls % 10 == 0:  # which phase of the job holds the peak
                try:
                    lines = progress.read_text().splitlines()
                    phase = json.loads(lines[-1]).get("phase", phase) if lines else phase
                except (OSError, ValueError, IndexError):
                    pass
            phase_peak[phase] = max(phase_peak.get(phase, 0), total)
            time.sleep(args.interval)
        wall = time.perf_counter() - t0
        log.close()
        ru_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kB on Linux
        if proc.returncode != 0:
            tail = (tmp / "job.log").read_text()[-2000:]
            raise RuntimeError(f"training job failed (exit {proc.returncode}): {tail}")

        run = tmp / "models" / "mem"
        meta = json.loads((run / "run.json").read_text())
        events = [json.loads(x) for x in progress.read_text().splitlines() if x.strip()]
        pre = [e for e in events if e.get("phase") == "preprocess"]
        start = next(e for e in events if e.get("phase") == "start")
        cache_files = sum(1 for _ in (tmp / "home" / "cache" / "preprocess").rglob("*.npy"))
        emit(BENCH, phase="job", wall_s=round(wall, 1), status=meta["status"],
             files_through_cache=int(pre[-1]["total"]) if pre else None, distinct_cache_entries=cache_files,
             split=meta["split"], train_rows_after_balancing=start["train_images"],
             val_files=start["val_images"], steps_per_epoch=meta["training"]["steps_per_epoch"],
             micro_batch=meta["training"].get("micro_batch"),
             accumulation_steps=meta["training"].get("accumulation_steps"))
        peak_kb = max(peak_tree_kb, max(hwm.values(), default=0), ru_kb)
        ref = None
        ref_steps = int(meta["training"]["steps_per_epoch"])
        if not args.no_reference:
            r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_reference", f"{h}x{w}x{c}",
                                args.arch, str(args.batch_size), str(ref_steps)], cwd=ROOT, env=env, capture_output=True, text=True)
            try:
                ref = json.loads(r.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                ref = None
            emit(BENCH, phase="reference_model_only",
                 peak_gb=round(ref["peak_kb"] * 1024 / GB, 3) if ref else None,
                 tf_import_gb=round(ref["tf_import_kb"] * 1024 / GB, 3) if ref else None,
                 job_minus_model_only_gb=round((peak_kb - ref["peak_kb"]) * 1024 / GB, 3) if ref else None,
                 steps=ref_steps,
                 note="same arch, input, batch size and number of passes, on random float32 arrays of 2 "
                      "batches, no data pipeline, no validation, whole batches (no micro-batching): what a plain "
                      "model.fit needs at this size"
                 if ref else r.stderr[-500:])
        peak_gb = peak_kb * 1024 / GB
        emit(BENCH, phase="memory", peak_gb=round(peak_gb, 3), polled_tree_peak_gb=round(peak_tree_kb * 1024 / GB, 3),
             polled_main_peak_gb=round(peak_main_kb * 1024 / GB, 3),
             vmhwm_gb={str(p): round(v * 1024 / GB, 3) for p, v in hwm.items()},
             ru_maxrss_children_gb=round(ru_kb * 1024 / GB, 3), polls=n_polls, interval_s=args.interval,
             peak_by_phase_gb={k: round(v * 1024 / GB, 3) for k, v in phase_peak.items()})
        return finish(BENCH, ratio=peak_gb, target=args.target_gb, higher_is_better=False, peak_gb=round(peak_gb, 3),
                      input_shape=[h, w, c], arch=args.arch, files=int(pre[-1]["total"]) if pre else None,
                      unit="GB = 1e9 bytes; ratio is the peak in GB")
    finally:
        if proc is not None and proc.poll() is None:  # interrupted while polling: end the job we started
            proc.kill()
            proc.wait()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
