"""Prediction and explanation commands: batch predict a folder, score heatmaps against synthetic ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from ecg_core.cli.common import progress
from ecg_core.core.errors import EcgCoreError


def _ood_profile_or_none(run):
    """The run's OOD profile; ``None`` (with a warning line) when it has none or it cannot be read: the CSV then says
    plainly that in-distribution is unknown."""
    from ecg_core.reports import ood

    try:
        return ood.load_profile(run.path)
    except EcgCoreError as e:
        print(f"warning: {e}")
        return None


def _batch_files(folder: str) -> tuple[list[Path], Path | None]:
    """The files of ``predict``'s folder (or zip) and the root their paths are shown relative to."""
    from ecg_core.reports import batch

    files = batch.list_batch_files(folder)
    if not files:
        raise EcgCoreError(f"no files found in {folder!r}")
    return files, (Path(folder) if Path(folder).is_dir() else None)


def _write_predictions(df, out_arg: str) -> tuple[Path, int, int, int]:
    """Write ``predict``'s CSV; ``(path, predicted, not an ECG, unreadable)`` counts for the summary line."""
    from ecg_core.reports import batch

    out = Path(out_arg)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    return (out, int((df["predicted"] != "").sum()), int(df["reason"].str.startswith(batch.REASON_NOT_ECG).sum()),
            int(df["reason"].str.startswith(batch.REASON_UNREADABLE).sum()))


def cmd_predict(args: argparse.Namespace) -> int:
    from ecg_core.core import paths
    from ecg_core.ml import registry
    from ecg_core.reports import batch, messages, ood

    run = registry.resolve_run(args.run, models_dir=args.models, usable=True)
    if run.meta.get("model_kind") == "ensemble":  # averaged members (ecg_core.reports.ensemble)
        return _predict_ensemble(run, args)
    if run.is_measurement:
        return _predict_measure(run, args)
    if run.meta.get("arch") == "perlead_cnn":  # the per-lead CNN reads the report's 13 panels, not the resized page
        return _predict_perlead(run, args)
    cfg = registry.preprocess_config_of(run)
    profile = _ood_profile_or_none(run)
    files, root = _batch_files(args.folder)
    import time

    import cv2

    t_load = time.perf_counter()
    model = registry.load_model(run)
    # the forward pass batch prediction uses, compiled now (part of loading the model, not of the files' loop)
    predictor = batch.BatchPredictor(model, profile, batch_size=args.batch_size)
    predictor.warm_up()
    t_load = time.perf_counter() - t_load
    # predict_files prepares one file per worker thread: OpenCV's own threads inside each only compete for the same
    # cores (measured: the ECG check takes ~30 % longer with them on a 2-core machine). Restored afterwards for
    # callers that run the command in-process.
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    t_loop = time.perf_counter()
    try:
        df = batch.predict_files(model, cfg, files, class_names=run.class_names, root=root,
                                 check=not args.no_check, batch_size=args.batch_size,
                                 progress=progress("predicting"),
                                 cache_root=None if args.no_cache else paths.cache_dir(), ood=profile,
                                 predictor=predictor)
    finally:
        cv2.setNumThreads(cv_threads)
    t_loop = time.perf_counter() - t_loop
    out, n_pred, n_not_ecg, n_bad = _write_predictions(df, args.out)
    print(f"{len(df)} files: {n_pred} predicted, {n_not_ecg} not recognised as an ECG report, {n_bad} unreadable "
          f"-> {out}  (run {run.run_id}; {messages.DISCLAIMER})")
    n_ood = int((df["in_distribution"] == "false").sum())
    print(f"{n_ood} of {n_pred} predicted reports look unlike the model's training reports (in_distribution "
          f"false)" if profile is not None else f"in_distribution unknown: {ood.NO_PROFILE}")
    print(f"time: {t_loop:.2f} s for {len(df)} files ({len(df) / max(t_loop, 1e-9):.1f} files/s) after loading the "
          f"model in {t_load:.2f} s (its predict step compiled)")
    return 0


def _predict_perlead(run, args: argparse.Namespace) -> int:
    """``predict`` with a per-lead CNN (see :mod:`ecg_core.reports.perlead_predict`)."""
    from ecg_core.ml import registry
    from ecg_core.reports import messages
    from ecg_core.reports.perlead_predict import predict_files_perlead

    files, root = _batch_files(args.folder)
    df = predict_files_perlead(registry.load_model(run), files, class_names=run.class_names, root=root,
                               check=not args.no_check, progress=progress("predicting"))
    profile = _ood_profile_or_none(run)  # the descriptor part only: a per-lead CNN's profile has no feature space
    if profile is not None:
        from ecg_core.reports.ood_build import add_ood_columns

        df = add_ood_columns(df, files, profile)
    out, n_pred, n_not_ecg, n_bad = _write_predictions(df, args.out)
    print(f"{len(df)} files: {n_pred} predicted, {n_not_ecg} not recognised as an ECG report, {n_bad} unreadable "
          f"-> {out}  (run {run.run_id}, per-lead CNN; top_leads: the most attended panels; {messages.DISCLAIMER})")
    return 0


def _predict_ensemble(run, args: argparse.Namespace) -> int:
    """``predict`` with an ensemble run: every member predicts, their probabilities are averaged and calibrated."""
    from ecg_core.reports import messages
    from ecg_core.reports.ensemble import load_ensemble, predict_files_ensemble

    files, root = _batch_files(args.folder)
    ens = load_ensemble(run)
    df = predict_files_ensemble(ens, files, root=root, check=not args.no_check, ood=_ood_profile_or_none(run),
                                progress=progress("members"))
    out, n_pred, n_not_ecg, n_bad = _write_predictions(df, args.out)
    print(f"{len(df)} files: {n_pred} predicted, {n_not_ecg} not recognised as an ECG report, {n_bad} unreadable "
          f"-> {out}  (run {run.run_id}, ensemble of {', '.join(r.run_id for r in ens.members)}; top[<run>]: each "
          f"member's top class; {messages.DISCLAIMER})")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from ecg_core.core import paths
    from ecg_core.reports.ensemble import build_ensemble

    d = build_ensemble(args.models or paths.models_dir(), args.name, args.members, n_boot=args.n_boot)
    meta = __import__("json").loads((d / "run.json").read_text())
    print(f"ensemble {args.name} of {', '.join(args.members)} (equal weights) -> {d}: out-of-fold macro-F1 "
          f"{meta['metrics']['macro_f1']:.3f}, MI recall {meta['metrics']['mi_recall']:.3f}, temperature "
          f"{meta['temperature']:.3f} ({meta['metrics']['n']} rows)")
    return 0


def _predict_measure(run, args: argparse.Namespace) -> int:
    """``predict`` with a measurement model: read each report, measure it, predict (see
    :mod:`ecg_core.reports.measure_predict`)."""
    import time

    from ecg_core.ml import registry
    from ecg_core.reports import messages
    from ecg_core.reports.measure_predict import predict_files_measure

    files, root = _batch_files(args.folder)
    t_load = time.perf_counter()
    model = registry.load_model(run)
    t_load = time.perf_counter() - t_load
    profile = _ood_profile_or_none(run)  # the descriptor part only: a measurement model has no feature space
    t_loop = time.perf_counter()
    df = predict_files_measure(model, files, root=root, check=not args.no_check, progress=progress("predicting"),
                               ood=profile)
    t_loop = time.perf_counter() - t_loop
    out, n_pred, n_not_ecg, n_bad = _write_predictions(df, args.out)
    n_part = int((df["reading"] != "").sum())
    print(f"{len(df)} files: {n_pred} predicted ({n_part} read only in part: see the reading column), {n_not_ecg} "
          f"not recognised as an ECG report, {n_bad} unreadable -> {out}  (run {run.run_id}, measurement model; "
          f"{messages.DISCLAIMER})")
    print(f"time: {t_loop:.2f} s for {len(df)} files ({len(df) / max(t_loop, 1e-9):.1f} files/s) after loading the "
          f"model in {t_load:.2f} s")
    return 0


def cmd_explain_eval(args: argparse.Namespace) -> int:
    from ecg_core.ml import registry
    from ecg_core.reports import localisation
    from ecg_core.xai.explainer import ExplainerCache
    from ecg_core.xai.methods import method_title

    run = registry.resolve_run(args.run, models_dir=args.models, usable=True)
    if run.is_measurement:
        return _predict_measure(run, args)
    from ecg_core.reports.perlead_predict import is_perlead_run

    perlead = is_perlead_run(run.meta)  # reads the 13 lead panels of each report, not the whole page
    cfg = None if perlead else registry.preprocess_config_of(run)
    items = localisation.localisation_items(args.folder, limit=args.limit)
    if not items:
        raise EcgCoreError(f"no images with synthetic ground truth (sidecar .json with pathology leads) in "
                           f"{args.folder!r}; generate some with `python -m ecg_core synth`")
    explainer = ExplainerCache(max_entries=1).get(run, layer=args.layer)
    per_image = localisation.evaluate_localisation(explainer, cfg, items, method=args.method, target=args.target,
                                                   progress=progress("explaining"), perlead=perlead)
    if args.csv:
        per_image.to_csv(args.csv, index=False)
    summary = localisation.summarise_localisation(per_image)
    errors = per_image[per_image["error"] != ""]
    print(f"run {run.run_id} · method {args.method} ({method_title(args.method)}) · layer {explainer.layer} "
          f"· explained class: {args.target} · {len(per_image)} images"
          + (" · per-lead CNN (chance and area: share of the 13 lead boxes)" if perlead else ""))
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


def cmd_ood_profile(args: argparse.Namespace) -> int:
    from ecg_core.ml import registry
    from ecg_core.reports import ood_build

    run = registry.resolve_run(args.run, models_dir=args.models, usable=True)
    profile, summary = ood_build.build_profile(run, args.data, progress=progress("describing"),
                                               embed=not args.no_embedding)
    print(f"OOD profile of {run.run_id}: {summary['n_used']} of {summary['n_files']} training reports "
          f"(layouts {dict(profile.layouts)}) -> {run.path}")
    e = profile.embedding
    if e is not None:
        print(f"feature space: layer {e.layer}, PCA-{e.components.shape[0]}, {e.k}-NN mean distance; threshold "
              f"{e.threshold:.3f} = {e.quantile:.0%} quantile of {e.n_heldout} held-out-fold distances "
              f"({e.n_folds} folds; {e.heldout_in_rate:.1%} of them at or below it)")
    for note in profile.notes:
        print(f"note: {note}")
    if summary["skipped"]:
        print(f"{len(summary['skipped'])} files skipped, e.g. {summary['skipped'][0]}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    pr = sub.add_parser("predict", help="predict every file of a folder with a trained run (CSV, one row per file)")
    pr.add_argument("run", help="run id (in the models folder), run folder path, or 'default' (the app's default "
                    "model: cardiac4-mendeley-ensemble when shipped)")
    pr.add_argument("folder", help="folder of report images (searched recursively) or one image")
    pr.add_argument("--out", required=True, help="CSV to write (path, predicted, reason, prob_<class>..., "
                    "in_distribution, ood_reason)")
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
    from ecg_core.xai.methods import METHODS  # the dispatch table (no TensorFlow import)

    ee.add_argument("--method", default="gradcam", choices=tuple(METHODS))
    ee.add_argument("--limit", type=int, default=None, help="at most N images (taken round-robin over classes)")
    ee.add_argument("--target", default="true", choices=("true", "predicted"), help="class to explain")
    ee.add_argument("--layer", default=None, help="feature-map layer of the CAM methods (default: the run's)")
    ee.add_argument("--models", help="models folder (default: ./models or $ECG_INSIGHT_MODELS)")
    ee.add_argument("--csv", help="also write the per-image scores as CSV")
    ee.set_defaults(func=cmd_explain_eval)
    en = sub.add_parser("ensemble", help="average runs' probabilities (equal weights) into an ensemble run, "
                        "calibrated on their out-of-fold predictions")
    en.add_argument("name", help="run id of the ensemble")
    en.add_argument("--members", nargs="+", required=True, help="member run ids (same out-of-fold folds)")
    en.add_argument("--models", help="models folder (default: ./models or $ECG_INSIGHT_MODELS)")
    en.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of the CIs")
    en.set_defaults(func=cmd_ensemble)
    op = sub.add_parser("ood-profile", help="describe a run's training reports (layout, paper, size, feature space) "
                        "so that predictions say when a report is unlike them")
    op.add_argument("run", help="run id (in the models folder) or run folder path")
    op.add_argument("--data", required=True, help="the folder the run was trained on (its split 'train' is used)")
    op.add_argument("--models", help="models folder (default: ./models or $ECG_INSIGHT_MODELS)")
    op.add_argument("--no-embedding", action="store_true", help="descriptor part only (no feature space)")
    op.set_defaults(func=cmd_ood_profile)
