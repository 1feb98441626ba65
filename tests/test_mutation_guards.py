"""Tests written to kill bugs that survived every other test (issue 20, a mutation check planted them one at a time).

Each test's docstring names the planted bug it catches; each was checked to fail with that bug in the product file
and to pass without it. They are fast (no TensorFlow) and are part of the `make mutate` selection.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import report_like

from ecg_core.core.errors import DatasetError
from ecg_core.ml import splits, zip_import
from ecg_core.xai import overlay


# ------------------------------------------------------------------------------------------------ zip import
def _png(seed: int) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(report_like(seed, size=(64, 48)), cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _zip(entries: dict[str, bytes]) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return b.getvalue()


def test_zip_import_never_shows_a_half_imported_target(tmp_path, monkeypatch):
    """Planted bug: ``extract_zip`` writes every entry straight into ``dest`` (``tmp = dest``; no final rename).

    A reader (the dataset picker, another session) must never see a partly filled target folder: while the entries
    are written, ``dest`` does not exist and no file is written under it; afterwards it holds every image.
    """
    dest = tmp_path / "uploads" / "zip-1"
    seen: list[tuple[Path, bool]] = []
    real = zip_import._copy_limited

    def spy(zf, info, target, *, limit):
        seen.append((Path(target), dest.exists()))
        return real(zf, info, target, limit=limit)

    monkeypatch.setattr(zip_import, "_copy_limited", spy)
    data = _zip({"Normal/a.png": _png(1), "Normal/b.png": _png(2), "MI/c.png": _png(3)})
    res = zip_import.extract_zip(data, dest)
    assert len(seen) == 3
    for target, dest_existed in seen:
        assert not dest_existed, "the target folder existed while the import was still running"
        assert dest not in target.parents, f"{target} was written inside the target folder, not a temporary one"
    assert sorted(res.extracted) == ["MI/c.png", "Normal/a.png", "Normal/b.png"]
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.png")) == sorted(res.extracted)
    assert [p.name for p in dest.parent.iterdir()] == ["zip-1"]  # the temporary folder is gone


def test_zip_import_that_fails_midway_leaves_no_target(tmp_path, monkeypatch):
    """Planted bug: the temporary folder not removed when the import fails (``shutil.rmtree(tmp)`` dropped); a
    failure after the first entry (a full disk) must leave neither ``dest`` nor a ``.zipimport-*`` folder."""
    dest = tmp_path / "out"
    real = zip_import._copy_limited
    calls = {"n": 0}

    def fail_second(zf, info, target, *, limit):
        calls["n"] += 1
        if calls["n"] == 2:
            import errno

            raise OSError(errno.ENOSPC, "No space left on device")
        return real(zf, info, target, limit=limit)

    monkeypatch.setattr(zip_import, "_copy_limited", fail_second)
    with pytest.raises(DatasetError, match="No space left"):
        zip_import.extract_zip(_zip({"Normal/a.png": _png(1), "Normal/b.png": _png(2)}), dest)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------- splits
def _index(n_groups_per_class: dict[int, int], *, copies: int = 1) -> pd.DataFrame:
    rows, g = [], 0
    for label, n in n_groups_per_class.items():
        for _ in range(n):
            for c in range(copies):
                rows.append({"path": f"/d/c{label}/g{g}_{c}.png", "rel_path": f"c{label}/g{g}_{c}.png",
                             "class_name": f"class{label}", "label": label, "error": "", "group": g})
            g += 1
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("n", "val_frac", "test_frac", "want"), [
    (100, 0.15, 0.15, (15, 15)),  # unrescaled val: round(85 * 0.15) = 13
    (40, 0.25, 0.2, (8, 10)),     # unrescaled val: round(32 * 0.25) = 8, not 10
    (60, 0.3, 0.0, (0, 18)),
    (20, 0.0, 0.25, (5, 0)),
])
def test_split_shares_are_fractions_of_the_whole(n, val_frac, test_frac, want):
    """Planted bug: val's share not rescaled, i.e. ``_share(n - n_test, val_frac)`` instead of
    ``val_frac / (1 - test_frac)``: val then gets 15 % of the remaining 85 % (13 of 100 groups, not 15)."""
    idx = _index({0: n, 1: n})
    out = splits.split_by_group(idx, val_frac=val_frac, test_frac=test_frac, seed=3)
    for label in (0, 1):
        s = out[out["label"] == label]["split"]
        assert ((s == "test").sum(), (s == "val").sum()) == want
        assert (s == "train").sum() == n - sum(want)
    assert out.attrs["split_seed"] == 3 and out.attrs["val_frac"] == val_frac and out.attrs["test_frac"] == test_frac


def test_split_seed_changes_the_split_and_is_reproducible():
    """Planted bug: ``seed`` ignored (``np.random.default_rng(0)``): every seed then gives the same split."""
    idx = _index({0: 30, 1: 30, 2: 30}, copies=2)
    by_seed = {s: splits.split_by_group(idx, seed=s)["split"].tolist() for s in range(4)}
    assert splits.split_by_group(idx, seed=2)["split"].tolist() == by_seed[2]  # same seed, same split
    assert len({tuple(v) for v in by_seed.values()}) == 4, "different seeds gave the same split"
    for s in range(4):
        assert splits.leakage(splits.split_by_group(idx, seed=s)).empty


def test_split_share_rounding_and_floor():
    """Planted bugs: ``_share`` without its floor of 1 test/val group for a class of >= 3 groups, or taking every
    group (no ``n - 1`` cap), or splitting a class of one group."""
    assert splits._share(3, 0.1) == 1  # round(0.3) = 0, raised to 1
    assert splits._share(2, 0.1) == 0  # only 2 groups: no floor
    assert splits._share(1, 0.5) == 0
    assert splits._share(4, 0.99) == 3  # at most n - 1
    assert splits._share(10, 0.0) == 0
    assert splits._share(10, 0.25) == 2  # round half to even: 2.5 -> 2
    assert splits._share(10, 0.35) == 4


def test_split_unlabelled_and_unreadable_rows_get_no_split():
    """Planted bug: unreadable (``error != ""``) or unlabelled (``label == -1``) rows assigned to a split."""
    idx = _index({0: 10, 1: 10})
    idx.loc[0, "error"] = "damaged"
    idx.loc[1, "label"] = -1
    out = splits.split_by_group(idx, seed=0)
    assert out.loc[0, "split"] == "" and out.loc[1, "split"] == ""
    assert (out.loc[2:, "split"] != "").all()


# -------------------------------------------------------------------------------------------- heatmap mapping
def test_heatmap_mapping_is_bilinear_with_pixel_centres():
    """Planted bug: nearest-neighbour (``cv2.INTER_NEAREST``) instead of bilinear mapping, contradicting the
    docstring. A horizontal ramp 0..3 over 4 columns stretched to 16 columns must follow the half-pixel bilinear
    formula ``clip((x + 0.5) * 4 / 16 - 0.5, 0, 3)``, with intermediate values, not 4 flat steps."""
    hm = np.tile(np.arange(4, dtype=np.float32), (2, 1))  # (2, 4)
    out = overlay.heatmap_to_original(hm, (3, 1, 19, 5), (8, 24))  # crop 16 wide, 4 high at x=3, y=1
    assert out.shape == (8, 24) and out.dtype == np.float32
    x = np.arange(16)
    want = np.clip((x + 0.5) * 4 / 16 - 0.5, 0, 3)
    for row in range(1, 5):
        np.testing.assert_allclose(out[row, 3:19], want, atol=1e-5)
    assert len(np.unique(np.round(out[1, 3:19], 4))) > 4
    assert (out[0] == 0).all() and (out[5:] == 0).all() and (out[:, :3] == 0).all() and (out[:, 19:] == 0).all()


def test_heatmap_mapping_exact_box_edges():
    """Planted bugs: an off-by-one crop paste (``x1 + 1`` / ``y1 - 1``), or swapped (W, H) in the size."""
    hm = np.ones((3, 5), np.float32)
    out = overlay.heatmap_to_original(hm, (2, 4, 9, 6), (10, 12))  # x 2..8, y 4..5
    assert out.sum() == pytest.approx(7 * 2)
    assert out[4, 2] == 1 and out[5, 8] == 1 and out[3, 2] == 0 and out[6, 8] == 0 and out[4, 1] == 0
    assert out[4, 9] == 0
    full = overlay.heatmap_to_original(hm, (0, 0, 12, 10), (10, 12))  # the whole image: edges allowed
    assert (full == 1).all()


# ----------------------------------------------------------------------------------------- training: dedupe
def test_training_keeps_one_file_per_duplicate_group(tiny_dataset, tmp_path):
    """Planted bug: ``prepare_data`` keeps every copy of a duplicate group (the ``drop_duplicates("group")`` of
    ``dedupe=True`` dropped). The fixture has 3 exact copies of one MI image and a resized JPEG copy of a Normal
    image, so 28 files form 24 groups: with dedupe the job trains and evaluates on 24 files, one per group;
    without it on all 28, every copy in the split of its group."""
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml.train_config import TrainConfig
    from ecg_core.ml.train_data import prepare_data

    pre = PreprocessConfig(height=32, width=48)
    dd = prepare_data(TrainConfig(data_dir=str(tiny_dataset), preprocess=pre, val_frac=0.2, test_frac=0.2),
                      cache_root=tmp_path / "cache")
    assert len(dd.index) == 24 and dd.index["group"].is_unique
    assert len(dd.cache_paths) == 24
    mi_copies = dd.index[dd.index["rel_path"].str.contains(r"Myocardial.*/(?:img0|copy\d)\.png", regex=True)]
    assert len(mi_copies) == 1  # one of the 4 identical files
    full = prepare_data(TrainConfig(data_dir=str(tiny_dataset), preprocess=pre, val_frac=0.2, test_frac=0.2,
                                    dedupe=False), cache_root=tmp_path / "cache")
    assert len(full.index) == 28 and full.index["group"].nunique() == 24
    assert splits.leakage(full.index).empty  # copies kept, but each group on one side
    # the same groups land in the same splits with and without dedupe
    same = full.index.drop_duplicates("group").set_index("group")["split"]
    assert (dd.index.set_index("group")["split"] == same.loc[dd.index["group"]].to_numpy()).all()


# ------------------------------------------------------------------- heatmap mapping / overlay: edge contracts
# (written against the mutants `make mutate` found surviving in ecg_core/xai/overlay.py)
def test_heatmap_mapping_accepts_every_valid_box_and_refuses_empty_ones():
    """Planted bugs: ``min(hm.shape) <= 1`` (a 1x1 map refused), ``1 <= x0`` / ``0 < y0`` (a box at the image's
    edge refused), ``x1 < W`` / ``y1 < H``, ``x0 <= x1`` / ``y0 <= y1`` (an empty box accepted); integer and
    float64 heatmaps must still map (``np.asarray(..., float32)`` dropped: OpenCV cannot resize int64)."""
    one = overlay.heatmap_to_original(np.array([[0.25]]), (0, 0, 5, 3), (3, 5))
    assert (one == np.float32(0.25)).all()
    ints = overlay.heatmap_to_original([[0, 1], [1, 0]], (0, 0, 4, 4), (4, 4))  # a nested list of ints
    assert ints.dtype == np.float32 and ints.max() == 1 and ints.min() == 0
    f64 = overlay.heatmap_to_original(np.eye(2), (1, 1, 3, 3), (4, 4))
    assert f64.dtype == np.float32 and np.array_equal(f64[1:3, 1:3], np.eye(2, dtype=np.float32))
    for box in [(0, 1, 5, 3), (1, 0, 5, 3), (0, 0, 4, 3), (0, 0, 5, 2)]:  # each edge of the image reachable
        assert overlay.heatmap_to_original(np.ones((2, 2)), box, (3, 5)).sum() > 0
    for box in [(2, 0, 2, 3), (0, 1, 5, 1), (0, 0, 6, 3), (0, 0, 5, 4), (-1, 0, 5, 3), (0, -1, 5, 3)]:
        with pytest.raises(overlay.ConfigError, match=r"crop_box must satisfy 0 <= x0 < x1 <= 5 and 0 <= y0 < y1 <= 3"):
            overlay.heatmap_to_original(np.ones((2, 2)), box, (3, 5))
    with pytest.raises(overlay.ConfigError, match=r"original_shape must be \(H, W\); received \(5,\)"):
        overlay.heatmap_to_original(np.ones((2, 2)), (0, 0, 1, 1), (5,))
    with pytest.raises(overlay.ConfigError, match=r"heatmap must be a 2-D array \(h, w\); received shape \(0, 3\)"):
        overlay.heatmap_to_original(np.ones((0, 3)), (0, 0, 1, 1), (5, 5))


def test_colorize_is_the_opencv_colormap_of_the_rounded_heat():
    """Planted bugs: ``* 256`` instead of ``* 255``, a clip floor of 1 or none (negative heat wraps around in uint8),
    no clip ceiling (heat > 1 wraps), the colormap argument ignored, a wrong list in the error message."""
    import cv2

    levels = (np.arange(256, dtype=np.float32) / 255).reshape(16, 16)
    for name, code in overlay.COLORMAPS.items():
        want = cv2.cvtColor(cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(16, 16), code), cv2.COLOR_BGR2RGB)
        assert np.array_equal(overlay.colorize(levels, colormap=name), want), name
    assert not np.array_equal(overlay.colorize(levels, colormap="hot"), overlay.colorize(levels, colormap="jet"))
    np.testing.assert_array_equal(overlay.colorize(np.full((2, 2), -0.7)), overlay.colorize(np.zeros((2, 2))))
    np.testing.assert_array_equal(overlay.colorize(np.full((2, 2), 1.7)), overlay.colorize(np.ones((2, 2))))
    with pytest.raises(overlay.ConfigError, match=r"colormap must be one of jet, turbo, inferno, viridis, hot; "
                                                  r"received 'rainbow'"):
        overlay.colorize(levels, colormap="rainbow")


def test_overlay_is_the_alpha_heat_weighted_mix():
    """Planted bugs: the blend weights changed (``1 + w``, ``2 - w``), heat not clipped to [0, 1] (negative heat or
    heat above 1 over- or under-weights the colour), NaN heat read as 1 instead of 0, alpha 1 refused or alpha up to 2
    accepted, booleans and strings accepted as alpha, 2-D or 4-channel images accepted, wrong error messages."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    heat = rng.random((6, 8)).astype(np.float32)
    for alpha in (0.0, 0.35, 1.0):
        out = overlay.overlay(rgb, heat, alpha=alpha, colormap="viridis")
        w = (alpha * heat)[:, :, None]
        want = (1 - w) * rgb + w * overlay.colorize(heat, colormap="viridis")
        assert out.dtype == np.uint8 and np.abs(out.astype(float) - want).max() <= 1.0, alpha
    clipped = np.clip(heat * 3 - 1, 0, 1)
    np.testing.assert_array_equal(overlay.overlay(rgb, heat * 3 - 1, alpha=0.8), overlay.overlay(rgb, clipped, alpha=0.8))
    nan = heat.copy()
    nan[2, 3] = np.nan
    assert np.array_equal(overlay.overlay(rgb, nan, alpha=0.9)[2, 3], rgb[2, 3])  # no heat: the report untouched
    for bad in (1.5, -0.1, True, "0.5", None):
        with pytest.raises(overlay.ConfigError, match=r"alpha must be in \[0, 1\]; received"):
            overlay.overlay(rgb, heat, alpha=bad)
    for img in (rgb[:, :, 0], np.zeros((6, 8, 4), np.uint8), rgb.astype(np.float32)):
        with pytest.raises(overlay.ConfigError, match=r"rgb must be uint8 \(H, W, 3\); received"):
            overlay.overlay(img, heat)
    with pytest.raises(overlay.ConfigError, match=r"heatmap_orig must have the image's shape \(6, 8\); received "
                                                  r"\(3, 3\)\. Fix: map it with heatmap_to_original first\."):
        overlay.overlay(rgb, np.zeros((3, 3)))


# -------------------------------------------------------------------------------------------- atomic writes
# (written against the mutants `make mutate` found surviving in ecg_core/core/atomic.py)
def test_atomic_write_content_temp_name_and_parents(tmp_path):
    """Planted bugs: the data not written (``lambda f: None``), JSON of ``None`` or without ``json_safe`` (NaN must
    be ``null``) or without the indent, missing parent folders not created (``parents=False``), the temporary file
    not hidden beside the target (``prefix``/``suffix`` of ``mkstemp`` dropped: a half-written file would show up
    in folder listings under a visible name)."""
    import json

    from ecg_core.core import atomic

    target = tmp_path / "a" / "b" / "run.json"
    atomic.atomic_write_json(target, {"x": float("nan"), "n": np.int64(3), "l": [1, 2]})
    text = target.read_text()
    assert json.loads(text) == {"x": None, "n": 3, "l": [1, 2]}
    assert text == json.dumps({"x": None, "n": 3, "l": [1, 2]}, indent=1)
    atomic.atomic_write_json(tmp_path / "flat.json", {"a": 1}, indent=None)
    assert (tmp_path / "flat.json").read_text() == '{"a": 1}'
    assert atomic.atomic_write_bytes(tmp_path / "x" / "y.bin", b"\x00\x01") == tmp_path / "x" / "y.bin"
    assert (tmp_path / "x" / "y.bin").read_bytes() == b"\x00\x01"
    atomic.atomic_write_text(tmp_path / "t.txt", "é")
    assert (tmp_path / "t.txt").read_bytes() == "é".encode()
    seen: list[str] = []

    def write(f):
        seen.extend(p.name for p in (tmp_path / "d").iterdir())
        f.write(b"1")

    atomic.atomic_write_via(tmp_path / "d" / "model.bin", write, suffix=".part")
    assert len(seen) == 1 and seen[0].startswith(".model.bin.") and seen[0].endswith(".part"), seen
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["model.bin"]


@pytest.mark.parametrize(("code", "hint"), [
    (28, "the disk is full; free some space"),  # ENOSPC
    (122, "the disk quota is used up; free some space"),  # EDQUOT (Linux)
    (30, "the file system is read-only"),  # EROFS
    (13, "the folder is not writable"),  # EACCES
    (1, "the folder is not writable"),  # EPERM
    (20, "a part of the path is a file, not a folder"),  # ENOTDIR
    (17, "a part of the path is a file, not a folder"),  # EEXIST
])
def test_write_error_names_the_file_and_the_cause(code, hint):
    """Planted bugs: a changed hint text, the path left out of the message (``str(None)``), ``e.strerror and e``."""
    import errno

    from ecg_core.core import atomic

    assert getattr(errno, {28: "ENOSPC", 122: "EDQUOT", 30: "EROFS", 13: "EACCES", 1: "EPERM", 20: "ENOTDIR",
                           17: "EEXIST"}[code]) == code
    err = atomic.write_error(Path("/m/run.json"), OSError(code, "Some reason"))
    assert isinstance(err, atomic.FileWriteError)
    assert str(err) == (f"cannot write '/m/run.json': Some reason ({hint}, or choose another folder with "
                        "ECG_INSIGHT_MODELS / ECG_INSIGHT_HOME).")


def test_write_error_without_a_known_errno_has_no_hint():
    """Planted bugs: ``e.errno or 1`` (errno None then reads as EPERM, "not writable"), the hint always added, a
    non-empty detail for an unknown errno."""
    from ecg_core.core import atomic

    assert str(atomic.write_error(Path("f"), OSError("boom"))) == "cannot write 'f': boom."
    assert str(atomic.write_error(Path("f"), OSError(5, "Input/output error"))) == \
        "cannot write 'f': Input/output error."


@pytest.mark.parametrize("where", ["mkdir", "mkstemp", "replace"])
def test_failed_atomic_write_names_the_target_and_leaves_no_temp(where, tmp_path, monkeypatch):
    """Planted bugs: ``write_error(None, e)`` in ``_guarded``/``_commit``/``_make_parent`` (the message no longer
    names the file), the temporary file not removed after a failed rename (``unlink_quietly(None)``)."""
    import errno
    import os
    import tempfile

    from ecg_core.core import atomic

    def fail(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    target = tmp_path / "sub" / "run.json"
    if where == "mkdir":
        monkeypatch.setattr(Path, "mkdir", fail)
    elif where == "mkstemp":
        monkeypatch.setattr(tempfile, "mkstemp", fail)
    else:
        monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(atomic.FileWriteError, match=rf"cannot write '{target}': Read-only file system \(the file "
                                                    "system is read-only"):
        atomic.atomic_write_bytes(target, b"data")
    monkeypatch.undo()
    left = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert left == [], left


# ---------------------------------------------------------------------------------- split table / leakage / audit
# (the functions `make mutate` found without any test of their exact output)
def test_split_table_counts_files_and_distinct_groups():
    """Planted bugs: files and groups swapped, a wrong split order (train, val, test first), groups counted as files
    (``count`` instead of ``nunique``)."""
    idx = _index({0: 10, 1: 6}, copies=2)
    out = splits.split_by_group(idx, seed=1)
    t = splits.split_table(out)
    assert list(t.columns) == [("files", "train"), ("files", "val"), ("files", "test"),
                               ("distinct groups", "train"), ("distinct groups", "val"),
                               ("distinct groups", "test")]
    assert list(t.index) == ["class0", "class1"]
    assert t.loc["class0", ("distinct groups", "test")] == 2 and t.loc["class0", ("files", "test")] == 4
    assert t.loc["class1", ("distinct groups", "val")] == 1 and t.loc["class1", ("files", "val")] == 2
    assert t.loc["class0", ("distinct groups", "train")] == 7 and t.loc["class0", ("files", "train")] == 14
    assert int(t["files"].to_numpy().sum()) == 32 and int(t["distinct groups"].to_numpy().sum()) == 16


def test_leakage_lists_each_straddling_group_once():
    """Planted bugs: leakage ignoring the unassigned ("" / -1) marks, counting the wrong files, a wrong example."""
    idx = _index({0: 4}, copies=3)
    idx["split"] = ["train"] * 3 + ["train", "test", "test"] + ["val", "", ""] + ["-1", "test", "test"]
    leaks = splits.leakage(idx)
    assert list(leaks.columns) == ["group", "n_files", "values", "example"]
    assert leaks.to_dict("records") == [{"group": 1, "n_files": 3, "values": "test,train", "example": "c0/g1_0.png"}]
    idx["fold"] = [0, 0, 0, 1, 1, 1, 2, 3, 2, -1, 4, 4]
    by_fold = splits.leakage(idx, by="fold")
    assert by_fold.to_dict("records") == [{"group": 2, "n_files": 3, "values": "2,3", "example": "c0/g2_0.png"}]
    with pytest.raises(splits.ConfigError, match="the index has no column 'nope'; run a split first"):
        splits.leakage(idx, by="nope")


def test_audit_summary_and_duplicate_groups(tiny_dataset):
    """Planted bugs: wrong counts or wording in ``AuditReport.summary_lines``, ``duplicate_groups`` returning
    singletons, not the largest group first, or ignoring ``min_size``."""
    from ecg_core.ml import dataset

    idx = dataset.scan(tiny_dataset)
    rep = dataset.audit(idx)
    assert rep.summary_lines() == [
        "files: 28 (28 readable, 0 unreadable)",
        "distinct images (exact content): 25",
        "duplicate groups: 24 (2 with copies, 1 joined by near copies only)",
    ]
    groups = dataset.duplicate_groups(idx)
    assert [len(g) for g in groups] == [4, 2]
    assert groups[0]["sha256"].nunique() == 1 and groups[1]["sha256"].nunique() == 2
    assert [len(g) for g in dataset.duplicate_groups(idx, min_size=3)] == [4]
    assert len(dataset.duplicate_groups(idx, min_size=1)) == 24
    broken = idx.copy()
    broken.loc[0, "error"] = "damaged"
    broken.attrs = dict(idx.attrs, unknown_folders=["junk"], skipped=[("a.txt", "not an image")],
                        empty_class_folders=["Empty"])
    lines = dataset.audit(broken).summary_lines()
    assert lines[0] == "files: 28 (27 readable, 1 unreadable)"
    assert lines[3:] == ["folders that match no class: junk", "class folders without any image: Empty",
                         "skipped non-image files: 1"]


# ------------------------------------------------------------------------------------------ bootstrap CIs
# (written against the mutants `make mutate` found surviving in ecg_core/ml/bootstrap.py)
def _reference_stats(cm: np.ndarray) -> dict[str, float]:
    """Every CI metric of one confusion matrix (rows: truth), written out per class with the textbook formulas."""
    k = cm.shape[0]
    total = cm.sum()
    out: dict[str, float] = {}
    per: dict[str, list[float]] = {m: [] for m in ("precision", "recall", "specificity", "f1")}
    present = []
    for c in range(k):
        tp, row, col = cm[c, c], cm[c, :].sum(), cm[:, c].sum()
        tn = total - row - col + tp
        neg = total - row
        per["precision"].append(tp / col if col else np.nan)
        per["recall"].append(tp / row if row else np.nan)
        per["specificity"].append(tn / neg if neg else np.nan)
        per["f1"].append(2 * tp / (row + col) if row + col else np.nan)
        present.append(row > 0 or col > 0)
    for m, v in per.items():
        for c in range(k):
            out[f"{m}[{'ABCD'[c]}]"] = v[c]
        vals = [0.0 if np.isnan(x) else x for x, p in zip(v, present) if p]
        out[f"macro_{m}"] = sum(vals) / len(vals) if vals else np.nan
    out["accuracy"] = np.trace(cm) / total if total else np.nan
    out["error_rate"] = 1 - out["accuracy"]
    return out


def test_confusion_cis_match_textbook_metrics_of_every_replicate():
    """Planted bugs: the confusion cell ``yt * k - yp``, ``tn`` with a wrong sign, ``3 * tp`` in F1, ``present``
    as ``&`` / ``support >= 0`` / ``support > 1``, NaN counted as 1 in the macro mean. Class D occurs once in the
    truth and is never predicted; class C is predicted but never true: both stay in the macro averages."""
    from ecg_core.ml import bootstrap

    rng = np.random.default_rng(5)
    yt = rng.integers(0, 3, 80)
    yt[yt == 2] = 0
    yp = np.where(rng.random(80) < 0.6, yt, rng.integers(0, 3, 80))
    yt[7], yp[7] = 3, 1
    groups = np.arange(80) // 2
    codes, n_groups = bootstrap.group_codes(groups, 80)
    names = list("ABCD")
    n_boot, alpha = 60, 0.1
    ci = bootstrap.confusion_cis(yt, yp, codes, n_groups, names, n_boot=n_boot, seed=4, alpha=alpha)
    reps = []
    for mult in bootstrap.group_multiplicities(n_groups, n_boot=n_boot, seed=4):
        for w in mult[:, codes]:
            cm = np.zeros((4, 4))
            np.add.at(cm, (yt, yp), w)
            reps.append(_reference_stats(cm))
    assert len(reps) == n_boot
    assert set(ci) == set(reps[0])
    for key in ci:
        v = np.array([r[key] for r in reps], float)
        v = v[np.isfinite(v)]
        want = tuple(np.percentile(v, [100 * alpha / 2, 100 * (1 - alpha / 2)])) if v.size else (np.nan, np.nan)
        np.testing.assert_allclose(ci[key], want, atol=1e-12, err_msg=key)
    whole = np.zeros((4, 4))
    np.add.at(whole, (yt, yp), 1)
    one = bootstrap.confusion_stats(whole[None])
    for key, v in _reference_stats(whole).items():
        metric, _, cls = key.partition("[")
        got = one[metric][0, "ABCD".index(cls[0])] if cls else one[key][0]
        np.testing.assert_allclose(got, v, atol=1e-12, err_msg=key)


def test_bootstrap_ci_arguments_and_defaults():
    """Planted bugs: the defaults (1000 replicates, seed 0) changed, 2-D or 1-element ``y_true`` handling, the
    minimum of 1 replicate, the error messages."""
    from ecg_core.ml import bootstrap

    def acc(t, q):
        return float(np.mean(t == q))

    y = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1])
    p = np.array([0, 1, 0, 0, 1, 1, 0, 1, 1, 0])
    score = np.random.default_rng(0).random(10)

    def mean_score(t, q):
        return float(np.mean(q))

    default = bootstrap.bootstrap_ci(y, score, mean_score)
    assert default == bootstrap.bootstrap_ci(y, score, mean_score, n_boot=1000, seed=0)
    assert default != bootstrap.bootstrap_ci(y, score, mean_score, n_boot=1000, seed=1)
    assert default != bootstrap.bootstrap_ci(y, score, mean_score, n_boot=1001, seed=0)
    assert bootstrap.bootstrap_ci([1], [1], acc, n_boot=5) == (1.0, 1.0)
    lo, hi = bootstrap.bootstrap_ci(y, p, acc, n_boot=1)  # one replicate is allowed
    assert lo == hi and 0 <= lo <= 1
    with pytest.raises(bootstrap.ConfigError, match=r"n_boot must be an integer >= 1; received 0"):
        bootstrap.bootstrap_ci(y, p, acc, n_boot=0)
    with pytest.raises(bootstrap.ConfigError, match=r"y_true must be a non-empty 1-D array; received shape \(2, 5\)"):
        bootstrap.bootstrap_ci(y.reshape(2, 5), p.reshape(2, 5), acc)
    with pytest.raises(bootstrap.ConfigError, match=r"y_true must be a non-empty 1-D array; received shape \(0,\)"):
        bootstrap.bootstrap_ci([], [], acc)
    with pytest.raises(bootstrap.ConfigError, match=r"y_pred_or_prob must have one row per entry of y_true \(10\); "
                                                    r"received 9 rows"):
        bootstrap.bootstrap_ci(y, p[:9], acc)
    with pytest.raises(bootstrap.ConfigError, match=r"metric_fn must be callable\(y_true, y_pred\) -> float; "
                                                    r"received int"):
        bootstrap.bootstrap_ci(y, p, 3)


# ----------------------------------------------------------------- splits: file split, k-fold, validation
# (written against the mutants `make mutate` found surviving in ecg_core/ml/splits.py)
def test_split_by_group_defaults_messages_and_ignored_rows():
    """Planted bugs: default seed 1, wrong names in the fraction errors, ``v <= 1`` accepted, unusable rows taking
    part in the shuffle (``|`` instead of ``&`` in ``_group_labels``): the usable rows' split must not change when
    unusable rows are added."""
    idx = _index({0: 12, 1: 12})
    assert splits.split_by_group(idx)["split"].tolist() == splits.split_by_group(idx, seed=0)["split"].tolist()
    for kw, name in (({"val_frac": 1.0}, "val_frac"), ({"test_frac": 1.0}, "test_frac"),
                     ({"val_frac": -0.1}, "val_frac")):
        with pytest.raises(splits.ConfigError, match=rf"^{name} must be in \[0, 1\), got "):
            splits.split_by_group(idx, **kw)
    with pytest.raises(splits.ConfigError, match=r"val_frac \+ test_frac must be < 1, got 0.5 \+ 0.5"):
        splits.split_by_group(idx, val_frac=0.5, test_frac=0.5)
    extra = _index({0: 14, 1: 12})
    extra.loc[extra["group"] == 12, "error"] = "damaged"  # class 0 gets 2 unusable groups
    extra.loc[extra["group"] == 13, "label"] = -1
    extra = extra[extra["group"].isin([12, 13])].assign(group=lambda d: d["group"] + 100)
    both = pd.concat([idx, extra], ignore_index=True)
    out = splits.split_by_group(both, seed=5)
    assert out["split"].iloc[: len(idx)].tolist() == splits.split_by_group(idx, seed=5)["split"].tolist()
    assert (out["split"].iloc[len(idx):] == "").all()


def test_random_file_split_counts_seed_and_marks():
    """Planted bugs in the leaky demonstration split: ``|`` or ``label > 0`` in the usable mask, the seed ignored
    (``default_rng(None)``) or defaulting to 1, ``len / val_frac``, ``n_test - n_val``, wrong split names or
    unassigned rows not ``""``, wrong attrs."""
    idx = _index({0: 30, 1: 10}, copies=2)  # 80 files
    idx.loc[0, "error"] = "damaged"
    idx.loc[1, "label"] = -1  # 78 usable
    a = splits.random_file_split(idx, val_frac=0.2, test_frac=0.1, seed=3)
    counts = a["split"].value_counts().to_dict()
    assert counts == {"train": 54, "val": 16, "test": 8, "": 2}  # 78 usable: round(7.8), round(15.6), the rest
    assert a.loc[0, "split"] == "" and a.loc[1, "split"] == ""
    assert (a.loc[idx["label"] == 0, "split"].iloc[1:] != "").all()  # label 0 is a class like any other
    assert a["split"].tolist() == splits.random_file_split(idx, val_frac=0.2, test_frac=0.1, seed=3)["split"].tolist()
    assert a["split"].tolist() != splits.random_file_split(idx, val_frac=0.2, test_frac=0.1, seed=4)["split"].tolist()
    default = splits.random_file_split(idx)
    assert default["split"].tolist() == splits.random_file_split(idx, val_frac=0.15, test_frac=0.15,
                                                                 seed=0)["split"].tolist()
    assert default["split"].value_counts().to_dict() == {"train": 54, "val": 12, "test": 12, "": 2}
    assert a.attrs["split_seed"] == 3 and a.attrs["split_by"] == "file"


def test_kfold_by_group_bounds_seed_and_unusable_rows():
    """Planted bugs: ``k <= 2`` / ``k < 3`` (2 folds refused), ``k >= n_groups`` (one group per fold refused), the
    seed ignored, unusable rows given a fold (``|``) or a fold other than -1, wrong attrs."""
    idx = _index({0: 6, 1: 6}, copies=2)
    idx.loc[0, "error"] = "damaged"
    idx.loc[2, "label"] = -1
    two = splits.kfold_by_group(idx, k=2, seed=1)
    assert two["fold"].dtype.kind == "i" and two.loc[0, "fold"] == -1 and two.loc[2, "fold"] == -1
    assert set(two["fold"].iloc[3:]) == {0, 1} and (two["fold"].iloc[3:] >= 0).all()
    usable_groups = idx[(idx["error"] == "") & (idx["label"] >= 0)]["group"].nunique()
    full = splits.kfold_by_group(idx, k=usable_groups, seed=1)
    assert sorted(set(full["fold"]) - {-1}) == list(range(usable_groups))
    with pytest.raises(splits.ConfigError, match=rf"k must be between 2 and the number of usable groups "
                                                 rf"\({usable_groups}\), got {usable_groups + 1}"):
        splits.kfold_by_group(idx, k=usable_groups + 1)
    with pytest.raises(splits.ConfigError, match="got 1"):
        splits.kfold_by_group(idx, k=1)
    big = _index({0: 20, 1: 20})
    runs = {s: splits.kfold_by_group(big, k=4, seed=s)["fold"].tolist() for s in (0, 0, 7)}
    assert splits.kfold_by_group(big, k=4, seed=7)["fold"].tolist() == runs[7]
    assert splits.kfold_by_group(big, k=4)["fold"].tolist() == runs[0] != runs[7]
    assert two.attrs["kfold_seed"] == 1 and two.attrs["k"] == 2


# ------------------------------------------------------------------------------------- dataset audit tables
# (written against the mutants `make mutate` found surviving in ecg_core/ml/dataset.py)
def _audit_index(preset_name: str | None = "arrhythmia-6") -> pd.DataFrame:
    from ecg_core.core.labels import get_preset

    names = {c.id: c.name for c in get_preset(preset_name or "cardiac-4").classes}
    rows = []

    def add(label, group, sha, err=""):
        i = len(rows)
        rows.append({"path": f"/d/{i}.png", "rel_path": f"f{label}/{i}.png", "class_folder": f"f{label}",
                     "label": label, "class_name": names.get(label, ""), "n_bytes": 10, "sha256": sha,
                     "width": 8, "height": 8, "error": err, "group": group})

    add(0, 0, "a"), add(0, 0, "a"), add(0, 0, "a2")  # class 0: 3 files, 2 distinct, 1 group, 1 copy
    add(1, 1, "b"), add(2, 1, "b")  # one image in classes 1 and 2: a cross-class group
    add(0, 2, "c"), add(3, 2, "c2")  # a near copy in classes 0 and 3: a cross-class group with class 0
    add(-1, 3, "u"), add(-1, 3, "u"), add(-1, 4, "v")  # a folder that matches no class, with a copy
    add(1, -1, "bad", err="damaged")
    idx = pd.DataFrame(rows)
    if preset_name:
        idx.attrs["preset"] = preset_name
    return idx


def test_audit_tables_exactly():
    """Planted bugs: the preset of ``index.attrs`` ignored (``"XXpresetXX"``/default changed), a LabelPreset object
    not used as is, column names changed, ``copies = files + distinct``, label 0 treated as "no class"
    (``label <= 0``/``< 1``) or left out of the cross-class check (``label > 0``), cross-class groups only with 3
    labels (``> 2``), the index of the tables not reset, missing attrs crashing (``get(..., None)``).

    Real bug found here (fixed): ``summary_lines`` counted the cross-class *files* as groups ("4 groups have
    copies in more than one class" for 2 groups), unlike the Data page and ``data audit --json``."""
    from ecg_core.core.labels import get_preset
    from ecg_core.ml import dataset

    idx = _audit_index()
    rep = dataset.audit(idx)
    pc = rep.per_class
    assert list(pc.columns) == ["class_id", "class", "files", "distinct", "groups", "copies"]
    assert len(pc) == 6 + 1  # arrhythmia-6 from the index's attrs, plus the "(no class)" row
    top = pc.set_index("class_id")
    assert top.loc[0].tolist()[1:] == [4, 3, 2, 1] and top.loc[0, "class"] == get_preset("arrhythmia-6").classes[0].name
    assert top.loc[-1].tolist() == ["(no class)", 3, 2, 2, 1]
    assert top.loc[1].tolist()[1:] == [1, 1, 1, 0] and top.loc[5].tolist()[1:] == [0, 0, 0, 0]
    assert list(rep.cross_class_groups.columns) == ["group", "class_name", "rel_path"]
    assert rep.cross_class_groups["group"].tolist() == [1, 1, 2, 2]
    assert list(rep.cross_class_groups.index) == [0, 1, 2, 3]
    assert rep.unreadable.to_dict("records") == [{"rel_path": "f1/10.png", "error": "damaged"}]
    assert (rep.n_files, rep.n_readable, rep.n_unreadable, rep.n_distinct, rep.n_groups) == (11, 10, 1, 7, 5)
    assert rep.skipped == [] and rep.unknown_folders == [] and rep.empty_class_folders == []
    assert "WARNING: 2 groups have copies in more than one class" in rep.summary_lines()
    as_object = dataset.audit(idx, preset=get_preset("arrhythmia-6"))
    assert as_object.per_class.equals(pc)
    plain = dataset.audit(_audit_index(None))  # no preset in attrs: cardiac-4
    assert len(plain.per_class) == 4 + 1
    with_lists = _audit_index()
    with_lists.attrs.update(unknown_folders=["x", "y"], empty_class_folders=["E1", "E2"])
    lines = dataset.audit(with_lists).summary_lines()
    assert "folders that match no class: x, y" in lines and "class folders without any image: E1, E2" in lines


def test_fingerprint_of_is_the_documented_hash_and_duplicate_groups_order():
    """Planted bugs: a different separator in ``fingerprint_of`` (stored with every model: runs would no longer
    match their data), an unstable sort of equal-sized duplicate groups (the Data page's order would jump)."""
    import hashlib

    from ecg_core.ml import dataset

    idx = _audit_index()
    ok = idx[idx["error"] == ""]
    items = sorted(f"{h}:{lab}" for h, lab in zip(ok["sha256"], ok["label"]))
    assert dataset.fingerprint_of(idx) == hashlib.sha1("\n".join(items).encode()).hexdigest()[:16]
    rows = []
    for g in range(60):
        for c in range(2 + (g % 7 == 3)):
            rows.append({"rel_path": f"{g}_{c}", "error": "", "group": (g * 37) % 60, "sha256": str(g)})
    big = pd.DataFrame(rows)
    order = [int(d["group"].iloc[0]) for d in dataset.duplicate_groups(big)]
    sizes = big.groupby("group").size()
    first_seen = list(dict.fromkeys(sorted(big["group"])))  # groupby order: by group id
    want = sorted(first_seen, key=lambda gid: -sizes[gid])  # Python's sort is stable
    assert order == want


# --------------------------------------------------------------------- the last survivors of `make mutate`
def test_atomic_write_cleans_up_after_any_exception_and_hides_its_temp(tmp_path):
    """Planted bugs: the temporary file kept when the writer raises a non-OSError (``unlink_quietly(None)`` in the
    ``BaseException`` branch), the default temporary suffix changed."""
    from ecg_core.core import atomic

    target = tmp_path / "run.json"
    target.write_text("old")

    def boom(f):
        f.write(b"half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        atomic.atomic_write_via(target, boom)
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"] and target.read_text() == "old"
    names: list[str] = []
    atomic.atomic_write_via(target, lambda f: names.extend(p.name for p in tmp_path.iterdir()))
    assert [n for n in names if n != "run.json"][0].endswith(".tmp")


def test_splits_keep_the_index_attrs_and_split_table_fills_zeros():
    """Planted bugs: ``kfold_by_group`` / ``split_by_group`` dropping the scan's attrs (root, preset), ``split_table``
    counting unassigned rows (``!= "XXXX"``) or leaving NaN / 1 where a class has no file in a split."""
    idx = _index({0: 6, 1: 1})
    idx.attrs = {"root": "/data", "preset": "cardiac-4"}
    for out in (splits.kfold_by_group(idx, k=2), splits.split_by_group(idx), splits.random_file_split(idx)):
        assert out.attrs["root"] == "/data" and out.attrs["preset"] == "cardiac-4"
    s = splits.split_by_group(idx, seed=0)
    s.loc[0, "split"] = ""  # an unreadable row, say
    t = splits.split_table(s)
    assert "" not in t["files"].columns
    assert t.loc["class1", ("files", "test")] == 0 and t.loc["class1", ("distinct groups", "val")] == 0
    assert t.to_numpy().dtype.kind == "i" and int(t["files"].to_numpy().sum()) == 6


def test_confusion_cis_over_several_chunks_match_bootstrap_ci():
    """Planted bug: the replicate chunks concatenated along the wrong axis (``axis=1``): only visible when
    ``n_boot x n_groups`` exceeds one chunk (2,000,000 cells)."""
    from ecg_core.ml import bootstrap

    rng = np.random.default_rng(2)
    n = 3000
    yt = rng.integers(0, 2, n)
    yp = np.where(rng.random(n) < 0.7, yt, 1 - yt)
    codes, n_groups = bootstrap.group_codes(None, n)
    assert 700 * n_groups > bootstrap._MAX_BOOT_CELLS
    ci = bootstrap.confusion_cis(yt, yp, codes, n_groups, ["A", "B"], n_boot=700, seed=1, alpha=0.05)
    want = bootstrap.bootstrap_ci(yt, yp, lambda t, q: float(np.mean(t == q)), n_boot=700, seed=1)
    assert ci["accuracy"] == pytest.approx(want, abs=1e-12)


def test_empty_audit_tables_keep_their_columns_and_groups_their_index(tiny_dataset, tmp_path):
    """Planted bugs: the empty cross-class table without its columns, ``duplicate_groups`` frames with the old index
    as a column (``reset_index(drop=False)``), ``atomic_write_to_path``'s temporary name not ``.<stem>.<hex>.tmp``."""
    from ecg_core.core import atomic
    from ecg_core.ml import dataset

    idx = _audit_index()
    clean = idx[~idx["group"].isin([1, 2])].copy()
    rep = dataset.audit(clean)
    assert rep.cross_class_groups.empty and list(rep.cross_class_groups.columns) == ["group", "class_name",
                                                                                     "rel_path"]
    for g in dataset.duplicate_groups(idx):
        assert list(g.columns) == list(idx.columns) and list(g.index) == list(range(len(g)))
    seen: list[str] = []
    atomic.atomic_write_to_path(tmp_path / "model.keras", lambda t: (seen.append(t.name), t.write_bytes(b"m")))
    assert seen[0].startswith(".model.") and seen[0].endswith(".tmp"), seen
    assert (tmp_path / "model.keras").read_bytes() == b"m"


def test_split_marks_an_unlabelled_copy_of_a_labelled_image_and_leakage_shapes():
    """Planted bugs: ``split_by_group`` giving a split to an unusable row that shares a duplicate group with usable
    ones (a copy in a folder that matches no class: ``|`` in ``labelled``, or the mask ignored), its attrs'
    ``split_by`` wrong; ``leakage``'s empty frame without its columns, its error not listing the columns."""
    idx = _index({0: 8, 1: 8})
    stray = idx.iloc[[0]].assign(label=-1, class_name="", rel_path="junk/copy.png", path="/d/junk/copy.png")
    both = pd.concat([idx, stray], ignore_index=True)
    out = splits.split_by_group(both, seed=2)
    assert out["split"].iloc[-1] == "" and out["split"].iloc[0] != ""
    assert out.attrs["split_by"] == "group"
    empty = splits.leakage(out)
    assert empty.empty and list(empty.columns) == ["group", "n_files", "values", "example"]
    with pytest.raises(splits.ConfigError, match=r"\(columns: path, rel_path, class_name, label, error, group"):
        splits.leakage(idx, by="split")


def test_bootstrap_option_checks():
    """Planted bugs in ``check_options``/``group_codes``: ``and`` for ``or`` (booleans or negatives accepted),
    alpha 0 or 1 accepted, ``n_bins <= 1`` / ``< 2``, changed defaults, messages without content, the missing-id
    count off by one."""
    from ecg_core.ml import bootstrap

    y = np.array([0, 1, 0, 1])
    for kw, msg in [({"seed": -1}, r"seed must be an integer >= 0; received -1"),
                    ({"seed": True}, r"seed must be an integer >= 0; received True"),
                    ({"seed": 1.5}, r"seed must be an integer >= 0; received 1.5"),
                    ({"n_boot": True}, r"n_boot must be an integer >= 1; received True"),
                    ({"n_boot": 2.0}, r"n_boot must be an integer >= 1; received 2.0"),
                    ({"alpha": 0.0}, r"alpha must be a number in \(0, 1\), e.g. 0.05 for 95 % intervals; received 0.0"),
                    ({"alpha": 1.0}, r"alpha must be a number in \(0, 1\)"),
                    ({"alpha": True}, r"alpha must be a number in \(0, 1\)"),
                    ({"alpha": "0.1"}, r"alpha must be a number in \(0, 1\)")]:
        with pytest.raises(bootstrap.ConfigError, match=msg):
            bootstrap.bootstrap_ci(y, y, lambda t, q: 1.0, **{"n_boot": 5, **kw})
    bootstrap.check_options(n_boot=0, seed=0, alpha=0.05)  # the defaults: split "test", 10 bins, 0 replicates
    bootstrap.check_options(n_boot=1, seed=0, alpha=0.05, n_bins=1, split="oof")
    for kw, msg in [({"n_bins": 0}, r"n_bins must be an integer >= 1; received 0"),
                    ({"n_bins": True}, r"n_bins must be an integer >= 1; received True"),
                    ({"n_bins": 2.0}, r"n_bins must be an integer >= 1; received 2.0"),
                    ({"split": ""}, r"split must be a non-empty string such as 'test', 'oof' or 'external'; "
                                    r"received ''")]:
        with pytest.raises(bootstrap.ConfigError, match=msg):
            bootstrap.check_options(n_boot=1, seed=0, alpha=0.05, **kw)
    with pytest.raises(bootstrap.ConfigError, match=r"groups must not contain missing ids; received 1 missing "
                                                    r"\(give each ungrouped file its own id, e.g. its path\)"):
        bootstrap.group_codes(["a", None, "a", "b"], 4)
    codes, n = bootstrap.group_codes(["b", "a", "b", 7], 4)
    assert codes.tolist() == [0, 1, 0, 2] and n == 3 and codes.dtype == np.int64
    assert bootstrap.group_codes(None, 3)[0].dtype == np.int64


# ------------------------------------------------------------------------------------------------ scan: image size
def _jpeg(path: Path, size: tuple[int, int], *, orientation: int | None = None, seed: int = 0) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(report_like(seed, size=size))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    im.save(path, format="JPEG", quality=85, exif=exif)
    return path


def test_scan_reports_the_full_size_of_a_big_jpeg(tmp_path):
    """Planted bugs in ``_header_size``: the header not read (or its size lost), so the index reports the size of
    the fast draft decode (about 400 x 300) instead of the file's own 1600 x 1200."""
    from ecg_core.ml import dataset

    _jpeg(tmp_path / "ds" / "Normal" / "big.jpg", (1600, 1200))
    idx = dataset.scan(tmp_path / "ds")
    assert (idx.loc[0, "width"], idx.loc[0, "height"]) == (1600, 1200) and idx.loc[0, "error"] == ""


@pytest.mark.parametrize(("orientation", "want"), [
    (None, (1600, 1200)), (1, (1600, 1200)), (3, (1600, 1200)),  # no EXIF rotation / upright / upside down
    (5, (1200, 1600)), (6, (1200, 1600)), (7, (1200, 1600)), (8, (1200, 1600)),  # the four quarter turns
])
def test_scan_size_follows_the_exif_rotation(orientation, want, tmp_path):
    """The index reports width x height as the image is shown (after EXIF rotation). Planted bugs: the wrong EXIF
    tag, the swap for the wrong set of orientations (each of 5-8 dropped once, or the test inverted), the swapped
    size lost (the fast draft decode's 600 x 800 reported instead)."""
    from ecg_core.ml import dataset

    _jpeg(tmp_path / "ds" / "Normal" / "r.jpg", (1600, 1200), orientation=orientation)
    idx = dataset.scan(tmp_path / "ds")
    assert (idx.loc[0, "width"], idx.loc[0, "height"]) == want


# ------------------------------------------------------------------------------------------------ duplicate groups
def test_assign_groups_exact_near_and_unreadable_items():
    """Groups: exact copies (same hash) always, near copies (fingerprint similarity >= threshold, the threshold
    itself included) only with a threshold, -1 for unreadable items, ids 0.. in order of first appearance."""
    from ecg_core.ml.dataset import assign_groups

    e = np.eye(4, dtype=np.float32)
    half = np.full(4, 0.5, np.float32)  # similarity exactly 0.5 with each unit vector
    hashes = ["a", "b", "a", "c", "d", "e"]
    prints = [e[0], e[1], e[0], half, None, e[3]]
    # exact only: 0 and 2 share a hash
    assert assign_groups(hashes, prints, near_threshold=None) == [0, 1, 0, 2, -1, 3]
    # at 0.5 the half vector is a near copy of every unit vector: all readable items are one group
    assert assign_groups(hashes, prints, near_threshold=0.5) == [0, 0, 0, 0, -1, 0]
    assert assign_groups(hashes, prints, near_threshold=0.51) == [0, 1, 0, 2, -1, 3]
    # an unreadable item does not join the group of its hash
    assert assign_groups(["a", "a", "a"], [None, e[0], e[0]], near_threshold=0.9) == [-1, 0, 0]
    assert assign_groups([], [], near_threshold=0.9) == []


def test_assign_groups_finds_near_copies_across_and_inside_later_chunks():
    """More than 1024 distinct images: similarities are computed 1024 rows at a time. Planted bugs: a pair whose
    first member lies in the second chunk, or whose members lie in different chunks, not found (row offsets)."""
    from ecg_core.ml.dataset import assign_groups

    n = 1100
    prints = list(np.eye(n, dtype=np.float32))
    prints[1050] = prints[3].copy()  # near copy across chunks (other bytes, same picture)
    prints[1030] = prints[1040].copy()  # near copy inside the second chunk
    groups = assign_groups([f"h{i}" for i in range(n)], prints, near_threshold=0.95)
    assert groups[1050] == groups[3] and groups[1030] == groups[1040]
    assert len(set(groups)) == n - 2
    assert groups[:5] == [0, 1, 2, 3, 4] and groups[1040] == 1030  # ids in order of first appearance


# ------------------------------------------------------------------------------------------------ fingerprint
def _page(h: int = 240, w: int = 320) -> np.ndarray:
    img = report_like(11, size=(w, h))
    return img


@pytest.mark.parametrize("band", ["top", "bottom", "left", "right"])
def test_fingerprint_ignores_the_header_footer_and_margins(band):
    """The fingerprint reads the trace area only: the header band (top 15 %, patient name, date), the footer
    (bottom 4 %) and the side margins (3 % left, 2 % right) are cut off, so a copy with another header is still a
    near copy. Planted bugs: a band not cut (``/`` for ``*``, ``+`` for ``-``), or no crop at all."""
    from ecg_core.ml.dataset import fingerprint

    img = _page()
    other = img.copy()
    rows, cols = {"top": (slice(0, 30), slice(None)), "bottom": (slice(233, 240), slice(None)),
                  "left": (slice(None), slice(0, 8)), "right": (slice(None), slice(316, 320))}[band]
    other[rows, cols] = 0  # black ink where only the cut-off band is
    assert np.array_equal(fingerprint(img), fingerprint(other))
    inside = img.copy()
    inside[100:110, 100:140] = 0  # the same ink inside the trace area does change it
    assert not np.array_equal(fingerprint(img), fingerprint(inside))


def test_fingerprint_is_centred_unit_float32_with_ink_positive():
    """Module docstring: ink made positive, mean removed, unit norm, a (96*64,) float32 vector. Planted bugs:
    paper made positive, the mean added instead of removed, float64 returned."""
    from ecg_core.ml.dataset import fingerprint

    img = np.full((240, 320, 3), 255, np.uint8)
    img[100:140, 150:170] = 0  # one black block in the trace area
    fp = fingerprint(img)
    assert fp.dtype == np.float32 and fp.shape == (96 * 64,)
    assert abs(float(fp.mean())) < 1e-6 and float(np.linalg.norm(fp)) == pytest.approx(1.0, abs=1e-5)
    thumb = fp.reshape(64, 96)
    assert thumb.max() == fp.max() > 0 and thumb[0, 0] < 0  # the ink cells are the largest, the paper negative
    assert thumb[int(64 * 0.5), int(96 * 0.5)] > 0
    # a grey copy of the same page (other colour depth) gives the same fingerprint
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    assert np.allclose(fingerprint(gray), fp, atol=1e-6)


def test_fingerprint_of_a_blank_or_nearly_blank_page():
    """A blank page has no ink: its fingerprint is all zeros (not NaN from 0 / 0); a nearly blank page is still
    scaled to unit norm, however faint its ink. Planted bugs: the norm test dropped or set at 1."""
    from ecg_core.ml.dataset import fingerprint

    blank = np.full((240, 320, 3), 255, np.uint8)
    fp = fingerprint(blank)
    assert np.isfinite(fp).all() and not fp.any()
    faint = blank.copy()
    faint[120, 160] = 250  # one barely darker pixel: the raw thumbnail's norm is below 1
    assert float(np.linalg.norm(fingerprint(faint))) == pytest.approx(1.0, abs=1e-5)


def test_two_distinct_images_that_are_near_copies_form_one_group():
    """Only two distinct files: the similarity pass must still run. Planted bug: it needed 3 or more."""
    from ecg_core.ml.dataset import assign_groups

    v = np.array([1.0, 0.0], np.float32)
    assert assign_groups(["a", "b"], [v, v.copy()], near_threshold=0.95) == [0, 0]
    assert assign_groups(["a", "a"], [v, v.copy()], near_threshold=0.95) == [0, 0]


# ------------------------------------------------------------------------------------------------ scan: the index rows
def test_scan_rows_for_good_broken_unreadable_and_unknown_files(tmp_path, monkeypatch):
    """Every column of the index for a readable image, a broken image, a file that cannot be read and an image in
    a folder that is no class of the preset. Planted bugs: a column renamed or left at its placeholder (n_bytes
    0 for every file, no class_folder), another label than -1 / class name for unknown folders, the error message
    without the file name or lost."""
    from ecg_core.core.errors import ImageLoadError
    from ecg_core.core.hashing import file_hash
    from ecg_core.ml import dataset

    from conftest import write_image

    root = tmp_path / "ds"
    good = write_image(root / "Normal" / "good.png", report_like(3, size=(160, 120)))
    (root / "Normal" / "broken.png").write_bytes(b"not really a png")
    write_image(root / "Normal" / "locked.png", report_like(4, size=(160, 120)))
    write_image(root / "Scans" / "other.png", report_like(5, size=(160, 120)))
    real_read = dataset.read_bytes

    def read_bytes(path, *a, **kw):
        if Path(path).name == "locked.png":
            raise ImageLoadError("locked.png: the file cannot be read (permission denied).")
        return real_read(path, *a, **kw)

    monkeypatch.setattr(dataset, "read_bytes", read_bytes)
    idx = dataset.scan(root).set_index("rel_path")
    g = idx.loc[str(Path("Normal") / "good.png")]
    assert (g["class_folder"], g["label"], g["class_name"]) == ("Normal", 2, "Normal")
    assert g["n_bytes"] == good.stat().st_size and g["sha256"] == file_hash(good.read_bytes())
    assert (g["width"], g["height"], g["error"]) == (160, 120, "")
    b = idx.loc[str(Path("Normal") / "broken.png")]
    assert b["n_bytes"] == 16 and b["sha256"] == file_hash(b"not really a png") and b["group"] == -1
    assert (b["width"], b["height"]) == (0, 0) and b["error"].startswith("broken.png: ")
    locked = idx.loc[str(Path("Normal") / "locked.png")]
    assert (locked["n_bytes"], locked["sha256"], locked["width"], locked["height"]) == (0, "", 0, 0)
    assert locked["error"] == "locked.png: the file cannot be read (permission denied)." and locked["group"] == -1
    o = idx.loc[str(Path("Scans") / "other.png")]
    assert (o["class_folder"], o["label"], o["class_name"]) == ("Scans", -1, "")
    assert idx.attrs["unknown_folders"] == ["Scans"]


@pytest.mark.parametrize(("value", "ok"), [(0.0, False), (-0.1, False), (1.5, False), (1.0, True), (0.5, True)])
def test_scan_near_threshold_bounds(value, ok, tmp_path):
    """near_threshold is a correlation in (0, 1]: 1.0 (identical fingerprints only) is allowed, 0 and above 1
    are not. Planted bugs: the bounds moved (``<=`` / ``<``, 2.0), the message lost."""
    from ecg_core.ml import dataset

    from conftest import write_image

    write_image(tmp_path / "ds" / "Normal" / "a.png", report_like(1, size=(96, 64)))
    if ok:
        assert dataset.scan(tmp_path / "ds", near_threshold=value).attrs["near_threshold"] == value
    else:
        with pytest.raises(dataset.ConfigError, match=rf"^near_threshold must be in \(0, 1\] or None, got {value}$"):
            dataset.scan(tmp_path / "ds", near_threshold=value)


def test_scan_folder_errors_name_the_folder(tmp_path, monkeypatch):
    """Planted bugs: the messages name ``None`` instead of the folder, or hide the reason."""
    from ecg_core.ml import dataset

    missing = tmp_path / "nope"
    with pytest.raises(DatasetError, match="^" + re.escape(f"dataset folder {str(missing)!r} does not exist")):
        dataset.scan(missing)
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match="^" + re.escape(f"{str(tmp_path / 'f.png')!r} is a file, not a folder")):
        dataset.scan(tmp_path / "f.png")
    (tmp_path / "ds").mkdir()

    def denied(root):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(dataset, "_iter_files", denied)
    with pytest.raises(DatasetError, match="^" + re.escape(
            f"cannot read dataset folder {str((tmp_path / 'ds').resolve())!r}: Permission denied") + "$"):
        dataset.scan(tmp_path / "ds")


def test_scan_reports_progress_and_describes_itself_in_attrs(tmp_path):
    """progress(i, n) after each file, i = 1..n; attrs name the class root actually used (inside a wrapper
    folder), the preset and the threshold. Planted bugs: progress off by one or without its total, an attr lost."""
    from ecg_core.ml import dataset

    from conftest import write_image

    for i in range(3):
        write_image(tmp_path / "ds" / "wrapper" / "Normal" / f"{i}.png", report_like(20 + i, size=(96, 64)))
    calls: list[tuple[int, int]] = []
    idx = dataset.scan(tmp_path / "ds", near_threshold=0.9, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert idx.attrs["root"] == str((tmp_path / "ds" / "wrapper").resolve())
    assert (idx.attrs["preset"], idx.attrs["near_threshold"]) == ("cardiac-4", 0.9)


# ------------------------------------------------------------------------------------------------ scan: the folder walk
def test_scan_walk_skips_hidden_metadata_links_and_non_images_and_keeps_going(tmp_path):
    """What the folder walk lists, skips (with a reason) or ignores silently, and that it goes on after each.
    Planted bugs: ``break`` for ``continue`` (files after a skipped one lost), hidden or ``__MACOSX`` folders
    scanned, the reasons' text lost, a loose file's name taken as its class folder."""
    from ecg_core.ml import dataset

    from conftest import write_image

    root = tmp_path / "ds"
    img = report_like(7, size=(96, 64))
    write_image(root / ".cache" / "h.png", img)  # hidden folder: ignored
    write_image(root / "Normal" / "__MACOSX" / "m.png", img)  # OS metadata folder: ignored
    write_image(root / "Normal" / "a.png", report_like(8, size=(96, 64)))
    (root / "Normal" / "a.json").write_text("{}")  # sidecar: ignored
    write_image(root / "Normal" / "b.png", report_like(9, size=(96, 64)))
    (root / "Normal" / "c_link.png").symlink_to(root / "Normal" / "a.png")
    write_image(root / "Normal" / "d.png", report_like(10, size=(96, 64)))
    (root / "Normal" / "e.txt").write_text("notes")
    (root / "Normal" / "f").write_text("no extension")
    write_image(root / "Normal" / "g.png", report_like(11, size=(96, 64)))
    write_image(root / "loose.png", report_like(12, size=(96, 64)))
    idx = dataset.scan(root)
    by_rel = idx.set_index("rel_path")
    names = [str(Path("Normal") / n) for n in ("a.png", "b.png", "d.png", "g.png")]
    assert sorted(by_rel.index) == sorted([*names, "loose.png"])
    assert idx.attrs["skipped"] == [(str(Path("Normal") / "c_link.png"), "symbolic link (not followed)"),
                                    (str(Path("Normal") / "e.txt"), "not an image file (.txt)"),
                                    (str(Path("Normal") / "f"), "not an image file (no extension)")]
    assert (by_rel.loc["loose.png", "class_folder"], by_rel.loc["loose.png", "label"]) == ("", -1)
    assert idx.attrs["unknown_folders"] == []


def test_list_class_folders_only_visible_folders(tmp_path):
    from ecg_core.ml.dataset import list_class_folders

    for d in ("Normal", "MI", ".git", "__MACOSX"):
        (tmp_path / d).mkdir()
    (tmp_path / "readme.txt").write_text("x")
    assert [p.name for p in list_class_folders(tmp_path)] == ["MI", "Normal"]


@pytest.mark.parametrize(("layout", "root_at"), [
    (["w/Normal/a.png", "w/MI/b.png"], "w"),  # one wrapper folder (a zip's top folder): descended into
    (["w/Normal/a.png", "w/MI/b.png", "README.txt"], "w"),  # a text file beside it does not stop that
    (["w/Normal/a.png", "w/MI/b.png", "loose.PNG"], ""),  # a loose image does: the root is the dataset
    (["Normal/a.png", "Normal/more/b.png"], ""),  # a single *class* folder is not a wrapper
    (["w1/w2/w3/w4/Normal/a.png", "w1/w2/w3/w4/MI/b.png"], "w1/w2/w3"),  # at most three wrapper levels
])
def test_scan_descends_through_wrapper_folders_only(layout, root_at, tmp_path):
    """Planted bugs: loose images not seen (upper-cased suffix, ``or`` for ``and``, ``not in``), the class-name
    test of the single folder dropped, another depth limit."""
    from ecg_core.ml import dataset

    from conftest import write_image

    root = tmp_path / "ds"
    for i, rel in enumerate(layout):
        if rel.endswith(".txt"):
            (root / rel).write_text("x")
        else:
            write_image(root / rel, report_like(30 + i, size=(96, 64)))
    idx = dataset.scan(root)
    assert idx.attrs["root"] == str((root / root_at).resolve())


# ------------------------------------------------------------------------------------------------ small contracts
def test_atomic_writes_honour_the_requested_file_mode(tmp_path):
    """Planted bugs: ``mode`` not passed on by atomic_write_bytes / atomic_write_text / atomic_write_via (a
    private file, e.g. the login file, would get the default mode)."""
    import os
    import stat

    from ecg_core.core import atomic

    for name, write in [("b", lambda p: atomic.atomic_write_bytes(p, b"x", mode=0o600)),
                        ("t", lambda p: atomic.atomic_write_text(p, "x", mode=0o600)),
                        ("v", lambda p: atomic.atomic_write_via(p, lambda f: f.write(b"x"), mode=0o600))]:
        path = write(tmp_path / name)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name
        assert path.read_bytes() == b"x"


def test_few_images_order_and_empty_inputs():
    """Cells sorted by images, then class, then split in the order train, val, test (not alphabetical); an
    empty or foreign table gives the empty table with its columns. Planted bugs: the split rank dropped, the
    empty-table checks joined with ``and``, the columns lost."""
    cols = ["class_name", "split", "images", "files"]
    groups = pd.DataFrame({"test": [1, 2], "train": [1, 9], "val": [1, 2]}, index=["MI", "Normal"])
    table = pd.concat({"distinct groups": groups, "files": groups * 2}, axis=1)
    out = splits.few_images(table, minimum=3)
    assert list(out.columns) == cols
    assert list(zip(out["class_name"], out["split"], out["images"])) == [
        ("MI", "train", 1), ("MI", "val", 1), ("MI", "test", 1), ("Normal", "val", 2), ("Normal", "test", 2)]
    for empty in (None, pd.DataFrame(), pd.DataFrame({"x": [1]})):
        got = splits.few_images(empty)
        assert got.empty and list(got.columns) == cols


def test_kfold_defaults_to_five_folds_and_a_two_group_class_gets_a_test_group():
    """Planted bugs: another default fold count; a class with only 2 groups given no test group (``n <= 2``):
    round(2 * 0.3) = 1 group goes to test and the other stays in train."""
    folds = splits.kfold_by_group(_index({0: 6, 1: 6}))
    assert sorted(set(folds["fold"])) == [0, 1, 2, 3, 4]
    out = splits.split_by_group(_index({0: 2, 1: 10}), val_frac=0.1, test_frac=0.3, seed=0)
    assert sorted(out.loc[out["label"] == 0, "split"]) == ["test", "train"]
