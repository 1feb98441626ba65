"""Fuzzing the two places where untrusted bytes enter the app: the image loader and the zip import.

Thousands of random and mutated inputs (bit flips, byte overwrites, truncations, insertions, deletions, header
fields set to extreme values, repeated blocks) derived from valid JPEG, PNG, TIFF, BMP (and GIF/WebP, which must be
refused) files, and zips with random or hostile member names. The contract: the result is either a valid
decode/import or one of the project's own errors (an ``EcgCoreError`` subclass) — never another exception, never
a file outside the target folder. ``derandomize=True`` makes every run (and CI) see the same examples.
"""

from __future__ import annotations

import io
import shutil
import stat
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import report_like
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ecg_core.ml.zip_import import ZipLimits, extract_zip
from ecg_core.core.errors import EcgCoreError, ImageLoadError
from ecg_core.imaging.loader import load_image

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow and zipfile warn about the damage itself

FUZZ = dict(derandomize=True, deadline=None, database=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                   HealthCheck.function_scoped_fixture])
N_IMAGE = 2000  # examples per image test (x2)
N_ZIP_HOSTILE = 700  # zips with hostile member names and flags
N_ZIP_MUTATED = 1000  # mutated valid zips and random bytes behind "PK"
FUZZ_MAX_PIXELS = 4_000_000  # a mutated header may claim up to this many pixels: keeps each decode fast
SLOWEST = {"image": 0.0, "zip": 0.0}


# ---------------------------------------------------------------------------------------------------- seeds
def _enc(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def _seeds() -> dict[str, bytes]:
    rgb = Image.fromarray(report_like(3, size=(56, 40)))
    exif = Image.Exif()
    exif[0x0112] = 8
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return {
        "jpeg": _enc(rgb, "JPEG", quality=80),
        "jpeg-progressive-exif": _enc(rgb, "JPEG", progressive=True, exif=exif),
        "jpeg-cmyk": _enc(rgb.convert("CMYK"), "JPEG"),
        "jpeg-gray": _enc(rgb.convert("L"), "JPEG"),
        "png": _enc(rgb, "PNG"),
        "png-palette-transparent": _enc(rgb.convert("P"), "PNG", transparency=0),
        "png-16bit": _enc(Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257), "PNG"),
        "png-interlaced-rgba": _enc(rgb.convert("RGBA"), "PNG", optimize=False, interlace=1),
        "tiff": _enc(rgb, "TIFF"),
        "tiff-lzw": _enc(rgb, "TIFF", compression="tiff_lzw"),
        "tiff-packbits-multipage": _enc(rgb, "TIFF", compression="packbits", save_all=True, append_images=[rgb]),
        "tiff-jpeg": _enc(rgb, "TIFF", compression="jpeg"),
        "bmp": _enc(rgb, "BMP"),
        "bmp-palette": _enc(rgb.convert("P"), "BMP"),
        "bmp-1bit": _enc(rgb.convert("1"), "BMP"),
        "gif-animated": _enc(frames[0].convert("P"), "GIF", save_all=True, append_images=[frames[1].convert("P")]),
        "webp": _enc(rgb, "WEBP"),
    }


SEEDS = _seeds()
SEED_NAMES = sorted(SEEDS)
INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 40000, 65500)
MAGICS = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"BM", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP",
          b"%PDF-", b"PK\x03\x04", b"\x00\x00\x01\x00", b"8BPS", b"%!PS-Adobe-3.0 EPSF-3.0", b"P6\n", b"")


# strategies are built once (building them inside the composites costs more than running the loader)
_N_MUT = st.integers(1, 4)
_KIND = st.sampled_from(("flip", "byte", "truncate", "insert", "delete", "field", "repeat", "header"))
_POS = st.integers(0, 1 << 20)
_BIT = st.integers(0, 7)
_BYTE = st.integers(0, 255)
_INSERT = st.binary(min_size=1, max_size=64)
_SPAN = st.integers(1, 64)
_WIDTH = st.sampled_from((1, 2, 4))
_VALUE = st.sampled_from(INTERESTING)
_ORDER = st.sampled_from("<>")
_BLOCK = st.integers(1, 256)
_TIMES = st.integers(1, 8)


@st.composite
def mutations(draw, blob: bytes) -> bytes:
    """Apply 1-4 random structure-blind mutations to ``blob``."""
    b = bytearray(blob)
    for _ in range(draw(_N_MUT)):
        if not b:
            break
        kind = draw(_KIND)
        pos = draw(_POS) % len(b)
        if kind == "flip":
            b[pos] ^= 1 << draw(_BIT)
        elif kind == "byte":
            b[pos] = draw(_BYTE)
        elif kind == "truncate":
            del b[pos:]
        elif kind == "insert":
            b[pos:pos] = draw(_INSERT)
        elif kind == "delete":
            del b[pos : pos + draw(_SPAN)]
        elif kind in ("field", "header"):  # header fields: sizes, counts, offsets set to extreme values
            if kind == "header":
                pos %= min(len(b), 64)
            width = draw(_WIDTH)
            value = draw(_VALUE) & ((1 << (8 * width)) - 1)
            b[pos : pos + width] = struct.pack(draw(_ORDER) + {1: "B", 2: "H", 4: "I"}[width], value)
        else:  # repeat a block (duplicated chunks / markers)
            n = draw(_BLOCK)
            b[pos:pos] = b[pos : pos + n] * draw(_TIMES)
    return bytes(b)


_SEED_NAME = st.sampled_from(SEED_NAMES)
_SEED_MUTATIONS = {name: mutations(blob) for name, blob in SEEDS.items()}


@st.composite
def mutated_images(draw) -> bytes:
    return draw(_SEED_MUTATIONS[draw(_SEED_NAME)])


def _check_image(blob: bytes, *, draft: bool) -> None:
    t0 = time.perf_counter()
    try:
        img = load_image(blob, name="fuzz.jpg", max_pixels=FUZZ_MAX_PIXELS,
                         draft_size=(400, 300) if draft else None)
    except ImageLoadError as e:
        assert str(e).startswith("fuzz.jpg: ") and "Traceback" not in str(e)
    else:
        assert img.rgb.dtype == np.uint8 and img.rgb.ndim == 3 and img.rgb.shape[2] == 3
        assert img.rgb.flags["C_CONTIGUOUS"] and min(img.rgb.shape[:2]) >= 1
        assert img.source_format in ("JPEG", "MPO", "PNG", "BMP", "TIFF")
    SLOWEST["image"] = max(SLOWEST["image"], time.perf_counter() - t0)


@settings(max_examples=N_IMAGE, **FUZZ)
@given(blob=mutated_images(), draft=st.booleans())
def test_fuzz_loader_mutated_valid_images(blob, draft):
    """Mutated JPEG/PNG/TIFF/BMP/GIF/WebP files: a valid 8-bit RGB image or ImageLoadError, nothing else."""
    _check_image(blob, draft=draft)


@settings(max_examples=N_IMAGE, **FUZZ)
@given(magic=st.sampled_from(MAGICS), tail=st.binary(max_size=2048), draft=st.booleans())
def test_fuzz_loader_random_bytes_behind_magic_numbers(magic, tail, draft):
    """Random bytes behind the magic numbers of many formats (so every Pillow parser gets hostile headers)."""
    _check_image(magic + tail, draft=draft)


def test_fuzz_loader_never_hands_bytes_to_external_programs(monkeypatch):
    """A PostScript file renamed .jpg must be refused without Pillow calling Ghostscript (EPS plugin)."""
    import subprocess

    def refuse(*a, **k):
        raise AssertionError(f"an external program was started: {a}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "check_call", refuse)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nnewpath 0 0 moveto 100 100 lineto stroke\n"
    with pytest.raises(ImageLoadError):
        load_image(eps, name="x.jpg")


# ------------------------------------------------------------------------------------------------------- zips
SMALL_LIMITS = ZipLimits(max_entries=64, max_total_bytes=2_000_000, max_file_bytes=400_000, max_ratio=200.0)
NAME_PARTS = ("..", ".", "", "Normal", "MI", "a.png", "b.jpg", "x.json", "C:", "c:\\", "\\", "/", "\x00",
              "__MACOSX", ".hidden", "é", "💓", "a" * 300, " ", "~", "$HOME", "%2e%2e", "con", "a.png/b.png")


_PARTS = st.lists(st.one_of(st.sampled_from(NAME_PARTS), st.text(max_size=12)), min_size=1, max_size=6)
_SEPARATOR = st.sampled_from(("/", "\\", "//", "/./"))
_PREFIX = st.sampled_from(("", "", "/", "\\", "../", "..\\", "C:/", "//server/share/"))
_SUFFIX = st.sampled_from((".png", ".jpg", ".json", ".txt", "/", "", ""))


@st.composite
def member_names(draw) -> str:
    return draw(_PREFIX) + draw(_SEPARATOR).join(draw(_PARTS)) + draw(_SUFFIX)


def _with_raw_name(data: bytes, placeholder: str, raw: bytes) -> bytes:
    """Replace a placeholder member name by raw bytes (NUL...) that zipfile would not write."""
    assert len(placeholder.encode()) == len(raw)
    return data.replace(placeholder.encode(), raw)


_N_MEMBERS = st.integers(1, 8)
_ONE_IN_TEN = st.integers(0, 9)
_METHOD = st.sampled_from((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED,
                           zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA))
_CONTENT = st.one_of(st.just(SEEDS["png"]), st.binary(max_size=256), st.just(bytes(50_000)))
_FLAG_PATCH = st.sampled_from(((6, 0x0001), (8, 99), (8, 12), (8, 14), (8, 93)))
_BOOL = st.booleans()


@st.composite
def hostile_zips(draw) -> bytes:
    """A zip with random member names, contents, flags (symlink mode, encryption bit, compression method)."""
    b = io.BytesIO()
    raw_names: list[tuple[str, bytes]] = []
    with zipfile.ZipFile(b, "w") as zf:
        for i in range(draw(_N_MEMBERS)):
            name = draw(member_names())
            raw = name.encode()[:60]
            if ("\x00" in name or draw(_ONE_IN_TEN) == 0) and len(raw) >= 4:
                name = f"@@{i:02d}" + "#" * (len(raw) - 4)  # written as raw bytes below, behind zipfile's back
                raw_names.append((name, raw))
            info = zipfile.ZipInfo(name.replace("\x00", "_") or "_", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = draw(_METHOD)
            if draw(_ONE_IN_TEN) < 2:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, draw(_CONTENT))
    data = b.getvalue()
    for placeholder, raw in raw_names:
        data = _with_raw_name(data, placeholder, raw)
    if draw(_BOOL):
        data = draw(mutations(data))
    if draw(_ONE_IN_TEN) < 2:  # set the encryption flag or an unknown compression method on every entry
        ba = bytearray(data)
        field, value = draw(_FLAG_PATCH)
        for sig, base in ((b"PK\x03\x04", 0), (b"PK\x01\x02", 2)):
            pos = ba.find(sig)
            while pos >= 0:
                ba[pos + base + field : pos + base + field + 2] = struct.pack("<H", value)
                pos = ba.find(sig, pos + 4)
        data = bytes(ba)
    return data


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _check_zip(blob: bytes, box: Path) -> None:
    """extract_zip into ``box/out``: an import confined to ``out`` or a DatasetError; ``box`` otherwise unchanged."""
    t0 = time.perf_counter()
    dest = box / "out"
    before = _snapshot(box)
    try:
        res = extract_zip(blob, dest, limits=SMALL_LIMITS)
    except EcgCoreError as e:
        assert str(e) and not dest.exists()
    else:
        real = dest.resolve()
        files = [p for p in dest.rglob("*") if p.is_file() or p.is_symlink()]
        for p in files:
            assert not p.is_symlink() and real in p.resolve().parents
        assert sum(p.stat().st_size for p in files) <= SMALL_LIMITS.max_total_bytes
        assert {str(p.relative_to(dest)) for p in files} == set(res.extracted)
        shutil.rmtree(dest)
    assert _snapshot(box) == before, "extract_zip left files outside its target folder"
    SLOWEST["zip"] = max(SLOWEST["zip"], time.perf_counter() - t0)


@pytest.fixture(scope="module")
def zip_box(tmp_path_factory) -> Path:
    """A folder two levels deep, so that '../' escapes would land in folders we watch."""
    box = tmp_path_factory.mktemp("zipfuzz") / "outer" / "box"
    box.mkdir(parents=True)
    return box


@settings(max_examples=N_ZIP_HOSTILE, **FUZZ)
@given(blob=hostile_zips())
def test_fuzz_zip_hostile_members(blob, zip_box):
    outer = zip_box.parent.parent
    before = _snapshot(outer)
    _check_zip(blob, zip_box)
    assert _snapshot(outer) == before


def _valid_zip() -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Normal/a.png", SEEDS["png"])
        zf.writestr("MI/b.jpg", SEEDS["jpeg"])
        zf.writestr("MI/b.json", b'{"class": "MI"}')
        zf.writestr("notes.txt", b"hello")
    return b.getvalue()


@settings(max_examples=N_ZIP_MUTATED, **FUZZ)
@given(blob=st.one_of(mutations(_valid_zip()), st.binary(max_size=512).map(lambda t: b"PK\x03\x04" + t)))
def test_fuzz_zip_mutated_and_random_bytes(blob, zip_box):
    outer = zip_box.parent.parent
    before = _snapshot(outer)
    _check_zip(blob, zip_box)
    assert _snapshot(outer) == before


# ------------------------------------------------------------------------------- regressions the fuzzer found
def _raw_zip(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A stored zip whose member names are raw bytes (zipfile cannot write NUL in a name)."""
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as zf:
        for i, (raw, data) in enumerate(entries):
            zf.writestr(f"@@{i:02d}" + "#" * (len(raw) - 4), data)
    out = b.getvalue()
    for i, (raw, _) in enumerate(entries):
        out = _with_raw_name(out, f"@@{i:02d}" + "#" * (len(raw) - 4), raw)
    return out


@pytest.mark.parametrize("entries, reason", [
    # a name starting with NUL reads back as "" and ZipInfo.is_dir() raised IndexError
    ([(b"\x00/..", SEEDS["png"]), (b"Normal/a.png", SEEDS["png"])], "unsafe"),
    # a name longer than the file system allows raised OSError(ENAMETOOLONG) from mkdir/resolve
    ([(b"Normal/" + b"a" * 300 + b"/x.png", SEEDS["png"]), (b"Normal/a.png", SEEDS["png"])], "File name too long"),
    # a file and a folder of the same name raised FileExistsError / NotADirectoryError from mkdir
    ([(b"Normal/a.png", SEEDS["png"]), (b"Normal/a.png/b.png", SEEDS["png"])], "clashes with another entry"),
], ids=["nul-name", "name-too-long", "file-folder-clash"])
def test_zip_regressions(entries, reason, tmp_path):
    res = extract_zip(_raw_zip(entries), tmp_path / "out")
    assert res.extracted == ["Normal/a.png"]
    assert any(reason in why for _, why in res.skipped), res.skipped


def test_zip_damaged_deflate_stream_is_a_skipped_entry(tmp_path):
    """zlib.error (not an OSError) from a corrupted deflate stream is reported as a damaged entry."""
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Normal/bad.png", bytes(range(256)) * 64)
        zf.writestr("Normal/a.png", SEEDS["png"])
    data = bytearray(b.getvalue())
    start = 30 + len("Normal/bad.png")
    data[start : start + 8] = b"\xff" * 8  # garbage where the deflate stream starts
    res = extract_zip(bytes(data), tmp_path / "out")
    assert res.extracted == ["Normal/a.png"]
    assert "damaged entry" in dict(res.skipped)["Normal/bad.png"]


SLOWEST_LIMIT_S = 5.0  # one hostile input that takes longer is a denial of service (decompression or decode bomb)


def test_fuzz_report_slowest(capsys):
    """Prints the slowest single input seen (runs after the fuzz tests in file order) and checks it: no single
    hostile image or zip took SLOWEST_LIMIT_S or more (a decode or decompression bomb that the size guards let
    through). Skipped when the fuzz tests did not run in this session (e.g. ``-k`` selected this test alone)."""
    with capsys.disabled():
        print(f"\nfuzz: slowest image {SLOWEST['image'] * 1000:.0f} ms, slowest zip {SLOWEST['zip'] * 1000:.0f} ms")
    if not any(SLOWEST.values()):
        pytest.skip("the fuzz tests did not run in this session: nothing to check")
    assert SLOWEST["image"] < SLOWEST_LIMIT_S, f"one image took {SLOWEST['image']:.1f} s to load or refuse"
    assert SLOWEST["zip"] < SLOWEST_LIMIT_S, f"one zip took {SLOWEST['zip']:.1f} s to import or refuse"
