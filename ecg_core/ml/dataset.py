"""Dataset index, audit and duplicate groups.

A dataset is a folder with one sub-folder per class (``root/<class folder>/**/<image>``); folder names are mapped
to class ids by a label preset (:mod:`ecg_core.core.labels`). :func:`scan` builds a :class:`pandas.DataFrame` index with
one row per image file:

=============  =========================================================================================
column         meaning
=============  =========================================================================================
path           absolute path of the file
rel_path       path relative to the dataset root
class_folder   the top-level folder the file was found in
label          class id of the preset, -1 when the folder matches no class
class_name     display name of the class ("" when unknown)
n_bytes        file size in bytes
sha256         content hash of the file bytes (exact copies share it)
width, height  decoded image size in pixels (0 when unreadable)
error          "" when the image decoded, else the loader's message
group          duplicate group id: exact copies *and* near copies share a group (-1 when unreadable)
=============  =========================================================================================

Near copies (the same report resized or re-encoded) are found with a perceptual fingerprint: a 96x64 thumbnail
of the trace area (header and footer cut off, ink made positive, mean removed, unit norm). Two images are near
copies when the fingerprints' correlation is at least ``near_threshold`` (default 0.95). Measured on the 343
distinct reports of ``mendeley-dev``: distinct reports correlate at most 0.921, while half-size JPEG-50, JPEG-30
and 1.7x-upscaled copies of the same report correlate at least 0.971. (A 64-bit pHash does not separate them:
distinct reports of this layout collide at Hamming distance 0.)

**Splits are by group** (:mod:`ecg_core.ml.splits`): every member of a duplicate group lands in the same split, so
copies of one image can never straddle train/validation/test. Zip uploads are imported by
:mod:`ecg_core.ml.zip_import`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError, DatasetError, ImageLoadError
from ecg_core.core.hashing import file_hash
from ecg_core.core.labels import LabelPreset, get_preset
from ecg_core.imaging.loader import IMAGE_EXTENSIONS, load_image, read_bytes

ProgressFn = Callable[[int, int], None]

INDEX_COLUMNS = (
    "path",
    "rel_path",
    "class_folder",
    "label",
    "class_name",
    "n_bytes",
    "sha256",
    "width",
    "height",
    "error",
    "group",
)
SIDECAR_EXTENSIONS = (".json",)
SKIP_DIRS = ("__MACOSX",)
_FINGERPRINT_SIZE = (96, 64)  # (width, height) of the trace thumbnail
_FINGERPRINT_CROP = (0.15, 0.04, 0.03, 0.02)  # top, bottom, left, right fractions cut before the thumbnail
DEFAULT_NEAR_THRESHOLD = 0.95


# ----------------------------------------------------------------------------------------------------- scanning
def list_class_folders(root: str | Path) -> list[Path]:
    """Return the class sub-folders of ``root`` (hidden and OS-metadata folders skipped), sorted by name."""
    r = Path(root)
    return sorted(
        p for p in r.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in SKIP_DIRS
    )


def _resolve_root(root: Path, preset: LabelPreset) -> Path:
    """Descend through a single wrapper folder (e.g. a zip whose content sits in one top folder)."""
    current = root
    for _ in range(3):
        subs = list_class_folders(current)
        loose = [p for p in current.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if len(subs) == 1 and not loose and preset.class_of(subs[0].name) is None and list_class_folders(subs[0]):
            current = subs[0]
        else:
            break
    return current


def _iter_files(root: Path) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Image files with their class folder, and skipped files with a reason."""
    files: list[tuple[Path, str]] = []
    skipped: list[tuple[str, str]] = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") or part in SKIP_DIRS for part in rel.parts):
            continue
        if p.is_symlink():
            skipped.append((str(rel), "symbolic link (not followed)"))
            continue
        if not p.is_file():
            continue
        ext = p.suffix.lower()
        if ext in SIDECAR_EXTENSIONS:
            continue
        if ext not in IMAGE_EXTENSIONS:
            skipped.append((str(rel), f"not an image file ({ext or 'no extension'})"))
            continue
        folder = rel.parts[0] if len(rel.parts) > 1 else ""
        files.append((p, folder))
    return files, skipped


def fingerprint(rgb: np.ndarray) -> np.ndarray:
    """Perceptual fingerprint of a report: float32 vector (96*64,) of unit norm (see module docstring)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    h, w = gray.shape
    top, bottom, left, right = _FINGERPRINT_CROP
    crop = gray[int(top * h) : h - int(bottom * h), int(left * w) : w - int(right * w)]
    if crop.size == 0:
        crop = gray
    thumb = cv2.resize(255.0 - crop.astype(np.float32), _FINGERPRINT_SIZE, interpolation=cv2.INTER_AREA)
    thumb -= thumb.mean()
    norm = float(np.linalg.norm(thumb))
    return (thumb.ravel() / norm if norm > 0 else thumb.ravel()).astype(np.float32)


def scan(
    root: str | Path,
    *,
    preset: str | LabelPreset = "cardiac-4",
    near_threshold: float | None = DEFAULT_NEAR_THRESHOLD,
    progress: ProgressFn | None = None,
) -> pd.DataFrame:
    """Index a folder-per-class dataset; see the module docstring for the columns.

    ``near_threshold=None`` groups exact copies only. The returned frame carries ``attrs`` with ``root``,
    ``preset``, ``skipped`` (list of (relative path, reason)) and ``unknown_folders``.
    Raises :class:`DatasetError` when ``root`` is not a readable folder.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    if near_threshold is not None and not 0.0 < near_threshold <= 1.0:
        raise ConfigError(f"near_threshold must be in (0, 1] or None, got {near_threshold!r}")
    r = Path(root).expanduser()
    if not r.exists():
        raise DatasetError(f"dataset folder {str(r)!r} does not exist; choose an existing folder.")
    if not r.is_dir():
        raise DatasetError(f"{str(r)!r} is a file, not a folder; point to the folder that holds the class folders.")
    try:
        r = _resolve_root(r.resolve(), p)
        files, skipped = _iter_files(r)
    except OSError as e:
        raise DatasetError(f"cannot read dataset folder {str(r)!r}: {e.strerror or e}") from e

    rows: list[dict] = []
    prints: list[np.ndarray | None] = []
    for i, (path, folder) in enumerate(files):
        label = p.class_of(folder) if folder else None
        row = {
            "path": str(path),
            "rel_path": str(path.relative_to(r)),
            "class_folder": folder,
            "label": -1 if label is None else int(label),
            "class_name": "" if label is None else p.classes[label].name,
            "n_bytes": 0,
            "sha256": "",
            "width": 0,
            "height": 0,
            "error": "",
        }
        fp = None
        try:
            data = read_bytes(path)
            row["n_bytes"] = len(data)
            row["sha256"] = file_hash(data)
            img = load_image(data, name=path.name, draft_size=(400, 300))
            w, h = _header_size(data)
            row["width"], row["height"] = w or img.width, h or img.height
            fp = fingerprint(img.rgb)
        except ImageLoadError as e:
            row["error"] = str(e)
        rows.append(row)
        prints.append(fp)
        if progress is not None:
            progress(i + 1, len(files))

    df = pd.DataFrame(rows, columns=list(INDEX_COLUMNS[:-1]))
    df["group"] = assign_groups(df["sha256"].tolist(), prints, near_threshold=near_threshold)
    df = df.astype({"label": int, "n_bytes": int, "width": int, "height": int, "group": int})
    used = {f for _, f in files}
    df.attrs.update(
        root=str(r),
        preset=p.name,
        skipped=skipped,
        unknown_folders=sorted(f for f in used if f and p.class_of(f) is None),
        empty_class_folders=sorted(
            d.name for d in list_class_folders(r) if d.name not in used and p.class_of(d.name) is not None
        ),
        near_threshold=near_threshold,
    )
    return df


def _header_size(data: bytes) -> tuple[int, int]:
    """Full (width, height) from the image header, after EXIF rotation; (0, 0) when unknown."""
    import io as _io

    from PIL import Image

    try:
        with Image.open(_io.BytesIO(data)) as im:
            w, h = im.size
            if im.getexif().get(0x0112) in (5, 6, 7, 8):
                w, h = h, w
            return int(w), int(h)
    except Exception:
        return 0, 0


def assign_groups(
    hashes: list[str], prints: list[np.ndarray | None], *, near_threshold: float | None
) -> list[int]:
    """Union exact copies (same hash) and near copies (fingerprint correlation >= threshold) into groups.

    Returns one group id per item, numbered 0.. in order of first appearance; -1 for unreadable items.
    """
    n = len(hashes)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: dict[str, int] = {}
    for i, h in enumerate(hashes):
        if prints[i] is None:
            continue
        if h in first:
            union(i, first[h])
        else:
            first[h] = i
    if near_threshold is not None:
        reps = [i for i in first.values()]
        if len(reps) > 1:
            mat = np.stack([prints[i] for i in reps]).astype(np.float32)
            chunk = 1024
            for s in range(0, len(reps), chunk):
                sims = mat[s : s + chunk] @ mat.T
                ii, jj = np.nonzero(sims >= near_threshold)
                for a, b in zip(ii + s, jj):
                    if a < b:
                        union(reps[a], reps[b])
    ids: dict[int, int] = {}
    out: list[int] = []
    for i in range(n):
        if prints[i] is None:
            out.append(-1)
            continue
        root = find(i)
        out.append(ids.setdefault(root, len(ids)))
    return out


def fingerprint_of(index: pd.DataFrame) -> str:
    """A short hash of the dataset content (file hashes and labels), stored with trained models."""
    usable = index[index["error"] == ""]
    items = sorted(f"{h}:{lab}" for h, lab in zip(usable["sha256"], usable["label"]))
    return hashlib.sha1("\n".join(items).encode()).hexdigest()[:16]


# -------------------------------------------------------------------------------------------------------- audit
@dataclass(frozen=True)
class AuditReport:
    """What :func:`audit` found; ``per_class`` has one row per class of the preset (plus unknown folders)."""

    n_files: int
    n_readable: int
    n_unreadable: int
    n_distinct: int
    n_groups: int
    n_groups_with_copies: int
    n_near_only_groups: int
    per_class: pd.DataFrame
    cross_class_groups: pd.DataFrame
    unreadable: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unknown_folders: list[str] = field(default_factory=list)
    empty_class_folders: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        lines = [
            f"files: {self.n_files} ({self.n_readable} readable, {self.n_unreadable} unreadable)",
            f"distinct images (exact content): {self.n_distinct}",
            f"duplicate groups: {self.n_groups} ({self.n_groups_with_copies} with copies, "
            f"{self.n_near_only_groups} joined by near copies only)",
        ]
        if len(self.cross_class_groups):
            n_cross = self.cross_class_groups["group"].nunique()  # the frame has one row per file
            lines.append(f"WARNING: {n_cross} groups have copies in more than one class")
        if self.unknown_folders:
            lines.append(f"folders that match no class: {', '.join(self.unknown_folders)}")
        if self.empty_class_folders:
            lines.append(f"class folders without any image: {', '.join(self.empty_class_folders)}")
        if self.skipped:
            lines.append(f"skipped non-image files: {len(self.skipped)}")
        return lines


def audit(index: pd.DataFrame, *, preset: str | LabelPreset | None = None) -> AuditReport:
    """Count files, distinct images and duplicate groups per class; find copies across classes."""
    p = get_preset(preset or index.attrs.get("preset", "cardiac-4")) if not isinstance(preset, LabelPreset) else preset
    ok = index[index["error"] == ""]
    rows = []
    for c in p.classes:
        sub = ok[ok["label"] == c.id]
        rows.append(
            {
                "class_id": c.id,
                "class": c.name,
                "files": int(len(sub)),
                "distinct": int(sub["sha256"].nunique()),
                "groups": int(sub["group"].nunique()),
                "copies": int(len(sub) - sub["sha256"].nunique()),
            }
        )
    unknown = ok[ok["label"] < 0]
    if len(unknown):
        rows.append(
            {
                "class_id": -1,
                "class": "(no class)",
                "files": int(len(unknown)),
                "distinct": int(unknown["sha256"].nunique()),
                "groups": int(unknown["group"].nunique()),
                "copies": int(len(unknown) - unknown["sha256"].nunique()),
            }
        )
    per_class = pd.DataFrame(rows)
    sizes = ok.groupby("group").size()
    exact_per_group = ok.groupby("group")["sha256"].nunique()
    labels_per_group = ok[ok["label"] >= 0].groupby("group")["label"].nunique()
    cross = labels_per_group[labels_per_group > 1].index
    cross_df = (
        ok[ok["group"].isin(cross)][["group", "class_name", "rel_path"]].sort_values(["group", "class_name"])
        if len(cross)
        else pd.DataFrame(columns=["group", "class_name", "rel_path"])
    )
    return AuditReport(
        n_files=int(len(index)),
        n_readable=int(len(ok)),
        n_unreadable=int(len(index) - len(ok)),
        n_distinct=int(ok["sha256"].nunique()),
        n_groups=int(ok["group"].nunique()),
        n_groups_with_copies=int((sizes > 1).sum()),
        n_near_only_groups=int((exact_per_group > 1).sum()),
        per_class=per_class,
        cross_class_groups=cross_df.reset_index(drop=True),
        unreadable=index[index["error"] != ""][["rel_path", "error"]].reset_index(drop=True),
        skipped=list(index.attrs.get("skipped", [])),
        unknown_folders=list(index.attrs.get("unknown_folders", [])),
        empty_class_folders=list(index.attrs.get("empty_class_folders", [])),
    )


def duplicate_groups(index: pd.DataFrame, *, min_size: int = 2) -> list[pd.DataFrame]:
    """Members of every group with at least ``min_size`` files, largest groups first."""
    ok = index[index["error"] == ""]
    sizes = ok.groupby("group").size().sort_values(ascending=False, kind="stable")
    return [ok[ok["group"] == g].reset_index(drop=True) for g in sizes[sizes >= min_size].index]
