"""Data commands: audit a dataset folder, preprocess images, generate synthetic reports."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ecg_core.cli.common import preprocess_config_from_args, progress
from ecg_core.core.errors import EcgCoreError


def cmd_audit(args: argparse.Namespace) -> int:
    from ecg_core.ml import dataset, splits

    index = dataset.scan(args.folder, preset=args.preset, near_threshold=None if args.exact_only else args.near,
                         progress=progress("scanning"))
    report = dataset.audit(index)
    print(f"dataset: {index.attrs['root']}  (preset {index.attrs['preset']})")
    for line in report.summary_lines():
        print(line)
    print()
    print("per class (files / distinct images / duplicate groups):")
    for _, r in report.per_class.iterrows():
        print(f"  {r['class']:<24} {r['files']:>6} files  {r['distinct']:>6} distinct  {r['groups']:>6} groups")
    if len(report.unreadable):
        print("\nunreadable files:")
        for _, r in report.unreadable.iterrows():
            print(f"  {r['rel_path']}: {r['error']}")
    if args.split_seed is not None:
        s = splits.split_by_group(index, val_frac=args.val, test_frac=args.test, seed=args.split_seed)
        leaks = splits.leakage(s)
        print(f"\ngroup-aware split (seed {args.split_seed}):")
        print(splits.split_table(s).to_string())
        print(f"leakage check: {'OK, no duplicate group straddles splits' if leaks.empty else f'{len(leaks)} groups LEAK'}")
    if args.index_out:
        out = Path(args.index_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        cols = [c for c in index.columns]
        frame = s if args.split_seed is not None else index
        frame[[c for c in frame.columns if c in cols or c == "split"]].to_csv(out, index=False)
        print(f"\nindex written to {out}")
    if args.json:
        payload = {
            "root": index.attrs["root"],
            "n_files": report.n_files,
            "n_readable": report.n_readable,
            "n_distinct": report.n_distinct,
            "n_groups": report.n_groups,
            "n_groups_with_copies": report.n_groups_with_copies,
            "per_class": report.per_class.to_dict(orient="records"),
            "cross_class_groups": int(report.cross_class_groups["group"].nunique()) if len(report.cross_class_groups) else 0,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from ecg_core.imaging.loader import IMAGE_EXTENSIONS, load_image
    from ecg_core.imaging.preprocess import preprocess

    cfg = preprocess_config_from_args(args)
    src = Path(args.source)
    if not src.exists():
        raise EcgCoreError(f"{str(src)!r} does not exist")
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise EcgCoreError(f"no images (JPEG, PNG, BMP, TIFF) found in {str(src)!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "preprocess_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    bar = progress("preprocessing")
    failed = 0
    for i, f in enumerate(files):
        rel = f.relative_to(src) if src.is_dir() else Path(f.name)
        try:
            res = preprocess(load_image(f).rgb, cfg, keep_steps=args.steps)
        except EcgCoreError as e:
            print(f"skipped: {e}", file=sys.stderr)
            failed += 1
            bar(i + 1, len(files))
            continue
        target = (out / rel).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        img = np.clip(np.rint(res.final * 255), 0, 255).astype(np.uint8)
        cv2.imwrite(str(target), img[:, :, 0] if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        if args.steps:
            for k, (name, step) in enumerate(res.steps):
                sp = target.with_name(f"{target.stem}.step{k}-{name.split()[0]}.png")
                cv2.imwrite(str(sp), step if step.ndim == 2 else cv2.cvtColor(step, cv2.COLOR_RGB2BGR))
        bar(i + 1, len(files))
    print(f"preprocessed {len(files) - failed} of {len(files)} images into {out} (config {cfg.config_hash()})")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    import os
    import time

    from ecg_core.reports.synth import generate_dataset

    t0 = time.time()
    df = generate_dataset(Path(args.out), per_class=args.per_class, seed=args.seed, px_per_mm=args.px_per_mm,
                          artifacts=not args.clean, image_format=args.format,
                          workers=args.workers or (os.cpu_count() or 1), overwrite=args.overwrite,
                          signals=args.signals, layout=args.layout, paper=args.paper, photo=args.photo,
                          grid=not args.no_grid, progress=progress("rendering"))
    dt = time.time() - t0
    counts = df.groupby("class_key").size().to_dict()
    print(f"wrote {len(df)} reports to {args.out} in {dt:.1f} s ({len(df) / dt:.1f} reports/s): {counts}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    a = sub.add_parser("audit", help="count files, distinct images and duplicate groups of a dataset folder")
    a.add_argument("folder", help="folder with one sub-folder per class")
    a.add_argument("--preset", default="cardiac-4", help="label preset (cardiac-4 or arrhythmia-6)")
    a.add_argument("--near", type=float, default=0.95, help="near-copy fingerprint correlation threshold")
    a.add_argument("--exact-only", action="store_true", help="group exact copies only")
    a.add_argument("--split-seed", type=int, default=None, help="also show a group-aware split with this seed")
    a.add_argument("--val", type=float, default=0.15, help="validation fraction of groups")
    a.add_argument("--test", type=float, default=0.15, help="test fraction of groups")
    a.add_argument("--index-out", help="write the index (and split) as CSV")
    a.add_argument("--json", help="write the audit summary as JSON")
    a.set_defaults(func=cmd_audit)
    pp = sub.add_parser("preprocess", help="preprocess an image or a folder of images into PNGs")
    pp.add_argument("source", help="image file or folder")
    pp.add_argument("--out", required=True, help="output folder")
    pp.add_argument("--config", help="JSON file with PreprocessConfig fields (or a run.json)")
    pp.add_argument("--crop-mode", dest="crop_mode", choices=("relative", "auto", "none"))
    pp.add_argument("--height", type=int)
    pp.add_argument("--width", type=int)
    pp.add_argument("--channels", type=int, choices=(1, 3))
    pp.add_argument("--median", dest="median_ksize", type=int)
    pp.add_argument("--clahe-clip", dest="clahe_clip", type=float)
    pp.add_argument("--no-clahe", action="store_true")
    pp.add_argument("--steps", action="store_true", help="also write every intermediate step")
    pp.set_defaults(func=cmd_preprocess)
    sy = sub.add_parser("synth", help="generate a synthetic folder-per-class dataset of 12-lead reports")
    sy.add_argument("--out", required=True, help="output folder (must be absent or empty)")
    sy.add_argument("--per-class", type=int, default=25)
    sy.add_argument("--seed", type=int, default=0)
    sy.add_argument("--px-per-mm", type=float, default=4.0, help="resolution (4 px/mm gives ~1120x796 px)")
    sy.add_argument("--format", default="png", choices=("png", "jpg"))
    sy.add_argument("--clean", action="store_true", help="no scan/photo artifacts")
    sy.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    sy.add_argument("--overwrite", action="store_true")
    sy.add_argument("--signals", action="store_true",
                    help="also write the true 12-lead signals of every report (<stem>.hea/.dat) and st_mm, hr_bpm, "
                         "q_leads in its sidecar")
    from ecg_core.reports.synth_layouts import LAYOUTS, PAPERS

    sy.add_argument("--layout", default="3x4+1", choices=LAYOUTS, help="page layout (default 3x4+1: 3x4 + lead II "
                    "rhythm strip)")
    sy.add_argument("--paper", default=None, choices=PAPERS, help="paper colour (default: drawn per image, mostly "
                    "pink)")
    sy.add_argument("--no-grid", action="store_true", help="plain paper without the grid")
    sy.add_argument("--photo", action="store_true", help="phone-photo artifacts (perspective, rotation up to 15 "
                    "degrees, desk, shadow, creases, uneven light, moire, blur, low resolution, JPEG) instead of scan "
                    "artifacts")
    sy.set_defaults(func=cmd_synth)
