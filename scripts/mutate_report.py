"""Kill rate per module of the last `make mutate` run (reads mutmut's mutants/**/*.py.meta).

Kill rate = (killed + timeout + segfault) / (all mutants - skipped - not checked); "no tests" and "survived" count
as not killed. `--survivors` also lists the surviving mutants (see one with `python -m mutmut show NAME`).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3, 36, -24, 24, 152, 255, -11, -9}  # killed, pytest internal error, timeouts, segfaults
SURVIVED, NO_TESTS, SKIPPED = {0}, {5, 33}, {34}


def main(argv: list[str]) -> int:
    root = Path("mutants")
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print("no mutmut results under mutants/: run `make mutate` first", file=sys.stderr)
        return 1
    print(f"{'module':<34} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} {'kill rate':>9}")
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        c = Counter(codes.values())
        checked = {k: v for k, v in codes.items() if v is not None and v not in SKIPPED}
        killed = sum(1 for v in checked.values() if v in KILLED or v not in SURVIVED | NO_TESTS)
        survived = sum(1 for v in checked.values() if v in SURVIVED)
        none = sum(1 for v in checked.values() if v in NO_TESTS)
        rate = 100.0 * killed / len(checked) if checked else float("nan")
        mod = str(meta.relative_to(root))[: -len(".meta")]
        todo = f"  ({c[None]} not checked)" if c[None] else ""
        print(f"{mod:<34} {len(codes):>7} {killed:>6} {survived:>8} {none:>8} {rate:>8.1f}%{todo}")
        if "--survivors" in argv:
            for k, v in sorted(codes.items()):
                if v in SURVIVED | NO_TESTS:
                    print(f"    {'survived' if v in SURVIVED else 'no tests'}: {k}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
