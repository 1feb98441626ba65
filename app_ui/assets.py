"""The app's static files in ``assets/`` at the repository root: logo, style sheet, the pages' longer prose and two
synthetic demo reports. Every file the app uses is named here (``tests/test_assets.py`` checks that they exist)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "assets"

LOGO = "logo.svg"  # heart + ECG trace + name (sidebar)
ICON = "icon.svg"  # the heart alone (collapsed sidebar)
STYLE = "style.css"
TEXTS = {  # name -> markdown file
    "home": "text/home.md",
    "credits": "text/credits.md",
    "learn": "text/learn.md",
}
DEMO_REPORTS = {  # caption -> synthetic report image (see assets/README.md for how they were made)
    "Normal (synthetic)": "demo/normal.jpg",
    "Inferior myocardial infarction (synthetic: ST elevation in II, III, aVF)": "demo/myocardial_infarction.jpg",
}


def path(rel: str) -> Path:
    """The absolute path of ``assets/<rel>``; FileNotFoundError naming it when it is missing."""
    p = ROOT / rel
    if not p.is_file():
        raise FileNotFoundError(f"asset {rel!r} is missing (expected at {p})")
    return p


def text(name: str) -> str:
    """The markdown text ``name`` of :data:`TEXTS` (small files, read on each call)."""
    return path(TEXTS[name]).read_text(encoding="utf-8").strip()


def referenced() -> list[str]:
    """Every asset the app names, relative to :data:`ROOT`."""
    return [LOGO, ICON, STYLE, *TEXTS.values(), *DEMO_REPORTS.values()]
