"""Values made safe for JSON and words: NaN/inf to ``None``, NumPy to Python, numbers with confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def json_safe(obj: Any) -> Any:
    """NaN/inf -> None, NumPy scalars/arrays -> Python values, paths -> str, recursively (safe for ``json.dumps``)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (or a string of one), else None (NaN, inf, None, text)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals, or "n/a" for None/NaN/non-numbers."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{v:.{digits}f}" if math.isfinite(v) else "n/a"


def fmt_ci(ci: Sequence[Any] | None, digits: int = 3, *, sep: str = "-") -> str:
    """"lo-hi" of a confidence interval (``sep`` between the bounds, e.g. an en dash), or "n/a"."""
    if not isinstance(ci, Sequence) or isinstance(ci, str) or len(ci) != 2:
        return "n/a"
    lo, hi = fmt_num(ci[0], digits), fmt_num(ci[1], digits)
    return "n/a" if "n/a" in (lo, hi) else f"{lo}{sep}{hi}"


def fmt_value_ci(value: Any, ci: Sequence[Any] | None, digits: int = 3, *, label: str = "95 % CI ",
                 sep: str = "-") -> str:
    """"0.812 (95 % CI 0.701-0.903)", "0.812" when there is no interval, "n/a" without a value.

    ``label`` precedes the interval in the brackets and ``sep`` separates its bounds: ``label="", sep="–"`` gives
    "0.812 (0.701–0.903)".
    """
    v = fmt_num(value, digits)
    if v == "n/a":
        return v
    c = fmt_ci(ci, digits, sep=sep)
    return v if c == "n/a" else f"{v} ({label}{c})"
