"""Choose the explanation method and layer of a run by its pointing game on a VALIDATION synthetic set.

For every (method, layer) pair: the pointing game and lead mass of ``explain-eval`` (same scoring,
:func:`ecg_core.reports.localisation.evaluate_localisation`) over MI + history of MI, per class, and where the
misses point (:func:`ecg_core.reports.localisation.max_lead`). Use a synthetic seed that is neither the
training seed nor the final test seed; report the final figure with ``python -m ecg_core explain-eval`` on the
test seed once, after choosing here.

    python scripts/pointing_select.py RUN VAL_DIR --methods gradcam,gradcam++,layercam \\
        --layers block4_conv,block3_conv --out /work/cache/pointing/select.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("folder")
    ap.add_argument("--methods", default="gradcam,gradcam++,layercam")
    ap.add_argument("--layers", default="", help="comma-separated layers (default: the run's)")
    ap.add_argument("--models", default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", default=None, help="JSON of the summary rows")
    args = ap.parse_args(argv)

    from ecg_core.ml import registry
    from ecg_core.reports import localisation
    from ecg_core.xai.explainer import ExplainerCache

    run = registry.resolve_run(args.run, models_dir=args.models, usable=True)
    cfg = registry.preprocess_config_of(run)
    items = localisation.localisation_items(args.folder, limit=args.limit)
    mi_names = set(localisation._territory_class_names())
    items = [it for it in items if it[1].get("class_name") in mi_names]
    layers = [s for s in args.layers.split(",") if s] or [None]
    cache = ExplainerCache(max_entries=1)
    rows = []
    for layer in layers:
        explainer = cache.get(run, layer=layer)
        for method in [m for m in args.methods.split(",") if m]:
            t = time.perf_counter()
            df = localisation.evaluate_localisation(explainer, cfg, items, method=method)
            dt = time.perf_counter() - t
            summ = localisation.summarise_localisation(df).set_index("group")
            ok = df[df["error"] == ""]
            misses = Counter(ok.loc[~ok["pointing_hit"].astype(bool), "max_lead"].replace("", "(none)"))
            row = {"run": run.run_id, "layer": explainer.layer, "method": method, "n": len(ok),
                   "pointing_game": float(summ.loc[localisation.MI_GROUP, "pointing_game"]),
                   "lead_mass": float(summ.loc[localisation.MI_GROUP, "lead_mass"]),
                   "per_class": {g: {"pointing_game": float(summ.loc[g, "pointing_game"]),
                                     "lead_mass": float(summ.loc[g, "lead_mass"])}
                                 for g in summ.index if g != localisation.MI_GROUP},
                   "per_territory": {f"{c} / {t}": float(g["pointing_hit"].astype(float).mean())
                                     for (c, t), g in ok.groupby(["class_name", "territory"])},
                   "misses_point_at": dict(misses.most_common()), "seconds": round(dt, 1)}
            rows.append(row)
            print(f"{row['layer']:<14} {method:<10} n={row['n']:>3} pointing {row['pointing_game']:.3f} "
                  f"lead mass {row['lead_mass']:.3f} · " + " · ".join(
                      f"{k} {v['pointing_game']:.2f}" for k, v in row["per_class"].items())
                  + f" · misses at {dict(misses.most_common(4))} ({dt:.0f} s)", flush=True)
    if args.out:
        from ecg_core.core.atomic import atomic_write_text

        atomic_write_text(Path(args.out), json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
