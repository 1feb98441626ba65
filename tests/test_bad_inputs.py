"""Bad-input matrix: every hostile or odd input goes through the loader, the upload widgets (Preprocess upload,
sidebar zip import), a dataset folder (Data page) and a zip archive, and must give a clear message, never a
traceback; the rest of the batch is still processed and nothing is written outside the app's folders.

The tables below (``IMAGE_CASES``, ``ARCHIVE_CASES``, ``FOLDER_CASES``) are the single source of
``docs/BAD_INPUTS.md``: ``test_doc_table_matches_code`` fails when the two drift apart. Regenerate the doc with

    .venv/bin/python tests/test_bad_inputs.py --write-doc
"""

from __future__ import annotations

import io
import os
import re
import secrets
import stat
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest  # imported before any sandbox: it makes its own temporary folder

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # --write-doc
    sys.path[:0] = [str(REPO), str(REPO / "tests")]

from conftest import report_like  # noqa: E402

DOC = REPO / "docs" / "BAD_INPUTS.md"
TIMEOUT = 120
GOOD_CLASSES = ("MI", "Normal")  # two classes of the cardiac-4 preset (folder-name mapping in ecg_core.core.labels)


# --------------------------------------------------------------------------------------------------- generators
def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def _photo() -> Image.Image:
    """A 160x120 report-like RGB picture (noise-free, so JPEG truncation really cuts image data)."""
    return Image.fromarray(report_like(7, size=(160, 120)))


def png_with_size(width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR claims ``width`` x ``height`` (the classic decompression-bomb header)."""
    data = bytearray(_encode(Image.new("L", (64, 64), 255), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def truncated_jpeg() -> bytes:
    data = _encode(_photo(), "JPEG", quality=95)
    return data[: len(data) // 2]


def text_file() -> bytes:
    return b"Patient: Jane Doe\nHR 72 bpm\nThis is a text note, not a picture.\n" * 3


def pdf_file() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def heic_header() -> bytes:
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)


def webp_file() -> bytes:
    return _encode(_photo(), "WEBP")


def tiny_8x8() -> bytes:
    return _encode(Image.new("RGB", (8, 8), "white"), "PNG")


def animated_gif() -> bytes:
    frames = [Image.new("P", (64, 64), i) for i in range(3)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


def animated_png() -> bytes:
    frames = [Image.new("RGB", (64, 64), (i * 80, 0, 0)) for i in range(3)]
    return _encode(frames[0], "PNG", save_all=True, append_images=frames[1:])


def grayscale_png() -> bytes:
    return _encode(_photo().convert("L"), "PNG")


def rgba_png() -> bytes:
    return _encode(_photo().convert("RGBA"), "PNG")


def png_16bit() -> bytes:
    arr = (np.arange(160 * 120).reshape(120, 160) * 3).astype(np.uint16)
    return _encode(Image.fromarray(arr), "PNG")


def cmyk_jpeg() -> bytes:
    return _encode(_photo().convert("CMYK"), "JPEG")


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise on display": phones store landscape pixels with this tag
    return _encode(_photo(), "JPEG", exif=exif)


def good_png(seed: int) -> bytes:
    return _encode(Image.fromarray(report_like(seed, size=(240, 180))), "PNG")


# ---------------------------------------------------------------------------------------------------- the tables
@dataclass(frozen=True)
class Case:
    """One row of the matrix. ``message`` is a literal excerpt that the user must see (and the loader raise)."""

    label: str
    filename: str
    make: Callable[[], bytes]
    outcome: str  # "refused" (ImageLoadError / DatasetError) or "accepted" (converted, with the note shown)
    message: str
    where: str = ""


IMAGE_CASES: list[Case] = [
    Case("empty file", "empty.jpg", lambda: b"", "refused", "the file is empty (0 bytes)"),
    Case("truncated JPEG (half the bytes)", "truncated.jpg", truncated_jpeg, "refused",
         "the image is damaged or truncated and cannot be decoded"),
    Case("text file renamed .jpg", "note.jpg", text_file, "refused",
         "not a readable image (it looks like a text file)"),
    Case("PDF renamed .jpg", "report.jpg", pdf_file, "refused", "not a readable image (it looks like a PDF document)"),
    Case("HEIC phone photo renamed .jpg", "phone.jpg", heic_header, "refused", "HEIC photo (convert it to JPEG)"),
    Case("WebP renamed .jpg", "web.jpg", webp_file, "refused", "a WebP or other RIFF file cannot be used"),
    Case("20000x20000 PNG (decompression bomb header)", "bomb.png", lambda: png_with_size(20000, 20000), "refused",
         "too large to decode safely; the limit is 40 MP (possible decompression bomb)"),
    Case("8000x8000 PNG header (over the 40 MP limit)", "big.png", lambda: png_with_size(8000, 8000), "refused",
         "the image is 8000x8000 pixels (64 MP); the limit is 40 MP"),
    Case("8x8 image", "tiny.png", tiny_8x8, "refused", "the image is only 8x8 pixels"),
    Case("animated GIF renamed .jpg", "anim.jpg", animated_gif, "refused", "a GIF image cannot be used"),
    Case("animated PNG (APNG)", "anim.png", animated_png, "refused", "animated images are not supported"),
    Case("grayscale PNG", "gray.png", grayscale_png, "accepted", "(PNG, L)"),
    Case("RGBA PNG (alpha composited on white)", "rgba.png", rgba_png, "accepted", "(PNG, RGBA)"),
    Case("16-bit grayscale PNG (rescaled to 8 bit)", "deep.png", png_16bit, "accepted", "(PNG, I;16)"),
    Case("CMYK JPEG", "cmyk.jpg", cmyk_jpeg, "accepted", "(JPEG, CMYK)"),
    Case("EXIF-rotated phone photo", "rotated.jpg", exif_rotated_jpeg, "accepted",
         "The photo was rotated according to its EXIF orientation"),
]
IMAGE_WHERE = ("loader, Preprocess upload, Explain upload, dataset folder (Data page), Explain batch folder, "
               "zip import")


# ---- archives
def _zip(entries: list[tuple[str, bytes]] | list[tuple[str, bytes, int]], *, compress=zipfile.ZIP_DEFLATED) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", compress) as zf:
        for item in entries:
            name, data = item[0], item[1]
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = compress
            if len(item) == 3:
                info.external_attr = item[2] << 16
            zf.writestr(info, data)
    return b.getvalue()


def _good_entries(prefix: str = "") -> list[tuple[str, bytes]]:
    return [(f"{prefix}{c}/{c.lower()}{i}.png", good_png(300 + 10 * ci + i))
            for ci, c in enumerate(GOOD_CLASSES) for i in range(2)]


EVIL_TOKEN = "ecg-insight-evil-" + secrets.token_hex(4)
EVIL_ABSOLUTE = Path(tempfile.gettempdir()) / f"{EVIL_TOKEN}-abs.jpg"


def traversal_zip() -> bytes:
    """Good class folders plus entries that try to escape the extraction folder."""
    evil = good_png(1)
    return _zip(_good_entries() + [
        ("../evil1.jpg", evil),
        ("../../evil2.jpg", evil),
        ("../../../../../../../../tmp/evil3.jpg", evil),
        ("Normal/../../evil4.jpg", evil),
        ("..\\..\\evil5.jpg", evil),
        (str(EVIL_ABSOLUTE), evil),
        ("C:\\Windows\\evil6.jpg", evil),
        ("Normal/link.jpg", b"../../../../etc/passwd", stat.S_IFLNK | 0o777),
    ])


def _patch_declared_sizes(data: bytes, size: int) -> bytes:
    """Make every entry of a zip claim ``size`` uncompressed bytes (local headers and central directory)."""
    b = bytearray(data)
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = b.find(sig)
        while pos >= 0:
            b[pos + off : pos + off + 4] = struct.pack("<I", size)
            pos = b.find(sig, pos + 4)
    return bytes(b)


def declared_bomb_zip() -> bytes:
    """A 1 kB archive whose entry declares 4 GB (a 42.zip-style bomb is refused before anything is written)."""
    return _patch_declared_sizes(_zip([("Normal/a.png", bytes(1000))]), 0xFFFF_FF00)


def ratio_bomb_zip() -> bytes:
    """Good images plus one 30 MB entry of zeros that deflates to ~30 kB (ratio ~1000:1)."""
    return _zip(_good_entries() + [("Normal/zeros.png", bytes(30 * 1024 * 1024))])


def lying_size_zip() -> bytes:
    """Good images plus an entry that expands beyond the size its header declares."""
    data = bytearray(_zip([("Normal/liar.png", bytes(100_000))]))
    data = _patch_declared_sizes(bytes(data), 1_000)
    good = _zip(_good_entries())
    return _merge_zips(good, data)


def _merge_zips(a: bytes, b: bytes) -> bytes:
    """Copy the raw (possibly lying) entries of ``b`` after the entries of ``a`` (central directories rebuilt)."""
    out = io.BytesIO()
    entries = []
    for blob in (a, b):
        zin = zipfile.ZipFile(io.BytesIO(blob))
        for info in zin.infolist():
            raw_start = info.header_offset
            name_len, extra_len = struct.unpack("<HH", blob[raw_start + 26 : raw_start + 30])
            end = raw_start + 30 + name_len + extra_len + info.compress_size
            cd = _central_record(blob, info)
            entries.append((blob[raw_start:end], cd))
    cds = []
    for local, cd in entries:
        cds.append(bytearray(cd))
        cds[-1][42:46] = struct.pack("<I", out.tell())
        out.write(local)
    cd_start = out.tell()
    for cd in cds:
        out.write(bytes(cd))
    cd_size = out.tell() - cd_start
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(cds), len(cds), cd_size, cd_start, 0))
    return out.getvalue()


def _central_record(blob: bytes, info: zipfile.ZipInfo) -> bytes:
    pos = blob.find(b"PK\x01\x02")
    while pos >= 0:
        n, e, c = struct.unpack("<HHH", blob[pos + 28 : pos + 34])
        if struct.unpack("<I", blob[pos + 42 : pos + 46])[0] == info.header_offset:
            return blob[pos : pos + 46 + n + e + c]
        pos = blob.find(b"PK\x01\x02", pos + 4)
    raise AssertionError("central record not found")


def no_images_zip() -> bytes:
    return _zip([("readme.txt", b"hello"), ("Normal/notes.docx", b"PK fake")])


ARCHIVE_CASES: list[Case] = [
    Case("zip with ../, absolute, backslash and drive-letter paths, a symlink", "traversal.zip", traversal_zip,
         "refused entries", "unsafe path (absolute or containing '..'), refused"),
    Case("zip bomb: entry declares 4 GB", "bomb.zip", declared_bomb_zip, "refused",
         "possible zip bomb"),
    Case("zip bomb: 30 MB of zeros deflated ~1000:1", "ratio.zip", ratio_bomb_zip, "refused entries",
         "is suspicious (zip bomb), refused"),
    Case("zip entry larger than its header declares", "liar.zip", lying_size_zip, "refused entries",
         "damaged entry (Bad CRC-32"),
    Case("PDF renamed .zip", "report.zip", pdf_file, "refused", "not a readable zip archive"),
    Case("zip without any image", "empty.zip", no_images_zip, "refused", "the archive contains no images"),
]
ARCHIVE_WHERE = "extract_zip, sidebar 'Upload a zip...', Explain batch 'Zip upload'"


# ---- folders
def junk_folder(root: Path) -> dict[str, int]:
    """Good images beside junk: other files, OS metadata, a symlink, a FIFO and a folder named like images."""
    for ci, c in enumerate(GOOD_CLASSES):
        for i in range(2):
            (root / c).mkdir(parents=True, exist_ok=True)
            (root / c / f"{c}{i}.png").write_bytes(good_png(400 + 10 * ci + i))
    n = root / "Normal"
    (n / "nested" / "deeper").mkdir(parents=True)
    (n / "nested" / "deeper" / "ok.png").write_bytes(good_png(499))
    (n / "notes.txt").write_text("not an image")
    (n / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (n / "scan.pdf").write_bytes(pdf_file())
    (n / "batch.zip").write_bytes(_zip(_good_entries()))
    (n / "sidecar.json").write_text("{}")
    (n / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "__MACOSX" / "Normal").mkdir(parents=True)
    (root / "__MACOSX" / "Normal" / "._Normal0.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (n / "passwd.jpg").symlink_to("/etc/passwd")
    (n / "folder.jpg").mkdir()
    os.mkfifo(n / "pipe.jpg")  # reading it would block forever: must never be opened
    (n / "broken.jpg").write_bytes(truncated_jpeg())
    return {"readable": 5, "unreadable": 1, "ignored": 5}  # listed as ignored: txt, db, pdf, zip, symlink


def one_empty_class(root: Path) -> dict[str, int]:
    (root / "Normal").mkdir(parents=True)
    for i in range(3):
        (root / "MI").mkdir(parents=True, exist_ok=True)
        (root / "MI" / f"mi{i}.png").write_bytes(good_png(600 + i))
    return {"readable": 3, "unreadable": 0, "ignored": 0}


@dataclass(frozen=True)
class FolderCase:
    label: str
    build: Callable[[Path], dict[str, int]]
    messages: tuple[str, ...]
    where: str = "dataset.scan, Data page"


FOLDER_CASES: list[FolderCase] = [
    FolderCase("folder with mixed junk (txt, pdf, zip, Thumbs.db, .DS_Store, __MACOSX, symlink, FIFO, folder "
               "named .jpg, a broken JPEG)", junk_folder,
               ("5 non-image files ignored", "1 files could not be read", "symbolic link (not followed)")),
    FolderCase("dataset with one empty class folder", one_empty_class, ("Class folders without any image: Normal",)),
]


# ------------------------------------------------------------------------------------------------------- the doc
def render_doc() -> str:
    """docs/BAD_INPUTS.md, generated from the tables above."""
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [
        "# Bad inputs and what the user sees",
        "",
        "Generated from the tables in `tests/test_bad_inputs.py` (`.venv/bin/python tests/test_bad_inputs.py "
        "--write-doc`); a test fails when this file and the tests disagree. Every row is tested end to end: no "
        "traceback, the message below is shown, the other files of the batch are still processed, and nothing "
        "is written outside `ECG_INSIGHT_HOME`.",
        "",
        f"Images (tested through: {IMAGE_WHERE}):",
        "",
        "| input | outcome | message shown (excerpt) |",
        "|---|---|---|",
    ]
    for c in IMAGE_CASES:
        lines.append(f"| {cell(c.label)} (`{c.filename}`) | {c.outcome} | {cell(c.message)} |")
    lines += ["", f"Archives (tested through: {ARCHIVE_WHERE}):", "",
              "| input | outcome | message shown (excerpt) |", "|---|---|---|"]
    for c in ARCHIVE_CASES:
        lines.append(f"| {cell(c.label)} | {c.outcome} | {cell(c.message)} |")
    lines += ["", "Dataset folders (tested through: dataset.scan, Data page):", "",
              "| input | outcome | message shown (excerpt) |", "|---|---|---|"]
    for f in FOLDER_CASES:
        lines.append(f"| {cell(f.label)} | good images indexed, the rest listed | "
                     f"{cell('; '.join(f.messages))} |")
    lines += [
        "",
        "\"refused\": the whole input is rejected with the message; \"refused entries\": the listed entries are "
        "skipped with the message and the rest is imported; \"accepted\": decoded to 8-bit RGB (alpha composited "
        "on white, 16 bit rescaled, EXIF orientation applied) and the note is shown beside the image.",
        "",
    ]
    return "\n".join(lines)


def test_doc_table_matches_code():
    assert DOC.read_text() == render_doc(), \
        "docs/BAD_INPUTS.md is stale: run .venv/bin/python tests/test_bad_inputs.py --write-doc"


# ------------------------------------------------------------------------------------------------- the sandbox
def _snapshot(root: Path, *, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = [n for n in dirnames if d / n not in skip]
        for n in filenames + dirnames:
            p = d / n
            try:
                st_ = p.lstat()
            except OSError:
                continue
            regular = stat.S_ISREG(st_.st_mode)
            out[str(p.relative_to(root))] = (st_.st_size, st_.st_mtime_ns) if regular else (-1, 0)
    return out


@dataclass
class Sandbox:
    root: Path
    home: Path
    models: Path
    tmp: Path
    data: Path


ALLOWED_HOME_PREFIXES = ("uploads", "cache", "demo-data")


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Sandbox:
    """App folders in a private tree; afterwards, nothing outside ECG_INSIGHT_HOME may have changed.

    ``ECG_INSIGHT_HOME`` and ``ECG_INSIGHT_MODELS`` point into the tree, and so does the temporary-files folder
    (``TMPDIR`` / ``tempfile.tempdir``), so that a write to a temporary file or an escaping path is seen.
    """
    root = tmp_path / "sandbox"
    sb = Sandbox(root, root / "home", root / "models", root / "tmp", root / "data")
    for p in (sb.home, sb.models, sb.tmp, sb.data, root / "outside"):
        p.mkdir(parents=True)
    (root / "outside" / "precious.txt").write_text("must not change")
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(sb.home))
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(sb.models))
    monkeypatch.setenv("TMPDIR", str(sb.tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(sb.tmp))
    before = _snapshot(root, skip=(sb.home, sb.data))
    yield sb
    # data/ holds the test's own inputs; home/ may only grow in its known sub-folders; the rest must not change
    after = _snapshot(root, skip=(sb.home, sb.data))
    assert after == before, f"files changed outside the app's folders: {sorted(set(after) ^ set(before))}"
    home = _snapshot(sb.home)
    stray = [k for k in home if k.split(os.sep)[0] not in ALLOWED_HOME_PREFIXES]
    assert not stray, f"unexpected files in ECG_INSIGHT_HOME: {stray}"
    uploads = [k for k in home if k.startswith("uploads" + os.sep)]
    # imported archives (zip-*, batch-*), in one folder per browser session (s-<id>) when imported through a page;
    # no escaped or temporary file
    parts = [k.split(os.sep) for k in uploads]
    assert all(p[1].startswith(("zip-", "batch-")) or (p[1].startswith("s-") and (
               len(p) == 2 or p[2].startswith(("zip-", "batch-")))) for p in parts), uploads
    assert not [k for k in _snapshot(root) if "evil" in k], "an escaping zip entry was written"
    assert not EVIL_ABSOLUTE.exists() and not list(Path("/tmp").glob(f"{EVIL_TOKEN}*"))


# ----------------------------------------------------------------------------------------------------- helpers
def _ids(cases) -> list[str]:
    return [re.sub(r"[^a-z0-9]+", "-", c.label.lower()).strip("-")[:40] for c in cases]


def _page_text(at) -> str:
    """Every element's protobuf text (markdown, alerts, captions, image captions, tables...) of a run."""
    out: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def assert_clean(at) -> str:
    """No exception element and no traceback text anywhere on the page; returns the page text."""
    assert not at.exception, [e.value for e in at.exception]
    text = _page_text(at)
    assert "Traceback" not in text and "This app has encountered an error" not in text
    return text


def _unreadable_table(at):
    for df in at.dataframe:
        v = df.value
        if "error" in getattr(v, "columns", []):
            return v
    return None


def app(sandbox: Sandbox, script: str) -> AppTest:
    return AppTest.from_file(str(REPO / script), default_timeout=TIMEOUT)


def _sidebar_script() -> None:
    from app_ui import common

    common.dataset_sidebar()


def sidebar_app() -> AppTest:
    """The shared sidebar (dataset picker with the zip uploader) alone.

    Not the entry script: in this Streamlit version AppTest drops the sidebar of an ``st.navigation`` app on every
    run after the first when a ``pages/`` folder sits beside it (the browser test covers the real entry script).
    """
    at = AppTest.from_function(_sidebar_script, default_timeout=TIMEOUT)
    at.session_state["app_dataset_pick"] = "Upload a zip..."
    return at


# ---------------------------------------------------------------------------------------------- 1. the loader
@pytest.mark.parametrize("case", IMAGE_CASES, ids=_ids(IMAGE_CASES))
def test_loader(case):
    from ecg_core.core.errors import ImageLoadError
    from ecg_core.imaging.loader import load_image

    data = case.make()
    if case.outcome == "refused":
        with pytest.raises(ImageLoadError, match=re.escape(case.message)) as err:
            load_image(data, name=case.filename)
        assert str(err.value).startswith(f"{case.filename}: ")  # the message names the file
    else:
        img = load_image(data, name=case.filename)
        assert img.rgb.dtype == np.uint8 and img.rgb.ndim == 3 and img.rgb.shape[2] == 3
        assert min(img.rgb.shape[:2]) == 120 and max(img.rgb.shape[:2]) == 160


# ---------------------------------------------------------------------------------- 2. the upload widget (AppTest)
@pytest.mark.parametrize("case", IMAGE_CASES, ids=_ids(IMAGE_CASES))
def test_preprocess_upload_widget(case, sandbox):
    at = app(sandbox, "pages/preprocess.py")
    at.session_state["pre_source"] = "Upload"
    at.run()
    at.file_uploader(key="pre_upload").set_value((case.filename, case.make(), "image/jpeg"))
    at.run()
    text = assert_clean(at)
    if case.outcome == "refused":
        assert [e.value for e in at.error] == [f"Loading the image failed: {e}" for e in [_loader_error(case)]]
        assert case.message in at.error[0].value and case.filename in at.error[0].value
    else:
        assert not at.error, [e.value for e in at.error]
        assert case.message in text
    # the session survives: the next (good) upload is processed normally
    at.file_uploader(key="pre_upload").set_value(("good.png", good_png(1), "image/png"))
    at.run()
    text = assert_clean(at)
    assert not at.error and "(PNG, RGB)" in text


def _loader_error(case: Case) -> str:
    from ecg_core.core.errors import ImageLoadError
    from ecg_core.imaging.loader import load_image

    try:
        load_image(case.make(), name=case.filename)
    except ImageLoadError as e:
        return str(e)
    raise AssertionError(f"{case.label} was accepted")


# ------------------------------------------------------------------------- 3. a batch: dataset folder, Data page
def _write_batch(root: Path) -> None:
    for ci, c in enumerate(GOOD_CLASSES):
        for i in range(2):
            (root / c).mkdir(parents=True, exist_ok=True)
            (root / c / f"{c.lower()}{i}.png").write_bytes(good_png(300 + 10 * ci + i))
    for case in IMAGE_CASES:
        (root / "Normal" / case.filename).write_bytes(case.make())


REFUSED = [c for c in IMAGE_CASES if c.outcome == "refused"]
ACCEPTED = [c for c in IMAGE_CASES if c.outcome == "accepted"]


def _check_batch_index(index) -> None:
    by_name = {Path(p).name: err for p, err in zip(index["path"], index["error"])}
    for case in REFUSED:
        assert case.message in by_name[case.filename], (case.label, by_name[case.filename])
    for case in ACCEPTED:
        assert by_name[case.filename] == "", (case.label, by_name[case.filename])
    assert (index["error"] == "").sum() == 4 + len(ACCEPTED)  # the rest of the batch is processed


def _check_data_page(at) -> None:
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["files"] == str(4 + len(IMAGE_CASES)) and metrics["readable"] == str(4 + len(ACCEPTED))
    assert any(f"{len(REFUSED)} files could not be read" in e.label for e in at.expander)
    table = _unreadable_table(at)
    assert table is not None
    shown = dict(zip(table["rel_path"].map(lambda p: Path(p).name), table["error"]))
    for case in REFUSED:
        assert case.message in shown[case.filename], case.label
    assert any("Leakage check passed" in s.value for s in at.success)  # the page went on with the good files


def test_dataset_folder_with_every_bad_image(sandbox):
    from ecg_core.ml import dataset

    root = sandbox.data / "batch"
    _write_batch(root)
    _check_batch_index(dataset.scan(root))
    at = app(sandbox, "pages/data.py")
    at.session_state["app_dataset_root"] = str(root)
    _check_data_page(at.run())


def test_zip_with_every_bad_image_through_sidebar(sandbox):
    """The same batch as a zip uploaded in the sidebar; then the Data page on the imported folder."""
    from ecg_core.ml import dataset

    src = sandbox.data / "batch"
    _write_batch(src)
    blob = _zip([(str(p.relative_to(src)), p.read_bytes()) for p in sorted(src.rglob("*")) if p.is_file()])
    at = sidebar_app().run()
    at.file_uploader(key="app_dataset_zip").set_value(("batch.zip", blob, "application/zip"))
    at.run()
    assert_clean(at)
    assert not at.sidebar.error and not at.sidebar.warning  # every entry has an image extension: all imported
    root = Path(at.session_state["app_dataset_root"])
    assert root.parent.parent == sandbox.home / "uploads" and root.parent.name.startswith("s-")  # per session
    assert root.name.startswith("zip-")
    _check_batch_index(dataset.scan(root))
    at = app(sandbox, "pages/data.py")
    at.session_state["app_dataset_root"] = str(root)
    _check_data_page(at.run())


# ------------------------------------------------------------------------------------------------- 4. archives
@pytest.mark.parametrize("case", ARCHIVE_CASES, ids=_ids(ARCHIVE_CASES))
def test_archive_extract(case, sandbox):
    from ecg_core.ml.zip_import import extract_zip
    from ecg_core.core.errors import DatasetError

    dest = sandbox.home / "uploads" / "zip-test"
    if case.outcome == "refused":
        with pytest.raises(DatasetError, match=re.escape(case.message)):
            extract_zip(case.make(), dest)
        assert not dest.exists()
        assert not list((sandbox.home / "uploads").glob(".zipimport-*"))  # the temporary folder is removed
    else:
        res = extract_zip(case.make(), dest)
        assert sorted(res.extracted) == sorted(n for n, _ in _good_entries())  # the rest is imported
        assert any(case.message in why for _, why in res.skipped), res.skipped
        files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
        assert files == sorted(res.extracted)


def test_zip_import_on_a_full_disk(sandbox, monkeypatch):
    """The disk fills up during an import: one clear error for the whole archive, no partial folder left."""
    import errno

    from ecg_core.ml import zip_import
    from ecg_core.core.errors import DatasetError

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(zip_import, "_copy_limited", full)
    with pytest.raises(DatasetError, match="No space left on device; free some disk space"):
        zip_import.extract_zip(_zip(_good_entries()), sandbox.home / "uploads" / "zip-full")
    assert list((sandbox.home / "uploads").iterdir()) == []


@pytest.mark.parametrize("case", ARCHIVE_CASES, ids=_ids(ARCHIVE_CASES))
def test_archive_sidebar_upload(case, sandbox):
    at = sidebar_app().run()
    at.file_uploader(key="app_dataset_zip").set_value((case.filename, case.make(), "application/zip"))
    at.run()
    assert_clean(at)
    if case.outcome == "refused":
        assert any(case.message in e.value and case.filename in e.value for e in at.sidebar.error), \
            [e.value for e in at.error]
        assert not at.session_state["app_dataset_root"]
    else:
        assert any(case.message in w.value for w in at.sidebar.warning), [w.value for w in at.warning]
        root = Path(at.session_state["app_dataset_root"])
        assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == \
            sorted(n for n, _ in _good_entries())


# -------------------------------------------------------------------------------------------- 4b. Explain page
@pytest.fixture(scope="module")
def explain_models(tmp_path_factory) -> Path:
    """A registry with one small, untrained convolutional model (the error paths do not need a trained one)."""
    import keras

    from ecg_core.ml import registry
    from ecg_core.imaging.preprocess import PreprocessConfig

    models = tmp_path_factory.mktemp("explain-models") / "models"
    inp = keras.Input((48, 64, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))
    run = registry.create_run(models, "toy", {
        "arch": "toy", "preset": "cardiac-4", "input_shape": [48, 64, 1],
        "preprocess": PreprocessConfig(height=48, width=64).to_dict(),
        "class_names": ["Myocardial Infarction", "Abnormal Heartbeat", "Normal", "History of MI"]})
    registry.save_model_atomic(model, run / registry.MODEL_FILE)
    registry.update_run(run, status="completed", last_conv_layer="conv")
    return models


def _synth_report(cls: str, seed: int) -> bytes:
    from ecg_core.reports import synth

    rgb, _ = synth.make_report(synth.SynthSpec(cls=cls, seed=seed))
    return _encode(Image.fromarray(rgb), "JPEG", quality=90)


def test_explain_upload_widget(sandbox, explain_models, monkeypatch):
    """Every image case through the Explain page's uploader, one after another in one session."""
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(explain_models))
    at = app(sandbox, "pages/explain.py")
    at.session_state["explain_source"] = "Upload"
    at.run()
    assert_clean(at)
    for case in IMAGE_CASES + [Case("synthetic report", "report.jpg", lambda: _synth_report("normal", 3),
                                    "accepted", "")]:
        at.file_uploader(key="explain_upload").set_value((case.filename, case.make(), "image/jpeg"))
        at.run()
        text = assert_clean(at)
        errors = [e.value for e in at.error]
        if case.outcome == "refused":
            assert errors == [f"Loading the image failed: {_loader_error(case)}"], (case.label, errors)
        else:  # decoded: either a prediction, or the clear "not an ECG report" refusal of the input check
            assert "Model output:" in text or any("Not recognised as an ECG report" in e for e in errors), \
                (case.label, errors)
    assert "Model output:" in text  # the last one, a synthetic report, is predicted


def test_explain_batch_folder_with_every_bad_image(sandbox, explain_models, monkeypatch):
    """Batch mode over a folder holding every image case: one row per file, the good reports predicted."""
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(explain_models))
    root = sandbox.data / "batch"
    monkeypatch.setenv("ECG_INSIGHT_DATA_ROOTS", str(sandbox.data))  # a typed folder must lie inside the data roots
    for case in IMAGE_CASES:
        (root / case.filename).parent.mkdir(parents=True, exist_ok=True)
        (root / case.filename).write_bytes(case.make())
    for i, cls in enumerate(("normal", "myocardial_infarction")):
        (root / f"good{i}.jpg").write_bytes(_synth_report(cls, 20 + i))
    at = app(sandbox, "pages/explain_batch.py")
    at.session_state["explain_batch_dir"] = str(root)
    at.run()
    at.button(key="explain_batch_run").click()
    at.run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    table = next(df.value for df in at.dataframe if "reason" in df.value.columns)
    reasons = dict(zip(table["path"], table["reason"], strict=True))
    assert len(reasons) == len(IMAGE_CASES) + 2
    for case in REFUSED:
        assert reasons[case.filename].startswith("unreadable: ") and case.message in reasons[case.filename], \
            (case.label, reasons[case.filename])
    for case in ACCEPTED:
        assert not reasons[case.filename].startswith("unreadable"), (case.label, reasons[case.filename])
    predicted = dict(zip(table["path"], table["predicted"], strict=True))
    assert predicted["good0.jpg"] and predicted["good1.jpg"]  # the rest of the batch is processed
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["files"] == str(len(IMAGE_CASES) + 2) and metrics["unreadable"] == str(len(REFUSED))


@pytest.mark.parametrize("case", ARCHIVE_CASES, ids=_ids(ARCHIVE_CASES))
def test_archive_explain_batch_zip(case, sandbox, explain_models, monkeypatch):
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(explain_models))
    at = app(sandbox, "pages/explain_batch.py")
    at.session_state["explain_batch_source"] = "Zip upload"
    at.run()
    at.file_uploader(key="explain_batch_zip").set_value((case.filename, case.make(), "application/zip"))
    at.run()
    assert_clean(at)
    if case.outcome == "refused":
        assert any(case.message in e.value for e in at.error), [e.value for e in at.error]
    else:
        assert any(case.message in w.value for w in at.warning), [w.value for w in at.warning]
        assert at.button(key="explain_batch_run").disabled is False  # the good entries are ready to predict


# -------------------------------------------------------------------------------------------------- 5. folders
@pytest.mark.parametrize("case", FOLDER_CASES, ids=_ids(FOLDER_CASES))
def test_folder_cases(case, sandbox):
    from ecg_core.ml import dataset

    root = sandbox.data / "ds"
    counts = case.build(root)
    rep = dataset.audit(dataset.scan(root))
    assert (rep.n_readable, rep.n_unreadable, len(rep.skipped)) == \
        (counts["readable"], counts["unreadable"], counts["ignored"]), (rep.summary_lines(), rep.skipped)
    at = app(sandbox, "pages/data.py")
    at.session_state["app_dataset_root"] = str(root)
    at.run()
    text = assert_clean(at)
    shown = "\n".join([text] + [e.label for e in at.expander] + [str(df.value.to_dict()) for df in at.dataframe])
    for message in case.messages:
        assert message in shown, message
    assert any("Leakage check passed" in s.value for s in at.success)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-doc"]:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(render_doc())
        print(f"wrote {DOC}")
    else:
        print(render_doc())
