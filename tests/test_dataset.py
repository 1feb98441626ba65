"""Dataset index, duplicate groups, group-aware splits, leakage check, zip import."""

import io
import zipfile

import pytest

from conftest import SHARED_DATA, report_like, write_image
from ecg_core.ml import dataset, splits, zip_import
from ecg_core.core.errors import ConfigError, DatasetError


def test_scan_counts_groups_and_labels(tiny_dataset):
    idx = dataset.scan(tiny_dataset)
    assert len(idx) == 24 + 3 + 1
    assert (idx["error"] == "").all()
    assert set(idx["label"]) == {0, 1, 2, 3}
    rep = dataset.audit(idx)
    assert rep.n_distinct == 25  # 24 originals + the re-encoded near copy (different bytes)
    assert rep.n_groups == 24  # the near copy joins its original's group
    assert rep.n_groups_with_copies == 2 and rep.n_near_only_groups == 1
    mi = rep.per_class.set_index("class").loc["Myocardial Infarction"]
    assert (mi["files"], mi["distinct"], mi["groups"]) == (9, 6, 6)
    normal = rep.per_class.set_index("class").loc["Normal"]
    assert (normal["files"], normal["distinct"], normal["groups"]) == (7, 7, 6)


def test_exact_only_keeps_near_copy_apart(tiny_dataset):
    idx = dataset.scan(tiny_dataset, near_threshold=None)
    assert dataset.audit(idx).n_groups == 25


def test_distinct_random_images_are_not_near_copies():
    prints = [dataset.fingerprint(report_like(s)) for s in range(40)]
    groups = dataset.assign_groups([f"{i:064x}" for i in range(40)], prints, near_threshold=0.95)
    assert len(set(groups)) == 40


@pytest.mark.parametrize("seed", [0, 1, 7, 123])
def test_split_keeps_every_group_in_one_split(tiny_dataset, seed):
    idx = splits.split_by_group(dataset.scan(tiny_dataset), val_frac=0.2, test_frac=0.2, seed=seed)
    assert splits.leakage(idx).empty
    assert set(idx["split"]) == {"train", "val", "test"}
    for label in range(4):  # stratified: every class in every split
        assert set(idx.loc[idx["label"] == label, "split"]) == {"train", "val", "test"}


def test_leakage_detects_straddling_group(tiny_dataset):
    idx = splits.split_by_group(dataset.scan(tiny_dataset), seed=0)
    g = idx.loc[idx["rel_path"].str.contains("copy0"), "group"].iloc[0]
    members = idx.index[idx["group"] == g]
    idx.loc[members[0], "split"] = "train"
    idx.loc[members[1], "split"] = "test"
    leaks = splits.leakage(idx)
    assert list(leaks["group"]) == [g] and leaks["values"].iloc[0] == "test,train"


def test_random_file_split_leaks_copies(tiny_dataset):
    idx = dataset.scan(tiny_dataset)
    leaky = [len(splits.leakage(splits.random_file_split(idx, seed=s))) for s in range(10)]
    assert max(leaky) > 0


def test_kfold_by_group(tiny_dataset):
    idx = splits.kfold_by_group(dataset.scan(tiny_dataset), k=3, seed=0)
    assert splits.leakage(idx, by="fold").empty
    assert set(idx["fold"]) == {0, 1, 2}
    with pytest.raises(ConfigError, match="k must be"):
        splits.kfold_by_group(idx, k=1000)


def test_split_fraction_validation(tiny_dataset):
    idx = dataset.scan(tiny_dataset)
    with pytest.raises(ConfigError, match="val_frac"):
        splits.split_by_group(idx, val_frac=0.6, test_frac=0.5)


def test_broken_files_empty_class_junk(tmp_path):
    root = tmp_path / "mixed"
    write_image(root / "Normal" / "a.png", report_like(1))
    write_image(root / "MI" / "b.png", report_like(2))
    (root / "MI" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "MI" / "notes.txt").write_text("hello")
    (root / "History of MI").mkdir()
    (root / "Cats").mkdir()
    write_image(root / "Cats" / "c.png", report_like(3))
    idx = dataset.scan(root)
    rep = dataset.audit(idx)
    assert rep.n_files == 4 and rep.n_unreadable == 1
    assert "broken.jpg" in rep.unreadable["rel_path"].iloc[0]
    assert rep.skipped == [("MI/notes.txt", "not an image file (.txt)")]
    assert rep.unknown_folders == ["Cats"] and rep.empty_class_folders == ["History of MI"]
    split = splits.split_by_group(idx)
    assert (split.loc[idx["error"] != "", "split"] == "").all()
    assert (split.loc[idx["label"] < 0, "split"] == "").all()


def test_scan_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        dataset.scan(tmp_path / "nope")
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(DatasetError, match="not a folder"):
        dataset.scan(f)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert dataset.scan(empty).empty


def test_fingerprint_of_changes_with_labels(tiny_dataset):
    idx = dataset.scan(tiny_dataset)
    fp = dataset.fingerprint_of(idx)
    idx2 = idx.copy()
    idx2.loc[0, "label"] = 3
    assert fp != dataset.fingerprint_of(idx2) and len(fp) == 16


# ---------------------------------------------------------------------------------------------------------- zip
def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return b.getvalue()


def _png(seed: int) -> bytes:
    import cv2

    ok, enc = cv2.imencode(".png", report_like(seed))
    return enc.tobytes()


def test_zip_import_guards_traversal(tmp_path):
    data = _zip({
        "top/Normal/a.png": _png(1),
        "top/MI/b.png": _png(2),
        "../evil.png": _png(3),
        "/abs/evil.png": _png(4),
        "top/MI/../../../evil2.png": _png(5),
        "top/readme.txt": b"hi",
    })
    res = zip_import.extract_zip(data, tmp_path / "out")
    assert sorted(res.extracted) == ["top/MI/b.png", "top/Normal/a.png"]
    reasons = dict(res.skipped)
    assert "unsafe path" in reasons["../evil.png"] and "unsafe path" in reasons["/abs/evil.png"]
    assert "unsafe path" in reasons["top/MI/../../../evil2.png"]
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "evil2.png").exists()
    idx = dataset.scan(res.root)  # descends through the single wrapper folder
    assert sorted(idx["class_name"]) == ["Myocardial Infarction", "Normal"]


def test_zip_bomb_refused(tmp_path):
    bomb = _zip({"Normal/bomb.png": b"\0" * (50 * 1024 * 1024), "Normal/a.png": _png(1)})
    assert len(bomb) < 1_000_000
    res = zip_import.extract_zip(bomb, tmp_path / "out")
    assert res.extracted == ["Normal/a.png"]
    assert "zip bomb" in dict(res.skipped)["Normal/bomb.png"]
    with pytest.raises(DatasetError, match="zip bomb"):
        zip_import.extract_zip(bomb, tmp_path / "out2", limits=zip_import.ZipLimits(max_total_bytes=10_000_000))
    assert not (tmp_path / "out2").exists()


def test_zip_not_a_zip_and_no_images(tmp_path):
    with pytest.raises(DatasetError, match="not a readable zip"):
        zip_import.extract_zip(b"PK\x03\x04garbage", tmp_path / "o1")
    with pytest.raises(DatasetError, match="no images"):
        zip_import.extract_zip(_zip({"a.txt": b"x"}), tmp_path / "o2")
    assert not (tmp_path / "o2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".zipimport")]


# ------------------------------------------------------------------------------------------------- real dataset
MENDELEY_DEV = SHARED_DATA / "mendeley-dev"


@pytest.fixture(scope="module")
def mendeley_index():
    if not MENDELEY_DEV.is_dir():
        pytest.skip(f"real dataset not present at {MENDELEY_DEV} (only in the developers' and CI's checkouts)")
    return dataset.scan(MENDELEY_DEV)


def test_mendeley_dev_audit_counts(mendeley_index):
    rep = dataset.audit(mendeley_index)
    assert (rep.n_files, rep.n_distinct, rep.n_groups, rep.n_groups_with_copies) == (648, 343, 343, 180)
    got = {r["class"]: (r["files"], r["distinct"]) for _, r in rep.per_class.iterrows()}
    assert got == {
        "Myocardial Infarction": (167, 21),
        "History of MI": (120, 60),
        "Abnormal Heartbeat": (163, 163),
        "Normal": (198, 99),
    }
    assert rep.cross_class_groups.empty


@pytest.mark.parametrize("seed", [0, 1, 2, 42, 2026])
def test_mendeley_dev_split_never_leaks(mendeley_index, seed):
    s = splits.split_by_group(mendeley_index, seed=seed)
    assert splits.leakage(s).empty
    per_group = s.groupby("group")["split"].nunique()
    assert (per_group == 1).all()
    assert set(s["split"]) == {"train", "val", "test"}
    k = splits.kfold_by_group(mendeley_index, k=5, seed=seed)
    assert (k.groupby("group")["fold"].nunique() == 1).all()


def test_mendeley_dev_random_split_would_leak(mendeley_index):
    assert len(splits.leakage(splits.random_file_split(mendeley_index, seed=0))) > 50


def test_few_images_lists_thin_split_cells(tiny_dataset):
    index = dataset.scan(tiny_dataset)
    table = splits.split_table(splits.split_by_group(index, val_frac=0.15, test_frac=0.15, seed=0))
    few = splits.few_images(table)
    assert set(few.columns) == {"class_name", "split", "images", "files"}
    groups = table["distinct groups"]
    expected = {(c, s) for c in groups.index for s in groups.columns if groups.loc[c, s] < splits.MIN_IMAGES_PER_SPLIT}
    assert set(zip(few["class_name"], few["split"])) == expected and len(expected) == 12  # 4 classes x 3 splits
    assert list(few["images"]) == sorted(few["images"])
    assert splits.few_images(table, minimum=1).empty
    mi = few[(few["class_name"] == "Myocardial Infarction")].set_index("split")
    assert mi.loc["train", "images"] <= mi.loc["train", "files"]
