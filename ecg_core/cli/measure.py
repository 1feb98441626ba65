"""Measurement-model commands: train one into a registry run folder (``train-measure``)."""

from __future__ import annotations

import argparse
import json


def cmd_train_measure(args: argparse.Namespace) -> int:
    from ecg_core.core import paths
    from ecg_core.reports.measure_train import ARCHS, train_measure

    kind = args.kind or ARCHS.get(getattr(args, "arch", ""), "lgbm")
    from pathlib import Path

    from ecg_core.core.errors import ConfigError

    try:
        params = json.loads(args.params) if args.params else None
        table = json.loads(Path(args.cv_table).read_text())["table"] if getattr(args, "cv_table", None) else None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--params must be a JSON object and --cv-table a measure_cv.py JSON file ({e})") from e
    if params is not None and not isinstance(params, dict):
        raise ConfigError("--params must be a JSON object, e.g. '{\"num_leaves\": 4}'")
    run_dir = train_measure(args.data, args.models or paths.models_dir(), run_id=args.run_id, kind=kind,
                            params=params, preset=args.preset, folds=args.folds, repeats=args.repeats,
                            seed=args.seed, n_boot=args.n_boot, cv_table=table)
    meta = json.loads((run_dir / "run.json").read_text())
    print(f"run {meta['run_id']}: {meta['status']}  ({run_dir})")
    if meta["status"] == "completed":  # layout / paper / size of the training reports, like a CNN run's
        from ecg_core.cli.common import write_ood_profile

        write_ood_profile(run_dir, args.data)
    m = meta.get("metrics") or {}
    if m:
        ci = m.get("macro_f1_ci") or [None, None]
        ci_txt = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if None not in ci else ""
        print(f"repeated group CV ({meta['kfold']['k']} folds x {meta['kfold']['repeats']}), out-of-fold over "
              f"{m['n_distinct']} distinct reports: macro-F1 {m['macro_f1']:.3f}{ci_txt}, acute-MI recall "
              f"{m['mi_recall']:.3f}")
    return 0 if meta["status"] in ("completed", "stopped") else 1


def add_measure_options(t: argparse.ArgumentParser) -> None:
    t.add_argument("--kind", choices=("lgbm", "logreg"), help="LightGBM (default) or logistic regression")
    t.add_argument("--params", help="JSON of model parameters (e.g. '{\"num_leaves\": 4}')")
    t.add_argument("--folds", type=int, default=5)
    t.add_argument("--repeats", type=int, default=3)
    t.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of the confidence intervals")
    t.add_argument("--cv-table", help="the candidates' table (scripts/measure_cv.py --out JSON) to store in run.json "
                   "and the model card")


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train-measure", help="train a measurement model (features read off the reports; LightGBM "
                       "text or logistic-regression JSON) with repeated group CV and calibration")
    t.add_argument("--data", required=True, help="dataset folder (one sub-folder per class)")
    t.add_argument("--preset", default="cardiac-4")
    t.add_argument("--run-id", help="run folder name (default: time-arch-random)")
    t.add_argument("--models", help="models folder (default: ./models or $ECG_INSIGHT_MODELS)")
    t.add_argument("--seed", type=int, default=0)
    add_measure_options(t)
    t.set_defaults(func=cmd_train_measure)
