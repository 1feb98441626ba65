"""Finish the shipped synthetic run after ``python -m ecg_core train`` (issue 15, pointing game).

1. ``model.keras`` without the optimizer state (the same weights; 5.2 MB -> 1.8 MB, the folder stays < 5 MB),
   loaded back with ``safe_mode=True`` and checked to predict the same;
2. ``run.json`` gets ``explanation_eval``: the pointing game / lead mass of ``explain-eval`` on the fresh final
   synthetic set, before (the replaced model) and after, and the validation table of the selection;
3. ``MODEL_CARD.md`` is written again (``ecg_core.ml.modelcard``) with the synthetic limitations and a section
   "Explanation check" built from 2.

    python scripts/pointing_ship.py models/cardiac4-synthetic-custom_cnn --info /work/cache/pointing/ship.json

``--info`` JSON: {"before_csv", "after_csv" (explain-eval --csv of the final set), "final_cmd", "final_set",
"validation": [rows of scripts/pointing_select.py], "validation_set", "selection", "training", "replaced"}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LIMITATIONS = [
    ("Trained and tested on synthetic reports only (ecg_core.synth); it exists to check explanations against known "
     "pathology leads and to drive the demo, not to read real ECGs."),
    "On real reports it is expected to fail: the synthetic morphology and layout differ from real printouts.",
    ("The demo dataset of the app is generated with another seed from the same generator, so the demo accuracy is "
     "optimistic."),
]


def _summary(csv: str) -> dict:
    import pandas as pd

    from ecg_core.reports import localisation

    per = pd.read_csv(csv, keep_default_na=False)
    per["pointing_hit"] = per["pointing_hit"].astype(str).eq("True")
    per["correct"] = per["correct"].astype(str).eq("True")
    s = localisation.summarise_localisation(per)
    out = {r["group"]: {k: (int(r[k]) if k == "n" else round(float(r[k]), 3))
                        for k in ("n", "pointing_game", "pointing_chance", "lead_mass", "area_share", "accuracy",
                                  "pointing_game_strips")}
           for _, r in s.iterrows()}
    mi = per[(per["error"] == "") & per["class_name"].isin(localisation._territory_class_names())]
    miss = mi[~mi["pointing_hit"]]
    on_strip = miss[(miss["max_lead"] == "II_rhythm") & miss["pathology_leads"].str.split().apply(lambda v: "II" in v)]
    out["misses"] = {"n": len(miss), "at": miss["max_lead"].replace("", "(none)").value_counts().to_dict(),
                     "at_rhythm_strip_of_a_pathology_lead": len(on_strip)}
    out["per_territory"] = {f"{c} / {t}": round(float(g["pointing_hit"].mean()), 3)
                            for (c, t), g in mi.groupby(["class_name", "territory"])}
    return out


def _strip_optimizer(run_dir: Path) -> None:
    import keras
    import numpy as np

    from ecg_core.ml import registry

    path = run_dir / registry.MODEL_FILE
    full = keras.models.load_model(str(path), safe_mode=True, compile=False)
    x = np.random.default_rng(0).random((2, *full.input_shape[1:]), dtype=np.float32)
    ref = np.asarray(full(x, training=False))
    registry.save_model_atomic(full, path)
    again = registry.load_model(registry.read_run(run_dir))
    np.testing.assert_allclose(np.asarray(again(x, training=False)), ref, atol=1e-6)


def _section(info: dict) -> list[str]:
    b, a = info["before"], info["after"]
    mi = "MI + history of MI"
    nan = float("nan")
    intro = (f"Final set: {info['final_set']} — fresh, used once after every choice was made; command: "
             f"`{info['final_cmd']}`. Pointing game = share of maps whose maximum lies in a pathology lead's box "
             "(chance = their area share); lead mass = share of the attention inside those boxes; lenient = the "
             "pointing game when a pathology lead's rhythm strip (the lead-II strip of an inferior infarct) counts "
             "as that lead (a secondary reading: the strict game is the figure of issue 15).")
    lines = ["", "## Explanation check (issue 15): does Grad-CAM point at the pathology leads?", "", intro, "",
             ("| group | n | pointing game before | after | lenient before | after | chance | lead mass before "
              "| after | area share |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for g in [mi] + sorted(k for k in a if k not in (mi, "misses", "per_territory")):
        bb = b.get(g, {})
        lines.append(f"| {g} | {a[g]['n']} | {bb.get('pointing_game', nan):.3f} | **{a[g]['pointing_game']:.3f}** | "
                     f"{bb.get('pointing_game_strips', nan):.3f} | {a[g]['pointing_game_strips']:.3f} | "
                     f"{a[g]['pointing_chance']:.3f} | {bb.get('lead_mass', nan):.3f} | {a[g]['lead_mass']:.3f} | "
                     f"{a[g]['area_share']:.3f} |")
    terr = ", ".join(f"{k} {v:.2f} ({b['per_territory'].get(k, nan):.2f})" for k, v in a["per_territory"].items())
    lines += ["", f"Strict pointing game per territory (MI group, after; before in brackets): {terr}.",
              (f"Misses after: {a['misses']['n']} (maximum at {a['misses']['at']}); "
               f"{a['misses']['at_rhythm_strip_of_a_pathology_lead']} of them at the lead-II rhythm strip of an "
               "infarct whose pathology leads include II (the same lead printed again, scored as a miss). Before: "
               f"{b['misses']['n']} misses, {b['misses']['at_rhythm_strip_of_a_pathology_lead']} of them there."),
              "", "### Selection (validation set only)", "", info["selection"], "",
              f"Validation set: {info['validation_set']}.", "",
              "| candidate | layer | method | n | pointing game | lead mass | per class |",
              "|---|---|---|---:|---:|---:|---|"]
    for r in info["validation"]:
        per = ", ".join(f"{k} {v['pointing_game']:.2f}" for k, v in r["per_class"].items())
        lines.append(f"| {r['candidate']} | {r['layer']} | {r['method']} | {r['n']} | {r['pointing_game']:.3f} | "
                     f"{r['lead_mass']:.3f} | {per} |")
    lines += ["", f"Training cost: {info['training']}", "", f"Replaced: {info['replaced']}"]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--info", required=True)
    ap.add_argument("--keep-optimizer", action="store_true")
    args = ap.parse_args(argv)

    from ecg_core.core.atomic import atomic_write_text
    from ecg_core.ml import registry
    from ecg_core.ml.modelcard import render_model_card

    run_dir = Path(args.run_dir)
    info = json.loads(Path(args.info).read_text())
    info["before"], info["after"] = _summary(info["before_csv"]), _summary(info["after_csv"])
    if not args.keep_optimizer:
        _strip_optimizer(run_dir)
    keep = {k: info[k] for k in ("final_set", "final_cmd", "before", "after", "validation_set", "selection",
                                 "validation", "training", "replaced")}
    registry.update_run(run_dir, explanation_eval=keep)
    card = render_model_card(run_dir, limitations=LIMITATIONS).rstrip("\n").split("\n") + _section(info)
    atomic_write_text(run_dir / "MODEL_CARD.md", "\n".join(card) + "\n")
    print(json.dumps({k: info["after"][k] for k in info["after"] if k != "per_territory"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
