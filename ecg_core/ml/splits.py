"""Leak-free splits of a dataset index: train/validation/test and k-fold by duplicate group, and the checks.

**Splits are by group**: every member of a duplicate group (:func:`ecg_core.ml.dataset.scan`'s ``group`` column)
lands in the same split, so copies of one image can never straddle train/validation/test. :func:`leakage` finds
groups that do (it is empty for these splits), :func:`random_file_split` is the leaky file-level split, kept only
for the leakage demonstration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError

__all__ = ["MIN_IMAGES_PER_SPLIT", "SPLITS", "few_images", "kfold_by_group", "leakage", "random_file_split",
           "split_by_group", "split_table"]

SPLITS = ("train", "val", "test")


def _group_labels(index: pd.DataFrame) -> pd.Series:
    """One label per group (the most common label of its members); only readable, labelled rows."""
    ok = index[(index["error"] == "") & (index["label"] >= 0)]
    return ok.groupby("group")["label"].agg(lambda s: int(s.value_counts().index[0]))


def split_by_group(
    index: pd.DataFrame, *, val_frac: float = 0.15, test_frac: float = 0.15, seed: int = 0
) -> pd.DataFrame:
    """Return a copy of ``index`` with a ``split`` column (train/val/test), assigned per duplicate group and
    stratified by class. Unreadable or unlabelled rows get ``split == ""``.

    Each class's groups are shuffled with ``seed``; ``round(n*test_frac)`` of them (at least 1 when the class has
    3 or more groups and the fraction is > 0) go to test, as many for ``val_frac`` to val, the rest to train.
    """
    for name, v in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0.0 <= v < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {v!r}")
    if val_frac + test_frac >= 1.0:
        raise ConfigError(f"val_frac + test_frac must be < 1, got {val_frac} + {test_frac}")
    glabels = _group_labels(index)
    rng = np.random.default_rng(seed)
    assign: dict[int, str] = {}
    for label in sorted(glabels.unique()):
        groups = np.array(sorted(glabels[glabels == label].index))
        rng.shuffle(groups)
        n = len(groups)
        n_test = _share(n, test_frac)
        n_val = _share(n - n_test, val_frac / (1.0 - test_frac) if test_frac < 1 else 0.0)
        for g in groups[:n_test]:
            assign[int(g)] = "test"
        for g in groups[n_test : n_test + n_val]:
            assign[int(g)] = "val"
        for g in groups[n_test + n_val :]:
            assign[int(g)] = "train"
    out = index.copy()
    labelled = (out["error"] == "") & (out["label"] >= 0)
    out["split"] = [assign.get(int(g), "") if ok else "" for g, ok in zip(out["group"], labelled)]
    out.attrs = dict(index.attrs, split_seed=seed, val_frac=val_frac, test_frac=test_frac, split_by="group")
    return out


def _share(n: int, frac: float) -> int:
    if frac <= 0 or n <= 1:
        return 0
    k = int(round(n * frac))
    if n >= 3:
        k = max(k, 1)
    return min(k, n - 1)


def random_file_split(
    index: pd.DataFrame, *, val_frac: float = 0.15, test_frac: float = 0.15, seed: int = 0
) -> pd.DataFrame:
    """A *leaky* file-level split (ignores duplicate groups), only for the leakage demonstration."""
    out = index.copy()
    usable = np.flatnonzero(((out["error"] == "") & (out["label"] >= 0)).to_numpy())
    rng = np.random.default_rng(seed)
    rng.shuffle(usable)
    n_test = int(round(len(usable) * test_frac))
    n_val = int(round(len(usable) * val_frac))
    split = np.array([""] * len(out), dtype=object)
    split[usable[:n_test]] = "test"
    split[usable[n_test : n_test + n_val]] = "val"
    split[usable[n_test + n_val :]] = "train"
    out["split"] = split
    out.attrs = dict(index.attrs, split_seed=seed, split_by="file")
    return out


def kfold_by_group(index: pd.DataFrame, *, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """Return a copy with a ``fold`` column (0..k-1, -1 for unusable rows) from scikit-learn's
    ``StratifiedGroupKFold`` over duplicate groups."""
    from sklearn.model_selection import StratifiedGroupKFold

    usable = (index["error"] == "") & (index["label"] >= 0)
    sub = index[usable]
    n_groups = sub["group"].nunique()
    if k < 2 or k > n_groups:
        raise ConfigError(f"k must be between 2 and the number of usable groups ({n_groups}), got {k}")
    folds = np.full(len(index), -1, dtype=int)
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    pos = np.flatnonzero(usable.to_numpy())
    for f, (_, test_idx) in enumerate(cv.split(sub, sub["label"].to_numpy(), sub["group"].to_numpy())):
        folds[pos[test_idx]] = f
    out = index.copy()
    out["fold"] = folds
    out.attrs = dict(index.attrs, kfold_seed=seed, k=k)
    return out


def leakage(index: pd.DataFrame, *, by: str = "split") -> pd.DataFrame:
    """Groups whose members sit in more than one split (or fold). Empty frame = no leakage.

    Columns: group, n_files, values (e.g. ``"test,train"``), example (one file of the group).
    """
    if by not in index.columns:
        raise ConfigError(f"the index has no column {by!r}; run a split first (columns: {', '.join(index.columns)})")
    sub = index[(index["group"] >= 0) & (index[by].astype(str) != "") & (index[by].astype(str) != "-1")]
    spread = sub.groupby("group")[by].agg(lambda s: ",".join(sorted(set(map(str, s)))))
    multi = spread[spread.str.contains(",")]
    if multi.empty:
        return pd.DataFrame(columns=["group", "n_files", "values", "example"])
    rows = [
        {
            "group": int(g),
            "n_files": int((sub["group"] == g).sum()),
            "values": v,
            "example": sub.loc[sub["group"] == g, "rel_path"].iloc[0],
        }
        for g, v in multi.items()
    ]
    return pd.DataFrame(rows)


def split_table(index: pd.DataFrame, *, by: str = "split") -> pd.DataFrame:
    """Files and distinct groups per class and split (rows: classes, columns: (split, files|groups))."""
    sub = index[index[by].astype(str) != ""]
    files = sub.pivot_table(index="class_name", columns=by, values="path", aggfunc="count", fill_value=0)
    groups = sub.pivot_table(index="class_name", columns=by, values="group", aggfunc="nunique", fill_value=0)
    order = [s for s in SPLITS if s in files.columns] + [s for s in files.columns if s not in SPLITS]
    out = pd.concat({"files": files[order], "distinct groups": groups[order]}, axis=1)
    return out


#: fewer distinct images of a class than this in one split make its per-class numbers rough (one image moves that
#: class's test recall by 100/n percentage points: 3 images give only 0, 33, 67 or 100 %)
MIN_IMAGES_PER_SPLIT = 10


def few_images(table: pd.DataFrame, *, minimum: int = MIN_IMAGES_PER_SPLIT) -> pd.DataFrame:
    """The (class, split) cells of a :func:`split_table` with fewer than ``minimum`` distinct images.

    Columns: class_name, split, images (distinct groups), files; sorted by images, then class and split order.
    """
    cols = ["class_name", "split", "images", "files"]
    if table is None or table.empty or "distinct groups" not in table.columns.get_level_values(0):
        return pd.DataFrame(columns=cols)
    groups, files = table["distinct groups"], table["files"]
    rows = [{"class_name": c, "split": s, "images": int(groups.loc[c, s]), "files": int(files.loc[c, s])}
            for c in groups.index for s in groups.columns if int(groups.loc[c, s]) < minimum]
    out = pd.DataFrame(rows, columns=cols)
    rank = {s: i for i, s in enumerate(SPLITS)}
    return out.sort_values(["images", "class_name", "split"], key=lambda col: col.map(rank) if col.name == "split"
                           else col).reset_index(drop=True)
