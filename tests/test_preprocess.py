"""PreprocessConfig validation, the pipeline's steps and geometry, the on-disk cache."""

import numpy as np
import pytest

from conftest import SHARED_DATA, report_like, write_image
from ecg_core.core.errors import ConfigError
from ecg_core.imaging.loader import load_image
from ecg_core.imaging.preprocess import PreprocessCache, PreprocessConfig, detect_grid_area, preprocess, preprocess_file


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"crop_mode": "magic"}, "crop_mode must be one of relative, auto, none"),
        ({"crop_top": 0.6}, "crop_top must be a fraction"),
        ({"crop_top": 0.45, "crop_bottom": 0.45}, "less than 10 %"),
        ({"median_ksize": 4}, "odd number"),
        ({"height": 8}, "height must be an integer"),
        ({"channels": 2}, "channels must be 1"),
        ({"clahe_clip": 0}, "clahe_clip"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PreprocessConfig(**kwargs)


def test_config_hash_and_roundtrip():
    a = PreprocessConfig()
    assert a.config_hash() == PreprocessConfig().config_hash()
    assert a.config_hash() != PreprocessConfig(height=128).config_hash()
    assert PreprocessConfig.from_dict(a.to_dict()) == a
    with pytest.raises(ConfigError, match="unknown PreprocessConfig keys"):
        PreprocessConfig.from_dict({"hieght": 3})


def test_pipeline_steps_and_shapes():
    img = report_like(3, size=(640, 480))
    cfg = PreprocessConfig(height=96, width=128, channels=3)
    res = preprocess(img, cfg)
    names = [n for n, _ in res.steps]
    assert names[0] == "original" and names[1] == "cropped" and "grayscale" in names and "CLAHE" in names
    assert names[-1] == "resized 128x96" and any(n.startswith("median") for n in names)
    assert res.final.shape == (96, 128, 3) and res.final.dtype == np.float32
    assert 0.0 <= res.final.min() and res.final.max() <= 1.0
    assert res.crop_box == (19, 86, 630, 461)  # round(0.03*640), round(0.18*480), 640-round(.015*640), 480-round(.04*480)


def test_crop_removes_header_text():
    img = np.full((400, 600, 3), 255, np.uint8)
    img[:40] = 0  # black "header" band
    res = preprocess(img, PreprocessConfig(height=64, width=96, clahe=False, median_ksize=0, crop_top=0.15))
    assert res.final.min() > 0.9
    res_none = preprocess(img, PreprocessConfig(height=64, width=96, clahe=False, median_ksize=0, crop_mode="none"))
    assert res_none.final.min() < 0.1


def test_auto_crop_finds_grid_and_falls_back():
    img = report_like(5, size=(640, 480))  # grid starts at 18 % height
    box = detect_grid_area(img)
    assert box is not None and abs(box[1] - int(0.18 * 480)) <= 4
    bw = np.full((300, 400, 3), 255, np.uint8)
    res = preprocess(bw, PreprocessConfig(crop_mode="auto", height=32, width=32))
    assert res.notes and "no coloured ECG grid" in res.notes[0]


def _faint_frame_report(w: int = 1106, h: int = 786) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A Mendeley-like report (PNG quality): grey dotted grid inside a thin, faint pink 2 px frame."""
    img = np.full((h, w, 3), 255, np.uint8)
    x0, y0, x1, y1 = int(0.031 * w), int(0.179 * h), int(0.985 * w), int(0.966 * h)
    for y in range(y0 + 6, y1 - 3, 6):
        img[y, x0 + 3: x1 - 3: 3] = (205, 203, 200)
    for i, c in enumerate([(236, 200, 200), (244, 214, 215)]):
        img[y0 + i, x0:x1] = c
        img[y1 - 1 - i, x0:x1] = c
        img[y0:y1, x0 + i] = c
        img[y0:y1, x1 - 1 - i] = c
    for row in range(4):
        yc = int(h * (0.28 + 0.18 * row))
        xs = np.arange(x0 + 10, x1 - 10)
        ys = yc + (12 * np.sin(xs / 9.0)).astype(int)
        img[ys, xs] = 0
    return img, (x0, y0, x1, y1)


def test_auto_crop_finds_a_faint_thin_pink_frame():
    """Issue 19.4: the grid of the Mendeley reports is grey dots in a thin pink frame; shrinking the image to
    600 px before the colour test blended the frame into the paper, so no grid was found."""
    img, (x0, y0, x1, y1) = _faint_frame_report()
    box = detect_grid_area(img)
    assert box is not None
    assert all(abs(a - b) <= 3 for a, b in zip(box, (x0, y0, x1, y1))), box
    res = preprocess(img, PreprocessConfig(crop_mode="auto", height=32, width=48))
    assert res.notes == ["automatic crop: coloured grid area detected"] and res.crop_box == box


def test_auto_crop_on_real_mendeley_reports():
    """Every sampled real Mendeley report: the grid (its pink frame) is found and the box is the trace area."""
    root = SHARED_DATA / "mendeley-dev"
    files = sorted(root.glob("*/*.jpg"))[::9] if root.is_dir() else []
    if not files:
        pytest.skip("real Mendeley reports not present in ../shared/data")
    found = []
    for f in files:
        rgb = load_image(f).rgb
        box = detect_grid_area(rgb)
        if box is not None:
            h, w = rgb.shape[:2]
            found.append((box[0] / w, box[1] / h, box[2] / w, box[3] / h))
    assert len(found) == len(files), f"grid found on {len(found)} of {len(files)} reports"
    expected = (0.031, 0.179, 0.985, 0.966)  # below the header text, above the footer line, inside the margins
    assert np.abs(np.array(found) - expected).max() < 0.01


def test_resolution_independence():
    big = report_like(9, size=(1280, 960))
    import cv2

    small = cv2.resize(big, (640, 480), interpolation=cv2.INTER_AREA)
    cfg = PreprocessConfig(height=96, width=160)
    d = np.abs(preprocess(big, cfg).final - preprocess(small, cfg).final).mean()
    assert d < 0.05


def test_cache_roundtrip_and_atomicity(tmp_path):
    f = write_image(tmp_path / "a.png", report_like(1))
    cfg = PreprocessConfig(height=48, width=64)
    cache = PreprocessCache(tmp_path / "cache")
    a = preprocess_file(f, cfg, cache=cache)
    files = list((tmp_path / "cache").rglob("*.npy"))
    assert len(files) == 1 and files[0].parent.name == cfg.config_hash()
    b = preprocess_file(f, cfg, cache=cache)
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == (48, 64, 1)
    files[0].write_bytes(b"garbage")  # a damaged entry is recomputed, not trusted
    c = preprocess_file(f, cfg, cache=cache)
    assert np.array_equal(a, c)
    assert not list((tmp_path / "cache").rglob(".tmp-*"))
    with pytest.raises(ConfigError, match="hex digest"):
        cache.path_for("../../etc", cfg)


def test_real_fullres_and_halfres_agree():
    full = SHARED_DATA / "mendeley-fullres-samples" / "Normal Person ECG Images (284x12=3408)" / "Normal(1).jpg"
    half = SHARED_DATA / "mendeley-dev" / "Normal Person ECG Images (284x12=3408)" / "Normal(1).jpg"
    if not (full.exists() and half.exists()):
        pytest.skip("real Mendeley samples not present in ../shared/data")
    cfg = PreprocessConfig()
    a = preprocess(load_image(full).rgb, cfg).final
    b = preprocess(load_image(half).rgb, cfg).final
    assert np.abs(a - b).mean() < 0.05
    assert np.abs(preprocess_file(full, cfg) / 255.0 - a).mean() < 0.05  # draft decode ~ full decode


def test_load_npy_matches_np_load_and_is_thread_safe(tmp_path) -> None:
    """The cache reader gives np.load's arrays without ast parsing (CPython 3.11's parser fails when threads parse
    at once: tf.data loads cache entries from several threads); anything unusual is a ValueError."""
    from concurrent.futures import ThreadPoolExecutor

    from ecg_core.imaging.preprocess import load_npy

    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (48, 64, 1), dtype=np.uint8), rng.random((3, 5)).astype(np.float32),
              np.arange(7, dtype=np.int64), np.zeros((0, 3), np.uint8)]
    paths = []
    for i, a in enumerate(arrays):
        paths.append(tmp_path / f"a{i}.npy")
        np.save(paths[-1], a, allow_pickle=False)
        got = load_npy(paths[-1])
        assert got.dtype == a.dtype and got.shape == a.shape and np.array_equal(got, a)
    with ThreadPoolExecutor(8) as pool:
        for got in pool.map(load_npy, paths[:1] * 400):
            assert np.array_equal(got, arrays[0])
    np.save(tmp_path / "f.npy", np.asfortranarray(rng.random((4, 3))))
    for bad, content in (("junk.npy", b"not numpy at all"), ("short.npy", (tmp_path / "a0.npy").read_bytes()[:-10])):
        (tmp_path / bad).write_bytes(content)
        with pytest.raises(ValueError):
            load_npy(tmp_path / bad)
    with pytest.raises(ValueError):
        load_npy(tmp_path / "f.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        load_npy(tmp_path / "obj.npy")  # a pickle: never read
