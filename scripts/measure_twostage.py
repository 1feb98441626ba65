"""Two-stage candidates of the measurement model (issue 15; tried, not shipped).

A binary acute-MI detector over the acute-MI summaries, then the 4-class model for the rest:
p = [p_det, (1 - p_det) * renormalised p4[1:]]. Plain repeated group CV (5x3, the folds of folds.csv), nothing tuned.

    nice -n 10 .venv/bin/python scripts/measure_twostage.py /work/cache/measure/v11

Reads CACHE/features.csv (scripts/measure_features.py), prints the scores, writes CACHE/twostage.json (rows for
the candidates' table)."""

import sys, time, importlib.util
import numpy as np, pandas as pd
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/cache/measure/v11")
from ecg_core.ml import measure_model as mm

spec = importlib.util.spec_from_file_location("mcv", str(ROOT / "scripts" / "measure_cv.py"))
mcv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mcv)
from ecg_core.reports.reading.features import feature_names, feature_set, MI_FEATURES
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.linear_model import LogisticRegression
import lightgbm as lgb

df = pd.read_csv(CACHE / "features.csv")
y, g = df.label.to_numpy(int), df.group.to_numpy()
four = feature_set("st+mi+qrs")
det = list(MI_FEATURES) + [
    "n_st_elev",
    "ste_run",
    "ste_terr_max",
    "recip_sum",
    "max_st",
    "crit_ste",
    "crit_ste_recip",
    "st60_aVR",
    "hr_bpm",
    "qrs_ms",
]
X4, XD = df[four].to_numpy(float), df[det].to_numpy(float)


def det_lr(xtr, ytr, xte):
    med = np.nanmedian(xtr, 0)
    med = np.where(np.isfinite(med), med, 0)
    a, b = np.where(np.isfinite(xtr), xtr, med), np.where(np.isfinite(xte), xte, med)
    mu, sd = a.mean(0), a.std(0) + 1e-9
    c = LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000).fit((a - mu) / sd, ytr)
    return c.predict_proba((b - mu) / sd)[:, 1]


def det_gbm(xtr, ytr, xte):
    w = np.where(ytr == 1, (ytr == 0).sum() / max(1, (ytr == 1).sum()), 1.0)
    prm = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 4,
        "min_data_in_leaf": 5,
        "feature_fraction": 0.7,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "verbose": -1,
        "num_threads": 1,
        "seed": 0,
        "deterministic": True,
    }
    b = lgb.train(prm, lgb.Dataset(xtr, label=ytr, weight=w), num_boost_round=150)
    return b.predict(xte)


res = {k: np.zeros((3, len(y), 4)) for k in ("lr", "gbm", "lr-geo")}
base = np.zeros((3, len(y), 4))
t0 = time.time()
for r in range(3):
    for tr, te in StratifiedGroupKFold(5, shuffle=True, random_state=r).split(X4, y, g):
        m = mcv.fitter("lgbm", {"boost": [2.0, 1, 1, 1]}, four)(X4[tr], y[tr])
        p4 = mm.softmax(m.margins(X4[te]))
        base[r, te] = p4
        rest = p4[:, 1:] / p4[:, 1:].sum(1, keepdims=True)
        for k, fn in (("lr", det_lr), ("gbm", det_gbm)):
            pd_ = fn(XD[tr], (y[tr] == 0).astype(int), XD[te])
            res[k][r, te] = np.column_stack([pd_, (1 - pd_)[:, None] * rest])
            if k == "lr":
                q = p4.copy()
                q[:, 0] = np.sqrt(p4[:, 0] * pd_)
                res["lr-geo"][r, te] = q / q.sum(1, keepdims=True)
cv_s = time.time() - t0
print(f"{cv_s:.0f}s")
for k, p in [("4-class alone", base)] + list(res.items()):
    s = mcv.score(np.tile(y, 3), p.reshape(-1, 4), np.tile(g, 3), n_boot=1000)
    mi = "Myocardial Infarction"
    print(f"two-stage {k:14s} F1 {s['macro_f1']:.3f} {np.round(s['macro_f1_ci'], 3)} MI {s[f'recall[{mi}]']:.3f} "
          f"{np.round(s[f'recall[{mi}]_ci'], 3)} HMI {s['recall[History of MI]']:.3f}", flush=True)
import json

rows = []
for k, p in res.items():
    s = mcv.score(np.tile(y, 3), p.reshape(-1, 4), np.tile(g, 3), n_boot=1000)
    rows.append(
        {
            "candidate": {
                "lr": "two-stage: logreg MI detector (32 ST/MI features) + lgbm [st+mi+qrs] x2",
                "gbm": "two-stage: lgbm MI detector (32 ST/MI features) + lgbm [st+mi+qrs] x2",
                "lr-geo": "two-stage: geometric mean of logreg detector and lgbm [st+mi+qrs] x2 p(MI)",
            }[k],
            "kind": "two-stage",
            "cv_seconds": cv_s,
            **s,
        }
    )
json.dump(rows, open(CACHE / "twostage.json", "w"), default=float, indent=1)
