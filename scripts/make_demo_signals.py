"""Write the SYNTHETIC demo ECG records (WFDB, single lead, 360 Hz, mV) into a folder.

A thin wrapper over :func:`ecg_core.signals.demo.ensure_demo_records`, which the app and the tests call themselves on
first use (into ``<ECG_INSIGHT_HOME>/demo-signals``): the records are generated, never committed. Run from the
repository root::

    python scripts/make_demo_signals.py                 # <app home>/demo-signals
    python scripts/make_demo_signals.py --out DIR --overwrite
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecg_core.signals.demo import demo_signals_dir, ensure_demo_records  # noqa: E402
from ecg_core.signals.records import read_record  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help=f"folder (default: {demo_signals_dir()})")
    ap.add_argument("--overwrite", action="store_true", help="regenerate even when the records are present")
    args = ap.parse_args(argv)
    for path in ensure_demo_records(args.out, overwrite=args.overwrite):
        rec = read_record(path)
        n_beats = sum(s != "+" for s in rec.annotations.symbol)
        print(f"{path}: {rec.duration_s:.0f} s at {rec.fs:g} Hz, {n_beats} beats")


if __name__ == "__main__":
    main()
