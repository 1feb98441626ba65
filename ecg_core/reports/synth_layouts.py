"""Page layouts and paper colours of the synthetic renderer (:mod:`ecg_core.reports.synth_render`).

Layouts (:data:`LAYOUTS`, names are stable: sidecars, the CLI and the out-of-distribution check use them), all at
25 mm/s on the same 280 x 199 mm page, traces between x = 20 mm and 270 mm, rows between y = 24 and 189 mm:

* ``"3x4+1"`` — the default and the Mendeley layout: 3 rows x 4 columns of 2.5 s (I aVR V1 V4 / II aVL V2 V5 /
  III aVF V3 V6) and a 10 s lead-II rhythm strip (key ``'II_rhythm'``), 40 mm rows, 10 mm/mV;
* ``"3x4+3"`` — the same 3 x 4 block and three 10 s rhythm strips (II, V1, V5: keys ``'II_rhythm'``,
  ``'V1_rhythm'``, ``'V5_rhythm'``), 26.5 mm rows, 10 mm/mV;
* ``"6x2"`` — 6 rows x 2 columns of 5 s (limb leads I II III aVR aVL aVF in 0-5 s, chest leads V1-V6 in 5-10 s),
  26.5 mm rows, 10 mm/mV;
* ``"12x1"`` — 12 rows of 10 s, 13.5 mm rows, 5 mm/mV (half gain, as 12x1 printouts use);
* ``"2x6"`` — 2 rows x 6 columns of 10/6 s (limb leads, then chest leads), 60 mm rows, 10 mm/mV.

Papers (:data:`PAPERS`): ``pink red orange green blue grey bw cream`` — :func:`paper_style` maps a paper to the
renderer's grid style and black-and-white flag (``bw`` = grey/black grid on white, printed in greys).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecg_core.core.errors import ConfigError
from ecg_core.reports.layout import LAYOUT_ROWS, RHYTHM_KEY, RHYTHM_LEAD

LAYOUTS: tuple[str, ...] = ("3x4+1", "3x4+3", "6x2", "12x1", "2x6")
DEFAULT_LAYOUT = "3x4+1"
PAPERS: tuple[str, ...] = ("pink", "red", "orange", "green", "blue", "grey", "bw", "cream")

_SPEED = 25.0
_X0 = 20.0  # mm: start of the first column (the calibration pulse is at 12-18 mm)
_TOP = 26.5  # mm: top of the first row band
_LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")
_CHEST = ("V1", "V2", "V3", "V4", "V5", "V6")


@dataclass(frozen=True)
class Panel:
    """One printed trace: ``key`` (lead name, or ``'<lead>_rhythm'`` for a rhythm strip), the ``lead`` drawn, its
    row and column, where it starts on the page (``x0_mm``) and the time window [t0, t1) in seconds."""

    key: str
    lead: str
    row: int
    col: int
    x0_mm: float
    t0: float
    t1: float

    @property
    def width_mm(self) -> float:
        return (self.t1 - self.t0) * _SPEED


@dataclass(frozen=True)
class PageLayout:
    """A layout: its name, rows (band height ``row_h_mm`` from ``top_mm``), gain and panels in drawing order."""

    name: str
    n_rows: int
    row_h_mm: float
    top_mm: float
    gain_mm_mv: float
    panels: tuple[Panel, ...]

    def baseline_mm(self, row: int) -> float:
        """y (mm) of the 0 mV line of ``row``."""
        return self.top_mm + self.row_h_mm * (row + 0.5)

    def band_mm(self, row: int) -> tuple[float, float]:
        return self.top_mm + row * self.row_h_mm, self.top_mm + (row + 1) * self.row_h_mm

    def rows(self) -> list[list[str]]:
        """Panel keys row by row (the sidecar's ``layout`` entry)."""
        return [[p.key for p in self.panels if p.row == r] for r in range(self.n_rows)]

    def windows(self) -> dict[str, tuple[float, float]]:
        return {p.key: (p.t0, p.t1) for p in self.panels}


def _grid_panels(columns: list[tuple[str, ...]], col_s: float) -> list[Panel]:
    """Panels of a block whose column c lists its leads top to bottom."""
    out = []
    n_rows = len(columns[0])
    for r in range(n_rows):
        for c, leads in enumerate(columns):
            out.append(Panel(leads[r], leads[r], r, c, _X0 + c * col_s * _SPEED, c * col_s, (c + 1) * col_s))
    return out


def _rhythm(lead: str, row: int) -> Panel:
    key = RHYTHM_KEY if lead == RHYTHM_LEAD else f"{lead}_rhythm"
    return Panel(key, lead, row, 0, _X0, 0.0, 10.0)


def page_layout(name: str = DEFAULT_LAYOUT) -> PageLayout:
    """The :class:`PageLayout` called ``name`` (one of :data:`LAYOUTS`)."""
    if name not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(map(repr, LAYOUTS))}; received {name!r}")
    block = [tuple(row[c] for row in LAYOUT_ROWS) for c in range(4)]  # the 3x4 block, column by column
    if name == "3x4+1":
        return PageLayout(name, 4, 40.0, _TOP, 10.0, tuple(_grid_panels(block, 2.5) + [_rhythm(RHYTHM_LEAD, 3)]))
    if name == "3x4+3":
        strips = [_rhythm(lead, 3 + i) for i, lead in enumerate((RHYTHM_LEAD, "V1", "V5"))]
        return PageLayout(name, 6, 26.5, _TOP, 10.0, tuple(_grid_panels(block, 2.5) + strips))
    if name == "6x2":
        return PageLayout(name, 6, 26.5, _TOP, 10.0, tuple(_grid_panels([_LIMB, _CHEST], 5.0)))
    if name == "12x1":
        return PageLayout(name, 12, 13.5, 25.0, 5.0, tuple(_grid_panels([_LIMB + _CHEST], 10.0)))
    cols = [(a, b) for a, b in zip(_LIMB, _CHEST)]  # "2x6": row 1 limb leads, row 2 chest leads
    return PageLayout(name, 2, 60.0, 46.5, 10.0, tuple(_grid_panels(cols, 10.0 / 6.0)))


def paper_style(paper: str) -> tuple[str, bool]:
    """(grid style of :data:`ecg_core.reports.synth_render.GRID_STYLES`, black_and_white) of a paper name."""
    if paper not in PAPERS:
        raise ConfigError(f"paper must be one of {', '.join(map(repr, PAPERS))}; received {paper!r}")
    if paper == "grey":
        return "gray", False
    return paper, paper == "bw"
