"""What a running training job reports and obeys: ``progress.jsonl``, ``history.csv``, the best checkpoint, and the
stop request (the run's ``STOP`` file or SIGTERM).

:class:`ProgressWriter` appends one JSON line per event (readers such as :func:`read_progress` and
:func:`ecg_core.ml.jobs.job_state` skip a torn last line); :func:`training_callbacks` are the Keras callbacks that
write the events, the per-epoch ``history.csv`` and ``checkpoints/best.keras`` (atomically), and stop the fit when
asked to.
"""

from __future__ import annotations

import json
import math
import signal
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ecg_core.core.atomic import atomic_write_text
from ecg_core.core.errors import EcgCoreError
from ecg_core.core.formatting import json_safe
from ecg_core.ml import registry
from ecg_core.ml.train_config import TrainConfig

__all__ = ["PROGRESS_FILE", "STOP_FILE", "ProgressWriter", "StopFlag", "StopRequested", "job_guard", "keep_best",
           "read_progress",
           "training_callbacks"]

STOP_FILE = "STOP"
PROGRESS_FILE = "progress.jsonl"


class StopRequested(Exception):
    """Raised inside the job when a stop was requested before any model existed."""


# ------------------------------------------------------------------------------------------------------- progress
class ProgressWriter:
    """Appends JSON lines to ``progress.jsonl`` (each line is flushed; readers skip a torn last line)."""

    def __init__(self, run_dir: Path, *, min_interval_s: float = 0.5) -> None:
        self.path = Path(run_dir) / PROGRESS_FILE
        self.min_interval_s = min_interval_s
        self._last = 0.0

    def write(self, event: dict[str, Any], *, force: bool = True) -> None:
        now = time.time()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        line = json.dumps({"t": round(now, 3), **json_safe(event)})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()


def end_run(run_dir: Path, writer: ProgressWriter, status: str, *, error: str | None = None,
            message: str | None = None, **meta: Any) -> None:
    """A job's last words: ``run.json`` gets ``status``, the finishing time, ``error`` (when given) and ``meta``;
    ``progress.jsonl`` the ``done`` event with ``message`` (default: ``error``). Used by every training job (Keras
    and measurement models) when it stops or fails."""
    registry.update_run(run_dir, status=status, finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                        **({"error": error} if error is not None else {}), **meta)
    text = message if message is not None else error
    writer.write({"phase": "done", "status": status, **({"message": text} if text is not None else {})})


def read_progress(run_dir: str | Path) -> list[dict[str, Any]]:
    """All complete lines of a run's ``progress.jsonl`` (a torn last line is skipped)."""
    p = Path(run_dir) / PROGRESS_FILE
    try:
        text = p.read_text(encoding="utf-8")
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


class StopFlag:
    """Set by SIGTERM or by the presence of the run's STOP file."""

    def __init__(self, run_dir: Path) -> None:
        self.stop_file = run_dir / STOP_FILE
        self.signalled = False

    def __call__(self) -> bool:
        return self.signalled or self.stop_file.exists()


@contextmanager
def job_guard(run_dir: Path, *, stopped_error: str, traceback_file: bool = False
              ) -> Iterator[tuple[ProgressWriter, StopFlag]]:
    """The frame of every training job (Keras, measurement, per-lead): gives the job its progress writer and stop
    flag (SIGTERM sets it, as does the run's STOP file) and ends the run when the body does not: a
    :class:`StopRequested` (a stop before any model existed) marks it ``stopped`` with ``stopped_error`` and is
    swallowed, so the caller returns its run folder after the ``with``; any other exception marks it ``failed``
    (an :class:`EcgCoreError` by its message, others with their type; ``traceback_file``: also the traceback in
    ``traceback.txt``) and propagates. The previous SIGTERM handler is put back."""
    writer, stop = ProgressWriter(run_dir), StopFlag(run_dir)
    old = None
    try:
        old = signal.signal(signal.SIGTERM, lambda *_: setattr(stop, "signalled", True))
    except ValueError:  # not the main thread (e.g. tests); the STOP file still works
        pass
    try:
        yield writer, stop
    except StopRequested:
        end_run(run_dir, writer, "stopped", error=stopped_error, message="stopped before any model existed")
    except EcgCoreError as e:
        end_run(run_dir, writer, "failed", error=str(e))
        raise
    except BaseException as e:
        end_run(run_dir, writer, "failed", error=f"{type(e).__name__}: {e}")
        if traceback_file:
            atomic_write_text(run_dir / "traceback.txt", traceback.format_exc())
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def keep_best(model: Any, run_dir: Path, stopped: bool) -> Any:
    """The model a Keras job keeps: its best checkpoint (``checkpoints/best.keras``, written here from ``model`` when
    no epoch wrote one), loaded back in safe mode; a stop before any checkpoint raises :class:`StopRequested`."""
    import keras

    best = run_dir / "checkpoints" / "best.keras"
    if not best.exists():
        if stopped:
            raise StopRequested()
        registry.save_model_atomic(model, best)
    return keras.models.load_model(str(best), compile=False, safe_mode=True)


def training_callbacks(run_dir: Path, writer: ProgressWriter, stop: StopFlag, cfg: TrainConfig, steps: int,
               *, prefix: str = "", save_best: bool = True, batch_images: int | None = None) -> list[Any]:
    per_batch = int(batch_images or cfg.batch_size)
    import keras

    class Progress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.t0 = time.time()
            self.best = math.inf
            self.rows: list[dict[str, Any]] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch
            self.t_epoch = time.time()
            self.t_fit = time.perf_counter()
            self.t_train_end = self.t_fit
            self.n_batches = 0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.t_train_end = time.perf_counter()
            self.n_batches = batch + 1
            logs = logs or {}
            writer.write({"phase": f"{prefix}train", "epoch": self.epoch + 1, "epochs": cfg.epochs,
                          "batch": batch + 1, "batches": steps, "loss": logs.get("loss"),
                          "accuracy": logs.get("accuracy")}, force=False)
            if stop():
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = dict(logs or {})
            lr = logs.get("learning_rate", logs.get("lr"))
            if lr is None:
                try:
                    lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                except Exception:  # optimizer without a plain learning rate (schedule)
                    lr = None
            row = {"epoch": epoch + 1, "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
                   "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
                   "lr": float(lr) if lr is not None else None, "seconds": round(time.time() - self.t_epoch, 2)}
            self.rows.append(row)
            if not prefix:
                atomic_write_text(run_dir / "history.csv", pd.DataFrame(self.rows).to_csv(index=False))
            vl = logs.get("val_loss")
            improved = vl is not None and math.isfinite(vl) and vl < self.best
            if improved:
                self.best = vl
                if save_best:
                    registry.save_model_atomic(self.model, run_dir / "checkpoints" / f"{prefix}best.keras")
            # training throughput of this epoch: from its start to the end of its last training batch (the
            # validation pass and the checkpoint are not counted); the first epoch includes graph tracing
            train_s = self.t_train_end - self.t_fit
            n_images = self.n_batches * per_batch
            writer.write({"phase": f"{prefix}epoch", "epochs": cfg.epochs, "best": improved, **row,
                          "train_seconds": round(train_s, 3), "train_images": n_images,
                          "images_per_s": round(n_images / train_s, 2) if train_s > 0 else None})
            if stop():
                self.model.stop_training = True

    return [
        Progress(),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=cfg.reduce_lr_patience,
                                          min_lr=1e-6),
    ]
