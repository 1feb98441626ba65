"""Run every benchmark one after the other (``make bench``), keep their JSON lines and print a summary.

Writes ``bench/results/latest.jsonl`` (every line of every bench, each stamped ``measured_at``; with ``--only``
the other benches keep their last lines) and ``bench/results/latest.md`` (the summary table for the README). Exit code: 1 when a bench missed its target, 2 when none missed but one could not run,
0 when all passed. Benches run sequentially on purpose: on a 2-core machine, two at once would time each other.

    python bench/run_all.py [--only explain_latency,cold_start] [-- extra args are not passed]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: name -> (script, what it measures, target in words)
BENCHES = {
    "cold_start": ("cold_start.py", "`streamlit run` -> landing page served with the default model ready", "<= 10 s"),
    "explain_latency": ("explain_latency.py", "upload -> prediction, Grad-CAM, lead bars, figures vs bare "
                        "forward + Grad-CAM", "ratio <= 1.3"),
    "batch_inference": ("batch_inference.py", "`python -m ecg_core predict` over a folder vs `model.predict` "
                        "on preloaded tensors", "ratio >= 0.8"),
    "train_pipeline": ("train_pipeline.py", "training job img/s (files, warm cache, augmentation) vs `model.fit` "
                       "on preloaded tensors", "ratio >= 0.9"),
    "train_memory": ("train_memory.py", "peak RSS of a training job over all mendeley-dev files at 384 px",
                     "<= 2.5 GB"),
    "digitize": ("digitize.py", "digitise + measure one full-resolution report vs the whole explain pipeline",
                 "ratio <= 3"),
    "ood_rates": ("ood_rates.py", ("default model: mendeley-dev in distribution (target 98 %), rendered 6x2 / 12x1 "
                                   "out of distribution (90 %); the weakest as a share of its target"), "ratio >= 1"),
    "layout_detect": ("layout_detect.py", ("layout found on rendered scans and phone photos of 3x4+1 / 3x4+3 / 6x2 / "
                                           "12x1 / 2x6 reports; the weakest as a share of its target"),
                      "scans >= 0.8 per layout, photos >= 0.6"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated bench names (default: all)")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        ap.error(f"unknown bench {unknown}; known: {', '.join(BENCHES)}")
    RESULTS.mkdir(exist_ok=True)
    all_lines: list[dict] = []
    summary: list[tuple[str, dict | None, int, float]] = []
    for name in names:
        script, _, _ = BENCHES[name]
        print(f"== {name} ({script})", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(HERE / script)], stdout=subprocess.PIPE, text=True,
                                cwd=HERE.parent)
        result = None
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "bench" in row:
                all_lines.append(row)
                if row.get("result"):
                    result = row
        code = proc.wait()
        summary.append((name, result, code, time.perf_counter() - t0))
    stamp = dt.datetime.now().isoformat(timespec="seconds")
    for row in all_lines:
        row.setdefault("measured_at", stamp)
    # --only re-runs some benches: the others keep their last lines
    kept = [row for row in _read_jsonl(RESULTS / "latest.jsonl") if row.get("bench") not in names]
    lines = sorted(kept + all_lines, key=lambda r: list(BENCHES).index(r["bench"]) if r.get("bench") in BENCHES
                   else len(BENCHES))
    with (RESULTS / "latest.jsonl").open("w") as f:
        for row in lines:
            f.write(json.dumps(row) + "\n")
    results = {r["bench"]: r for r in lines if r.get("result")}
    codes_by_name = {name: code for name, _, code, _ in summary}
    table = [(name, results.get(name), codes_by_name.get(name, 0), 0.0) for name in BENCHES if name in results
             or name in codes_by_name]
    md = [f"Last `make bench` on {_machine_words(table)}.", "",
          "| bench | what | target | measured | result | when |", "|---|---|---|---|---|---|"]
    for name, result, code, secs in table:
        _, what, target = BENCHES[name]
        if result is None or result.get("skipped"):
            why = (result or {}).get("reason", f"exit code {code}, no result line")
            md.append(f"| {name} | {what} | {target} | — | not run: {why} | {(result or {}).get('measured_at', '')} |")
        else:
            md.append(f"| {name} | {what} | {target} | {result['ratio']} | "
                      f"{'pass' if result.get('passed') else 'MISS'} | {result.get('measured_at', '')} |")
    (RESULTS / "latest.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    codes = [c for _, _, c, _ in summary]
    if any(c == 1 for c in codes) or any(c not in (0, 1, 2) for c in codes):
        return 1
    return 2 if any(c == 2 for c in codes) else 0


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    try:
        text = path.read_text()
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _machine_words(summary: list[tuple[str, dict | None, int, float]]) -> str:
    machines = [(result or {}).get("machine") for _, result, _, _ in summary]
    for m in sorted((m for m in machines if m), key=lambda m: "tensorflow" not in m):  # the fullest first
        if m:
            return (f"{m.get('cpu')} ({m.get('cores')} cores, {m.get('mem_gb')} GB, GPU: {m.get('gpu')}), "
                    f"{m.get('os')}, Python {m.get('python')}, TensorFlow {m.get('tensorflow', '?')}")
    return "an unknown machine"


if __name__ == "__main__":
    sys.exit(main())
