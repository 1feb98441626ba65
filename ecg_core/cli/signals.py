"""Signal commands: build the spectral beat-image dataset from ECG records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_spectral_build(args: argparse.Namespace) -> int:
    from ecg_core.core.errors import ConfigError
    from ecg_core.signals.spectral import SpectralConfig
    from ecg_core.signals.spectral_dataset import build_spectral_dataset, spectral_class_counts

    records: list[Path] = []
    for item in args.records:  # a folder of WFDB records, or one record path (with or without extension)
        p = Path(item)
        found = sorted(h.with_suffix("") for h in p.glob("*.hea")) if p.is_dir() else [p.with_suffix("")]
        if not found or not all(Path(f"{r}.hea").is_file() for r in found):
            raise ConfigError(f"--records {item!r}: expected a folder of WFDB records (.hea + .dat) or a record path")
        records += found
    try:
        h, w = (int(v) for v in (args.size.lower().split("x") * 2)[:2])
    except ValueError:
        raise ConfigError(f"--size {args.size!r}: expected pixels, e.g. 64 or 64x96 (height x width)") from None
    spec = SpectralConfig(method=args.method, size=(h, w), colormap=None if args.colormap in (None, 'none') else args.colormap)
    index = build_spectral_dataset(
        records, Path(args.out), spec_cfg=spec, split_by=None if args.split_by == "none" else args.split_by,
        test_frac=args.test, val_frac=args.val, max_per_class_per_record=args.max_per_class_per_record,
        seed=args.seed, overwrite=args.overwrite,
        progress=lambda f, msg: print(f"[{f:4.0%}] {msg}", file=sys.stderr, flush=True),
    )
    from ecg_core.signals.arrhythmia_gbm import write_source_records

    write_source_records(args.out, records)  # the gradient-boosting model reads features of the whole records
    print(f"wrote {len(index)} {args.method} images ({h}x{w}) of {index['record'].nunique()} records to {args.out}")
    print(spectral_class_counts(index).to_string())
    if min(h, w) < 32:
        print("note: the training job reads images of at least 32 px per side; use --size 32 or more to train")
    print(f"train: python -m ecg_core train --data {args.out} --preset arrhythmia-6 --crop-mode none --no-clahe "
          f"--median 0 --height {h} --width {w} --channels {spec.channels} --keep-copies --augment none")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    sb = sub.add_parser("spectral-build", help="ECG records -> folder-per-class spectral beat images (arrhythmia-6)")
    sb.add_argument("--records", nargs="+", required=True, help="folders of WFDB records, or record paths")
    sb.add_argument("--out", required=True, help="output folder (must be absent or empty unless --overwrite)")
    sb.add_argument("--split-by", default="record", choices=("record", "none"),
                    help="record: whole records to train/val/test (written to index.csv); none: no split")
    sb.add_argument("--method", default="stft", choices=("stft", "cwt", "waveform"))
    sb.add_argument("--size", default="64", help="image size in pixels: 64 or HxW such as 64x96")
    sb.add_argument("--colormap", default=None, help="none (grayscale, default) or viridis, magma, jet, ...")
    sb.add_argument("--max-per-class-per-record", type=int, default=None,
                    help="keep at most N segments per (record, class); with --split-by record in train only")
    sb.add_argument("--test", type=float, default=0.2, help="test fraction of records (--split-by record)")
    sb.add_argument("--val", type=float, default=0.1, help="validation fraction of records (--split-by record)")
    sb.add_argument("--seed", type=int, default=0)
    sb.add_argument("--overwrite", action="store_true")
    sb.set_defaults(func=cmd_spectral_build)
