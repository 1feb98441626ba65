"""Batch inference: files/s of ``python -m ecg_core predict`` over a folder vs ``model.predict`` on preloaded tensors.

Measured:

* ``model.predict`` (Keras, same batch size) on the files' model inputs preloaded in memory: decoded at full size
  and preprocessed beforehand, the straightforward per-file way (``load_image`` + ``preprocess``). The ceiling.
* the real command, ``python -m ecg_core predict <run> <folder> --out X.csv``, in a subprocess, with the ECG check
  (the default) and with ``--no-check``: the whole command (process start, TensorFlow import, model load, CSV)
  and its prediction loop (the time the command prints for ``predict_files``, from the first file to the last
  prediction).
* where the time goes: each stage of one file (read, decode at full size and at draft size, check, the
  outside-the-training-data descriptor from the check's scan when the run has an OOD profile, preprocess, model)
  alone, sequentially, on a sample of the files; and the CPU time ``model.predict`` itself uses per file (all its
  threads).
* agreement: the classes the command predicts vs ``model.predict`` on the full-size reference inputs.

The default command runs three ways, each with its own app home: **cold** (first run over the folder: every file
decoded, checked, preprocessed; the verdicts and arrays go to the app's caches), **warm** (the same command again:
a folder predicted before, or the training data, whose arrays the training job cached — nothing is decoded) and
``--no-check --no-cache``. A first run prepares each distinct file content once (a folder's byte-identical
copies share it), so the cold run is timed once more on one file per distinct content
(``ratio_loop_cold_distinct_files``; mendeley-dev holds 648 files of 343 distinct pictures). Gated (``--gate``,
default ``warm``): the prediction loop / ``model.predict``, target >= 0.8; the cold and no-check ratios are
printed beside it. The whole command adds a fixed ~5 s (Python + TensorFlow start-up, model load) that says
nothing about batch throughput over 648 files, so it is printed but not gated. ``ceiling_ratio_*``: what the loop
could reach at best, if the model cost nothing and the per-file work
(read, decode, check, descriptor, preprocess: the stage times) spread perfectly over the cores; when it is below the
target, no batching or threading of the command can meet it and the per-file stages must get cheaper. The
ceilings assume every file is prepared: they bound the distinct-files ratio (a folder with copies can exceed them).
``ceiling_ratio_*_with_model``: the same bound when the model's own CPU time per file (measured, ~one core on two:
TensorFlow's threads do not keep both busy) shares the cores with the per-file work: on 2 cores a cold ratio of 0.8
needs decode + check + descriptor + preprocess <= 2 x 1.25 x (model ms/file) - (model CPU ms/file).

    python bench/batch_inference.py [--run ID] [--folder DIR] [--limit N] [--repeats N] [--old-loop]

Exit 0 pass, 1 miss, 2 cannot run (no data / no run).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, SHARED_DATA, cannot_run, emit, finish, median_seconds

BENCH = "batch_inference"
TARGET = 0.8
_TIME_LINE = re.compile(r"^time: ([0-9.]+) s for (\d+) files .* model in ([0-9.]+) s", re.M)


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="cardiac4-mendeley-custom_cnn", help="run id in --models, or a run folder")
    p.add_argument("--models", default=str(ROOT / "models"))
    p.add_argument("--folder", default=str(SHARED_DATA / "mendeley-dev"), help="folder of report images")
    p.add_argument("--limit", type=int, default=0, help="first N files only (0 = all)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each command (median); model.predict: max(3, N)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--sample", type=int, default=40, help="files for the per-stage breakdown")
    p.add_argument("--gate", choices=("warm", "cold", "no-check"), default="warm",
                   help="which prediction loop is gated (default: the default command on a folder seen before)")
    p.add_argument("--old-loop", action="store_true",
                   help="also time the previous sequential loop in-process (full decode, check, preprocess, model)")
    return p.parse_args(argv)


def _folder_with(files: list[Path], root: Path, tmp: Path) -> Path:
    """A folder of symbolic links to ``files`` (same relative paths), for --limit."""
    for f in files:
        link = tmp / f.relative_to(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f.resolve())
    return tmp


def _run_cli(run: str, models: str, folder: Path, out: Path, batch_size: int, check: bool, home: Path,
             cache: bool = True) -> dict[str, float]:
    cmd = [sys.executable, "-m", "ecg_core", "predict", run, str(folder), "--out", str(out), "--models", models,
           "--batch-size", str(batch_size)] + ([] if check else ["--no-check"]) + ([] if cache else ["--no-cache"])
    env = dict(os.environ, ECG_INSIGHT_HOME=str(home))  # its own cache folder: cold means cold
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    whole = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    m = _TIME_LINE.search(proc.stdout)
    if m is None:
        raise RuntimeError(f"no 'time: ...' line in the command's output: {proc.stdout[-2000:]}")
    return {"whole_s": whole, "loop_s": float(m.group(1)), "n": int(m.group(2)), "load_s": float(m.group(3))}


def _cli_rows(label: str, runs: list[dict[str, float]], n: int) -> dict[str, float]:
    whole = statistics.median(r["whole_s"] for r in runs)
    loop = statistics.median(r["loop_s"] for r in runs)
    row = {"whole_s": round(whole, 2), "whole_files_per_s": round(n / whole, 2), "loop_s": round(loop, 2),
           "loop_files_per_s": round(n / loop, 2), "ms_per_file_loop": round(1000 * loop / n, 2),
           "startup_s": round(whole - loop, 2), "model_load_s": round(statistics.median(r["load_s"] for r in runs), 2),
           "runs": len(runs)}
    emit(BENCH, what=label, **row)
    return row


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one linear script
    a = _args(argv)
    folder = Path(a.folder)
    if not folder.is_dir():
        return cannot_run(BENCH, f"no folder {folder} (set ECG_INSIGHT_SHARED_DATA or pass --folder)")
    import cv2
    import numpy as np
    import pandas as pd

    from ecg_core.core.hashing import file_hash
    from ecg_core.imaging.loader import load_image, read_bytes
    from ecg_core.imaging.preprocess import draft_size, preprocess
    from ecg_core.ml import registry
    from ecg_core.reports import batch
    from ecg_core.reports.ecg_check import check_ecg
    from ecg_core.reports.pipeline import decode_draft_size

    try:
        run = registry.resolve_run(a.run, models_dir=a.models, usable=True)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return cannot_run(BENCH, f"run {a.run!r}: {e}")
    cfg = registry.preprocess_config_of(run)
    files = batch.list_batch_files(folder)
    if a.limit:
        files = files[: a.limit]
    n, bs = len(files), int(a.batch_size)
    if not n:
        return cannot_run(BENCH, f"no files in {folder}")
    model = registry.load_model(run)
    names = list(run.class_names)
    emit(BENCH, what="setup", run=run.run_id, folder=str(folder), n_files=n, batch_size=bs,
         input_shape=list(cfg.input_shape), workers=batch._batch_workers(),
         jpeg_draft_size=list(decode_draft_size(cfg)), preprocess_draft_size=list(draft_size(cfg)))

    # ---- reference inputs: full-size decode + preprocess, the straightforward way; preloaded for model.predict
    ref_x, ref_ok = [], []
    for f in files:
        try:
            ref_x.append(preprocess(load_image(f).rgb, cfg, keep_steps=False).final)
            ref_ok.append(True)
        except Exception:  # noqa: BLE001 - unreadable files have no reference input
            ref_ok.append(False)
    x = np.stack(ref_x)
    ref_pred = np.asarray(model.predict(x, batch_size=bs, verbose=0))
    cpu0 = time.process_time()
    t_model, times = median_seconds(lambda: model.predict(x, batch_size=bs, verbose=0), repeats=max(3, a.repeats),
                                    warmup=0)
    model_cpu_ms = 1000 * (time.process_time() - cpu0) / (len(times) * len(x))  # all of TensorFlow's threads
    model_fps = len(x) / t_model
    emit(BENCH, what="model.predict (preloaded tensors)", files_per_s=round(model_fps, 2),
         ms_per_file=round(1000 * t_model / len(x), 2), cpu_ms_per_file=round(model_cpu_ms, 2), n=len(x),
         times_s=[round(t, 3) for t in times])

    # ---- where the time goes: each stage alone, sequentially, one thread (OpenCV single-threaded as in the CLI)
    sample = files[:: max(1, n // max(1, a.sample))][: a.sample]
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    from ecg_core.reports import ood

    with_ood = (run.path / ood.PROFILE_FILE).is_file()  # the command then describes every predicted report too
    st: dict[str, float] = dict.fromkeys(("read", "decode_full", "decode_draft", "check_full", "check_draft",
                                          "describe", "preprocess_full", "preprocess_draft"), 0.0)
    shapes = set()
    ok = 0
    try:
        try:  # one unmeasured pass first: lazy imports (the descriptor's SciPy) are not a per-file cost
            w0 = load_image(read_bytes(sample[0]), draft_size=decode_draft_size(cfg)).rgb
            c0 = check_ecg(w0, keep_scan=with_ood)
            if with_ood and c0.is_ecg:
                ood.describe_report(w0, scan=c0.scan)
            preprocess(w0, cfg, keep_steps=False)
        except Exception:  # noqa: BLE001, S110 - an unreadable first file: the loop below skips it too
            pass
        for f in sample:
            t0 = time.perf_counter()
            data = read_bytes(f)
            t1 = time.perf_counter()
            try:
                full = load_image(data).rgb
            except Exception:  # noqa: BLE001
                continue
            t2 = time.perf_counter()
            dr = load_image(data, draft_size=decode_draft_size(cfg)).rgb
            t3 = time.perf_counter()
            t4 = t3
            check_ecg(full)
            t5 = time.perf_counter()
            chk = check_ecg(dr, keep_scan=with_ood)
            t6 = time.perf_counter()
            if with_ood and chk.is_ecg:
                ood.describe_report(dr, scan=chk.scan, original_size=(full.shape[1], full.shape[0]))
            t6d = time.perf_counter()
            preprocess(full, cfg, keep_steps=False)
            t7 = time.perf_counter()
            preprocess(dr, cfg, keep_steps=False)
            t8 = time.perf_counter()
            ok += 1
            shapes.add((full.shape[1], full.shape[0], dr.shape[1], dr.shape[0]))
            for k, dt in zip(st, (t1 - t0, t2 - t1, t3 - t2, t5 - t4, t6 - t5, t6d - t6, t7 - t6d, t8 - t7)):
                st[k] += dt
    finally:
        cv2.setNumThreads(cv_threads)
    xb = x[:bs]
    model.predict_on_batch(xb)
    t_pob, _ = median_seconds(lambda: model.predict_on_batch(xb), repeats=20)
    stages = {k: round(1000 * v / max(ok, 1), 2) for k, v in st.items()}
    stages["model_predict_on_batch"] = round(1000 * t_pob / len(xb), 2)
    stages["model_predict"] = round(1000 * t_model / len(x), 2)
    emit(BENCH, what="stages (ms per file, sequential, one thread)", n=ok, **stages,
         sizes_full_vs_draft=sorted(shapes)[:4])

    # ---- the real command
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        tmp_p = Path(tmp)
        target = _folder_with(files, folder, tmp_p / "in") if a.limit else folder
        res: dict[str, dict[str, float]] = {}
        csv: dict[str, pd.DataFrame] = {}
        # cold: a fresh app home per run (empty caches); warm: the same command again on the home a cold run filled
        # (a folder predicted before, or the training data: the training job fills the same array cache)
        plans = (("cold", True, "with the ECG check, cold caches (first run over the folder)"),
                 ("warm", True, "with the ECG check, warm caches (the folder seen before)"),
                 ("no-check", False, "--no-check --no-cache"))
        homes = [tmp_p / f"home{r}" for r in range(max(1, a.repeats))]
        for label, check, words in plans:
            out = tmp_p / f"{label}.csv"
            runs = [_run_cli(a.run, a.models, target, out, bs, check, home, cache=label != "no-check")
                    for home in (homes if label != "no-check" else [tmp_p / f"nocache{r}" for r in
                                                                    range(len(homes))])]
            res[label] = _cli_rows(f"cli predict ({words})", runs, n)
            csv[label] = pd.read_csv(out, keep_default_na=False)
        # the folder holds byte-identical copies (mendeley-dev: 648 files of 343 distinct pictures), which a first
        # run prepares once each: the cold run again on one file per distinct content says what the speed-up
        # owes to the copies
        first_of: dict[str, Path] = {}
        for f in files:
            first_of.setdefault(file_hash(f.read_bytes()), f)
        distinct = list(first_of.values())
        if len(distinct) < n:
            target_d = _folder_with(distinct, folder, tmp_p / "distinct")
            runs = [_run_cli(a.run, a.models, target_d, tmp_p / "distinct.csv", bs, True, tmp_p / f"dhome{r}")
                    for r in range(len(homes))]
            res["cold-distinct"] = _cli_rows(f"cli predict (with the ECG check, cold caches, one file per distinct "
                                             f"content: {len(distinct)} of {n})", runs, len(distinct))
        if not csv["cold"].equals(csv["warm"]):
            print("warning: the warm run's table differs from the cold run's", file=sys.stderr)
        emit(BENCH, what="cold and warm tables identical", identical=bool(csv["cold"].equals(csv["warm"])))

    # ---- agreement with the reference (full-size decode) predictions
    ref_idx = np.flatnonzero(ref_ok)
    ref_full = np.full((n, len(names)), np.nan)
    ref_full[ref_idx] = ref_pred
    agree: dict[str, object] = {}
    for label, df in csv.items():
        pred = df["predicted"].to_numpy()
        both = [int(i) for i in ref_idx if pred[i] != ""]
        same = sum(pred[i] == names[int(np.argmax(ref_full[i]))] for i in both)
        probs = df[[f"prob_{c}" for c in names]].replace("", np.nan).astype(float).to_numpy()
        dp = np.abs(probs[both] - ref_full[both]) if both else np.zeros(1)
        agree[label] = {"same_class": int(same), "compared": len(both), "no_prediction": int((pred == "").sum()),
                        "max_abs_prob_diff": round(float(np.nanmax(dp)), 6)}
    emit(BENCH, what="agreement with full-size reference", **agree)

    if a.old_loop:
        ns: dict[str, object] = {}
        old = _old_loop(model, cfg, files, bs, check_ecg, load_image, preprocess)
        ns["loop_s"] = round(old, 2)
        ns["loop_files_per_s"] = round(n / old, 2)
        emit(BENCH, what="previous sequential loop (in-process, with the check)", **ns)

    ratio = {k: res[k]["loop_files_per_s"] / model_fps for k in res}
    whole = {k: res[k]["whole_files_per_s"] / model_fps for k in res}
    # the most the loop could reach if the model cost nothing and the per-file CPU work spread perfectly on all cores
    cores = batch._batch_workers()
    cpu_ms = {"cold": stages["read"] + stages["decode_draft"] + stages["check_draft"] + stages["describe"]
              + stages["preprocess_draft"]}
    # --no-check: the descriptor (a run with an OOD profile) then makes the check's scan itself
    cpu_ms["no-check"] = cpu_ms["cold"] - (0.0 if with_ood else stages["check_draft"])
    ceiling = {k: cores * 1000.0 / max(v, 1e-9) / model_fps for k, v in cpu_ms.items()}
    # the same, the model's own CPU time sharing the cores with the per-file work
    ceiling_m = {k: cores * 1000.0 / max(v + model_cpu_ms, 1e-9) / model_fps for k, v in cpu_ms.items()}
    which = {"warm": "the default command, on a folder seen before (caches warm)",
             "cold": "the default command, first run over the folder (caches cold)",
             "no-check": "--no-check --no-cache"}[a.gate]
    return finish(
        BENCH, ratio=ratio[a.gate], target=TARGET, higher_is_better=True,
        gated=f"steady-state loop of `python -m ecg_core predict`, {which}: files/s / model.predict files/s on "
              "preloaded tensors",
        ceiling_ratio_cold=round(ceiling["cold"], 3), ceiling_ratio_no_check=round(ceiling["no-check"], 3),
        ceiling_ratio_cold_with_model=round(ceiling_m["cold"], 3),
        ceiling_ratio_no_check_with_model=round(ceiling_m["no-check"], 3),
        per_file_cpu_ms_cold=round(cpu_ms["cold"], 2), model_cpu_ms_per_file=round(model_cpu_ms, 2),
        ratio_loop_warm=round(ratio["warm"], 3), ratio_loop_cold=round(ratio["cold"], 3),
        ratio_loop_no_check=round(ratio["no-check"], 3),
        ratio_loop_cold_distinct_files=round(ratio.get("cold-distinct", ratio["cold"]), 3),
        ratio_whole_command_warm=round(whole["warm"], 3), ratio_whole_command_cold=round(whole["cold"], 3),
        check_cost_ms_per_file_loop=round(res["cold"]["ms_per_file_loop"] - res["no-check"]["ms_per_file_loop"], 2),
        model_files_per_s=round(model_fps, 2), n_files=n, batch_size=bs,
    )


def _old_loop(model, cfg, files, bs, check_ecg, load_image, preprocess) -> float:  # noqa: ANN001
    """The loop before this change: per file, full decode, check, preprocess; the model directly per batch."""
    import numpy as np

    t0 = time.perf_counter()
    pending = []
    for f in files:
        try:
            rgb = load_image(f).rgb
            if check_ecg(rgb).is_ecg:
                pending.append(preprocess(rgb, cfg, keep_steps=False).final)
        except Exception:  # noqa: BLE001, S112
            continue
        if len(pending) >= bs:
            np.asarray(model(np.stack(pending), training=False))
            pending.clear()
    if pending:
        np.asarray(model(np.stack(pending), training=False))
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
