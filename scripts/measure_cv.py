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

CACHE/folds.csv gets the fold of every image (for other models to share the folds); ``--ensemble OOF.csv``
scores another model's out-of-fold probabilities on the same folds (e.g. the per-lead CNN's,
/work/cache/perlead/oof.csv) and its averages with the candidates of ENSEMBLE_WITH, on the (repeat, image) pairs
it predicted; ``--only none --ensemble ...`` reuses the stored candidates' predictions.
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
    """name -> (kind, params, feature subset). ``names``: every feature (features.py); the first block is the
    candidates of features 1.0 (215 features), the second those of 1.1 (the acute-MI summaries, feature sets of
    ``features.feature_set``)."""
    from ecg_core.reports.reading.features import GLOBAL_FEATURES, feature_set

    v10 = feature_set("v1.0")
    no_quality = [n for n in v10 if not n.startswith("quality")]
    st_only = feature_set("st")
    summary = [n for n in v10 if n.startswith("terr_") or n in GLOBAL_FEATURES]
    st_plus = [n for n in v10 if n in set(st_only) | set(summary) or n.split("_")[0] in ("t", "qpath")]
    x2, x3, x4, x5 = ([float(w), 1, 1, 1] for w in (2, 3, 4, 5))
    out = {
        "logreg C=0.03": ("logreg", {"C": 0.03}, v10),
        "logreg C=0.1": ("logreg", {"C": 0.1}, v10),
        "logreg C=0.3": ("logreg", {"C": 0.3}, v10),
        "lgbm 200x7 lr.05": ("lgbm", {}, v10),
        "lgbm 400x4 lr.03": ("lgbm", {"num_leaves": 4, "learning_rate": 0.03, "rounds": 400}, v10),
        "lgbm 150x15 lr.05": ("lgbm", {"num_leaves": 15, "rounds": 150}, v10),
        "lgbm 200x7 no quality": ("lgbm", {}, no_quality),
        "lgbm 200x7 MI weight x2": ("lgbm", {"boost": x2}, v10),
        "lgbm 200x7 MI weight x3": ("lgbm", {"boost": x3}, v10),
        "lgbm 400x4 lr.03 MI weight x2": ("lgbm", {"num_leaves": 4, "learning_rate": 0.03, "rounds": 400,
                                                   "boost": x2}, v10),
        "logreg C=0.1 MI weight x2": ("logreg", {"C": 0.1, "boost": x2}, v10),
        "lgbm 200x7 ST+rate only": ("lgbm", {}, st_only),
        "lgbm 200x7 ST+rate only MI weight x2": ("lgbm", {"boost": x2}, st_only),
        "lgbm 200x7 MI weight x3 min leaf 3": ("lgbm", {"boost": x3, "min_data_in_leaf": 3}, v10),
        "lgbm 400x4 lr.03 ST+summary+T+Q MI weight x3": ("lgbm", {"num_leaves": 4, "learning_rate": 0.03,
                                                                   "rounds": 400, "boost": x3}, st_plus),
    }
    new = {  # features 1.1: name [feature set]
        "lgbm 200x7 MI x3 min leaf 3 [all]": ("lgbm", {"boost": x3, "min_data_in_leaf": 3}, "all"),
        "lgbm 200x7 MI x5 min leaf 3 [all]": ("lgbm", {"boost": x5, "min_data_in_leaf": 3}, "all"),
        "lgbm 400x4 lr.03 MI x3 [all]": ("lgbm", {"num_leaves": 4, "learning_rate": 0.03, "rounds": 400,
                                                  "boost": x3}, "all"),
        "lgbm 200x7 MI x3 [no-quality]": ("lgbm", {"boost": x3}, "no-quality"),
        "lgbm 200x7 MI x2 [st+mi]": ("lgbm", {"boost": x2}, "st+mi"),
        "lgbm 200x7 MI x3 [st+mi]": ("lgbm", {"boost": x3}, "st+mi"),
        "lgbm 200x7 MI x2 [st+mi+q+t]": ("lgbm", {"boost": x2}, "st+mi+q+t"),
        "lgbm 200x7 MI x3 [st+mi+q+t]": ("lgbm", {"boost": x3}, "st+mi+q+t"),
        "lgbm 200x7 MI x2 [st+mi+qrs]": ("lgbm", {"boost": x2}, "st+mi+qrs"),
        "lgbm 200x7 MI x3 [st+mi+qrs]": ("lgbm", {"boost": x3}, "st+mi+qrs"),
        "lgbm 200x7 MI x4 [st+mi+qrs]": ("lgbm", {"boost": x4}, "st+mi+qrs"),
        "lgbm 400x4 lr.03 MI x3 [st+mi+qrs]": ("lgbm", {"num_leaves": 4, "learning_rate": 0.03, "rounds": 400,
                                                        "boost": x3}, "st+mi+qrs"),
        "logreg C=0.1 MI x2 [st+mi]": ("logreg", {"C": 0.1, "boost": x2}, "st+mi"),
    }
    out.update({k: (kind, prm, feature_set(fs)) for k, (kind, prm, fs) in new.items()})
    return out


# averages of two candidates' out-of-fold probabilities (the same folds)
PAIRS = [("lgbm 200x7 MI weight x3", "lgbm 200x7 ST+rate only MI weight x2"),
         ("lgbm 200x7 MI x3 min leaf 3 [all]", "lgbm 200x7 MI x2 [st+mi]"),
         ("lgbm 200x7 MI x3 [st+mi+qrs]", "lgbm 200x7 MI x2 [st+mi]")]
ENSEMBLE_WITH = ("lgbm 200x7 MI x3 [st+mi+qrs]", "lgbm 200x7 MI x2 [st+mi+qrs]")
CNN_PAIRS = ("logreg C=0.03", "lgbm 200x7 MI weight x3 min leaf 3", "lgbm 200x7 MI x3 [st+mi+qrs]",
             "lgbm 200x7 MI x2 [st+mi]")


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


def external_oof(df: pd.DataFrame, path: Path, repeats: int = 3) -> np.ndarray:
    """Another model's out-of-fold probabilities (a CSV with ``sha256`` or ``file``/``path``, ``repeat`` and
    ``prob_<class>`` or ``p_<class>`` columns, on the folds of /work/cache/measure/folds.csv) as (repeats, n, k)
    aligned with ``df``; NaN where it has none."""
    p = pd.read_csv(path)
    key = "sha256" if "sha256" in p.columns else ("file" if "file" in p.columns else "path")
    if "repeat" not in p.columns:
        p["repeat"] = 0
    pre = "prob_" if f"prob_{CLASSES[0]}" in p.columns else "p_"
    cols = [f"{pre}{c}" for c in CLASSES]
    out = np.full((repeats, len(df), len(CLASSES)), np.nan)
    own = df["sha256"] if key == "sha256" else df["path"]
    for r in range(repeats):
        q = p[p["repeat"] == r].drop_duplicates(key).set_index(key)
        if len(q):
            out[r] = q.reindex(own.to_numpy())[cols].to_numpy(np.float64)
    return out


def write_folds(df: pd.DataFrame, path: Path, repeats: int = 3, folds: int = 5) -> None:
    """The fold of every image in every repeat (file, sha256, group, label, class_name, repeat, fold): the folds
    of :func:`ecg_core.ml.measure_model.repeated_group_cv` with seed 0, for other models to use the same ones."""
    from sklearn.model_selection import StratifiedGroupKFold

    y, g = df["label"].to_numpy(int), df["group"].to_numpy()
    parts = []
    for r in range(repeats):
        fold = np.full(len(y), -1)
        for k, (_, te) in enumerate(StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=r)
                                    .split(np.zeros((len(y), 1)), y, g)):
            fold[te] = k
        parts.append(pd.DataFrame({"file": df["path"], "sha256": df["sha256"], "group": g, "label": y,
                                   "class_name": df["class_name"], "repeat": r, "fold": fold}))
    tmp = path.with_suffix(".tmp")
    pd.concat(parts).to_csv(tmp, index=False)
    tmp.replace(path)


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
    ap.add_argument("--ensemble", default="", help="another model's out-of-fold CSV (same folds) to average with "
                    "the candidates of ENSEMBLE_WITH, e.g. /work/cache/perlead/oof.csv")
    ap.add_argument("--ensemble-name", default="per-lead CNN")
    ap.add_argument("--markdown", action="store_true", help="print the table of --out as Markdown and exit")
    a = ap.parse_args(argv)
    if a.markdown:
        print(markdown(Path(a.out)))
        return 0
    cache = Path(a.cache)
    df = pd.read_csv(cache / "features.csv")
    df.attrs["cache"] = str(cache)
    write_folds(df, cache / "folds.csv")  # the folds below, for other models (the per-lead CNN) to share
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
    for a_name, b_name in PAIRS:
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
            if name not in CNN_PAIRS:
                continue
            avg = 0.5 * (prob[:, ok] + cnn[ok][None])
            row = {"candidate": f"average({name}, CNN)", "kind": "ensemble", "n": int(ok.sum()),
                   **score(np.tile(y[ok], 3), avg.reshape(-1, avg.shape[-1]), np.tile(groups[ok], 3), a.n_boot)}
            table.append(row)
            print(f"avg {name:24s} macro-F1 {row['macro_f1']:.3f} MI recall "
                  f"{row['recall[Myocardial Infarction]']:.3f}", flush=True)
    if a.ensemble:
        ext = external_oof(df, Path(a.ensemble))
        ok = np.isfinite(ext).all(axis=2)  # (repeat, image) pairs it predicted: every row below is scored on those
        yy, gg = np.tile(y, (3, 1))[ok], np.tile(groups, (3, 1))[ok]
        cov = f"{int(ok.sum())} predictions of {int(ok.any(axis=0).sum())} images"
        row = {"candidate": f"{a.ensemble_name} (its out-of-fold predictions; {cov})", "kind": "external",
               "n": int(ok.sum()), **score(yy, ext[ok], gg, a.n_boot)}
        table.append(row)
        print(f"{row['candidate']}: macro-F1 {row['macro_f1']:.3f} MI recall "
              f"{row['recall[Myocardial Infarction]']:.3f}", flush=True)
        cached = np.load(Path(a.out).with_suffix(".oof.npz")) if Path(a.out).with_suffix(".oof.npz").is_file() else {}
        for name in ENSEMBLE_WITH:
            key = name.replace(" ", "_")
            prob = oofs.get(name, cached[key] if key in getattr(cached, "files", ()) else None)
            if prob is None:
                continue
            for w in (0.0, 0.5, 0.25):
                avg = (1 - w) * prob[ok] + w * ext[ok]
                label = f"{name} on the same {cov}" if w == 0 else f"average({name}, {a.ensemble_name}; weight {w})"
                row = {"candidate": label, "kind": "ensemble", "n": int(ok.sum()), **score(yy, avg, gg, a.n_boot)}
                table.append(row)
                print(f"{row['candidate']}: macro-F1 {row['macro_f1']:.3f} MI recall "
                      f"{row['recall[Myocardial Infarction]']:.3f}", flush=True)
    out = Path(a.out)
    prev = json.loads(out.read_text()) if out.is_file() and only else {"table": []}
    done = {r["candidate"] for r in table}
    merged = [r for r in prev.get("table", []) if r["candidate"] not in done] + table
    out.write_text(json.dumps(json_safe({"protocol": "StratifiedGroupKFold 5 folds x 3 repeats (seeds 0-2), "
                                         "mendeley-dev, one row per distinct image", "n": len(y),
                                         "table": merged}), indent=1))
    npz = out.with_suffix(".oof.npz")
    kept = dict(np.load(npz)) if npz.is_file() and only else {}  # --only adds to the stored predictions
    kept.update({"y": y, "sha256": df["sha256"].to_numpy(str)}, **{k.replace(" ", "_"): v for k, v in oofs.items()})
    np.savez_compressed(npz, **kept)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
