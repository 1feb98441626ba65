"""The safe loader: every supported variant decodes to uint8 RGB; every bad input raises ImageLoadError."""

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ecg_core.core.errors import ImageLoadError
from ecg_core.imaging.loader import load_image


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def _png_with_size(width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR claims another size (the classic decompression bomb header)."""
    data = bytearray(_encode(Image.new("L", (64, 64), 255), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


RGB = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° CW on display
    return _encode(RGB, "JPEG", exif=exif)


GOOD = {
    "jpeg": _encode(RGB, "JPEG"),
    "png": _encode(RGB, "PNG"),
    "bmp": _encode(RGB, "BMP"),
    "tiff": _encode(RGB, "TIFF"),
    "grayscale": _encode(RGB.convert("L"), "PNG"),
    "rgba": _encode(RGB.convert("RGBA"), "PNG"),
    "palette": _encode(RGB.convert("P"), "PNG"),
    "16-bit": _encode(Image.fromarray((np.arange(80 * 60).reshape(60, 80) * 13).astype(np.uint16)), "PNG"),
    "cmyk jpeg": _encode(RGB.convert("CMYK"), "JPEG"),
    "1-bit": _encode(RGB.convert("1"), "PNG"),
}


@pytest.mark.parametrize("name", list(GOOD))
def test_good_variants_decode_to_rgb8(name):
    img = load_image(GOOD[name], name=name)
    assert img.rgb.dtype == np.uint8 and img.rgb.ndim == 3 and img.rgb.shape[2] == 3
    assert img.rgb.shape[:2] == (60, 80)


def test_rgba_is_composited_on_white():
    arr = np.zeros((40, 40, 4), np.uint8)  # fully transparent black
    img = load_image(_encode(Image.fromarray(arr, "RGBA"), "PNG"))
    assert (img.rgb == 255).all()


def test_16bit_uses_full_range():
    img = load_image(GOOD["16-bit"])
    assert img.rgb.min() == 0 and img.rgb.max() == 255


def test_exif_orientation_applied():
    img = load_image(_exif_rotated_jpeg())
    assert img.exif_rotated and img.rgb.shape[:2] == (80, 60)


def test_draft_size_is_the_upright_size_for_exif_rotated_jpegs():
    """A JPEG stored 1200x400 and shown turned by 90 degrees (400x1200 upright) asked for at least 190x590 upright:
    the decoder halves it (600x200 stored -> 200x600 upright) instead of applying the size to the stored axes."""
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.fromarray(np.random.default_rng(1).integers(0, 255, (400, 1200, 3), dtype=np.uint8))
    img = load_image(_encode(stored, "JPEG", exif=exif), draft_size=(190, 590))
    assert img.exif_rotated and img.original_size == (400, 1200)
    assert img.rgb.shape[:2] == (600, 200)


def _gif_animated() -> bytes:
    frames = [Image.new("P", (64, 64), i) for i in range(3)]
    b = io.BytesIO()
    frames[0].save(b, "GIF", save_all=True, append_images=frames[1:])
    return b.getvalue()


BAD = [
    ("empty", b"", "empty"),
    ("truncated jpeg", GOOD["jpeg"][: len(GOOD["jpeg"]) // 2], "damaged or truncated"),
    ("text renamed .jpg", b"hello, this is not an image\n" * 4, "text file"),
    ("pdf renamed .jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\n", "PDF"),
    ("decompression bomb", _png_with_size(20000, 20000), "limit is 40 MP"),
    ("8x8 image", _encode(Image.new("RGB", (8, 8)), "PNG"), "only 8x8"),
    ("animated gif", _gif_animated(), "GIF"),
    ("random bytes", bytes(range(256)) * 3, "not a readable image"),
]


@pytest.mark.parametrize("name, data, message", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_raise_typed_error_with_message(name, data, message):
    with pytest.raises(ImageLoadError, match=message):
        load_image(data, name=name)


def test_file_size_limit(tmp_path):
    p = tmp_path / "big.jpg"
    p.write_bytes(GOOD["jpeg"])
    with pytest.raises(ImageLoadError, match="limit"):
        load_image(p, max_bytes=100)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="cannot read"):
        load_image(tmp_path / "nope.png")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096), cut=st.integers(0, 4096), flip=st.integers(0, 255))
def test_fuzz_only_typed_errors(data, cut, flip):
    """Random bytes and mutated valid images: decode or ImageLoadError, nothing else."""
    for blob in (data, _mutate(GOOD["png"], cut, flip), _mutate(GOOD["jpeg"], cut, flip)):
        try:
            load_image(blob)
        except ImageLoadError:
            pass


def _mutate(blob: bytes, cut: int, flip: int) -> bytes:
    b = bytearray(blob[: max(cut, 16)])
    if len(b) > 20:
        b[flip % len(b)] ^= 0xFF
    return bytes(b)
