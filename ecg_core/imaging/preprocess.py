"""Preprocessing of ECG report images: one config, one pipeline, every intermediate step, an on-disk cache.

The pipeline (:func:`preprocess`) runs, in order:

1. **crop** — cut header, footer and margins, either by relative fractions (``crop_mode='relative'``), by
   detecting the coloured grid area of the trace (``'auto'``, falls back to the fractions when no coloured grid
   is found, e.g. black-and-white scans) or not at all (``'none'``);
2. **work size** — resize the crop (area interpolation) to ``work_factor`` x the target size, so that the later
   steps see the same scale whatever the resolution of the upload (a 2213 px original and a 1106 px copy give
   nearly the same result);
3. **grayscale** (optional);
4. **CLAHE** — contrast-limited adaptive histogram equalisation (``clahe_clip``, ``clahe_tiles``), optional;
5. **median filter** (``median_ksize``, 0 = off);
6. **resize** to ``(height, width)`` and conversion to the model's channel count, float32 in [0, 1].

The same :class:`PreprocessConfig` is stored with every trained model (``run.json``) so inference preprocesses
exactly as training did. ``PreprocessResult.crop_box`` and the target size make the mapping between original
and model-input coordinates exact (used to map heatmaps back onto the original report).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ecg_core.core.atomic import atomic_write_json, atomic_write_via
from ecg_core.core.config import FrozenConfig
from ecg_core.core.errors import ConfigError
from ecg_core.core.hashing import file_hash

CROP_MODES = ("relative", "auto", "none")
_GRID_MAX_SIDE = 2400  # detect_grid_area works at this resolution at most


@dataclass(frozen=True)
class PreprocessConfig(FrozenConfig):
    """Every preprocessing option. Frozen and hashable; :meth:`config_hash` is the cache key.

    Crop fractions are relative to the image height (top/bottom) or width (left/right). The defaults cut the
    header (patient fields), the footer (filter settings, date) and the margins of the standard report layout,
    so that a model cannot learn from text.
    """

    crop_mode: str = "relative"
    crop_top: float = 0.18
    crop_bottom: float = 0.04
    crop_left: float = 0.03
    crop_right: float = 0.015
    grayscale: bool = True
    clahe: bool = True
    clahe_clip: float = 2.0
    clahe_tiles: int = 8
    median_ksize: int = 3
    height: int = 192
    width: int = 320
    channels: int = 1
    work_factor: float = 2.0

    HASH_LENGTH = 12  # the cache key (short: it names cache folders)

    def __post_init__(self) -> None:
        if self.crop_mode not in CROP_MODES:
            raise ConfigError(f"crop_mode must be one of {', '.join(CROP_MODES)}; got {self.crop_mode!r}")
        for name in ("crop_top", "crop_bottom", "crop_left", "crop_right"):
            v = getattr(self, name)
            if not 0.0 <= float(v) < 0.5:
                raise ConfigError(f"{name} must be a fraction in [0, 0.5); got {v!r}")
        if self.crop_top + self.crop_bottom >= 0.9 or self.crop_left + self.crop_right >= 0.9:
            raise ConfigError("crops leave less than 10 % of the image; reduce crop_top/bottom or crop_left/right")
        if not 0.0 < float(self.clahe_clip) <= 40.0:
            raise ConfigError(f"clahe_clip must be in (0, 40]; got {self.clahe_clip!r}")
        if not 1 <= int(self.clahe_tiles) <= 64:
            raise ConfigError(f"clahe_tiles must be in 1..64; got {self.clahe_tiles!r}")
        if self.median_ksize != 0 and (self.median_ksize < 3 or self.median_ksize > 15 or self.median_ksize % 2 == 0):
            raise ConfigError(f"median_ksize must be 0 (off) or an odd number 3..15; got {self.median_ksize!r}")
        for name in ("height", "width"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or not 16 <= v <= 2048:
                raise ConfigError(f"{name} must be an integer in 16..2048 pixels; got {v!r}")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 (grayscale model input) or 3 (RGB); got {self.channels!r}")
        if not 1.0 <= float(self.work_factor) <= 4.0:
            raise ConfigError(f"work_factor must be in [1, 4]; got {self.work_factor!r}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The model input shape (height, width, channels)."""
        return (int(self.height), int(self.width), int(self.channels))



@dataclass(frozen=True)
class PreprocessResult:
    """Output of :func:`preprocess`.

    ``final`` is float32 (height, width, channels) in [0, 1]; ``steps`` are (name, uint8 image) pairs from the
    original to the resized image; ``crop_box`` is (x0, y0, x1, y1) in original pixels (x1/y1 exclusive);
    ``notes`` explain fallbacks (e.g. automatic crop found no grid).
    """

    final: np.ndarray
    steps: list[tuple[str, np.ndarray]]
    crop_box: tuple[int, int, int, int]
    original_shape: tuple[int, int]
    notes: list[str] = field(default_factory=list)


def crop_box_for(rgb: np.ndarray, cfg: PreprocessConfig) -> tuple[tuple[int, int, int, int], list[str]]:
    """Return the crop box (x0, y0, x1, y1) for an image and the notes of what was decided."""
    h, w = rgb.shape[:2]
    if cfg.crop_mode == "none":
        return (0, 0, w, h), []
    if cfg.crop_mode == "auto":
        box = detect_grid_area(rgb)
        if box is not None:
            return box, ["automatic crop: coloured grid area detected"]
        notes = ["automatic crop found no coloured ECG grid; the relative crop fractions were used instead"]
    else:
        notes = []
    x0, x1 = int(round(cfg.crop_left * w)), w - int(round(cfg.crop_right * w))
    y0, y1 = int(round(cfg.crop_top * h)), h - int(round(cfg.crop_bottom * h))
    return (x0, y0, x1, y1), notes


def detect_grid_area(rgb: np.ndarray, *, min_fraction: float = 0.25) -> tuple[int, int, int, int] | None:
    """Find the bounding box of the coloured (pink/red/orange/green/blue) ECG grid, or ``None``.

    A pixel is "grid coloured" when its saturation is noticeable (max - min channel > 25) and it is light
    (max channel > 120). Rows and columns where more than 3 % of pixels are grid coloured form the area; the box
    must cover at least ``min_fraction`` of the image in both directions.

    The mask is computed at the image's own resolution (up to 2400 px on the long side): reports whose grid is a
    faint grey dotted grid inside a thin pink frame (the Mendeley reports) have only that 2-3 px frame as coloured
    pixels, and shrinking the image first blends it with the white paper below the saturation threshold.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        return None
    h, w = rgb.shape[:2]
    scale = _GRID_MAX_SIDE / max(h, w)
    small = cv2.resize(rgb, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    r, g, b = cv2.split(np.ascontiguousarray(small, dtype=np.uint8))
    mx = cv2.max(cv2.max(r, g), b)
    mn = cv2.min(cv2.min(r, g), b)
    mask = cv2.bitwise_and(cv2.compare(cv2.subtract(mx, mn), 25, cv2.CMP_GT), cv2.compare(mx, 120, cv2.CMP_GT))
    row_share = cv2.reduce(mask, 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel() / 255.0
    col_share = cv2.reduce(mask, 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel() / 255.0
    rows = np.flatnonzero(row_share > 0.03)
    cols = np.flatnonzero(col_share > 0.03)
    if len(rows) < 2 or len(cols) < 2:
        return None
    sh, sw = mask.shape
    y0, y1 = rows[0] / sh, (rows[-1] + 1) / sh
    x0, x1 = cols[0] / sw, (cols[-1] + 1) / sw
    if (y1 - y0) < min_fraction or (x1 - x0) < min_fraction:
        return None
    return (int(x0 * w), int(y0 * h), min(w, int(np.ceil(x1 * w))), min(h, int(np.ceil(y1 * h))))


def preprocess(rgb: np.ndarray, cfg: PreprocessConfig, *, keep_steps: bool = True) -> PreprocessResult:
    """Run the pipeline on a uint8 RGB (H, W, 3) or gray (H, W) image; see the module docstring."""
    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3):
        raise ConfigError(f"preprocess expects a uint8 image of shape (H, W) or (H, W, 3); got {rgb.dtype} {rgb.shape}")
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    steps: list[tuple[str, np.ndarray]] = []
    if keep_steps:
        steps.append(("original", rgb))
    box, notes = crop_box_for(rgb, cfg)
    x0, y0, x1, y1 = box
    img = rgb[y0:y1, x0:x1]
    if keep_steps and cfg.crop_mode != "none":
        steps.append(("cropped", img))
    work = (int(round(cfg.width * cfg.work_factor)), int(round(cfg.height * cfg.work_factor)))
    if img.shape[1] > work[0] or img.shape[0] > work[1]:
        img = cv2.resize(img, work, interpolation=cv2.INTER_AREA)
        if keep_steps:
            steps.append((f"work size {work[0]}x{work[1]}", img))
    if cfg.grayscale:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        if keep_steps:
            steps.append(("grayscale", img))
    if cfg.clahe:
        clahe = cv2.createCLAHE(clipLimit=float(cfg.clahe_clip), tileGridSize=(int(cfg.clahe_tiles),) * 2)
        if img.ndim == 2:
            img = clahe.apply(img)
        else:  # equalise lightness only, keep the colours
            lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
            lab[:, :, 0] = clahe.apply(lab[:, :, 0])
            img = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
        if keep_steps:
            steps.append(("CLAHE", img))
    if cfg.median_ksize:
        img = cv2.medianBlur(img, int(cfg.median_ksize))
        if keep_steps:
            steps.append((f"median {cfg.median_ksize}x{cfg.median_ksize}", img))
    interp = cv2.INTER_AREA if img.shape[1] >= cfg.width else cv2.INTER_LINEAR
    img = cv2.resize(img, (int(cfg.width), int(cfg.height)), interpolation=interp)
    if keep_steps:
        steps.append((f"resized {cfg.width}x{cfg.height}", img))
    final = to_model_channels(img, cfg.channels)
    return PreprocessResult(
        final=final.astype(np.float32) / 255.0,
        steps=steps,
        crop_box=box,
        original_shape=(int(rgb.shape[0]), int(rgb.shape[1])),
        notes=notes,
    )


def to_model_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) -> uint8 (H, W, channels)."""
    if channels == 1:
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        return img[:, :, None]
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    return img


_NPY_HEADER = re.compile(
    r"""^\{'descr': '(?P<descr>[|<>=]?[a-z]\d+)', 'fortran_order': (?P<fortran>True|False), 'shape': """
    r"""\((?P<shape>[0-9, ]*)\), \}\s*$""")


def load_npy(path: str | Path) -> np.ndarray:
    """Read a ``.npy`` file written by ``np.save`` (format 1.0/2.0, no pickles), thread-safely.

    ``np.load`` parses the header with ``ast.literal_eval``, and CPython 3.11's parser is not safe when threads
    parse at the same time ("SystemError: AST constructor recursion depth mismatch", seen here when tf.data's map
    threads load cache entries in parallel). This reads the same header with a regular expression instead and
    raises ``ValueError`` for anything it does not recognise (the caller treats that as a cache miss).
    """
    with open(path, "rb") as f:
        magic = f.read(8)
        if magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2):
            raise ValueError(f"{path}: not a .npy file")
        n = int.from_bytes(f.read(2 if magic[6] == 1 else 4), "little")
        m = _NPY_HEADER.match(f.read(n).decode("latin1"))
        if m is None or m["fortran"] == "True":
            raise ValueError(f"{path}: unsupported .npy header")
        shape = tuple(int(v) for v in m["shape"].replace(" ", "").split(",") if v)
        dtype = np.dtype(m["descr"])
        count = int(np.prod(shape)) if shape else 1
        data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ValueError(f"{path}: truncated .npy file")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


class PreprocessCache:
    """On-disk cache of preprocessed images, keyed by (file content hash, config hash).

    Files are stored as uint8 ``.npy`` under ``root/<config hash>/<content hash>.npy`` and written atomically
    (:mod:`ecg_core.core.atomic`: temporary file + rename), so a killed process never leaves a half-written entry.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, content_hash: str, cfg: PreprocessConfig) -> Path:
        if not content_hash or any(c not in "0123456789abcdef" for c in content_hash):
            raise ConfigError(f"content_hash must be a hex digest; got {content_hash!r}")
        return self.root / cfg.config_hash() / f"{content_hash}.npy"

    def get(self, content_hash: str, cfg: PreprocessConfig) -> np.ndarray | None:
        p = self.path_for(content_hash, cfg)
        try:
            arr = load_npy(p)
        except (OSError, ValueError):
            return None
        return arr if arr.shape == cfg.input_shape and arr.dtype == np.uint8 else None

    def put(self, content_hash: str, cfg: PreprocessConfig, arr_uint8: np.ndarray) -> Path:
        if arr_uint8.dtype != np.uint8 or arr_uint8.shape != cfg.input_shape:
            raise ConfigError(
                f"cache entries must be uint8 of shape {cfg.input_shape}; got {arr_uint8.dtype} {arr_uint8.shape}"
            )
        p = self.path_for(content_hash, cfg)
        cfg_file = p.parent / "config.json"
        if not cfg_file.exists():
            atomic_write_json(cfg_file, cfg.to_dict())
        return atomic_write_via(p, lambda f: np.save(f, arr_uint8, allow_pickle=False))


def preprocess_file(
    path: str | Path,
    cfg: PreprocessConfig,
    *,
    content_hash: str | None = None,
    cache: PreprocessCache | None = None,
) -> np.ndarray:
    """Preprocess one image file to a uint8 (height, width, channels) array, using the cache when given.

    Raises :class:`~ecg_core.core.errors.ImageLoadError` when the file cannot be read.
    """
    from ecg_core.imaging.loader import load_image, read_bytes

    data = read_bytes(path)
    h = content_hash or file_hash(data)
    if cache is not None:
        hit = cache.get(h, cfg)
        if hit is not None:
            return hit
    img = load_image(data, name=Path(path).name, draft_size=draft_size(cfg))
    out = preprocess(img.rgb, cfg, keep_steps=False).final
    arr = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    if cache is not None:
        cache.put(h, cfg, arr)
    return arr


def draft_size(cfg: PreprocessConfig) -> tuple[int, int]:
    """A JPEG draft size that still leaves the cropped area larger than the work size."""
    f = cfg.work_factor / (1.0 - max(cfg.crop_top + cfg.crop_bottom, cfg.crop_left + cfg.crop_right, 0.0))
    return (int(cfg.width * f) + 1, int(cfg.height * f) + 1)
