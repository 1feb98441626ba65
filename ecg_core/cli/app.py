"""Command line: ``python -m ecg_core <command> ...``.

Every long or batch job of the app is a command here, so it can run in a subprocess (the pages poll its output)
or on another machine. On bad input a command prints one line ``error: <message>`` to stderr and exits with
status 2; an unexpected failure exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ecg_core.cli import auth, data, explain, measure, reading, signals, training
from ecg_core.cli.common import EXIT_BAD_INPUT
from ecg_core.core.errors import EcgCoreError

GROUPS = (data, training, explain, signals, reading, measure, auth)  # one module per command group, each with register(sub)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ecg_core", description="ECG Insight command line")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EcgCoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
