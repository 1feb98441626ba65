"""ECG input check: false-reject and false-accept rates, and milliseconds per report.

Measured (``check_ecg`` of :mod:`ecg_core.reports.ecg_check`):

* **false rejects** on a fresh set of rendered variants (:func:`ecg_core.reports.synth.random_variant_options`:
  every layout, paper, grid on/off, font, header, scan or photo artifacts; render seeds ``--seed`` onwards, not the
  calibration seeds 0-199), per layout, per paper and for photos vs scans; on every ``mendeley-dev`` report (648,
  must be 0), the full-resolution samples and the ``realworld-dev`` reports of other layouts;
* **false accepts** on a fresh non-ECG set (:mod:`ecg_core.reports.nonecg`, seeds ``--nonecg-seed`` onwards; the
  calibration used seeds 0-39), per kind, line charts on grid paper included;
* **ms per report**: the check alone on the Mendeley reports as batch prediction decodes them (JPEG draft at the
  check's width: ~1106 px) and at full resolution (2213 px), median over the files.

    python bench/ecg_check_rates.py [--variants 400] [--nonecg 30] [--seed 10000] [--nonecg-seed 5000]

Gated: false rejects <= 2 % on the variants, 0 on mendeley-dev, false accepts <= 3 %. Exit 0 pass, 1 miss.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from _common import SHARED_DATA, emit

BENCH = "ecg_check_rates"


def _rate(bad: int, n: int) -> float:
    return round(bad / n, 4) if n else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", type=int, default=400, help="rendered variants (fresh seeds)")
    p.add_argument("--nonecg", type=int, default=30, help="seeds per non-ECG kind (line charts twice)")
    p.add_argument("--seed", type=int, default=10_000, help="first render seed of the variants")
    p.add_argument("--nonecg-seed", type=int, default=5_000, help="first seed of the non-ECG set")
    a = p.parse_args(argv)
    import numpy as np

    from ecg_core.imaging.loader import load_image
    from ecg_core.reports.ecg_check import check_ecg
    from ecg_core.reports.nonecg import non_ecg_set
    from ecg_core.reports.synth import CLASS_KEYS, SynthSpec, make_report, random_variant_options

    ok = True
    # ---- rendered variants
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    bad_seeds = []
    for s in range(a.seed, a.seed + a.variants):
        o = random_variant_options(np.random.default_rng([s, 77]))
        img, _ = make_report(SynthSpec(CLASS_KEYS[s % 4], seed=s), o)
        c = check_ecg(img)
        paper = "bw" if o.black_and_white else ("grey" if o.grid == "gray" else o.grid)
        for key in ("all", f"layout {o.layout}", f"paper {paper}", "photo" if o.photo else "scan",
                    "no grid" if not o.draw_grid else "grid"):
            groups[key][0] += not c.is_ecg
            groups[key][1] += 1
        if not c.is_ecg:
            bad_seeds.append(s)
    for key, (bad, n) in sorted(groups.items()):
        emit(BENCH, what=f"false rejects, rendered variants: {key}", rejected=bad, n=n, rate=_rate(bad, n))
    fr = _rate(*groups["all"])
    emit(BENCH, what="rejected variant seeds", seeds=bad_seeds[:50])
    ok &= fr <= 0.02

    # ---- real reports
    dev = sorted((SHARED_DATA / "mendeley-dev").rglob("*.jpg"))
    full = sorted((SHARED_DATA / "mendeley-fullres-samples").rglob("*.jpg"))
    rw = sorted((SHARED_DATA / "realworld-dev").glob("*.png"))
    ms_draft, ms_full = [], []
    for name, files in (("mendeley-dev", dev), ("mendeley-fullres-samples", full), ("realworld-dev", rw)):
        if not files:
            emit(BENCH, what=f"false rejects, {name}", skipped=f"not present under {SHARED_DATA}")
            continue
        rejected = []
        for f in files:
            data = f.read_bytes()
            rgb = load_image(data, name=f.name, draft_size=(1100, 700)).rgb  # what batch prediction checks
            t = time.perf_counter()
            c = check_ecg(rgb)
            (ms_draft if name == "mendeley-dev" else []).append(1000 * (time.perf_counter() - t))
            if name == "mendeley-fullres-samples":
                big = load_image(data, name=f.name).rgb
                t = time.perf_counter()
                check_ecg(big)
                ms_full.append(1000 * (time.perf_counter() - t))
            if not c.is_ecg:
                rejected.append(f.name)
        emit(BENCH, what=f"false rejects, {name}", rejected=len(rejected), n=len(files),
             rate=_rate(len(rejected), len(files)), files=rejected[:10])
        if name == "mendeley-dev":
            ok &= not rejected

    # ---- non-ECG images
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    accepted = []
    for kind, seed, img in non_ecg_set(range(a.nonecg_seed, a.nonecg_seed + a.nonecg)):
        c = check_ecg(img)
        for key in ("all", kind):
            kinds[key][0] += c.is_ecg
            kinds[key][1] += 1
        if c.is_ecg:
            accepted.append(f"{kind}:{seed}")
    for key, (bad, n) in sorted(kinds.items()):
        emit(BENCH, what=f"false accepts, non-ECG: {key}", accepted=bad, n=n, rate=_rate(bad, n))
    emit(BENCH, what="accepted non-ECG images", images=accepted[:50])
    fa = _rate(*kinds["all"])
    ok &= fa <= 0.03

    ms = {"ms_per_report_batch_decode": round(statistics.median(ms_draft), 2) if ms_draft else None,
          "ms_per_report_full_res": round(statistics.median(ms_full), 2) if ms_full else None}
    emit(BENCH, what="check cost (median)", **ms, n_batch=len(ms_draft), n_full=len(ms_full))
    emit(BENCH, result=True, passed=bool(ok), false_reject_variants=fr, false_accept_nonecg=fa, **ms,
         target="false rejects <= 2 % (variants), 0 (mendeley-dev); false accepts <= 3 %")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
