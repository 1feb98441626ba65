"""Reading accuracy (issue 14, "Must show"): digitisation SNR and measurement errors on fresh synthetic reports
(``synth --signals``, clean and with scan artifacts), the three 12-lead records printed with ``render`` and read back, the real vendor
reports against their machines' printed measurements and the share of Mendeley reports whose every lead passes the
quality check.

    python bench/reading_accuracy.py [--per-class N] [--mendeley N] [--seed S]

Prints one JSON line per part. Ground truth of a synthetic report: the true signals written beside it and its
sidecar's ``st_mm`` (designed ST deviation at J+60 ms), ``hr_bpm`` and ``q_leads`` (the territory leads of an old
infarction).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
from _common import SHARED_DATA, emit

from ecg_core.core.labels import LEADS
from ecg_core.reports.layout import lead_windows


def lead_snrs(truth: np.ndarray, dig) -> dict[str, float]:
    from ecg_core.reports.reading.digitize import snr_db

    fs = dig.fs
    out = {}
    win = lead_windows()
    for i, lead in enumerate(LEADS):
        t0, t1 = (0.0, 10.0) if lead == dig.rhythm_lead and np.isfinite(dig.rhythm).mean() > 0.5 else win[lead]
        a, b = int(t0 * fs), int(t1 * fs)
        out[lead] = snr_db(truth[i, a:b], dig.signals[i, a:b])
    return out


def q_scores(pairs: list[tuple[set, set]]) -> tuple[float, float]:
    tp = sum(len(p & t) for p, t in pairs)
    fp = sum(len(p - t) for p, t in pairs)
    fn = sum(len(t - p) for p, t in pairs)
    return tp / max(1, tp + fp), tp / max(1, tp + fn)


def synthetic(per_class: int, seed: int, artifacts: bool, ppm: float) -> dict:
    """A fresh ``generate_dataset(..., signals=True)`` set (what ``synth --signals`` writes): each report is read
    back and scored against its true signals (the .hea/.dat beside it) and its sidecar's st_mm, hr_bpm, q_leads."""
    import json
    import tempfile
    from pathlib import Path

    from ecg_core.reports.reading.digitize import digitize_file
    from ecg_core.reports.reading.formats import read_12lead
    from ecg_core.reports.reading.measure import measure
    from ecg_core.reports.synth import generate_dataset

    snrs: dict[str, list[float]] = {lead: [] for lead in LEADS}
    st_err, hr_err, pairs = [], [], []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        df = generate_dataset(Path(d) / "set", per_class=per_class, seed=seed, px_per_mm=ppm, artifacts=artifacts,
                              signals=True)
        for path in df["path"]:
            side = json.loads(Path(path).with_suffix(".json").read_text())
            truth, _ = read_12lead(Path(path).with_suffix(".hea"))
            dig = digitize_file(path)
            for lead, v in lead_snrs(truth, dig).items():
                snrs[lead].append(v)
            m = measure(dig)
            st_err += [abs(m.leads[lead].st_mm - side["st_mm"][lead]) for lead in LEADS]
            hr_err.append(abs(m.values["hr_bpm"] - side["hr_bpm"]))
            pairs.append(({lead for lead in LEADS if m.leads[lead].q_pathological}, set(side["q_leads"])))
    prec, rec = q_scores(pairs)
    med = {lead: round(float(np.median(v)), 2) for lead, v in snrs.items()}
    return emit("reading_synthetic", artifacts=artifacts, px_per_mm=ppm, reports=len(pairs),
                snr_median_per_lead_db=med, snr_min_of_lead_medians_db=min(med.values()),
                st_abs_err_median_mm=round(float(np.nanmedian(st_err)), 3),
                st_not_measured=int(np.isnan(st_err).sum()),
                hr_abs_err_median_bpm=round(float(np.nanmedian(hr_err)), 2),
                q_precision=round(prec, 3), q_recall=round(rec, 3), seconds=round(time.time() - t0, 1))


def records() -> list[dict]:
    from ecg_core.reports.reading.digitize import digitize
    from ecg_core.reports.reading.formats import read_12lead
    from ecg_core.reports.reading.measure import measure, measure_signals
    from ecg_core.reports.reading.render import render_record
    from ecg_core.reports.synth_render import RenderOptions

    rows = []
    folder = SHARED_DATA / "signals" / "12lead"
    for hea in sorted(folder.glob("*.hea")):
        sig, fs = read_12lead(hea)
        img, side, s12 = render_record(sig, fs, RenderOptions(px_per_mm=8.0))
        dig = digitize(img, sidecar=side)
        snrs = lead_snrs(s12.data, dig)
        m = measure(dig)
        t = measure_signals(s12.data, 500.0, rhythm=s12.data[LEADS.index("II")])  # the strip prints II
        st = [abs(m.leads[lead].st_mm - t.leads[lead].st_mm) for lead in LEADS]
        qd, qt = {lead for lead in LEADS if m.leads[lead].q_pathological}, {lead for lead in LEADS
                                                                           if t.leads[lead].q_pathological}
        prec, rec = q_scores([(qd, qt)])
        rows.append(emit("reading_render_records", record=hea.stem, snr_median_db=round(float(np.median(
            list(snrs.values()))), 2), snr_per_lead_db={k: round(v, 1) for k, v in snrs.items()},
            hr_digitised=round(m.values["hr_bpm"], 1), hr_true_signals=round(t.values["hr_bpm"], 1),
            st_abs_err_median_mm=round(float(np.nanmedian(st)), 3), q_leads_digitised=sorted(qd),
            q_leads_true_signals=sorted(qt), q_precision=round(prec, 3), q_recall=round(rec, 3),
            values_digitised={k: round(v, 1) for k, v in m.values.items()},
            values_true_signals={k: round(v, 1) for k, v in t.values.items()}))
    return rows


def realworld() -> list[dict]:
    import pandas as pd

    from ecg_core.reports.reading.digitize import DigitizeOptions, digitize_file
    from ecg_core.reports.reading.measure import measure

    folder = SHARED_DATA / "realworld-dev"
    ref = pd.read_csv(folder / "machine_measurements.csv")
    rows = []
    for r in ref.itertuples(index=False):
        try:
            dig = digitize_file(folder / r.file, options=DigitizeOptions(paper_speed_mm_s=float(r.paper_speed_mm_s)))
            m = measure(dig).values
        except Exception as e:  # report, do not stop
            rows.append(emit("reading_realworld", file=r.file, error=f"{type(e).__name__}: {e}"))
            continue
        diff = {k: round(m[k] - float(getattr(r, k)), 1) if np.isfinite(m[k]) else None
                for k in ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms")}
        meets = {"hr_5bpm": diff["hr_bpm"] is not None and abs(diff["hr_bpm"]) <= 5,
                 "pr_20ms": diff["pr_ms"] is not None and abs(diff["pr_ms"]) <= 20,
                 "qrs_20ms": diff["qrs_ms"] is not None and abs(diff["qrs_ms"]) <= 20,
                 "qt_30ms": diff["qt_ms"] is not None and abs(diff["qt_ms"]) <= 30}
        rows.append(emit("reading_realworld", file=r.file, layout=dig.layout_source, mean_quality=round(
            dig.mean_quality, 3), measured={k: round(v, 1) for k, v in m.items()}, minus_printed=diff, meets=meets))
    return rows


def mendeley(n: int) -> dict:
    from ecg_core.reports.reading.digitize import digitize_file

    files = sorted(p for p in (SHARED_DATA / "mendeley-dev").rglob("*.jpg"))
    step = max(1, len(files) // n)
    files = files[::step][:n]
    passed, layouts, q = 0, {}, []
    for f in files:
        dig = digitize_file(f)
        passed += dig.all_passed
        layouts[dig.layout_source] = layouts.get(dig.layout_source, 0) + 1
        q.append(dig.mean_quality)
    return emit("reading_mendeley", images=len(files), all_leads_pass_share=round(passed / max(1, len(files)), 3),
                layouts=layouts, mean_quality_median=round(float(np.median(q)), 3))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--mendeley", type=int, default=60, help="Mendeley images (spread over the folder)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--parts", default="synthetic,records,realworld,mendeley")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    parts = args.parts.split(",")
    if "synthetic" in parts:
        for art in (False, True):
            synthetic(args.per_class, args.seed, art, 4.0)
    if not SHARED_DATA.is_dir():
        print(f"no shared data at {SHARED_DATA}: the real-data parts are skipped", file=sys.stderr)
        return 0
    if "records" in parts:
        records()
    if "realworld" in parts:
        realworld()
    if "mendeley" in parts:
        mendeley(args.mendeley)
    return 0


if __name__ == "__main__":
    sys.exit(main())
