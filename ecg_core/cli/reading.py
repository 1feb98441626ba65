"""Reading commands: digitise report images into WFDB records, measure them, print a WFDB record as a report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecg_core.cli.common import progress
from ecg_core.core.errors import EcgCoreError


def _images(source: str) -> list[Path]:
    from ecg_core.imaging.loader import IMAGE_EXTENSIONS

    src = Path(source)
    if not src.exists():
        raise EcgCoreError(f"{str(src)!r} does not exist")
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise EcgCoreError(f"no images (JPEG, PNG, BMP, TIFF) found in {str(src)!r}")
    return files


def _options(args: argparse.Namespace):
    from ecg_core.reports.reading.digitize import DigitizeOptions

    return DigitizeOptions(paper_speed_mm_s=args.paper_speed, gain_mm_mv=args.gain, rhythm_lead=args.rhythm_lead)


def _stem(f: Path, src: Path) -> str:
    rel = f.relative_to(src).with_suffix("") if src.is_dir() else Path(f.stem)
    return "_".join(rel.parts).replace(" ", "_")


def cmd_digitize(args: argparse.Namespace) -> int:
    import pandas as pd

    from ecg_core.core.atomic import atomic_write_bytes
    from ecg_core.reports.reading.digitize import QUALITY_PASS, digitize_file
    from ecg_core.reports.reading.formats import write_digitized

    files = _images(args.source)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    opts = _options(args)
    bar = progress("digitising")
    rows = []
    for i, f in enumerate(files):
        stem = _stem(f, Path(args.source))
        row = {"file": str(f), "record": stem, "status": "ok", "reason": ""}
        try:
            dig = digitize_file(f, options=opts, use_sidecar=not args.no_sidecar)
            write_digitized(dig, out, stem)
            row.update({"mean_quality": round(dig.mean_quality, 3), "all_leads_pass": dig.all_passed,
                        "px_per_mm": round(dig.px_per_mm, 3), "layout": dig.layout_source,
                        "skew_deg": round(dig.skew_deg, 2)})
            row.update({f"q_{k}": v for k, v in dig.quality.items()})
            if not dig.all_passed:
                row["reason"] = "; ".join(dig.messages)
        except Exception as e:  # a bad file never stops the batch
            row.update({"status": "failed", "reason": f"{type(e).__name__}: {e}"})
        rows.append(row)
        bar(i + 1, len(files))
    df = pd.DataFrame(rows)
    atomic_write_bytes(out / "digitize_summary.csv", df.to_csv(index=False).encode())
    ok = int((df["status"] == "ok").sum())
    passed = int((df["all_leads_pass"] == True).sum()) if "all_leads_pass" in df else 0  # noqa: E712
    print(f"digitised {ok} of {len(files)} images into {out} ({passed} with every lead passing the quality "
          f"check at {QUALITY_PASS:g}); summary: {out / 'digitize_summary.csv'}")
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    import pandas as pd

    from ecg_core.core.atomic import atomic_write_bytes
    from ecg_core.reports.reading.criteria import criteria_text, evaluate
    from ecg_core.reports.reading.digitize import digitize_file
    from ecg_core.reports.reading.measure import measure

    files = _images(args.source)
    opts = _options(args)
    bar = progress("measuring")
    rows = []
    for i, f in enumerate(files):
        row = {"file": str(f), "status": "ok", "reason": ""}
        try:
            dig = digitize_file(f, options=opts, use_sidecar=not args.no_sidecar)
            m = measure(dig)
            row.update(m.row())
            row["criteria"] = criteria_text(evaluate(m))
            row["mean_quality"] = round(dig.mean_quality, 3)
            row["reason"] = "; ".join(f"{k}: {v}" for k, v in m.problems.items())
        except Exception as e:  # a bad file never stops the batch
            row.update({"status": "failed", "reason": f"{type(e).__name__}: {e}"})
        rows.append(row)
        bar(i + 1, len(files))
    df = pd.DataFrame(rows)
    atomic_write_bytes(Path(args.out), df.to_csv(index=False, float_format="%.2f").encode())
    print(f"measured {int((df['status'] == 'ok').sum())} of {len(files)} images into {args.out}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import json

    from ecg_core.core.atomic import atomic_write_bytes, atomic_write_text
    from ecg_core.reports.reading.formats import read_12lead
    from ecg_core.reports.reading.render import render_record
    from ecg_core.reports.synth_render import RenderOptions, encode_image

    signals, fs = read_12lead(args.record)
    opts = RenderOptions(px_per_mm=args.px_per_mm, grid=args.grid, black_and_white=args.bw, artifacts=args.artifacts)
    image, sidecar, _ = render_record(signals, fs, opts, seed=args.seed)
    out = Path(args.out)
    fmt = "jpg" if out.suffix.lower() in (".jpg", ".jpeg") else "png"
    sidecar["image_file"] = out.name
    sidecar["record"] = str(args.record)
    atomic_write_bytes(out, encode_image(image, fmt))
    atomic_write_text(out.with_suffix(".json"), json.dumps(sidecar, indent=1, sort_keys=True) + "\n")
    print(f"rendered {args.record} as {out} ({image.shape[1]}x{image.shape[0]} px) with sidecar "
          f"{out.with_suffix('.json')}", file=sys.stdout)
    return 0


def _reading_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paper-speed", type=float, default=25.0, help="mm/s (default 25)")
    p.add_argument("--gain", type=float, default=10.0, help="mm/mV (default 10; the calibration pulse may override)")
    p.add_argument("--rhythm-lead", default="auto",
                   help="lead printed on the rhythm strip: auto (the one of I/II/III its start matches), a lead "
                        "name, or '' to keep it apart")
    p.add_argument("--no-sidecar", action="store_true", help="ignore a synthetic report's JSON sidecar")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    from ecg_core.reports.synth_render import GRID_STYLES

    d = sub.add_parser("digitize", help="read the 12 leads off report images into WFDB records (+ summary CSV)")
    d.add_argument("source", help="image file or folder")
    d.add_argument("--out", required=True, help="output folder for <image stem>.hea/.dat and digitize_summary.csv")
    _reading_args(d)
    d.set_defaults(func=cmd_digitize)
    m = sub.add_parser("measure", help="digitise report images and measure them (one CSV row per image)")
    m.add_argument("source", help="image file or folder")
    m.add_argument("--out", required=True, help="CSV file")
    _reading_args(m)
    m.set_defaults(func=cmd_measure)
    r = sub.add_parser("render", help="print a 12-lead WFDB record as a standard 3x4 + II report image")
    r.add_argument("record", help="WFDB record (path with or without .hea)")
    r.add_argument("--out", required=True, help="image file (.png or .jpg); a .json sidecar goes beside it")
    r.add_argument("--px-per-mm", type=float, default=8.0, help="resolution (default 8 ~ a full-resolution report)")
    r.add_argument("--grid", default="pink", choices=tuple(GRID_STYLES))
    r.add_argument("--bw", action="store_true", help="black-and-white print")
    r.add_argument("--artifacts", action="store_true", help="scan/photo artifacts")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=cmd_render)
