"""The standard 12-lead report layout: the one table the synthetic renderer and the lead detector share.

3 rows x 4 columns of 2.5 s — row 1 I aVR V1 V4, row 2 II aVL V2 V5, row 3 III aVF V3 V6, column k showing
t in [2.5 k, 2.5 k + 2.5) s — and a 10 s rhythm strip below (key ``'II_rhythm'``; the synthetic reports print lead
II there, the Mendeley reports lead III or II). Also: the territory of each lead (:data:`ecg_core.core.labels.TERRITORIES`;
aVR, which looks at the right upper side of the heart and belongs to none of the four, is its own group ``'aVR'``,
the rhythm strip is ``'rhythm strip'``), the cell boxes of the grid and the template fractions used when the
layout cannot be detected on an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import LEADS, TERRITORIES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

LAYOUT_ROWS: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
N_COLUMNS = 4
COLUMN_S = 2.5  # seconds per column
RHYTHM_LEAD = "II"  # the lead the synthetic reports print on the rhythm strip
RHYTHM_KEY = "II_rhythm"
LEAD_KEYS: tuple[str, ...] = (*LEADS, RHYTHM_KEY)

RHYTHM_TERRITORY = "rhythm strip"
OTHER_TERRITORY = "aVR"
TERRITORY_ORDER: tuple[str, ...] = (*TERRITORIES, OTHER_TERRITORY, RHYTHM_TERRITORY)

# Template: fractions of the image width/height, measured on the 8 full-resolution Mendeley reports (2213 x 1572):
# where the 4 columns start and end, and the centre lines (baselines) of the 4 trace rows; rows extend half a
# row spacing above and below their baseline.
TEMPLATE_X0, TEMPLATE_COL_W = 0.0679, 0.2221
TEMPLATE_BASELINES: tuple[float, ...] = (0.2934, 0.4858, 0.6783, 0.8693)

BoxF = tuple[float, float, float, float]


def lead_territory(lead: str) -> str:
    """Territory of a lead key: 'inferior', 'lateral', 'septal', 'anterior', 'aVR' or 'rhythm strip'."""
    if lead == RHYTHM_KEY or (lead.endswith("_rhythm") and lead[: -len("_rhythm")] in LEADS):
        return RHYTHM_TERRITORY  # also the other rhythm strips of a 3x4 + 3 page ('V1_rhythm', 'V5_rhythm')
    for name, leads in TERRITORIES.items():
        if lead in leads:
            return name
    if lead in LEADS:
        return OTHER_TERRITORY
    raise ConfigError(f"lead must be one of {', '.join(LEAD_KEYS)}; received {lead!r}")


def lead_windows() -> dict[str, tuple[float, float]]:
    """Lead (and ``'II_rhythm'``) -> time window [t0, t1) in seconds that the report shows."""
    out = {LAYOUT_ROWS[r][c]: (c * COLUMN_S, (c + 1) * COLUMN_S) for r in range(3) for c in range(N_COLUMNS)}
    out[RHYTHM_KEY] = (0.0, N_COLUMNS * COLUMN_S)
    return out


def cell_boxes(x_start: float, col_w: float, tops: Sequence[float], bottoms: Sequence[float], *,
               pad_x: float = 0.0) -> dict[str, BoxF]:
    """Boxes ``(x0, y0, x1, y1)`` of the 3 x 4 cells (row by row) and the rhythm strip, from the first column's
    start, the column width and the top and bottom of the 4 rows (any unit), widened by ``pad_x`` left and
    right."""
    out: dict[str, BoxF] = {}
    for r, row in enumerate(LAYOUT_ROWS):
        for c, lead in enumerate(row):
            x0 = x_start + c * col_w
            out[lead] = (x0 - pad_x, tops[r], x0 + col_w + pad_x, bottoms[r])
    out[RHYTHM_KEY] = (x_start - pad_x, tops[3], x_start + N_COLUMNS * col_w + pad_x, bottoms[3])
    return out


def lead_layout_table(highlight: Sequence[str] = ()) -> pd.DataFrame:
    """The 3 x 4 layout as a DataFrame (rows 'row 1'..'row 3', columns = time windows); each cell reads
    'lead (territory)' ('aVR' alone: it is its own group), prefixed with a marker when the lead is in
    ``highlight``."""
    import pandas as pd

    marked = set(highlight)

    def cell(lead: str) -> str:
        territory = lead_territory(lead)
        return ("● " if lead in marked else "") + (lead if territory == lead else f"{lead} ({territory})")

    rows = {f"row {r + 1}": [cell(lead) for lead in leads] for r, leads in enumerate(LAYOUT_ROWS)}
    cols = [f"{c * COLUMN_S:g}-{(c + 1) * COLUMN_S:g} s" for c in range(N_COLUMNS)]
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)
