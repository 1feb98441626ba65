"""Nested group-aware CV of the measurement-model *selection* (issue 15): how well does "pick the best candidate by
CV" do on reports the pick never saw?

    nice -n 10 .venv/bin/python scripts/measure_select.py --cache /work/cache/measure/v11 \
        --out /work/cache/measure/v11/select.json

OUTER: StratifiedGroupKFold 5 folds x 3 repeats (seeds 0-2, one row per distinct image, copies grouped: the folds
of measure_cv.py, written to /work/cache/measure/folds.csv). On each outer training part an INNER
StratifiedGroupKFold (5 folds x ``--inner-repeats``, seeds 100 + 10 r + f) scores every candidate of
:data:`CANDIDATES` (names of ``measure_cv.candidates``); a rule picks one; the pick is refitted on the whole outer
training part and predicts the outer test fold. Rules (fixed before the nested run):

* ``bars``: among the candidates whose inner macro-F1 >= 0.82 and inner MI recall >= 0.70, the highest
  macro-F1 + MI recall; when none meets both, the highest macro-F1 + MI recall;
* ``f1``: the highest inner macro-F1.

The pooled outer predictions (3 per image) are scored like measure_cv.py (group-bootstrap 95 % intervals over
images); the picks per outer fold are listed. Finally the rule is applied once to all the data (inner seed 0) —
the candidate a shipped run would use.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecg_core.core.formatting import json_safe
from ecg_core.ml import measure_model as mm

_spec = importlib.util.spec_from_file_location("measure_cv", Path(__file__).with_name("measure_cv.py"))
mcv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mcv)

CLASSES = mcv.CLASSES
MI = 0
CANDIDATES = (
    "lgbm 200x7 MI weight x3 min leaf 3",  # the 1.0 default (215 features)
    "lgbm 200x7 MI x3 min leaf 3 [all]",
    "lgbm 200x7 MI x3 [no-quality]",
    "lgbm 200x7 MI x2 [st+mi]",
    "lgbm 200x7 MI x3 [st+mi]",
    "lgbm 200x7 MI x3 [st+mi+q+t]",
    "lgbm 200x7 MI x2 [st+mi+qrs]",
    "lgbm 200x7 MI x3 [st+mi+qrs]",
)
RULES = ("bars", "f1")


def f1_rec(y: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """(macro-F1, MI recall) of the arg-max of ``z`` ((repeats, n, k), pooled over repeats)."""
    from sklearn.metrics import f1_score, recall_score

    yp = z.reshape(-1, z.shape[-1]).argmax(axis=1)
    yy = np.tile(y, z.shape[0])
    return (float(f1_score(yy, yp, labels=list(range(len(CLASSES))), average="macro", zero_division=0)),
            float(recall_score(yy, yp, labels=[MI], average="macro", zero_division=0)))


def pick(scores: dict[str, tuple[float, float]], rule: str) -> str:
    """The candidate ``rule`` picks from ``{name: (inner macro-F1, inner MI recall)}`` (ties: the first listed)."""
    if rule == "f1":
        return max(scores, key=lambda k: scores[k][0])
    ok = [k for k, (f, r) in scores.items() if f >= 0.82 and r >= 0.70]
    return max(ok or list(scores), key=lambda k: scores[k][0] + scores[k][1])


def inner_scores(df: pd.DataFrame, y: np.ndarray, g: np.ndarray, cands: dict, repeats: int, seed: int) -> dict:
    out = {}
    for name in CANDIDATES:
        kind, prm, feats = cands[name]
        z = mm.repeated_group_cv(df[feats].to_numpy(np.float64), y, g, mcv.fitter(kind, prm, feats), folds=5,
                                 repeats=repeats, seed=seed)
        out[name] = f1_rec(y, z)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/work/cache/measure/v11")
    ap.add_argument("--out", default="/work/cache/measure/v11/select.json")
    ap.add_argument("--inner-repeats", type=int, default=1)
    ap.add_argument("--outer-repeats", type=int, default=3)
    ap.add_argument("--n-boot", type=int, default=1000)
    a = ap.parse_args(argv)
    from sklearn.model_selection import StratifiedGroupKFold

    from ecg_core.reports.reading.features import feature_names

    df = pd.read_csv(Path(a.cache) / "features.csv")
    cands = mcv.candidates(feature_names())
    y, g = df["label"].to_numpy(int), df["group"].to_numpy()
    R, n, k = a.outer_repeats, len(y), len(CLASSES)
    probs = {rule: np.full((R, n, k), np.nan) for rule in RULES}
    picks: dict[str, list[str]] = {rule: [] for rule in RULES}
    folds_log = []
    t0 = time.time()
    for r in range(R):
        cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=r)
        for f, (tr, te) in enumerate(cv.split(np.zeros((n, 1)), y, g)):
            sc = inner_scores(df.iloc[tr], y[tr], g[tr], cands, a.inner_repeats, seed=100 + 10 * r + f)
            fitted: dict[str, np.ndarray] = {}
            for rule in RULES:
                name = pick(sc, rule)
                picks[rule].append(name)
                if name not in fitted:
                    kind, prm, feats = cands[name]
                    m = mcv.fitter(kind, prm, feats)(df[feats].to_numpy(np.float64)[tr], y[tr])
                    fitted[name] = mm.softmax(m.margins(df[feats].to_numpy(np.float64)[te]))
                probs[rule][r, te] = fitted[name]
            folds_log.append({"repeat": r, "fold": f, "inner": sc, "picks": {u: picks[u][-1] for u in RULES}})
            print(f"outer r{r} f{f}: picks {folds_log[-1]['picks']}  {time.time() - t0:.0f}s", flush=True)
    table = []
    for rule in RULES:
        p = probs[rule]
        row = {"candidate": f"nested selection [{rule}] over {len(CANDIDATES)} candidates", "kind": "selection",
               **mcv.score(np.tile(y, R), p.reshape(-1, k), np.tile(g, R), a.n_boot),
               "picks": dict(Counter(picks[rule])), "cv_seconds": time.time() - t0}
        table.append(row)
        print(f"[{rule}] macro-F1 {row['macro_f1']:.3f} {np.round(row['macro_f1_ci'], 3)}  MI recall "
              f"{row['recall[Myocardial Infarction]']:.3f} {np.round(row['recall[Myocardial Infarction]_ci'], 3)}  "
              f"picks {row['picks']}", flush=True)
    full = inner_scores(df, y, g, cands, a.inner_repeats, seed=0)
    chosen = {rule: pick(full, rule) for rule in RULES}
    print(f"on all data: {chosen}", flush=True)
    Path(a.out).write_text(json.dumps(json_safe({
        "protocol": f"outer StratifiedGroupKFold 5 x {R} (seeds 0-{R - 1}); inner 5 x {a.inner_repeats} on each outer "
                    "training part scores every candidate; the rule's pick refitted on the outer training part",
        "candidates": list(CANDIDATES), "table": table, "folds": folds_log,
        "full_data": {"inner": full, "chosen": chosen}, "seconds": time.time() - t0}), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
