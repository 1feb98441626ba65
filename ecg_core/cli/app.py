"""Command line: ``python -m ecg_core <command> ...``.

Every long or batch job of the app is a command here, so it can run in a subprocess (the pages poll its output)
or on another machine. On bad input a command prints one line ``error: <message>`` to stderr and exits with
status 2; an unexpected failure exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ecg_core.core.errors import EcgCoreError

EXIT_BAD_INPUT = 2


def _progress(desc: str) -> Callable[[int, int], None]:
    """A tqdm progress callback (i, n) writing to stderr."""
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(i: int, n: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=n, desc=desc, unit="file", file=sys.stderr, leave=False)
        b = bar["bar"]
        b.update(i - b.n)
        if i >= n:
            b.close()

    return update


# ------------------------------------------------------------------------------------------------------ commands
def cmd_audit(args: argparse.Namespace) -> int:
    from ecg_core.ml import dataset

    index = dataset.scan(args.folder, preset=args.preset, near_threshold=None if args.exact_only else args.near,
                         progress=_progress("scanning"))
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
        s = dataset.split_by_group(index, val_frac=args.val, test_frac=args.test, seed=args.split_seed)
        leaks = dataset.leakage(s)
        print(f"\ngroup-aware split (seed {args.split_seed}):")
        print(dataset.split_table(s).to_string())
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


def _config_from_args(args: argparse.Namespace):
    from ecg_core.imaging.preprocess import PreprocessConfig

    base = {}
    if args.config:
        try:
            base = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise EcgCoreError(f"cannot read config file {args.config!r}: {e}") from e
        base = base.get("preprocess", base)
    for key in ("crop_mode", "height", "width", "channels", "median_ksize", "clahe_clip"):
        v = getattr(args, key, None)
        if v is not None:
            base[key] = v
    if args.no_clahe:
        base["clahe"] = False
    return PreprocessConfig.from_dict(base)


def cmd_preprocess(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from ecg_core.imaging.loader import IMAGE_EXTENSIONS, load_image
    from ecg_core.imaging.preprocess import preprocess

    cfg = _config_from_args(args)
    src = Path(args.source)
    if not src.exists():
        raise EcgCoreError(f"{str(src)!r} does not exist")
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise EcgCoreError(f"no images (JPEG, PNG, BMP, TIFF) found in {str(src)!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "preprocess_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    bar = _progress("preprocessing")
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


def cmd_train(args: argparse.Namespace) -> int:
    from ecg_core.core import paths
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml.train import TrainConfig, run_training

    pre = _config_from_args(args) if (args.config or args.height or args.width or args.channels) else PreprocessConfig()
    cfg = TrainConfig(
        data_dir=args.data, arch=args.arch, preset=args.preset, preprocess=pre, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, val_frac=args.val, test_frac=args.test,
        kfold=args.kfold, split_by=args.split_by, dedupe=not (args.keep_copies or args.split_by == "file"), balance=args.balance, augment=args.augment,
        patience=args.patience, pretrained=args.pretrained, trainable_top_n=args.unfreeze,
        label_smoothing=args.label_smoothing, strategy=args.strategy, mixed_precision=args.mixed_precision,
        steps_per_epoch=args.steps_per_epoch, micro_batch=args.micro_batch,
    )
    run_dir = run_training(cfg, models_dir=args.models or paths.models_dir(), run_id=args.run_id)
    meta = json.loads((run_dir / "run.json").read_text())
    print(f"run {meta['run_id']}: {meta['status']}  ({run_dir})")
    m = meta.get("metrics") or {}
    if m:
        ci = m.get("macro_f1_ci") or [None, None]
        ci_txt = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if None not in ci else ""
        print(f"test split: {m['n']} files / {m['n_distinct']} distinct, accuracy {m['accuracy']:.3f}, "
              f"macro-F1 {m['macro_f1']:.3f}{ci_txt}")
    kf = meta.get("kfold")
    if kf:
        ci = kf.get("macro_f1_ci") or [None, None]
        print(f"{kf['k']}-fold out-of-fold: accuracy {kf['accuracy']:.3f}, macro-F1 {kf['macro_f1']:.3f}"
              + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if None not in ci else ""))
    return 0 if meta["status"] in ("completed", "stopped") else 1


def cmd_synth(args: argparse.Namespace) -> int:
    import os
    import time

    from ecg_core.reports.synth import generate_dataset

    t0 = time.time()
    df = generate_dataset(Path(args.out), per_class=args.per_class, seed=args.seed, px_per_mm=args.px_per_mm,
                          artifacts=not args.clean, image_format=args.format,
                          workers=args.workers or (os.cpu_count() or 1), overwrite=args.overwrite,
                          progress=_progress("rendering"))
    dt = time.time() - t0
    counts = df.groupby("class_key").size().to_dict()
    print(f"wrote {len(df)} reports to {args.out} in {dt:.1f} s ({len(df) / dt:.1f} reports/s): {counts}")
    return 0


def cmd_model_card(args: argparse.Namespace) -> int:
    from ecg_core.core import paths
    from ecg_core.ml.modelcard import write_model_card

    run = Path(args.run)
    if not run.is_dir():
        run = paths.models_dir() / args.run
    if not (run / "run.json").is_file():
        raise EcgCoreError(f"{args.run!r} is not a run folder or run id (no run.json)")
    print(write_model_card(run))
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    from ecg_core.ml.jobs import run_queue

    return run_queue(args.file)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ecg_core.ml import external_eval as ext
    from ecg_core.ml.compare import resolve_run

    info = resolve_run(args.run, models_dir=args.models)
    arch, preset = info.meta.get("arch", "?"), info.meta.get("preset", "?")
    if not args.data:
        split = "oof" if args.oof else "test"
        rep = ext.recompute_report(info, split=split, n_boot=args.boot)
        what = "out-of-fold (k-fold) predictions" if args.oof else "held-out test split"
        print(f"run {info.run_id} ({arch}, {preset}) on its {what}, recomputed from its predictions")
        for line in ext.report_lines(rep):
            print(line)
        if args.out:
            out = Path(args.out) / f"eval_{split}_recomputed.json"
            from ecg_core.ml.registry import atomic_write_json

            atomic_write_json(out, rep.to_dict())
            print(f"\nwritten: {out}")
        return 0
    bars: dict[str, Callable[[int, int], None]] = {}

    def progress(phase: str, i: int, n: int) -> None:
        bars.setdefault(phase, _progress(phase))(i, n)

    res = ext.evaluate_on_folder(info, args.data, batch_size=args.batch_size, n_boot=args.boot, seed=args.seed,
                                 progress=progress)
    print(f"run {info.run_id} ({arch}, {preset}) on external data {res.data_dir}")
    print(f"image files: {res.n_files}, evaluated: {res.report.n}, skipped (unreadable): {res.n_skipped}, "
          f"in folders of no class: {res.n_unlabelled}, non-image files ignored: {res.n_ignored}")
    for rel, why in res.skipped[:10]:
        print(f"  skipped {rel}: {why}")
    if res.n_skipped > 10:
        print(f"  ... and {res.n_skipped - 10} more")
    unit = "records (patients)" if res.grouped_by == "record" else "distinct images (duplicate groups)"
    print(f"confidence intervals resample {unit}")
    for line in ext.report_lines(res.report):
        print(line)
    pred_path, eval_path = ext.write_external(res, args.out or info.path)
    print(f"\nwritten: {pred_path}\nwritten: {eval_path}")
    return 0


def cmd_leakage_demo(args: argparse.Namespace) -> int:
    from ecg_core.core import paths
    from ecg_core.ml.compare import leakage_demo
    from ecg_core.imaging.preprocess import PreprocessConfig

    pre = _config_from_args(args) if (args.config or args.height or args.width or args.channels) else PreprocessConfig()
    models = args.models or paths.models_dir()
    summary = leakage_demo(
        args.data, models_dir=models, arch=args.arch, preprocess=pre, epochs=args.epochs, seed=args.seed,
        patience=args.patience, tag=args.tag, preset=args.preset, batch_size=args.batch_size, augment=args.augment,
        val_frac=args.val, test_frac=args.test, progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )

    def ci(v: list | None) -> str:
        return f" (95% CI {v[0]:.3f}-{v[1]:.3f})" if v and None not in v else ""

    for kind in ("file", "group"):
        r = summary["runs"][kind]
        print(f"{kind:>5} split  {r['run_id']}: accuracy {r['accuracy']:.3f}{ci(r['accuracy_ci'])}, "
              f"macro-F1 {r['macro_f1']:.3f}{ci(r['macro_f1_ci'])}; test {r['n_test']} files / "
              f"{r['n_test_distinct']} distinct, {r['n_test_exact_in_train']} with an exact copy in training "
              f"({r['n_test_group_in_train']} with an exact or near copy)")
    print(summary["explanation"])
    if args.out:
        from ecg_core.ml.registry import atomic_write_json

        atomic_write_json(args.out, summary)
    print(f"summary: {Path(models) / summary['runs']['group']['run_id'] / 'leakage_demo.json'}"
          + (f" and {args.out}" if args.out else ""))
    return 0


def cmd_spectral_build(args: argparse.Namespace) -> int:
    from ecg_core.core.errors import ConfigError
    from ecg_core.signals.spectral import SpectralConfig, build_spectral_dataset, spectral_class_counts

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
    print(f"wrote {len(index)} {args.method} images ({h}x{w}) of {index['record'].nunique()} records to {args.out}")
    print(spectral_class_counts(index).to_string())
    if min(h, w) < 32:
        print("note: the training job reads images of at least 32 px per side; use --size 32 or more to train")
    print(f"train: python -m ecg_core train --data {args.out} --preset arrhythmia-6 --crop-mode none --no-clahe "
          f"--median 0 --height {h} --width {w} --channels {spec.channels} --keep-copies --augment none")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ecg_core.core import paths
    from ecg_core.ml import registry
    from ecg_core.xai import explain

    run = explain.resolve_run(args.run, models_dir=args.models)
    cfg = registry.preprocess_config_of(run)
    files = explain.list_batch_files(args.folder)
    if not files:
        raise EcgCoreError(f"no files found in {args.folder!r}")
    import time

    import cv2

    t_load = time.perf_counter()
    model = registry.load_model(run)
    t_load = time.perf_counter() - t_load
    root = Path(args.folder) if Path(args.folder).is_dir() else None
    # predict_files prepares one file per worker thread: OpenCV's own threads inside each only compete for the same
    # cores (measured: the ECG check takes ~30 % longer with them on a 2-core machine). Restored afterwards for
    # callers that run the command in-process.
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    t_loop = time.perf_counter()
    try:
        df = explain.predict_files(model, cfg, files, class_names=run.class_names, root=root,
                                   check=not args.no_check, batch_size=args.batch_size,
                                   progress=_progress("predicting"),
                                   cache_root=None if args.no_cache else paths.cache_dir())
    finally:
        cv2.setNumThreads(cv_threads)
    t_loop = time.perf_counter() - t_loop
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    n_pred = int((df["predicted"] != "").sum())
    n_not_ecg = int(df["reason"].str.startswith(explain.REASON_NOT_ECG).sum())
    n_bad = int(df["reason"].str.startswith(explain.REASON_UNREADABLE).sum())
    print(f"{len(df)} files: {n_pred} predicted, {n_not_ecg} not recognised as an ECG report, {n_bad} unreadable "
          f"-> {out}  (run {run.run_id}; {explain.DISCLAIMER})")
    print(f"time: {t_loop:.2f} s for {len(df)} files ({len(df) / max(t_loop, 1e-9):.1f} files/s) after loading the "
          f"model in {t_load:.2f} s")
    return 0


def cmd_explain_eval(args: argparse.Namespace) -> int:
    from ecg_core.ml import registry
    from ecg_core.xai import explain

    run = explain.resolve_run(args.run, models_dir=args.models)
    cfg = registry.preprocess_config_of(run)
    items = explain.localisation_items(args.folder, limit=args.limit)
    if not items:
        raise EcgCoreError(f"no images with synthetic ground truth (sidecar .json with pathology leads) in "
                           f"{args.folder!r}; generate some with `python -m ecg_core synth`")
    explainer = explain.ExplainerCache(max_entries=1).get(run, layer=args.layer)
    per_image = explain.evaluate_localisation(explainer, cfg, items, method=args.method, target=args.target,
                                              progress=_progress("explaining"))
    if args.csv:
        per_image.to_csv(args.csv, index=False)
    summary = explain.summarise_localisation(per_image)
    errors = per_image[per_image["error"] != ""]
    print(f"run {run.run_id} · method {args.method} ({explain.method_title(args.method)}) · layer {explainer.layer} "
          f"· explained class: {args.target} · {len(per_image)} images")
    print(f"{'group':<24} {'n':>4} {'pointing':>9} {'chance':>7} {'lead mass':>10} {'area':>6} {'ratio':>6} "
          f"{'acc':>5}")
    for _, r in summary.iterrows():
        print(f"{r['group']:<24} {r['n']:>4} {r['pointing_game']:>9.3f} {r['pointing_chance']:>7.3f} "
              f"{r['lead_mass']:>10.3f} {r['area_share']:>6.3f} {r['mass_ratio']:>6.2f} {r['accuracy']:>5.2f}")
    print("pointing = share of maps whose maximum lies in a pathology lead (chance = their area share); lead mass = "
          "share of attention in the pathology leads (area = their area share, ratio = mass / area).")
    if len(errors):
        print(f"{len(errors)} images failed, e.g. {errors['path'].iloc[0]}: {errors['error'].iloc[0]}")
    return 0


# ---------------------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ecg_core", description="ECG Insight command line")
    sub = p.add_subparsers(dest="command", required=True)

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
    sy.set_defaults(func=cmd_synth)

    t = sub.add_parser("train", help="train a model (run folder with progress.jsonl, model.keras, eval.json)")
    t.add_argument("--data", required=True, help="dataset folder (one sub-folder per class)")
    t.add_argument("--arch", default="custom_cnn", help="architecture name of the zoo")
    t.add_argument("--preset", default="cardiac-4")
    t.add_argument("--run-id", help="run folder name (default: time-arch-random)")
    t.add_argument("--models", help="models folder (default: ./models or $ECG_INSIGHT_MODELS)")
    t.add_argument("--config", help="JSON with PreprocessConfig fields")
    t.add_argument("--height", type=int)
    t.add_argument("--width", type=int)
    t.add_argument("--channels", type=int, choices=(1, 3))
    t.add_argument("--crop-mode", dest="crop_mode", choices=("relative", "auto", "none"))
    t.add_argument("--median", dest="median_ksize", type=int)
    t.add_argument("--clahe-clip", dest="clahe_clip", type=float)
    t.add_argument("--no-clahe", action="store_true")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val", type=float, default=0.15)
    t.add_argument("--test", type=float, default=0.15)
    t.add_argument("--kfold", type=int, default=0, help="also run group-aware k-fold CV with k folds")
    t.add_argument("--split-by", default="group", choices=("group", "file"),
                   help="group (leak-free, default) or file (leaky random split, for the leakage demonstration)")
    t.add_argument("--keep-copies", action="store_true", help="train on every file, not one per duplicate group")
    t.add_argument("--balance", default="oversample", choices=("oversample", "class_weights", "none"))
    t.add_argument("--augment", default="light", help="augmentation preset (none, light, moderate, strong, ...)")
    t.add_argument("--patience", type=int, default=8)
    t.add_argument("--pretrained", action="store_true", help="try ImageNet weights (transfer models)")
    t.add_argument("--unfreeze", type=int, default=0, help="unfreeze the top N layers of a pretrained base")
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--strategy", default="default", choices=("default", "mirrored"),
                   help="tf.distribute strategy (mirrored = all local GPUs)")
    t.add_argument("--mixed-precision", action="store_true", help="mixed_float16 on GPU")
    t.add_argument("--steps-per-epoch", type=int, default=0, help="cap batches per epoch (0 = all)")
    t.add_argument("--micro-batch", type=int, default=0,
                   help="images per pass, gradients accumulated to --batch-size (0 = automatic: within a memory "
                        "budget; a batch of 16 at 384 px runs as 4 x 4)")
    t.set_defaults(func=cmd_train)

    mc = sub.add_parser("model-card", help="write MODEL_CARD.md of a run from its run.json and evaluations")
    mc.add_argument("run", help="run id or run folder")
    mc.set_defaults(func=cmd_model_card)

    q = sub.add_parser("queue", help="run the training jobs of a queue file one after another (used by the app)")
    q.add_argument("file", help="queue JSON written by the Train page")
    q.set_defaults(func=cmd_queue)
    ev = sub.add_parser("evaluate", help="re-evaluate a run: its test predictions, or another dataset folder")
    ev.add_argument("run", help="run id (in the models folder) or run folder")
    ev.add_argument("--data", help="external dataset folder (one sub-folder per class of the run's preset)")
    ev.add_argument("--out", help="output folder (default: the run folder)")
    ev.add_argument("--models", help="models folder (default: ./models or $ECG_INSIGHT_MODELS)")
    ev.add_argument("--oof", action="store_true", help="without --data: the k-fold out-of-fold predictions")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--boot", type=int, default=1000, help="bootstrap replicates of the 95%% CIs")
    ev.add_argument("--seed", type=int, default=0, help="bootstrap seed (external data)")
    ev.set_defaults(func=cmd_evaluate)

    ld = sub.add_parser("leakage-demo", help="train one model on a leaky file-level split and on the group split")
    ld.add_argument("--data", required=True, help="dataset folder (one sub-folder per class)")
    ld.add_argument("--arch", default="custom_cnn")
    ld.add_argument("--preset", default="cardiac-4")
    ld.add_argument("--models", help="models folder (default: ./models or $ECG_INSIGHT_MODELS)")
    ld.add_argument("--tag", help="run ids become leakdemo-file-TAG and leakdemo-group-TAG (default: arch-time)")
    ld.add_argument("--config", help="JSON with PreprocessConfig fields")
    ld.add_argument("--height", type=int)
    ld.add_argument("--width", type=int)
    ld.add_argument("--channels", type=int, choices=(1, 3))
    ld.add_argument("--no-clahe", action="store_true")
    ld.add_argument("--epochs", type=int, default=15)
    ld.add_argument("--patience", type=int, default=5)
    ld.add_argument("--batch-size", type=int, default=16)
    ld.add_argument("--augment", default="light")
    ld.add_argument("--seed", type=int, default=0)
    ld.add_argument("--val", type=float, default=0.15)
    ld.add_argument("--test", type=float, default=0.15)
    ld.add_argument("--out", help="also write the summary JSON here")
    ld.set_defaults(func=cmd_leakage_demo)

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
    pr = sub.add_parser("predict", help="predict every file of a folder with a trained run (CSV, one row per file)")
    pr.add_argument("run", help="run id (in the models folder) or run folder path")
    pr.add_argument("folder", help="folder of report images (searched recursively) or one image")
    pr.add_argument("--out", required=True, help="CSV to write (path, predicted, reason, prob_<class>...)")
    pr.add_argument("--models", help="models folder (default: ./models or $ECG_INSIGHT_MODELS)")
    pr.add_argument("--batch-size", type=int, default=16)
    pr.add_argument("--no-check", action="store_true", help="skip the 'is this an ECG report?' check")
    pr.add_argument("--no-cache", action="store_true",
                    help="do not reuse or fill the caches of preprocessed arrays and ECG-check verdicts")
    pr.set_defaults(func=cmd_predict)

    ee = sub.add_parser("explain-eval", help="pointing game and lead-mass score of a method against synthetic "
                        "ground truth (sidecar pathology leads)")
    ee.add_argument("run", help="run id (in the models folder) or run folder path")
    ee.add_argument("folder", help="synthetic dataset folder (images with .json sidecars)")
    from ecg_core.xai.explain import METHODS  # the dispatch table (no TensorFlow import)

    ee.add_argument("--method", default="gradcam", choices=tuple(METHODS))
    ee.add_argument("--limit", type=int, default=None, help="at most N images (taken round-robin over classes)")
    ee.add_argument("--target", default="true", choices=("true", "predicted"), help="class to explain")
    ee.add_argument("--layer", default=None, help="feature-map layer of the CAM methods (default: the run's)")
    ee.add_argument("--models", help="models folder (default: ./models or $ECG_INSIGHT_MODELS)")
    ee.add_argument("--csv", help="also write the per-image scores as CSV")
    ee.set_defaults(func=cmd_explain_eval)
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
