"""The spectral image dataset: segments of WFDB records rendered as a folder-per-class PNG set, and its splits.

:func:`build_spectral_dataset` turns records into a folder-per-class PNG set with ``index.csv``,
``spectral_config.json`` (both configs, their hashes, classes, records, counts) and ``dataset_info.json`` (what the
training job stores in the run: the input kind, the ``spectral`` entry of ``run.json`` and the files to copy);
:func:`load_spectral_dataset` reads it back. :func:`record_split` and :func:`record_kfold` assign whole records
(patients) to splits.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ecg_core.core.atomic import atomic_write_json, atomic_write_text
from ecg_core.core.errors import ConfigError, DatasetError
from ecg_core.core.labels import INPUT_SPECTRAL_BEAT, get_preset
from ecg_core.signals.records import read_record
from ecg_core.signals.segments import Segment, SegmentConfig, extract_segments, segments_array, segments_frame
from ecg_core.signals.spectral import SpectralConfig, segments_to_images

INDEX_FILE = "index.csv"
CONFIG_FILE = "spectral_config.json"
SPLITS: tuple[str, ...] = ("train", "val", "test")
DATASET_INFO_FILE = "dataset_info.json"


# --------------------------------------------------------------------------------------------------------------
# Record-level splits
# --------------------------------------------------------------------------------------------------------------
def _record_table(index_df: pd.DataFrame, *, where: str) -> pd.DataFrame:
    missing = {"record", "label"} - set(index_df.columns)
    if missing:
        raise ConfigError(
            f"{where}: index_df lacks column(s) {', '.join(sorted(missing))}; expected at least 'record' and "
            "'label' (as in index.csv of build_spectral_dataset)."
        )
    if index_df.empty:
        raise ConfigError(f"{where}: index_df is empty; expected at least one row.")
    return pd.crosstab(index_df["record"].astype(str), index_df["label"].astype(str))


def _assign_groups(
    counts: pd.DataFrame,
    targets: dict[str, int],
    priority: list[str],
    rng: np.random.Generator,
    *,
    largest_to: str | None = None,
) -> dict[str, str]:
    """Greedy stratified assignment of records (rows of ``counts``) to groups with record-count ``targets``.

    Classes are visited rarest first (fewest records); for each, the groups still lacking the class get one
    unassigned record holding it, in ``priority`` order, while they have room — group ``largest_to`` the record with
    the most segments of that class, the others a random one. The remaining records fill the groups at random.
    """
    records = list(counts.index)
    assigned: dict[str, str] = {}
    room = dict(targets)
    has: dict[str, set[str]] = {g: set() for g in targets}
    order = sorted(counts.columns, key=lambda c: ((counts[c] > 0).sum(), counts[c].sum()))
    for cls in order:
        holders = [r for r in records if counts.at[r, cls] > 0 and r not in assigned]
        rng.shuffle(holders)
        for g in priority:
            if not holders:
                break
            if cls in has[g] or room[g] <= 0:
                continue
            pick = int(np.argmax([counts.at[r, cls] for r in holders])) if g == largest_to else len(holders) - 1
            r = holders.pop(pick)
            assigned[r] = g
            room[g] -= 1
            has[g] |= {c for c in counts.columns if counts.at[r, c] > 0}
    rest = [r for r in records if r not in assigned]
    rng.shuffle(rest)
    for r in rest:
        g = max(priority, key=lambda q: (room[q], -priority.index(q)))
        assigned[r] = g
        room[g] -= 1
    return assigned


def record_split(
    index_df: pd.DataFrame, *, test_frac: float = 0.2, val_frac: float = 0.1, seed: int = 0
) -> pd.DataFrame:
    """Assign whole records (patients) to ``'train'`` / ``'val'`` / ``'test'``; returns a copy with a ``split`` column.

    ``test_frac`` / ``val_frac`` are fractions of *records* (rounded, at least one record each when the fraction is
    > 0 and there are enough records; train keeps at least one). Roughly stratified: classes are placed rarest first
    so that train, then test, then val each hold as many classes as the records allow; for each class train takes
    the record with the most segments of it (training needs the data most), test and val a random one. The other
    records are drawn at random. Deterministic for a seed.
    """
    if not (0 <= test_frac < 1 and 0 <= val_frac < 1 and test_frac + val_frac < 1):
        raise ConfigError(
            f"record_split: expected 0 <= test_frac, val_frac and test_frac + val_frac < 1, received "
            f"test_frac={test_frac}, val_frac={val_frac}."
        )
    counts = _record_table(index_df, where="record_split")
    n = len(counts)
    n_test = max(1, int(round(test_frac * n))) if test_frac > 0 and n >= 2 else 0
    n_val = max(1, int(round(val_frac * n))) if val_frac > 0 and n - n_test >= 2 else 0
    if n_test + n_val >= n:
        raise ConfigError(
            f"record_split: {n} record(s) cannot give {n_test} test + {n_val} val records and keep one for training; "
            "add records or lower test_frac/val_frac."
        )
    targets = {"train": n - n_test - n_val, "test": n_test, "val": n_val}
    rng = np.random.default_rng(seed)
    assigned = _assign_groups(counts, targets, ["train", "test", "val"], rng, largest_to="train")
    out = index_df.copy()
    out["split"] = out["record"].astype(str).map(assigned)
    return out


def record_kfold(index_df: pd.DataFrame, *, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """Assign whole records to ``k`` folds (0..k-1); returns a copy with a ``fold`` column.

    Fold sizes differ by at most one record; classes are spread rarest first so that each fold holds as many
    classes as the records allow. Deterministic for a seed.
    """
    counts = _record_table(index_df, where="record_kfold")
    n = len(counts)
    if not isinstance(k, (int, np.integer)) or not 2 <= k <= n:
        raise ConfigError(f"record_kfold: k={k!r}; expected an integer 2 <= k <= number of records ({n}).")
    rng = np.random.default_rng(seed)
    folds = [f"f{i}" for i in rng.permutation(k)]  # random priority so no fold is always first
    targets = {f: n // k + (1 if i < n % k else 0) for i, f in enumerate(folds)}
    assigned = _assign_groups(counts, targets, folds, rng)
    out = index_df.copy()
    out["fold"] = out["record"].astype(str).map(lambda r: int(assigned[r][1:]))
    return out


# --------------------------------------------------------------------------------------------------------------
# Dataset builder
# --------------------------------------------------------------------------------------------------------------
def build_spectral_dataset(
    record_paths: list[Path],
    out_dir: Path,
    *,
    seg_cfg: SegmentConfig | None = None,
    spec_cfg: SpectralConfig | None = None,
    split_by: Literal["record"] | None = "record",
    test_frac: float = 0.2,
    val_frac: float = 0.1,
    max_per_class_per_record: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> pd.DataFrame:
    """Build a folder-per-class image dataset from WFDB records; returns the index DataFrame.

    Writes ``out_dir/<class_key>/<record>_<sample>.png`` (``sample`` at the record's own rate),
    ``out_dir/index.csv`` (columns ``path`` relative to ``out_dir``, ``label``, ``record``, ``sample``, then
    ``label_id``, ``time_s``, ``symbol``, ``kind`` and ``split`` when ``split_by='record'``),
    ``out_dir/spectral_config.json`` (both configs, their hashes, classes, records, counts) and
    ``out_dir/dataset_info.json`` (``{"input_kind": "spectral_beat", "run_meta": {"spectral": <spectral_config.json>},
    "copy_files": ["spectral_config.json"]}``: what the training job puts into the run). Everything is written to a
    temporary sibling folder first and renamed into place (a folder swap with ``os.replace``), so a crash leaves no
    half dataset.

    ``split_by='record'`` assigns whole records to train/val/test with :func:`record_split` *before* any capping;
    ``max_per_class_per_record`` then keeps at most that many random segments per (record, class) **in the training
    split only** — val/test keep every segment. With ``split_by=None`` no split is assigned and the cap applies to
    every record. ``progress(fraction, message)`` is called after each record.
    """
    t0 = time.perf_counter()
    seg_cfg = seg_cfg or SegmentConfig()
    spec_cfg = spec_cfg or SpectralConfig()
    out_dir = Path(out_dir)
    paths = [Path(p) for p in record_paths]
    if not paths:
        raise ConfigError("build_spectral_dataset: record_paths is empty; expected at least one WFDB record path.")
    if split_by not in ("record", None):
        raise ConfigError(f"build_spectral_dataset: split_by={split_by!r}; expected 'record' or None.")
    if max_per_class_per_record is not None and max_per_class_per_record < 1:
        raise ConfigError(
            f"build_spectral_dataset: max_per_class_per_record={max_per_class_per_record}; expected None or >= 1."
        )
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise DatasetError(
            f"build_spectral_dataset: out_dir={str(out_dir)!r} exists and is not empty; pass overwrite=True or "
            "choose a new folder."
        )
    ids = [p.with_suffix("").name if p.suffix in (".hea", ".dat", ".atr") else p.name for p in paths]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(
            f"build_spectral_dataset: record ids {dupes} occur more than once in record_paths; image names "
            "<record>_<sample>.png would collide. Pass each record once."
        )
    preset = get_preset(seg_cfg.preset)
    report = progress or (lambda fraction, message: None)

    # 1. segments of every record (kept in memory: float32, ~0.7 KB per segment at 250 Hz)
    per_record: dict[str, list[Segment]] = {}
    record_fs: dict[str, float] = {}  # the source rates, stored so that a page can compare a new record's rate
    for i, p in enumerate(paths):
        rec = read_record(p)
        record_fs[rec.record_id] = float(rec.fs)
        per_record[rec.record_id] = [g for g in extract_segments(rec, cfg=seg_cfg) if g.label is not None]
        report(0.3 * (i + 1) / len(paths), f"segmented {rec.record_id} ({len(per_record[rec.record_id])} segments)")
    frames = [segments_frame(s) for s in per_record.values() if s]
    if not frames:
        raise DatasetError(
            "build_spectral_dataset: no labelled segment was found in the records; expected beat annotations "
            "(.atr) or rhythm annotations of SegmentConfig.rhythm_classes."
        )
    meta = pd.concat(frames, ignore_index=True)
    meta["row"] = np.concatenate([np.arange(len(s)) for s in per_record.values() if s])

    # 2. record-level split, then caps inside the training split only
    if split_by == "record":
        meta = record_split(meta, test_frac=test_frac, val_frac=val_frac, seed=seed)
    if max_per_class_per_record is not None:
        capped = meta["split"] == "train" if "split" in meta else pd.Series(True, index=meta.index)
        rng = np.random.default_rng(seed)
        keep = np.ones(len(meta), dtype=bool)
        for _, grp in meta[capped].groupby(["record", "label"], sort=True):
            if len(grp) > max_per_class_per_record:
                drop = rng.choice(grp.index.to_numpy(), len(grp) - max_per_class_per_record, replace=False)
                keep[drop] = False
        meta = meta[keep].reset_index(drop=True)

    # 3. render and write into a temporary sibling folder
    import cv2

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for key in preset.keys:
            (tmp / key).mkdir()
        paths_out = np.empty(len(meta), dtype=object)
        groups = list(meta.groupby("record", sort=False))
        for gi, (rid, grp) in enumerate(groups):
            segs = per_record[str(rid)]
            rows = grp["row"].to_numpy()
            for start in range(0, len(rows), 512):
                chunk = rows[start : start + 512]
                stack = segments_to_images(segments_array([segs[r] for r in chunk]), seg_cfg.fs_target, cfg=spec_cfg)
                for j, r in enumerate(chunk):
                    g = segs[r]
                    rel = f"{g.label}/{g.record}_{g.sample}.png"
                    img = stack.images[j]
                    if img.ndim == 3:
                        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
                    if not cv2.imwrite(str(tmp / rel), img):
                        raise DatasetError(f"build_spectral_dataset: cannot write {tmp / rel}; check disk space.")
                    paths_out[grp.index[start + j]] = rel
            report(0.3 + 0.7 * (gi + 1) / len(groups), f"rendered {rid} ({len(rows)} images)")
        index = pd.DataFrame(
            {
                "path": paths_out,
                "label": meta["label"],
                "record": meta["record"].astype(str),
                "sample": meta["sample"].astype(np.int64),
                "label_id": meta["label"].map({c.key: c.id for c in preset.classes}).astype(np.int64),
                "time_s": meta["time_s"].round(4),
                "symbol": meta["symbol"],
                "kind": meta["kind"],
            }
        )
        if "split" in meta:
            index["split"] = meta["split"]
        atomic_write_text(tmp / INDEX_FILE, index.to_csv(index=False))
        counts = index.groupby(["split", "label"] if "split" in index else ["label"]).size()
        meta_json = {
            "created_by": "ecg_core.signals.spectral_dataset.build_spectral_dataset",
            "preset": preset.name,
            "classes": preset.keys,
            "segment_config": seg_cfg.to_dict(),
            "segment_config_hash": seg_cfg.config_hash(),
            "spectral_config": spec_cfg.to_dict(),
            "spectral_config_hash": spec_cfg.config_hash(),
            "records": sorted(index["record"].unique().tolist()),
            "record_fs": {r: record_fs[r] for r in sorted(index["record"].unique().tolist()) if r in record_fs},
            "split_by": split_by,
            "test_frac": test_frac,
            "val_frac": val_frac,
            "max_per_class_per_record": max_per_class_per_record,
            "seed": seed,
            "n_images": int(len(index)),
            "counts": {"/".join(map(str, k if isinstance(k, tuple) else (k,))): int(v) for k, v in counts.items()},
            "build_seconds": round(time.perf_counter() - t0, 2),
        }
        atomic_write_text(tmp / CONFIG_FILE, json.dumps(meta_json, indent=2, sort_keys=True))
        # the generic description the training job reads (input kind, run.json entries, files to copy into the run)
        atomic_write_json(tmp / DATASET_INFO_FILE, {"input_kind": INPUT_SPECTRAL_BEAT,
                                                    "run_meta": {"spectral": meta_json}, "copy_files": [CONFIG_FILE]})
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report(1.0, f"wrote {len(index)} images to {out_dir}")
    return index


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is moved aside first and deleted after the swap. (A whole-folder
    swap, which :mod:`ecg_core.core.atomic` does not cover; index.csv and the JSON files inside are written with it,
    the PNG files with ``cv2.imwrite``.)"""
    old = None
    if dst.exists():
        old = dst.parent / f".{dst.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_spectral_dataset(out_dir: str | Path) -> tuple[pd.DataFrame, SegmentConfig, SpectralConfig]:
    """Read ``index.csv`` and ``spectral_config.json`` of a built dataset: (index, seg_cfg, spec_cfg)."""
    d = Path(out_dir)
    idx, cfgp = d / INDEX_FILE, d / CONFIG_FILE
    if not idx.is_file() or not cfgp.is_file():
        raise DatasetError(
            f"load_spectral_dataset: {d} lacks {INDEX_FILE} or {CONFIG_FILE}; expected a folder written by "
            "build_spectral_dataset."
        )
    meta = json.loads(cfgp.read_text())
    index = pd.read_csv(idx, dtype={"record": str})
    return index, SegmentConfig.from_dict(meta["segment_config"]), SpectralConfig.from_dict(meta["spectral_config"])


def spectral_class_counts(index_df: pd.DataFrame) -> pd.DataFrame:
    """Segments per class (columns) and split (rows, or one ``'all'`` row without a split column)."""
    if "split" in index_df:
        return pd.crosstab(index_df["split"], index_df["label"])
    return index_df.groupby("label").size().to_frame("all").T


__all__ = [
    "CONFIG_FILE",
    "DATASET_INFO_FILE",
    "INDEX_FILE",
    "build_spectral_dataset",
    "load_spectral_dataset",
    "record_kfold",
    "record_split",
    "spectral_class_counts",
]
