"""Training input pipeline: images/s of the real training job vs ``model.fit`` on the same tensors in memory.

The job is the real CLI (``python -m ecg_core train``) in a subprocess with a fresh ``ECG_INSIGHT_HOME`` (so the
preprocessing cache starts cold): files on disk -> dataset scan -> preprocessing cache (uint8 ``.npy``) -> tf.data
with the augmentation preset of the default ``TrainConfig`` (``light``) -> ``model.fit``. Its per-epoch training
throughput comes from the epoch events of ``progress.jsonl`` (``train_seconds``/``images_per_s``: epoch start to
the end of its last training batch; validation and checkpointing are not counted).

The baseline builds the same architecture at the same input size and calls ``model.fit`` on float32 NumPy arrays
of the same training rows (after the balancing plan), loaded from the same (now warm) cache, with the same batch
size, steps per epoch and number of epochs, no augmentation, no validation.

Steady state = median over the epochs after the first (the first one traces the graph). ratio = job img/s /
preloaded img/s, target >= 0.9. Also reported: the one-off cost of building the cache (cold preprocess phase of
the job minus the same phase with a warm cache, which still scans and hashes every file) and the cold-cache first
epoch (from the job's first progress event, i.e. scan + preprocessing + model build + first epoch with tracing).

    python bench/train_pipeline.py                       # mendeley-dev, custom_cnn, default TrainConfig input size
    python bench/train_pipeline.py --size 384x384x3 --steps 6 --epochs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, SHARED_DATA, cannot_run, emit, finish

BENCH = "train_pipeline"


def _size(text: str) -> tuple[int, int, int]:
    try:
        h, w, c = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"size must look like 192x320x1 (height x width x channels); got {text!r}") from e
    return h, w, c


def _parse(argv: list[str] | None) -> argparse.Namespace:
    from ecg_core.imaging.preprocess import PreprocessConfig

    default = PreprocessConfig().input_shape
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED_DATA / "mendeley-dev")
    ap.add_argument("--arch", default="custom_cnn")
    ap.add_argument("--size", type=_size, default=default,
                    help=f"model input HxWxC (default: the TrainConfig default, {'x'.join(map(str, default))})")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=12, help="training batches per epoch (0 = the whole epoch)")
    ap.add_argument("--epochs", type=int, default=4, help="epochs (the first one is warm-up; needs >= 2)")
    ap.add_argument("--augment", default="light")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (cache, run folder)")
    args = ap.parse_args(argv)
    if args.epochs < 2:
        ap.error("--epochs must be >= 2 (the first epoch is not steady state)")
    return args


def _run_job(args: argparse.Namespace, tmp: Path) -> tuple[Path, float, float]:
    h, w, c = args.size
    env = dict(os.environ, ECG_INSIGHT_HOME=str(tmp / "home"), ECG_INSIGHT_MODELS=str(tmp / "models"),
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "ecg_core", "train", "--data", str(args.data), "--arch", args.arch,
           "--height", str(h), "--width", str(w), "--channels", str(c), "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--steps-per-epoch", str(args.steps), "--augment", args.augment,
           "--patience", str(max(8, args.epochs + 1)), "--models", str(tmp / "models"), "--run-id", "job"]
    t_launch = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.time() - t_launch
    if proc.returncode != 0:
        raise RuntimeError(f"training job failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return tmp / "models" / "job", t_launch, wall


def _timer_callback():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Per epoch: seconds from its start to the end of its last training batch (as the job measures it)."""

        def __init__(self) -> None:
            super().__init__()
            self.rows: list[dict] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = self.t1 = time.perf_counter()
            self.n = 0

        def on_train_batch_end(self, batch, logs=None):
            self.t1 = time.perf_counter()
            self.n = batch + 1

        def on_epoch_end(self, epoch, logs=None):
            self.rows.append({"epoch": epoch + 1, "train_seconds": self.t1 - self.t0, "batches": self.n})

    return EpochTimer()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    data = args.data
    if not data.is_dir():
        return cannot_run(BENCH, f"dataset folder {data} is absent (set ECG_INSIGHT_SHARED_DATA or pass --data)")
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml.progress import PROGRESS_FILE, read_progress
    from ecg_core.ml.train_config import TrainConfig
    from ecg_core.ml.train_data import prepare_data, training_rows

    h, w, c = args.size
    cfg = TrainConfig(data_dir=str(data), arch=args.arch, preprocess=PreprocessConfig(height=h, width=w, channels=c),
                      epochs=args.epochs, batch_size=args.batch_size, augment=args.augment,
                      steps_per_epoch=args.steps)
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-pipeline-"))
    try:
        emit(BENCH, config={"data": str(data), "arch": args.arch, "input_shape": [h, w, c], "batch_size": args.batch_size,
                            "steps_per_epoch": args.steps, "epochs": args.epochs, "augment": args.augment},
             loadavg_before=[round(v, 2) for v in os.getloadavg()])

        # 1. the real job, cold cache
        run_dir, t_launch, job_wall = _run_job(args, tmp)
        events = read_progress(run_dir)
        pre = [e for e in events if e.get("phase") == "preprocess"]
        t_pre0, last_pre = pre[0]["t"], pre[-1]
        cold_prep_s = last_pre["t"] - t_pre0
        n_files = int(last_pre["total"])
        start = next(e for e in events if e.get("phase") == "start")
        epochs = [e for e in events if e.get("phase") == "epoch"]
        if len(epochs) < 2:
            raise RuntimeError(f"the job ran {len(epochs)} epoch(s); see {run_dir / PROGRESS_FILE}")
        ep1 = epochs[0]
        cold_first_s = (start["t"] - t_pre0) + ep1["train_seconds"]
        job_ips = [e["images_per_s"] for e in epochs[1:]]
        job_med = statistics.median(job_ips)
        steps = ep1["train_images"] // args.batch_size

        # 2. the same data with a warm cache (in this process): cost of the scan + cache hits
        t0 = time.perf_counter()
        prepared = prepare_data(cfg, cache_root=tmp / "home" / "cache" / "preprocess")
        warm_prep_s = time.perf_counter() - t0
        build_s = max(0.0, cold_prep_s - warm_prep_s)
        emit(BENCH, phase="cache", files=n_files,
             cold_preprocess_phase_s=round(cold_prep_s, 2), warm_preprocess_phase_s=round(warm_prep_s, 2),
             cache_build_s=round(build_s, 2), cache_build_files_per_s=round(n_files / build_s, 1) if build_s else None,
             cold_phase_files_per_s=round(n_files / cold_prep_s, 1),
             note="cache_build_s = cold minus warm preprocess phase (both scan and hash every file)")
        emit(BENCH, phase="cold_first_epoch", seconds=round(cold_first_s, 2), images=ep1["train_images"],
             images_per_s=round(ep1["train_images"] / cold_first_s, 2),
             preprocess_s=round(cold_prep_s, 2), model_build_s=round(start["t"] - last_pre["t"], 2),
             first_epoch_train_s=ep1["train_seconds"], first_epoch_images_per_s=ep1["images_per_s"],
             launch_to_first_epoch_s=round(start["t"] - t_launch + ep1["train_seconds"], 2),
             note="from the job's first progress event (after imports): scan + preprocessing + model build + "
                  "first epoch incl. graph tracing; launch_to_first_epoch_s adds process start and imports")
        emit(BENCH, phase="job", images_per_s=round(job_med, 2), per_epoch_images_per_s=job_ips,
             train_rows=int(start["train_images"]), steps_per_epoch=steps, job_wall_s=round(job_wall, 1))

        # 3. model.fit on the same rows preloaded as float32 arrays
        import numpy as np

        from ecg_core.ml import zoo

        idx = prepared.index
        train_mask = (idx["split"] == "train").to_numpy()
        rows, _ = training_rows(idx[train_mask].assign(_pos=np.flatnonzero(train_mask)), cfg)
        pos = rows["_pos"].to_numpy()
        if len(pos) != int(start["train_images"]):
            raise RuntimeError(f"baseline rows ({len(pos)}) differ from the job's ({start['train_images']})")
        x = np.empty((len(pos), h, w, c), np.float32)
        for i, p in enumerate(pos):
            x[i] = np.load(prepared.cache_paths[p]) / np.float32(255.0)
        y = np.eye(len(prepared.class_names), dtype=np.float32)[idx["label"].to_numpy()[pos]]
        built = zoo.build_model(args.arch, input_shape=(h, w, c), n_classes=len(prepared.class_names),
                                seed=cfg.seed, bn_momentum=cfg.bn_momentum)
        zoo.compile_model(built.model, lr=cfg.lr)
        timer = _timer_callback()
        # one fit call per epoch: over in-memory arrays Keras does not repeat the data, so epochs x steps batches
        # may be more than one pass holds ("input ran out of data" cut the later epochs short)
        for _ in range(args.epochs):
            built.model.fit(x, y, batch_size=args.batch_size, epochs=1, steps_per_epoch=steps, shuffle=True,
                            callbacks=[timer], verbose=0)
        pre_ips = [round(r["batches"] * args.batch_size / r["train_seconds"], 2) for r in timer.rows[1:]]
        pre_med = statistics.median(pre_ips)
        emit(BENCH, phase="preloaded", images_per_s=round(pre_med, 2), per_epoch_images_per_s=pre_ips,
             first_epoch_images_per_s=round(timer.rows[0]["batches"] * args.batch_size / timer.rows[0]["train_seconds"], 2),
             array_mb=round(x.nbytes / 2**20, 1))
        return finish(BENCH, ratio=job_med / pre_med, target=0.9, higher_is_better=True,
                      job_images_per_s=round(job_med, 2), preloaded_images_per_s=round(pre_med, 2),
                      cache_build_s=round(build_s, 2), cold_first_epoch_s=round(cold_first_s, 2),
                      input_shape=[h, w, c], arch=args.arch, loadavg_after=[round(v, 2) for v in os.getloadavg()])
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
