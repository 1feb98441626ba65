"""Training commands: train, run a queue, model cards, re-evaluate, the leakage demonstration."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ecg_core.cli import common
from ecg_core.cli.common import preprocess_config_from_args
from ecg_core.core.errors import EcgCoreError


def cmd_train(args: argparse.Namespace) -> int:
    if args.arch.startswith("measure_"):  # a measurement model (Train page: arch measure_lgbm / measure_logreg)
        from ecg_core.cli.measure import cmd_train_measure

        return cmd_train_measure(args)
    if args.arch == "perlead_cnn":  # the per-lead CNN: its preprocessing cuts each report into 13 lead panels
        return _train_perlead(args)
    from ecg_core.core import paths
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml.train import run_training
    from ecg_core.ml.train_config import TrainConfig

    pre = preprocess_config_from_args(args) if (args.config or args.height or args.width or args.channels) else PreprocessConfig()
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
    if meta["status"] == "completed":
        common.write_ood_profile(run_dir, args.data)
    return 0 if meta["status"] in ("completed", "stopped") else 1


def _train_perlead(args: argparse.Namespace) -> int:
    from ecg_core.core import paths
    from ecg_core.reports.perlead_train import train_perlead

    run_dir = train_perlead(args.data, args.models or paths.models_dir(), run_id=args.run_id, preset=args.preset,
                            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            val_frac=args.val, test_frac=args.test, init_weights=args.init_weights)
    meta = json.loads((run_dir / "run.json").read_text())
    m = meta.get("metrics") or {}
    print(f"run {meta['run_id']}: {meta['status']}  ({run_dir})"
          + (f"; test macro-F1 {m['macro_f1']:.3f} on {m['n_distinct']} distinct" if m.get("macro_f1") is not None else ""))
    return 0 if meta["status"] in ("completed", "stopped") else 1


def cmd_queue(args: argparse.Namespace) -> int:
    from ecg_core.ml.jobs import run_queue

    return run_queue(args.file)


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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ecg_core.ml import external_eval as ext
    from ecg_core.ml.registry import resolve_run

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
        bars.setdefault(phase, common.progress(phase))(i, n)

    if info.meta.get("model_kind") == "lightgbm_beat_vf":  # arrhythmia features of the folder's source records
        from ecg_core.signals.arrhythmia_gbm import evaluate_spectral_folder

        res = evaluate_spectral_folder(info, args.data, n_boot=args.boot, seed=args.seed)
    elif info.is_measurement:  # read and measure every report, then the measurement model
        from ecg_core.reports.measure_predict import evaluate_measure_folder

        res = evaluate_measure_folder(info, args.data, n_boot=args.boot, seed=args.seed, progress=progress)
    elif info.meta.get("arch") == "perlead_cnn":  # the per-lead CNN reads the 13 lead panels of each report
        from ecg_core.reports.perlead_predict import evaluate_perlead_folder

        res = evaluate_perlead_folder(info, args.data, n_boot=args.boot, seed=args.seed, progress=progress)
    else:
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
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml.leakage_demo import leakage_demo

    pre = preprocess_config_from_args(args) if (args.config or args.height or args.width or args.channels) else PreprocessConfig()
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


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
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
    t.add_argument("--init-weights", default=None,
                   help="--arch perlead_cnn: initial weights (.weights.h5 of the same architecture, e.g. synthetic "
                        "pretraining by scripts/perlead_cv.py pretrain)")
    t.add_argument("--steps-per-epoch", type=int, default=0, help="cap batches per epoch (0 = all)")
    t.add_argument("--micro-batch", type=int, default=0,
                   help="images per pass, gradients accumulated to --batch-size (0 = automatic: within a memory "
                        "budget; a batch of 16 at 384 px runs as 4 x 4)")
    from ecg_core.cli.measure import add_measure_options

    add_measure_options(t)  # used with --arch measure_lgbm / measure_logreg
    t.set_defaults(func=cmd_train)
    q = sub.add_parser("queue", help="run the training jobs of a queue file one after another (used by the app)")
    q.add_argument("file", help="queue JSON written by the Train page")
    q.set_defaults(func=cmd_queue)
    mc = sub.add_parser("model-card", help="write MODEL_CARD.md of a run from its run.json and evaluations")
    mc.add_argument("run", help="run id or run folder")
    mc.set_defaults(func=cmd_model_card)
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
