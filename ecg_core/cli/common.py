"""What every command group shares: the progress bar and the exit status of bad input."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ecg_core.core.errors import EcgCoreError

EXIT_BAD_INPUT = 2


def progress(desc: str) -> Callable[[int, int], None]:
    """A tqdm progress callback (i, n) writing to stderr."""
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(i: int, n: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=n, desc=desc, unit="file", file=sys.stderr, leave=False)
        b = bar["bar"]
        b.update(i - b.n)
        if i >= n:
            b.close()

    return update


def preprocess_config_from_args(args: argparse.Namespace):  # -> PreprocessConfig
    """The PreprocessConfig given by --config (a JSON file, or a run.json's "preprocess") and the option flags."""
    from ecg_core.imaging.preprocess import PreprocessConfig

    base = {}
    if args.config:
        try:
            base = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise EcgCoreError(f"cannot read config file {args.config!r}: {e}") from e
        base = base.get("preprocess", base)
    for key in ("crop_mode", "height", "width", "channels", "median_ksize", "clahe_clip"):
        v = getattr(args, key, None)
        if v is not None:
            base[key] = v
    if args.no_clahe:
        base["clahe"] = False
    return PreprocessConfig.from_dict(base)
