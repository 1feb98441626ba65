"""Repeated group-aware cross-validation of the measurement-model candidates on mendeley-dev (issue 15).

    nice -n 10 .venv/bin/python scripts/measure_features.py ../shared/data/mendeley-dev --cache /work/cache/measure
    nice -n 10 .venv/bin/python scripts/measure_cv.py --cache /work/cache/measure --out /work/cache/measure/cv.json

Every candidate is scored by 5-fold x 3-repeat StratifiedGroupKFold (seeds 0, 1, 2; one row per distinct image,
copies grouped) on the features of ``measure_features.py``; the three repeats' out-of-fold predictions are pooled
and evaluated with ecg_core.ml.evaluate (group-bootstrap 95 % intervals over the 343 images, each image carrying
its three predictions). Calibration (a temperature) is fitted on each candidate's own out-of-fold margins; the
scores below are arg-max scores, which a temperature does not change. The shipped CNN's 3-fold out-of-fold
predictions (models/cardiac4-mendeley-custom_cnn/predictions_oof.csv, one repeat, its own folds) are scored the
same way for reference, and the CNN+measurement average is scored on the images both have predictions for.
Training cost: seconds of one full 15-fold CV on this machine, and of one fit on all data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecg_core.core.formatting import json_safe
from ecg_core.ml import measure_model as mm
from ecg_core.ml.evaluate import evaluate_predictions

CLASSES = ["Myocardial Infarction", "Abnormal Heartbeat", "Normal", "History of MI"]
CNN_RUN = ROOT / "models" / "cardiac4-mendeley-custom_cnn"


def candidates(names: list[str]) -> dict[str, tuple[str, dict, list[str]]]:
    """name -> (kind, params, feature subset)."""
    no_quality = [n for n in names if not n.startswith("quality")]
    st_only = [n for n in names if n.split("_")[0] in ("st0", "st40", "st60", "st80", "stslope", "terr")
               or n in ("hr_bpm", "rr_cv", "qrs_ms", "max_st", "min_st", "n_st_elev", "n_st_dep", "crit_ste")]
    from ecg_core.reports.reading.features import GLOBAL_FEATURES

    summary = [n for n in names if n.startswith("terr_") or n in GLOBAL_FEATURES]
    st_plus = [n for n in names if n in set(st_only) | set(summary) or n.split("_")[0] in ("t", "qpath")]
    return {
        "logreg C=0.03": ("logreg", {"C": 0.03}, names),
        "logreg C=0.1": ("logreg", {"C": 0.1}, names),
        "logreg C=0.3": ("logreg", {"C": 0.3}, names),
        "lgbm 200x7 lr.05": ("lgbm", {}, names),
        "lgbm 400x4 lr.03": ("lgbm", {"num_leaves": 4, "learning_rate": 0.03, "rounds": 400}, names),
        "lgbm 150x15 lr.05": ("lgbm", {"num_leaves": 15, "rounds": 150}, names),
        "lgbm 200x7 no quality": ("lgbm", {}, no_quality),
        "lgbm 200x7 MI weight x2": ("lgbm", {"boost": [2.0, 1, 1, 1]}, names),
        "lgbm 200x7 MI weight x3": ("lgbm", {"boost": [3.0, 1, 1, 1]}, names),
        "lgbm 400x4 lr.03 MI weight x2": ("lgbm", {"num_leaves": 4, "learning_rate": 0.03, "rounds": 400,
                                                   "boost": [2.0, 1, 1, 1]}, names),
        "logreg C=0.1 MI weight x2": ("logreg", {"C": 0.1, "boost": [2.0, 1, 1, 1]}, names),
        "lgbm 200x7 ST+rate only": ("lgbm", {}, st_only),
        "lgbm 200x7 ST+rate only MI weight x2": ("lgbm", {"boost": [2.0, 1, 1, 1]}, st_only),
        "lgbm 200x7 MI weight x3 min leaf 3": ("lgbm", {"boost": [3.0, 1, 1, 1], "min_data_in_leaf": 3}, names),
        "lgbm 400x4 lr.03 ST+summary+T+Q MI weight x3": ("lgbm", {"num_leaves": 4, "learning_rate": 0.03,
                                                                   "rounds": 400, "boost": [3.0, 1, 1, 1]}, st_plus),
    }


def fitter(kind: str, params: dict, feats: list[str]):
    prm = dict(params)
    boost = prm.pop("boost", None)
    if kind == "logreg":
        return lambda x, y: mm.fit_logreg(x, y, feature_names=feats, class_names=CLASSES, C=prm["C"], boost=boost)
    rounds = int(prm.pop("rounds", mm.LGBM_ROUNDS))
    return lambda x, y: mm.fit_lgbm(x, y, feature_names=feats, class_names=CLASSES, params=prm, rounds=rounds,
                                    boost=boost)


def score(y: np.ndarray, prob: np.ndarray, groups: np.ndarray, n_boot: int = 1000) -> dict:
    rep = evaluate_predictions(y, prob, class_names=CLASSES, groups=groups, split="cv", n_boot=n_boot)
    d = rep.to_dict()
    out = {"macro_f1": d["macro"]["f1"], "macro_f1_ci": d["ci"].get("macro_f1"), "accuracy": d["accuracy"]}
    for c in d["per_class"]:
        out[f"recall[{c['name']}]"] = c["recall"]
        out[f"f1[{c['name']}]"] = c["f1"]
        out[f"recall[{c['name']}]_ci"] = d["ci"].get(f"recall[{c['name']}]")
        out[f"f1[{c['name']}]_ci"] = d["ci"].get(f"f1[{c['name']}]")
    return out


def cnn_oof(df: pd.DataFrame) -> np.ndarray | None:
    """The CNN's out-of-fold probabilities aligned with ``df`` (NaN rows where it has none)."""
    f = CNN_RUN / "predictions_oof.csv"
    if not f.is_file():
        return None
    p = pd.read_csv(f)
    idx = pd.read_csv(Path(df.attrs["cache"]) / "index.csv")[["path", "sha256"]]
    p = p.merge(idx, on="path", how="left").drop_duplicates("sha256").set_index("sha256")
    cols = [f"prob_{c}" for c in CLASSES]
    return p.reindex(df["sha256"])[cols].to_numpy(dtype=np.float64)


def markdown(path: Path) -> str:
    """The table of a cv.json as Markdown (README, model card)."""
    from ecg_core.core.formatting import fmt_ci, fmt_num

    rows = json.loads(path.read_text())["table"]
    mi = "Myocardial Infarction"
    out = ["| candidate | macro-F1 (95 % CI) | MI recall (95 % CI) | MI F1 | HMI recall | normal recall | "
           "abnormal-beat recall | CV s (15 fits) | fit s |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['candidate']} | {fmt_num(r['macro_f1'])} ({fmt_ci(r.get('macro_f1_ci'))}) | "
                   f"{fmt_num(r[f'recall[{mi}]'])} ({fmt_ci(r.get(f'recall[{mi}]_ci'))}) | {fmt_num(r[f'f1[{mi}]'])} | "
                   f"{fmt_num(r['recall[History of MI]'])} | {fmt_num(r['recall[Normal]'])} | "
                   f"{fmt_num(r['recall[Abnormal Heartbeat]'])} | {fmt_num(r.get('cv_seconds'), 0)} | "
                   f"{fmt_num(r.get('fit_seconds'), 1)} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/work/cache/measure")
    ap.add_argument("--out", default="/work/cache/measure/cv.json")
    ap.add_argument("--only", default="", help="comma-separated candidate names")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--markdown", action="store_true", help="print the table of --out as Markdown and exit")
    a = ap.parse_args(argv)
    if a.markdown:
        print(markdown(Path(a.out)))
        return 0
    cache = Path(a.cache)
    df = pd.read_csv(cache / "features.csv")
    df.attrs["cache"] = str(cache)
    from ecg_core.reports.reading.features import feature_names

    names = feature_names()
    y, groups = df["label"].to_numpy(int), df["group"].to_numpy()
    rep_groups = np.tile(groups, 3)
    table: list[dict] = []
    oofs: dict[str, np.ndarray] = {}
    only = {s.strip() for s in a.only.split(",") if s.strip()}
    for name, (kind, params, feats) in candidates(names).items():
        if only and name not in only:
            continue
        X = df[feats].to_numpy(np.float64)
        t0 = time.time()
        marg = mm.repeated_group_cv(X, y, groups, fitter(kind, params, feats), folds=5, repeats=3, seed=0)
        cv_s = time.time() - t0
        t0 = time.time()
        fitter(kind, params, feats)(X, y)
        fit_s = time.time() - t0
        temp = mm.fit_temperature(marg.reshape(-1, marg.shape[-1]), np.tile(y, 3))
        prob = mm.softmax(marg, temp)
        oofs[name] = prob
        per_rep = [score(y, prob[r], groups, n_boot=0)["macro_f1"] for r in range(3)]
        row = {"candidate": name, "kind": kind, "params": params, "n_features": len(feats), "temperature": temp,
               **score(np.tile(y, 3), prob.reshape(-1, prob.shape[-1]), rep_groups, a.n_boot),
               "macro_f1_per_repeat": per_rep, "cv_seconds": cv_s, "fit_seconds": fit_s}
        table.append(row)
        print(f"{name:28s} macro-F1 {row['macro_f1']:.3f} {row['macro_f1_ci']}  MI recall "
              f"{row['recall[Myocardial Infarction]']:.3f}  repeats {np.round(per_rep, 3)}  T={temp:.2f} "
              f"cv {cv_s:.0f}s", flush=True)
    pairs = [("lgbm 200x7 MI weight x3", "lgbm 200x7 ST+rate only MI weight x2")]
    for a_name, b_name in pairs:
        if a_name in oofs and b_name in oofs:
            avg = 0.5 * (oofs[a_name] + oofs[b_name])
            row = {"candidate": f"average({a_name}, {b_name})", "kind": "ensemble",
                   **score(np.tile(y, 3), avg.reshape(-1, avg.shape[-1]), rep_groups, a.n_boot)}
            table.append(row)
            print(f"avg2 {a_name} + {b_name}: macro-F1 {row['macro_f1']:.3f} MI recall "
                  f"{row['recall[Myocardial Infarction]']:.3f}", flush=True)
    cnn = cnn_oof(df)
    if cnn is not None:
        ok = np.isfinite(cnn).all(axis=1)
        row = {"candidate": "CNN custom_cnn (shipped; 3-fold OOF, 1 repeat)", "kind": "cnn", "n": int(ok.sum()),
               **score(y[ok], cnn[ok], groups[ok], a.n_boot), "cv_seconds": None, "fit_seconds": None}
        table.append(row)
        print(f"{'CNN':28s} macro-F1 {row['macro_f1']:.3f} MI recall {row['recall[Myocardial Infarction]']:.3f}")
        for name, prob in oofs.items():
            avg = 0.5 * (prob[:, ok] + cnn[ok][None])
            row = {"candidate": f"average({name}, CNN)", "kind": "ensemble", "n": int(ok.sum()),
                   **score(np.tile(y[ok], 3), avg.reshape(-1, avg.shape[-1]), np.tile(groups[ok], 3), a.n_boot)}
            table.append(row)
            print(f"avg {name:24s} macro-F1 {row['macro_f1']:.3f} MI recall "
                  f"{row['recall[Myocardial Infarction]']:.3f}", flush=True)
    out = Path(a.out)
    prev = json.loads(out.read_text()) if out.is_file() and only else {"table": []}
    done = {r["candidate"] for r in table}
    merged = [r for r in prev.get("table", []) if r["candidate"] not in done] + table
    out.write_text(json.dumps(json_safe({"protocol": "StratifiedGroupKFold 5 folds x 3 repeats (seeds 0-2), "
                                         "mendeley-dev, one row per distinct image", "n": len(y),
                                         "table": merged}), indent=1))
    np.savez_compressed(out.with_suffix(".oof.npz"), y=y, sha256=df["sha256"].to_numpy(str),
                        **{k.replace(" ", "_"): v for k, v in oofs.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
