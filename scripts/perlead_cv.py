"""Repeated group-aware CV of the per-lead CNN on mendeley-dev, with and without synthetic pretraining (issue 15).

    nice -n 10 .venv/bin/python scripts/perlead_cv.py pretrain --synth /work/cache/perlead/synth-pre
    nice -n 10 .venv/bin/python scripts/perlead_cv.py cv --tag base --repeats 3
    nice -n 10 .venv/bin/python scripts/perlead_cv.py cv --tag pre --repeats 1 --init /work/cache/perlead/pretrain.weights.h5
    .venv/bin/python scripts/perlead_cv.py score --tag base --tag pre

Rows: the 343 distinct images of mendeley-dev in the measurement helper's order (``/work/cache/measure/features.csv``:
sha256, path, group, label), else a fresh scan with one file per duplicate group. Folds: ``/work/cache/measure/folds.csv``
when it exists, else scikit-learn's StratifiedGroupKFold(5, shuffle=True, random_state=repeat) on (label, group),
as ``ecg_core.ml.measure_model.repeated_group_cv`` does (the same folds as scripts/measure_cv.py); written to
``/work/cache/perlead/folds.csv``. Each fold: the fixed recipe of ``ecg_core.reports.perlead_train.RECIPE`` (30 epochs
max; early stopping and learning-rate halving on an inner validation share of 15 % of the training fold's *groups*,
never the held-out fold), then the held-out fold is predicted. Out-of-fold probabilities go to
``/work/cache/perlead/oof_<tag>.csv`` after every fold (columns file, sha256, group, repeat, fold, true (the label
index in the preset's class order), p_<class>); a rerun skips the folds already there. ``score`` pools the repeats and
evaluates with ecg_core.ml.evaluate (group-bootstrap 95 % intervals over the distinct images).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_k, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecg_core.core.atomic import atomic_write_json, atomic_write_text
from ecg_core.core.formatting import json_safe
from ecg_core.core.labels import get_preset

CLASSES = [c.name for c in get_preset("cardiac-4").classes]
CACHE = Path("/work/cache/perlead")
DATA = ROOT.parent / "shared" / "data" / "mendeley-dev"


def rows_and_folds(repeats: int, folds: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    feats = Path("/work/cache/measure/features.csv")
    if feats.is_file():
        df = pd.read_csv(feats, usecols=["sha256", "path", "group", "label"])
    else:
        from ecg_core.ml.dataset import scan

        full = scan(DATA, preset=get_preset("cardiac-4"))
        df = full[(full["label"] >= 0) & (full["group"] >= 0) & (full["error"] == "")].drop_duplicates("group")
        df = df[["sha256", "path", "group", "label"]].reset_index(drop=True)
    shared = Path("/work/cache/measure/folds.csv")
    if shared.is_file():
        fo = pd.read_csv(shared)
    else:
        from sklearn.model_selection import StratifiedGroupKFold

        recs = []
        y, g = df["label"].to_numpy(int), df["group"].to_numpy()
        for r in range(repeats):
            cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=r)
            for f, (_, te) in enumerate(cv.split(np.zeros(len(y)), y, g)):
                recs += [{"sha256": df["sha256"][i], "repeat": r, "fold": f} for i in te]
        fo = pd.DataFrame(recs)
        atomic_write_text(CACHE / "folds.csv", fo.merge(df, on="sha256").to_csv(index=False))
    return df, fo


def mosaics(df: pd.DataFrame) -> np.ndarray:
    from ecg_core.reports.perlead import MosaicCache

    t = time.time()
    X = MosaicCache(CACHE / "panels").many(df)
    print(f"mosaics {X.shape} in {time.time() - t:.0f}s", flush=True)
    return X


def cmd_pretrain(a: argparse.Namespace) -> int:
    from ecg_core.ml.dataset import scan
    from ecg_core.reports.perlead_train import fit_perlead

    full = scan(a.synth, preset=get_preset("cardiac-4"))
    df = full[(full["label"] >= 0) & (full["error"] == "")].reset_index(drop=True)
    X = mosaics(df)
    y = df["label"].to_numpy(int)
    t = time.time()
    model, hist, _ = fit_perlead(X, y, n_classes=len(CLASSES), epochs=a.epochs, seed=a.seed)
    secs = time.time() - t
    out = Path(a.out)
    model.save_weights(str(out))
    info = {"synth": str(a.synth), "n": len(y), "epochs": a.epochs, "seconds": secs,
            "loss": hist.history.get("loss"), "accuracy": hist.history.get("accuracy")}
    atomic_write_json(out.with_suffix("").with_suffix(".json"), json_safe(info))
    print(f"pretrained on {len(y)} synthetic reports, {a.epochs} epochs, {secs:.0f}s; final accuracy "
          f"{info['accuracy'][-1]:.3f}", flush=True)
    return 0


def cmd_cv(a: argparse.Namespace) -> int:
    from ecg_core.reports.perlead_train import fit_perlead, predict_mosaics

    df, fo = rows_and_folds(max(a.repeats, 3))
    X = mosaics(df)
    y, groups = df["label"].to_numpy(int), df["group"].to_numpy()
    pos = {s: i for i, s in enumerate(df["sha256"])}
    out = CACHE / f"oof_{a.tag}.csv"
    prev = pd.read_csv(out) if out.is_file() else pd.DataFrame()
    done = set(zip(prev["repeat"], prev["fold"])) if len(prev) else set()
    parts, log = ([prev] if len(prev) else []), []
    logf = CACHE / f"folds_{a.tag}.json"
    if logf.is_file():
        log = json.loads(logf.read_text())
    for r in range(a.repeats):
        for f in range(a.folds):
            if (r, f) in done:
                continue
            te = np.array(sorted(pos[s] for s in fo[(fo["repeat"] == r) & (fo["fold"] == f)]["sha256"]))
            rest = np.setdiff1d(np.arange(len(y)), te)
            rng = np.random.default_rng(1000 * r + f)
            ug = np.unique(groups[rest])
            vg = set(rng.choice(ug, size=max(1, int(round(0.15 * len(ug)))), replace=False))
            isv = np.isin(groups[rest], list(vg))
            tr, va = rest[~isv], rest[isv]
            t = time.time()
            model, hist, _ = fit_perlead(X[tr], y[tr], n_classes=len(CLASSES), val=(X[va], y[va]),
                                         seed=100 * r + f, init_weights=a.init)
            secs = time.time() - t
            p = predict_mosaics(model, X[te])
            part = pd.DataFrame({"file": df["path"].to_numpy()[te], "sha256": df["sha256"].to_numpy()[te],
                                 "group": groups[te], "repeat": r, "fold": f, "true": y[te]})
            for k, c in enumerate(CLASSES):
                part[f"p_{c}"] = p[:, k]
            parts.append(part)
            allp = pd.concat(parts, ignore_index=True)
            atomic_write_text(out, allp.to_csv(index=False))
            acc = float((p.argmax(1) == y[te]).mean())
            log.append({"repeat": r, "fold": f, "seconds": secs, "epochs_run": len(hist.history["loss"]),
                        "n_train": len(tr), "n_val": len(va), "n_test": len(te), "accuracy": acc})
            atomic_write_json(logf, json_safe(log))
            print(f"[{a.tag}] repeat {r} fold {f}: acc {acc:.3f}, {len(hist.history['loss'])} epochs, {secs:.0f}s",
                  flush=True)
            import keras

            keras.backend.clear_session()
    return 0


def score_tag(tag: str, n_boot: int = 1000, repeats: int = 0) -> dict:
    """Scores of ``oof_<tag>.csv`` over its complete repeats (all folds present; the first ``repeats`` when > 0)."""
    from ecg_core.ml.evaluate import evaluate_predictions

    p = pd.read_csv(CACHE / f"oof_{tag}.csv")
    n_folds = p.groupby("repeat")["fold"].nunique()
    complete = sorted(int(r) for r in n_folds.index if n_folds[r] == n_folds.max() and
                      (p["repeat"] == r).sum() == p["sha256"].nunique())
    p = p[p["repeat"].isin(complete[:repeats] if repeats else complete)]
    prob = p[[f"p_{c}" for c in CLASSES]].to_numpy(np.float64)
    rep = evaluate_predictions(p["true"].to_numpy(int), prob, class_names=CLASSES, groups=p["group"].to_numpy(),
                               split="cv", n_boot=n_boot).to_dict()
    log = json.loads((CACHE / f"folds_{tag}.json").read_text()) if (CACHE / f"folds_{tag}.json").is_file() else []
    log = [x for x in log if x["repeat"] in set(p["repeat"])]
    mi = CLASSES[0]
    row = {"candidate": tag, "n_predictions": len(p), "repeats": int(p["repeat"].nunique()),
           "folds": int(p.groupby("repeat")["fold"].nunique().min()), "macro_f1": rep["macro"]["f1"],
           "macro_f1_ci": rep["ci"].get("macro_f1"), "mi_recall": rep["per_class"][0]["recall"],
           "mi_recall_ci": rep["ci"].get(f"recall[{mi}]"), "accuracy": rep["accuracy"],
           "fold_seconds": float(np.mean([x["seconds"] for x in log])) if log else None,
           "per_class": {c["name"]: {"recall": c["recall"], "f1": c["f1"]} for c in rep["per_class"]}}
    per_rep = []
    for r, q in p.groupby("repeat"):
        e = evaluate_predictions(q["true"].to_numpy(int), q[[f"p_{c}" for c in CLASSES]].to_numpy(np.float64),
                                 class_names=CLASSES, groups=q["group"].to_numpy(), split="cv", n_boot=0).to_dict()
        per_rep.append(e["macro"]["f1"])
    row["macro_f1_per_repeat"] = per_rep
    return row


def cmd_score(a: argparse.Namespace) -> int:
    rows = [score_tag(t, a.n_boot, a.repeats) for t in a.tag]
    for r in rows:
        ci, mci = r["macro_f1_ci"] or [None, None], r["mi_recall_ci"] or [None, None]
        print(f"| per-lead CNN, {r['candidate']} ({r['folds']} folds x {r['repeats']} repeats) | {r['macro_f1']:.3f} "
              f"({ci[0]:.3f}-{ci[1]:.3f}) | {r['mi_recall']:.3f} ({mci[0]:.3f}-{mci[1]:.3f}) | "
              f"{r['fold_seconds']:.0f} | " + ", ".join(f"{k} R {v['recall']:.2f} F1 {v['f1']:.2f}"
                                                         for k, v in r["per_class"].items()) + f" | {r['macro_f1_per_repeat']}")
    atomic_write_json(CACHE / f"cv_summary{'_r' + str(a.repeats) if a.repeats else ''}.json", json_safe({"table": rows}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain")
    p.add_argument("--synth", default=str(CACHE / "synth-pre"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(CACHE / "pretrain.weights.h5"))
    c = sub.add_parser("cv")
    c.add_argument("--tag", required=True)
    c.add_argument("--repeats", type=int, default=1)
    c.add_argument("--folds", type=int, default=5)
    c.add_argument("--init", default=None, help="initial weights (.weights.h5), e.g. the synthetic pretraining")
    s = sub.add_parser("score")
    s.add_argument("--tag", action="append", required=True)
    s.add_argument("--n-boot", type=int, default=1000)
    s.add_argument("--repeats", type=int, default=0, help="score only the first N complete repeats (0 = all)")
    a = ap.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    return {"pretrain": cmd_pretrain, "cv": cmd_cv, "score": cmd_score}[a.cmd](a)


if __name__ == "__main__":
    raise SystemExit(main())
