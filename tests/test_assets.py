"""The app's static files (assets/, read through app_ui.assets): every file the app names exists, is small and
readable, every name the pages use is known, and no file in assets/ is left unused."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from app_ui import assets

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 200_000
SOURCES = [REPO / "streamlit_app.py", *sorted((REPO / "pages").glob("*.py")), *sorted((REPO / "app_ui").glob("*.py"))]


@pytest.mark.parametrize("rel", assets.referenced())
def test_every_referenced_asset_exists_and_is_small(rel):
    p = assets.path(rel)
    assert p.is_file() and p.resolve().is_relative_to(assets.ROOT)
    assert 0 < p.stat().st_size < MAX_BYTES, f"{rel}: {p.stat().st_size} bytes"


def test_texts_svgs_and_images_are_readable():
    for name in assets.TEXTS:
        assert assets.text(name)
    for rel in (assets.LOGO, assets.ICON):
        root = ET.parse(assets.path(rel)).getroot()
        assert root.tag.endswith("svg"), rel
    assert "{" in assets.path(assets.STYLE).read_text() and "<" not in assets.path(assets.STYLE).read_text()
    for rel in assets.DEMO_REPORTS.values():
        with Image.open(assets.path(rel)) as im:
            assert im.format == "JPEG" and min(im.size) >= 400, (rel, im.format, im.size)


def test_names_used_by_the_app_are_known():
    used_texts, used_paths = set(), set()
    for src in SOURCES:
        code = src.read_text(encoding="utf-8")
        used_texts |= set(re.findall(r"assets\.text\(\s*[\"']([^\"']+)[\"']", code))
        used_paths |= set(re.findall(r"assets\.path\(\s*[\"']([^\"']+)[\"']", code))
    assert used_texts, "no page reads a text asset"
    assert used_texts <= set(assets.TEXTS), used_texts - set(assets.TEXTS)
    assert used_paths <= set(assets.referenced()), used_paths - set(assets.referenced())


def test_no_unused_file_in_assets():
    files = {p.relative_to(assets.ROOT).as_posix() for p in assets.ROOT.rglob("*") if p.is_file()}
    assert files - {"README.md"} == set(assets.referenced())


def test_a_missing_asset_is_named():
    with pytest.raises(FileNotFoundError, match="no-such.svg"):
        assets.path("no-such.svg")
