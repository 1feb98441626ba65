"""Kill rate per module of the last `make mutate` run (reads mutmut's mutants/**/*.py.meta).

Kill rate = (killed + timeout + crash) / (all mutants - skipped - not checked); "no tests" and "survived" count
as not killed; a mutant whose run was interrupted counts as not checked. `--survivors` also lists the surviving
mutants (see one with `python -m mutmut show NAME`).

`--prepare` (run by `make mutate` before mutmut): mutmut 3 only mutates a file whose copy under mutants/ is older
than the source, and a module added to `only_mutate` after an earlier run already has a fresh plain copy there, so
it would never be mutated (and its functions would have no test stats). For each listed module without a .meta,
this removes its plain copy and mutmut's stats file, so the next run mutates it and re-collects which tests reach
which function (the results of the other modules are kept).
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections import Counter
from pathlib import Path

KILLED = {1, 3, 36, -24, 24, 152, 255, -11, -9}  # killed, pytest internal error, timeouts, segfaults
SURVIVED, NO_TESTS, SKIPPED = {0}, {5, 33}, {34}
INTERRUPTED = {2, -2, -15}  # the run was stopped (Ctrl-C, SIGTERM) while this mutant ran: counted as not checked


def prepare(root: Path = Path("mutants")) -> list[str]:
    """Remove stale plain copies of newly listed modules (see the module docstring); return the removed paths."""
    listed = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"].get("only_mutate", [])
    removed = []
    for rel in listed:
        copy = root / rel
        if copy.is_file() and not (root / f"{rel}.meta").exists():
            copy.unlink()
            removed.append(rel)
    if removed:
        (root / "mutmut-stats.json").unlink(missing_ok=True)
    return removed


def main(argv: list[str]) -> int:
    root = Path("mutants")
    if "--prepare" in argv:
        for rel in prepare(root):
            print(f"mutants/{rel}: plain copy removed (first run with this module); test stats will be re-collected")
        return 0
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print("no mutmut results under mutants/: run `make mutate` first", file=sys.stderr)
        return 1
    print(f"{'module':<34} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} {'kill rate':>9}")
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        c = Counter(codes.values())
        checked = {k: v for k, v in codes.items() if v is not None and v not in SKIPPED | INTERRUPTED}
        killed = sum(1 for v in checked.values() if v in KILLED or v not in SURVIVED | NO_TESTS)
        survived = sum(1 for v in checked.values() if v in SURVIVED)
        none = sum(1 for v in checked.values() if v in NO_TESTS)
        rate = 100.0 * killed / len(checked) if checked else float("nan")
        mod = str(meta.relative_to(root))[: -len(".meta")]
        unchecked = c[None] + sum(c[v] for v in INTERRUPTED)
        todo = f"  ({unchecked} not checked)" if unchecked else ""
        print(f"{mod:<34} {len(codes):>7} {killed:>6} {survived:>8} {none:>8} {rate:>8.1f}%{todo}")
        if "--survivors" in argv:
            for k, v in sorted(codes.items()):
                if v in SURVIVED | NO_TESTS:
                    print(f"    {'survived' if v in SURVIVED else 'no tests'}: {k}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
