"""The benchmark scripts stay runnable: the shared result/exit-code logic, every script listed by ``make bench``
exists and answers ``--help`` without starting work. (The benches themselves are run by ``make bench``, not here:
timings are not tests.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import run_all  # noqa: E402


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_finish_passes_and_misses_by_direction(capsys) -> None:
    assert _common.finish("x", ratio=1.2, target=1.3, higher_is_better=False) == 0
    assert _common.finish("x", ratio=1.31, target=1.3, higher_is_better=False) == 1
    assert _common.finish("x", ratio=0.95, target=0.9, higher_is_better=True) == 0
    assert _common.finish("x", ratio=0.85, target=0.9, higher_is_better=True) == 1
    rows = _lines(capsys.readouterr().out)
    assert [r["passed"] for r in rows] == [True, False, True, False]
    assert rows[0]["target_rule"] == "<= 1.3" and rows[2]["target_rule"] == ">= 0.9"
    assert {"cpu", "cores", "mem_gb", "python"} <= set(rows[0]["machine"])


def test_cannot_run_is_exit_2_with_the_reason(capsys) -> None:
    assert _common.cannot_run("x", "no data folder") == 2
    captured = capsys.readouterr()
    row = _lines(captured.out)[-1]
    assert row["skipped"] and row["reason"] == "no data folder" and "cannot run" in captured.err


def test_median_seconds_runs_warmup_then_repeats() -> None:
    calls = []
    med, times = _common.median_seconds(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3 and med >= 0


@pytest.mark.parametrize("name", list(run_all.BENCHES))
def test_every_bench_script_exists_and_has_help(name: str) -> None:
    script = BENCH / run_all.BENCHES[name][0]
    assert script.is_file(), script
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()


def test_run_all_refuses_unknown_names() -> None:
    with pytest.raises(SystemExit):
        run_all.main(["--only", "nope"])
