"""Seed spread of measurement-model candidates (issue 15): the same repeated group CV (5 folds x 3 repeats, the
folds of measure_cv.py) with LightGBM's own seed (bagging, feature fraction) changed.

    nice -n 10 .venv/bin/python scripts/measure_seeds.py --cache /work/cache/measure/v11 \
        --candidates "lgbm 200x7 MI x2 [st+mi+qrs]" --seeds 1,2,3,4

Prints macro-F1, MI recall and history-of-MI recall (arg-max of the pooled out-of-fold predictions) per seed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecg_core.ml import measure_model as mm

_spec = importlib.util.spec_from_file_location("measure_cv", Path(__file__).with_name("measure_cv.py"))
mcv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mcv)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/work/cache/measure/v11")
    ap.add_argument("--candidates", default="lgbm 200x7 MI x2 [st+mi+qrs]",
                    help="names of measure_cv.py, ';'-separated")
    ap.add_argument("--seeds", default="1,2,3,4")
    a = ap.parse_args(argv)
    from ecg_core.reports.reading.features import feature_names

    df = pd.read_csv(Path(a.cache) / "features.csv")
    y, g = df["label"].to_numpy(int), df["group"].to_numpy()
    cands = mcv.candidates(feature_names())
    mi = "Myocardial Infarction"
    for name in [c.strip() for c in a.candidates.split(";") if c.strip()]:
        kind, prm, feats = cands[name]
        x = df[feats].to_numpy(np.float64)
        for seed in [int(s) for s in a.seeds.split(",")]:
            z = mm.repeated_group_cv(x, y, g, mcv.fitter(kind, {**prm, "seed": seed}, feats), folds=5, repeats=3,
                                     seed=0)
            s = mcv.score(np.tile(y, 3), mm.softmax(z).reshape(-1, z.shape[-1]), np.tile(g, 3), n_boot=0)
            print(f"{name} seed {seed}: macro-F1 {s['macro_f1']:.3f} MI recall {s[f'recall[{mi}]']:.3f} "
                  f"HMI recall {s['recall[History of MI]']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
