"""The shipped measurement run averaged with another model's out-of-fold probabilities (issue 15, item 4).

    .venv/bin/python scripts/measure_ensemble.py "/work/cache/perlead/oof_base.csv=per-lead CNN (no pretraining)" \
        "/work/cache/perlead/oof_pre.csv=per-lead CNN (synthetic-pretrained)" --out /work/cache/measure/v11/ens.json

Each CSV: sha256, repeat, p_<class> columns, on the folds of CACHE/folds.csv (measure_cv.py). On the (repeat,
image) pairs it predicted: the shipped run's own out-of-fold predictions (predictions_oof.csv), the other model,
and their simple average (weight 0.5, fixed beforehand), scored like measure_cv.py (group-bootstrap 95 % CIs).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecg_core.core.formatting import json_safe

_spec = importlib.util.spec_from_file_location("measure_cv", Path(__file__).with_name("measure_cv.py"))
mcv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mcv)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("others", nargs="+", help="FILE=NAME of another model's out-of-fold CSV")
    ap.add_argument("--run", default=str(ROOT / "models" / "cardiac4-mendeley-measure-lgbm"))
    ap.add_argument("--folds", default="/work/cache/measure/folds.csv")
    ap.add_argument("--out", default="/work/cache/measure/v11/ens.json")
    a = ap.parse_args(argv)
    classes, mi = mcv.CLASSES, "Myocardial Infarction"
    own = pd.read_csv(Path(a.run) / "predictions_oof.csv")
    folds = pd.read_csv(a.folds)[["file", "sha256", "repeat"]].rename(columns={"file": "path"})
    own = own.merge(folds, on=["path", "repeat"])
    rows: dict[str, dict] = {}
    for arg in a.others:
        path, name = arg.split("=", 1)
        m = own.merge(pd.read_csv(path), on=["sha256", "repeat"], suffixes=("", "_other"))
        y = m["true"].map({c: i for i, c in enumerate(classes)}).to_numpy()
        p_own = m[[f"prob_{c}" for c in classes]].to_numpy()
        p_other = m[[f"p_{c}" for c in classes]].to_numpy()
        tag = f"repeats {','.join(map(str, sorted(m['repeat'].unique())))}: {len(m)} predictions"
        for label, q in (("shipped measurement run (its own OOF)", p_own), (name, p_other),
                         (f"average(shipped measurement run, {name}; weight 0.5)", 0.5 * (p_own + p_other))):
            sc = mcv.score(y, q, m["group"].to_numpy(), n_boot=1000)
            rows[f"{label} [{tag}]"] = {"candidate": f"{label} [{tag}]", "kind": "ensemble", **sc}
            print(f"{label} [{tag}]: macro-F1 {sc['macro_f1']:.3f} {np.round(sc['macro_f1_ci'], 3)} MI recall "
                  f"{sc[f'recall[{mi}]']:.3f} {np.round(sc[f'recall[{mi}]_ci'], 3)}", flush=True)
    Path(a.out).write_text(json.dumps(json_safe({"table": list(rows.values())}), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
