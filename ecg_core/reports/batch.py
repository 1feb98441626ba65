"""Batch prediction: a model over every file of a folder (or an uploaded zip), one CSV row per file.

What the ``predict`` command and the Explain page's batch mode run. A bad file never stops the batch: it gets a
row with a reason (:data:`REASON_UNREADABLE`, :data:`REASON_NOT_ECG`). Files are decoded like the Explain page's
single report (:func:`ecg_core.reports.pipeline.decode_for_model`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError, EcgCoreError
from ecg_core.core.hashing import file_hash
from ecg_core.xai.explainer import Explainer, predict_proba

ProgressFn = Callable[[int, int], None]

REASON_UNREADABLE = "unreadable"
REASON_NOT_ECG = "not an ECG"


def list_batch_files(folder: str | Path) -> list[Path]:
    """Every regular file under ``folder`` (recursive, sorted), except hidden ones and ``.json`` sidecars: each
    becomes one row of :func:`predict_files`, readable or not."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise ConfigError(f"folder {str(root)!r} does not exist; pass a folder of report images (or a zip)")
    if root.is_file():
        return [root]
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or p.suffix.lower() == ".json" or not p.is_file():
            continue
        out.append(p)
    return out


class BatchPredictor:
    """The forward pass of batch prediction: class probabilities and (with an OOD profile that has a feature
    space) the embedding from one pass of a two-output model (:func:`ecg_core.reports.ood.embedding_model`), on
    batches of exactly ``batch_size`` rows: a short last batch is padded with zeros and the padding's rows dropped
    (rows are independent in inference, and one input shape means one compiled predict step instead of a second
    trace). :meth:`warm_up` compiles that step before the first files are ready (what a model load should include:
    ``predict`` does it while loading the model)."""

    def __init__(self, model: Any, ood: Any = None, *, batch_size: int = 16) -> None:
        m = model.model if isinstance(model, Explainer) else model
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1; received {batch_size!r}")
        self.model = m
        self.batch_size = batch_size
        self.two = None
        if ood is not None and not isinstance(ood, str) and getattr(ood, "embedding", None) is not None:
            from ecg_core.reports.ood import embedding_model

            self.two = embedding_model(m, ood.embedding.layer)  # probabilities and embedding in one forward pass

    def warm_up(self) -> None:
        """One pass on a batch of zeros (compiles the predict step; no result kept)."""
        shape = tuple(int(d) for d in self.model.input_shape[1:])
        self(np.zeros((self.batch_size, *shape), np.float32))

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities (n, k) float64, embeddings (n, d) or None) of ``x`` (n <= batch_size rows)."""
        n = len(x)
        if 0 < n < self.batch_size and hasattr(self.model, "predict_on_batch"):
            x = np.concatenate([x, np.zeros((self.batch_size - n, *x.shape[1:]), x.dtype)])
        if self.two is not None:
            out = self.two.predict_on_batch(x)
            return (np.asarray(out[0], dtype=np.float64)[:n], np.asarray(out[1]).reshape(len(x), -1)[:n])
        return _batch_predict(self.model, x)[:n], None


def predict_files(model: Any, cfg: Any, files: Sequence[str | Path], *, class_names: Sequence[str],
                  root: str | Path | None = None, check: bool = True, batch_size: int = 16,
                  progress: ProgressFn | None = None, workers: int | None = None,
                  cache_root: str | Path | None = None, ood: Any = "none",
                  predictor: BatchPredictor | None = None) -> pd.DataFrame:
    """Predict every file; a bad file never stops the batch.

    Columns: ``path`` (relative to ``root`` when given), ``predicted`` (class name, or empty), ``reason`` (why
    there is no prediction: ``unreadable: ...``, ``not an ECG: ...``; empty otherwise), ``ecg_score``, then
    ``prob_<class>`` per class (empty when there is no prediction). ``cfg`` is the run's
    :class:`~ecg_core.imaging.preprocess.PreprocessConfig`; ``check`` runs :func:`ecg_core.reports.ecg_check.check_ecg`
    first. Rows follow the order of ``files``.

    ``ood``: the run's :class:`~ecg_core.reports.ood.OodProfile`, or ``None`` for a run without one: every predicted
    row then gets ``in_distribution`` ('true'/'false', '' when unknown) and ``ood_reason`` (plain words, see
    :func:`ecg_core.reports.ood.assess`); the report descriptor shares the ECG check's analysis of the traces and the
    embedding the prediction's forward pass. The default ``"none"`` leaves both columns out.

    Speed: JPEGs are decoded at a reduced DCT scale (Pillow draft mode) no smaller than what the check
    (:data:`~ecg_core.reports.ecg_check.WORK_WIDTH` px wide) and the preprocessing
    (:func:`~ecg_core.imaging.preprocess.draft_size`, as for the training cache) need
    (:func:`~ecg_core.reports.pipeline.decode_draft_size`), like the Explain page's single-report decode: a JPEG
    at least twice that size gets slightly different probabilities than from a full-size decode. ``workers``
    threads (default: the CPU count, at most 4) decode, check and preprocess the next files while the model
    predicts the current batch (``predict_on_batch``). ``cache_root`` (the app's cache folder): reuse and fill the
    on-disk caches of preprocessed arrays (shared with training) and of check verdicts, so a folder seen before is
    not decoded again; the entries are written on threads of their own (each write waits for its fsync), all
    written when this returns, and a cache that cannot be written leaves its entries out without failing a file.
    ``predictor``: the :class:`BatchPredictor` of ``model`` and ``ood`` (built here when not given; the
    ``predict`` command builds and warms it up while loading the model).
    """
    m = model.model if isinstance(model, Explainer) else model
    names = list(class_names)
    if len(names) != int(m.output_shape[-1]):
        raise ConfigError(f"class_names lists {len(names)} classes; the model has {int(m.output_shape[-1])} outputs")
    from concurrent.futures import Future, ThreadPoolExecutor

    base = Path(root) if root is not None else None
    n = len(files)
    rows = [batch_row(f, base, names) for f in files]
    # cache writes (fsync'd, ~2.5 ms of waiting each, three per new file) run on their own threads, so that the
    # threads preparing files never wait on the disk; all done before this returns
    writer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="predict-cache") if cache_root is not None else None
    caches = _BatchCaches.under(cache_root, writer=writer) if cache_root is not None else None
    memo = _RunMemo()  # byte-identical copies in the folder: prepared once
    pending: list[tuple[int, np.ndarray]] = []
    with_ood = not (isinstance(ood, str) and ood == "none")
    descs: dict[int, Any] = {}
    if predictor is None:
        predictor = BatchPredictor(m, ood if with_ood else None, batch_size=max(1, int(batch_size)))
    elif predictor.model is not m:
        raise ConfigError("predictor was built for another model")

    def flush() -> None:
        if not pending:
            return
        probs, emb = predictor(np.stack([x for _, x in pending]))
        for j, ((idx, _), p) in enumerate(zip(pending, probs)):
            rows[idx]["predicted"] = names[int(np.argmax(p))]
            for name, v in zip(names, p):
                rows[idx][f"prob_{name}"] = float(v)
            if with_ood:
                from ecg_core.reports.ood import assess, verdict_columns

                verdict = assess(descs.pop(idx, None), ood, embedding=None if emb is None else emb[j : j + 1])
                rows[idx].update(verdict_columns(verdict))
        pending.clear()

    n_workers = max(1, int(workers)) if workers is not None else _batch_workers()
    window = max(2 * int(batch_size), 4 * n_workers)  # files prepared ahead of the model
    pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="predict-files")
    futures: dict[int, Future] = {}
    try:
        submitted = 0
        for i in range(n):
            while submitted < n and submitted < i + window:
                futures[submitted] = pool.submit(_batch_prepare, Path(files[submitted]), cfg, check, caches,
                                                 with_ood, memo)
                submitted += 1
            x, score, reason, desc = futures.pop(i).result()
            if desc is not None:
                descs[i] = desc
            row = rows[i]
            row["ecg_score"] = score
            row["reason"] = reason
            if x is not None:
                pending.append((i, x))
            if len(pending) >= batch_size:
                flush()
            if progress is not None:
                progress(i + 1, n)
        flush()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if writer is not None:
            writer.shutdown(wait=True)
    ood_cols = ["in_distribution", "ood_reason"] if with_ood else []
    for row in rows if with_ood else ():
        row.setdefault("in_distribution", "")
        row.setdefault("ood_reason", "")
    return pd.DataFrame(rows, columns=["path", "predicted", "reason", "ecg_score"] + [f"prob_{c}" for c in names]
                        + ood_cols)


def batch_row(f: str | Path, base: Path | None, names: Sequence[str]) -> dict[str, Any]:
    """The empty CSV row of one file (path shown relative to ``base`` when it lies below it) of :func:`predict_files`
    and of the measurement / per-lead predictions."""
    p = Path(f)
    try:
        shown = str(p.relative_to(base)) if base is not None else str(p)
    except ValueError:
        shown = str(p)
    row: dict[str, Any] = {"path": shown, "predicted": "", "reason": "", "ecg_score": np.nan}
    row.update({f"prob_{n}": np.nan for n in names})
    return row


def _batch_workers() -> int:
    import os

    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
                      4))



@dataclass(frozen=True)
class _BatchCaches:
    """The on-disk caches :func:`predict_files` reuses: preprocessed arrays (the training job's own cache, keyed
    by content hash and configuration) and ECG-check verdicts (keyed by content hash)."""

    arrays: Any  # ecg_core.imaging.preprocess.PreprocessCache
    checks: Any  # ecg_core.reports.ecg_check.CheckCache
    descriptors: Any = None  # ecg_core.reports.ood.DescriptorCache
    #: where :meth:`put` runs the writes (a thread pool), or None: in the calling thread
    writer: Any = None

    @classmethod
    def under(cls, root: str | Path, writer: Any = None) -> _BatchCaches:
        from ecg_core.imaging.preprocess import PreprocessCache
        from ecg_core.reports.ecg_check import CheckCache
        from ecg_core.reports.ood import DescriptorCache

        return cls(PreprocessCache(Path(root) / "preprocess"), CheckCache(Path(root) / "ecg_check"),
                   DescriptorCache(Path(root) / "ood_descriptor"), writer)

    def put(self, cache: Any, *args: Any) -> None:
        """``cache.put(*args)``, on the writer threads when there are some. A cache is an optimisation: a write
        that fails (full disk, read-only folder) leaves the entry out and never fails the file."""
        if self.writer is None:
            _put_quietly(cache, args)
        else:
            self.writer.submit(_put_quietly, cache, args)


def _put_quietly(cache: Any, args: tuple[Any, ...]) -> None:
    try:
        cache.put(*args)
    except (OSError, EcgCoreError):  # the entry is left out; the next run computes it again
        pass


@dataclass
class _Slot:
    """One distinct file content of a batch: set when its preparation is done."""

    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None  # an unexpected error of the preparation: raised for every copy too
    name: str = ""  # the file that was prepared (its name in the reason is the copy's own in a copy's row)


@dataclass
class _RunMemo:
    """Results of :func:`_prepare_bytes` by content hash within one :func:`predict_files` call, so that the
    byte-identical copies of a folder (the Mendeley dataset holds 928 files of 491 distinct images) are decoded,
    checked and preprocessed once, also those prepared at the same time or without the on-disk caches. The first
    worker to claim a hash prepares it; the others wait for its result (the claimer is already running, so a wait
    cannot deadlock). Only the ``size`` most recently claimed contents are kept (memory stays bounded on a large
    folder; an older copy is prepared again, or found in the on-disk caches)."""

    size: int = 256
    slots: OrderedDict[str, _Slot] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, h: str) -> tuple[_Slot, bool]:
        """(the hash's slot, whether the caller owns it and must prepare it)."""
        with self.lock:
            slot = self.slots.get(h)
            if slot is not None:
                return slot, False
            slot = self.slots[h] = _Slot()
            while len(self.slots) > self.size:  # the oldest: done long ago (a waiter holds its own reference)
                self.slots.popitem(last=False)
            return slot, True


def _batch_prepare(p: Path, cfg: Any, check: bool, caches: _BatchCaches | None = None, describe: bool = False,
                   memo: _RunMemo | None = None) -> tuple[np.ndarray | None, float, str, Any]:
    """Decode, check and preprocess one file (in a worker thread): (model input or None, ECG score, reason,
    report descriptor or None). ``describe``: also :func:`ecg_core.reports.ood.describe_report` of a report that
    passed the check (cached by content hash like the verdicts). ``memo``: a copy of a file this batch has
    already prepared (same bytes) gets that file's result.

    With ``caches``, a file whose verdict and array are cached is not decoded at all, and what is computed is
    stored; the model input is then the cached uint8 array / 255 (exactly what training fed the model), also on
    the first run, so that a first and a second run give the same probabilities."""
    from ecg_core.imaging.loader import read_bytes

    try:
        data = read_bytes(p)
    except EcgCoreError as e:
        return None, np.nan, f"{REASON_UNREADABLE}: {e}", None
    except MemoryError as e:
        return None, np.nan, f"{REASON_UNREADABLE}: {type(e).__name__}: {e}", None
    h = file_hash(data) if caches is not None or memo is not None else ""
    if memo is None:
        return _prepare_bytes(data, p.name, h, cfg, check, caches, describe)
    slot, owner = memo.claim(h)
    if not owner:
        slot.done.wait()
        if slot.error is not None:
            raise slot.error
        x, score, reason, desc = slot.result
        return x, score, reason.replace(slot.name, p.name) if slot.name and reason else reason, desc
    slot.name = p.name
    try:
        slot.result = _prepare_bytes(data, p.name, h, cfg, check, caches, describe)
    except BaseException as e:
        slot.error = e
        raise
    finally:  # also on an unexpected error, so that no copy waits forever
        slot.done.set()
    return slot.result


def _prepare_bytes(data: bytes, name: str, h: str, cfg: Any, check: bool, caches: _BatchCaches | None,
                   describe: bool) -> tuple[np.ndarray | None, float, str, Any]:
    """:func:`_batch_prepare` of the file's bytes ``data`` and their content hash ``h``."""
    from ecg_core.imaging.preprocess import preprocess
    from ecg_core.reports.ecg_check import check_ecg
    from ecg_core.reports.ood import describe_report
    from ecg_core.reports.pipeline import decode_for_model

    score = np.nan
    desc = None
    try:
        chk = caches.checks.get(h) if caches is not None and check else None
        if chk is not None and not chk.is_ecg:
            return None, chk.score, f"{REASON_NOT_ECG}: " + "; ".join(chk.failed), None
        arr = caches.arrays.get(h, cfg) if caches is not None else None
        if describe and caches is not None and caches.descriptors is not None:
            desc = caches.descriptors.get(h)
        if arr is None or (check and chk is None) or (describe and desc is None):
            rgb, size = decode_for_model(data, name, cfg)  # the Explain page's decode
            scan = None
            if check and chk is None:
                chk = check_ecg(rgb, keep_scan=describe)
                scan = chk.scan
                if caches is not None:
                    caches.put(caches.checks, h, chk)  # the verdict only (not the scan)
            if chk is not None and not chk.is_ecg:
                return None, chk.score, f"{REASON_NOT_ECG}: " + "; ".join(chk.failed), None
            if describe and desc is None:  # only for a report that gets a prediction
                # the check's reduced copy and trace components (no second trace analysis); without them (a
                # cached verdict, --no-check) the descriptor makes the same scan itself
                desc = describe_report(rgb, scan=scan, original_size=size)
                if caches is not None and caches.descriptors is not None:
                    caches.put(caches.descriptors, h, desc)
            if arr is None:
                x = preprocess(rgb, cfg, keep_steps=False).final
                if caches is None:
                    return x, chk.score if chk is not None else score, "", desc
                arr = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
                caches.put(caches.arrays, h, cfg, arr)
        return arr.astype(np.float32) / np.float32(255.0), chk.score if chk is not None else score, "", desc
    except EcgCoreError as e:
        return None, score, f"{REASON_UNREADABLE}: {e}", None
    except (MemoryError, ValueError, cv2.error) as e:  # a hostile file must not stop the batch
        return None, score, f"{REASON_UNREADABLE}: {type(e).__name__}: {e}", None


def _batch_predict(m: Any, x: np.ndarray) -> np.ndarray:
    """Class probabilities (n, k) float64 of one batch: Keras's compiled predict step when there is one."""
    if hasattr(m, "predict_on_batch"):
        return np.asarray(m.predict_on_batch(x), dtype=np.float64)
    return predict_proba(m, x)


def extract_batch_zip(data: bytes, uploads_dir: str | Path) -> tuple[Path, list[tuple[str, str]]]:
    """Extract an uploaded zip into ``uploads_dir/batch-<hash>`` (reused when already there); returns the folder
    and the refused entries (see :func:`ecg_core.ml.zip_import.extract_zip`)."""
    from ecg_core.ml.zip_import import extract_zip

    dest = Path(uploads_dir) / f"batch-{file_hash(data)[:16]}"
    if dest.is_dir() and any(dest.iterdir()):
        return dest, []
    res = extract_zip(data, dest)
    return Path(res.root), list(res.skipped)
