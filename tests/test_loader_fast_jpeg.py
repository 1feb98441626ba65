"""The JPEG fast path of ``imaging.loader``: OpenCV decodes plain colour JPEGs to exactly Pillow's pixels (the
model input must stay what training used), at every draft scale; everything else still goes through Pillow."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from ecg_core.core.errors import ImageLoadError
from ecg_core.imaging import loader


def _jpeg(size=(517, 333), **save) -> bytes:
    rng = np.random.default_rng(sum(size))
    img = cv2.GaussianBlur((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8), (0, 0), 2)
    b = io.BytesIO()
    Image.fromarray(img).save(b, "JPEG", **save)
    return b.getvalue()


def _pillow(data: bytes, draft=None) -> np.ndarray:
    orig = loader._jpeg_fast
    loader._jpeg_fast = lambda *a, **k: None
    try:
        return loader.load_image(data, draft_size=draft).rgb
    finally:
        loader._jpeg_fast = orig


@pytest.mark.parametrize("subsampling", [0, 1, 2])
@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("draft", [None, (1100, 329), (500, 300), (250, 150), (120, 70)])
def test_fast_path_gives_pillows_pixels(subsampling, progressive, draft) -> None:
    data = _jpeg((1106, 786), quality=80, subsampling=subsampling, progressive=progressive)
    w, h = 1106, 786
    # the path is taken (a plain colour JPEG), with Pillow's draft scale
    scale = 1
    if draft is not None:
        k = min(w // draft[0], h // draft[1])
        scale = next((s for s in (8, 4, 2) if k >= s), 1)
    fast = loader._jpeg_fast(data, "JPEG", "RGB", False, (w, h), draft)
    assert fast is not None and fast.shape == ((h + scale - 1) // scale, (w + scale - 1) // scale, 3)
    img = loader.load_image(data, draft_size=draft)
    np.testing.assert_array_equal(img.rgb, _pillow(data, draft))
    assert img.original_size == (w, h)


def test_odd_sizes_and_small_pictures_match() -> None:
    for size in ((33, 47), (517, 333), (1107, 787)):
        data = _jpeg(size, quality=95)
        np.testing.assert_array_equal(loader.load_image(data).rgb, _pillow(data))


def test_truncated_rotated_and_grey_jpegs_keep_pillows_path() -> None:
    data = _jpeg(quality=90)
    # truncated: no end-of-image marker -> Pillow's error, never OpenCV's grey fill
    assert loader._jpeg_fast(data[:-2000], "JPEG", "RGB", False, (517, 333), None) is None
    with pytest.raises(ImageLoadError):
        loader.load_image(data[: len(data) // 2])
    # an EXIF rotation: Pillow decodes and turns the picture
    im = Image.open(io.BytesIO(data))
    exif = im.getexif()
    exif[0x0112] = 6
    b = io.BytesIO()
    im.save(b, "JPEG", exif=exif.tobytes(), quality=90)
    rotated = loader.load_image(b.getvalue())
    assert rotated.exif_rotated and rotated.rgb.shape[:2] == (517, 333)
    # grey JPEG (mode L), PNG: not this path
    assert loader._jpeg_fast(data, "JPEG", "L", False, (517, 333), None) is None
    assert loader._jpeg_fast(data, "PNG", "RGB", False, (517, 333), None) is None
    g = io.BytesIO()
    Image.fromarray(np.full((40, 50), 128, np.uint8)).save(g, "JPEG")
    assert loader.load_image(g.getvalue()).rgb.shape == (40, 50, 3)
