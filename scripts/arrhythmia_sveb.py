"""SVEB (class A) candidates of issue 17 under the shipped ensemble's record-grouped 5-fold CV (DS1 + vfdb-dev only).

    nice -n 10 .venv/bin/python scripts/arrhythmia_cv.py features --peaks annotations,detect   # v4 tables
    nice -n 10 .venv/bin/python scripts/arrhythmia_cnn.py windows --peaks annotations,detect     # beat windows
    nice -n 10 .venv/bin/python scripts/arrhythmia_sveb.py cv --out /work/cache/arrhythmia/sveb_cv.json

Folds: ``arrhythmia_cnn.FOLDS`` (the ones of the shipped figure). Per outer fold the members are trained on the
other four folds exactly as ``arrhythmia_cnn.py cv`` does (booster ``gbm_all_bbb120`` with its VF detector, booster
``gbm_p_bbb120``, the beat CNN, 12 epochs, seed 0), plus booster ``gbm_pl_bbb120`` (``gbm_p_bbb120`` + the
local-rhythm features :data:`~ecg_core.signals.beat_features.LOCAL_FEATURES`). Candidates, declared before any
number was seen:

* ``shipped``: mean(gbm_all_bbb120, gbm_p_bbb120, CNN), block rule, VF detector, argmax (reproduces 0.649);
* ``shipped_thrA``: the same with a decision threshold on P(A) (A when P(A) >= t, else the argmax of the other
  classes);
* ``local``: mean(gbm_all_bbb120, gbm_pl_bbb120, CNN), argmax;
* ``local_thrA``: ``local`` with the threshold.

The threshold t (grid 0.10..0.60 step 0.05, or plain argmax) is chosen **inside the training folds only**: an inner
record-grouped CV over the four training folds (one inner fold per outer training fold) gives out-of-fold
probabilities of the two boosters of the candidate; t maximises the beat macro-F1 (N L R A V, block rule applied)
of their mean on those inner rows. The inner ensemble has no CNN (20 more CNN trainings do not fit the time box),
so t is chosen for the boosters' mean and applied to the three-member mean: a declared approximation, never a look
at the scored fold. Out-of-fold probabilities are cached (``sveb_oof_*.npz``), so a rerun only re-scores.

Added **after** the four above had been scored (post hoc, exploratory; its figure is optimistic by that choice):
the per-record confusion showed most false A inside atrial fibrillation / flutter (201, 203: irregular RR, no P
waves). ``*_afgate``: a beat whose neighbourhood (21 beats) is irregular (median |delta pre-RR| / local RR >= a) and
without a consistent P wave (median ``p_corr_local`` < b) cannot be A (its P(A) moves to N). (a, b) come from a grid
(or off), chosen nested like the threshold (inner out-of-fold booster means, beat macro-F1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import arrhythmia_cnn as acn
import arrhythmia_cv as acv

from ecg_core.signals import arrhythmia_gbm as ag
from ecg_core.signals.beat_cnn import rr_matrix

G1, G2, G2L = "gbm_all_bbb120", "gbm_p_bbb120", "gbm_pl_bbb120"
#: the out-of-fold probabilities were computed on the v4 tables; v5 only adds AF_CONTEXT_FEATURES, which no member
#: reads, so the cache stays valid
OOF_TABLES = "v4"
GATES: tuple[tuple[float, float] | None, ...] = (None,) + tuple((a, b) for a in (0.1, 0.15, 0.2, 0.3)
                                                               for b in (0.3, 0.5, 0.7))
THRESHOLDS: tuple[float | None, ...] = (None,) + tuple(round(0.10 + 0.05 * i, 2) for i in range(11))
A = ag.BEAT_CLASSES.index("A")
VF = len(ag.BEAT_CLASSES)


def _labels(rows: pd.DataFrame) -> np.ndarray:
    return rows["label"].map({c: i for i, c in enumerate(ag.BEAT_CLASSES)}).to_numpy()


def fit_beat(beats: pd.DataFrame, name: str, trees: int):
    b = beats[beats["label"].isin(ag.BEAT_CLASSES)]
    return ag.train_booster(b[list(acv.CANDIDATES[name][0])], _labels(b), b["record"].astype(str).to_numpy(),
                            n_class=len(ag.BEAT_CLASSES), params=acv.params_of(name, trees))


def proba(booster, rows: pd.DataFrame, name: str) -> np.ndarray:
    x = rows[list(acv.CANDIDATES[name][0])].to_numpy(dtype=np.float64)
    return np.asarray(booster.predict(x)).reshape(len(rows), len(ag.BEAT_CLASSES))


def decide(pb: np.ndarray, pv: np.ndarray | None, t: float | None) -> np.ndarray:
    """Class index per row: VF detector on top (as ``predict_proba``'s argmax), then argmax, or A when
    P(A) >= ``t`` (else the argmax of the other beat classes)."""
    full = np.column_stack([pb * (1.0 - pv)[:, None], pv]) if pv is not None else pb
    yhat = full.argmax(axis=1)
    if t is None:
        return yhat
    other = pb.copy()
    other[:, A] = -1.0
    beat = np.where(pb[:, A] >= t, A, other.argmax(axis=1))
    return np.where(yhat == VF, VF, beat)


def pick_threshold(pb: np.ndarray, rows: pd.DataFrame) -> tuple[float | None, dict]:
    """t of :data:`THRESHOLDS` with the best beat macro-F1 on (inner out-of-fold) labelled rows; ties keep the
    earlier entry (argmax first, then the smaller t)."""
    from sklearn.metrics import f1_score

    y = _labels(rows)
    q = ag.bbb_rule(pb, rows, 120.0)
    scores = {}
    for t in THRESHOLDS:
        scores[str(t)] = float(f1_score(y, decide(q, None, t), labels=np.arange(len(ag.BEAT_CLASSES)),
                                        average="macro", zero_division=0))
    best = max(THRESHOLDS, key=lambda t: (scores[str(t)], -THRESHOLDS.index(t)))
    return best, scores


def af_context(table: pd.DataFrame) -> pd.DataFrame:
    """Label-free rhythm context of every beat (rows in table order): ``irr`` = median over the 21 beats around it
    of |pre-RR - previous pre-RR| / local RR, ``pcl`` = median of ``p_corr_local`` over the same beats (the
    table's ``af_irr`` / ``af_pcl`` of :func:`~ecg_core.signals.beat_features.rhythm_context` when present)."""
    if {"af_irr", "af_pcl"} <= set(table.columns):
        return pd.DataFrame({"irr": table["af_irr"].to_numpy(), "pcl": table["af_pcl"].to_numpy()},
                            index=table.index)
    out = []
    for _, g in table.groupby("record", sort=False):
        pre = g["pre_rr"].to_numpy(dtype=np.float64)
        d = np.abs(np.diff(pre, prepend=pre[:1])) / g["local_rr"].to_numpy(dtype=np.float64)
        roll = {"irr": d, "pcl": g["p_corr_local"].to_numpy(dtype=np.float64)}
        out.append(pd.DataFrame({k: pd.Series(v).rolling(21, center=True, min_periods=5).median().to_numpy()
                                 for k, v in roll.items()}, index=g.index))
    return pd.concat(out).loc[table.index]


def gate_mask(ctx: pd.DataFrame, gate: tuple[float, float] | None) -> np.ndarray:
    if gate is None:
        return np.zeros(len(ctx), dtype=bool)
    return ((ctx["irr"] >= gate[0]) & (ctx["pcl"] < gate[1])).to_numpy()


def apply_gate(pb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pb = np.array(pb, dtype=np.float64, copy=True)
    n_ = ag.BEAT_CLASSES.index("N")
    pb[mask, n_] += pb[mask, A]
    pb[mask, A] = 0.0
    return pb


def pick_gate(pb: np.ndarray, rows: pd.DataFrame, ctx: pd.DataFrame) -> tuple[tuple[float, float] | None, dict]:
    from sklearn.metrics import f1_score

    y = _labels(rows)
    scores = {}
    for g in GATES:
        q = ag.bbb_rule(apply_gate(pb, gate_mask(ctx, g)), rows, 120.0)
        scores[str(g)] = float(f1_score(y, q.argmax(axis=1), labels=np.arange(len(ag.BEAT_CLASSES)),
                                        average="macro", zero_division=0))
    best = max(GATES, key=lambda g: (scores[str(g)], -GATES.index(g)))
    return best, scores


def oof(args: argparse.Namespace, beats, wins, det, wmap, dmap) -> dict[str, np.ndarray]:
    path = acv.CACHE / f"sveb_oof_{OOF_TABLES}_t{args.trees}_e{args.epochs}_s{args.seed}.npz"
    if path.is_file() and not args.refit:
        return dict(np.load(path, allow_pickle=False))
    n, nd, k5 = len(beats), len(det), len(ag.BEAT_CLASSES)
    out = {f"{m}_{src}": np.full((n if src == "ann" else nd, k5), np.nan)
           for m in ("g1", "g2", "g2l", "cnn") for src in ("ann", "det")}
    out.update(pv_ann=np.full(n, np.nan), pv_det=np.full(nd, np.nan), pv_win=np.full(len(wins), np.nan),
               inner_g1=np.full((5, n, k5), np.nan), inner_g2=np.full((5, n, k5), np.nan),
               inner_g2l=np.full((5, n, k5), np.nan), seconds=np.zeros((5, 3)))
    rr_all, rr_det = rr_matrix(beats), rr_matrix(det)
    x_all = np.concatenate([wmap[r] for r in beats["record"].drop_duplicates()])
    x_det = np.concatenate([dmap[r] for r in det["record"].drop_duplicates()])
    assert len(x_all) == n and len(x_det) == nd
    for k, test in enumerate(acn.FOLDS):
        t0 = time.perf_counter()
        te, te_w, te_d = (beats["record"].isin(test).to_numpy(), wins["record"].isin(test).to_numpy(),
                          det["record"].isin(test).to_numpy())
        m1 = ag.GbmArrhythmiaModel.fit(beats[~te], wins[~te_w], params=acv.params_of(G1, args.trees),
                                       beat_features=acv.CANDIDATES[G1][0])
        b2, b2l = fit_beat(beats[~te], G2, args.trees), fit_beat(beats[~te], G2L, args.trees)
        for src, mask, rows in (("ann", te, beats[te]), ("det", te_d, det[te_d])):
            out[f"g1_{src}"][mask] = m1.beat_proba(rows)
            out[f"g2_{src}"][mask] = proba(b2, rows, G2)
            out[f"g2l_{src}"][mask] = proba(b2l, rows, G2L)
            out[f"pv_{src}"][mask] = m1.vf_proba(rows)
        out["pv_win"][te_w] = m1.vf_proba(wins[te_w])
        t1 = time.perf_counter()
        # inner CV on the training folds: the boosters only (for the threshold)
        for j, inner in enumerate(acn.FOLDS):
            if j == k:
                continue
            te_i = beats["record"].isin(inner).to_numpy()
            tr_i = ~te & ~te_i
            rows = beats[te_i]
            for key, name in (("inner_g1", G1), ("inner_g2", G2), ("inner_g2l", G2L)):
                out[key][k][te_i] = proba(fit_beat(beats[tr_i], name, args.trees), rows, name)
        t2 = time.perf_counter()
        lab = (~te) & beats["label"].isin(ag.BEAT_CLASSES).to_numpy()
        cnn = acn.train_cnn(x_all[lab], rr_all[lab], _labels(beats[lab]), beats.loc[lab, "record"].to_numpy(),
                            epochs=args.epochs, seed=args.seed)
        out["cnn_ann"][te] = cnn.predict({"beat": x_all[te].astype(np.float32), "rr": rr_all[te]}, batch_size=1024,
                                         verbose=0)
        out["cnn_det"][te_d] = cnn.predict({"beat": x_det[te_d].astype(np.float32), "rr": rr_det[te_d]},
                                           batch_size=1024, verbose=0)
        t3 = time.perf_counter()
        out["seconds"][k] = (t1 - t0, t2 - t1, t3 - t2)
        print(f"fold {k} {test}: boosters {t1 - t0:.0f} s, inner {t2 - t1:.0f} s, cnn {t3 - t2:.0f} s", flush=True)
    np.savez(path, **out)
    return out


def score(pb: np.ndarray, pv: np.ndarray, pv_win: np.ndarray, rows: pd.DataFrame, wins: pd.DataFrame,
          thr: dict[str, float | None], n_boot: int, gate: np.ndarray | None = None) -> dict:
    """Rows as in ``arrhythmia_cnn.py cv``: labelled beats and windows fully inside VF (a window not called VF
    takes the class of the nearest beat); ``thr``: record -> its outer fold's threshold."""
    ys, yh, gs = [], [], []
    vfw = (wins["vf_frac"] >= 0.999).to_numpy()
    lab_all = rows["label"].isin(ag.BEAT_CLASSES).to_numpy()
    keyid = {k: i for i, k in enumerate(ag.CLASS_KEYS)}
    if gate is not None:
        pb = apply_gate(pb, gate)
    for rid in sorted(acv.record_paths()):
        m = (rows["record"] == rid).to_numpy()
        eb = rows[m].reset_index(drop=True)
        q = ag.bbb_rule(pb[m], eb, 120.0)
        pred = decide(q, pv[m], thr[rid])
        lm = lab_all[m]
        if lm.any():
            ys.append(eb.loc[lm, "label"].map(keyid).to_numpy())
            yh.append(pred[lm])
            gs.append(np.full(int(lm.sum()), rid))
        wm = (wins["record"] == rid).to_numpy() & vfw
        if wm.any():
            near = ag.nearest_rows(eb, wins.loc[wm, "time_s"].to_numpy())
            pbn = decide(q[np.clip(near, 0, None)], None, thr[rid]) if len(eb) else np.zeros(int(wm.sum()), int)
            ys.append(np.full(int(wm.sum()), keyid["VF"]))
            yh.append(np.where(pv_win[wm] >= 0.5, keyid["VF"], pbn))
            gs.append(np.full(int(wm.sum()), rid))
    return acv.macro_report(np.concatenate(ys), np.concatenate(yh), np.concatenate(gs), n_boot=n_boot)


def cmd_cv(args: argparse.Namespace) -> None:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    t_start = time.perf_counter()
    beats, wins = acv.tables("annotations")
    det = acv.tables("detect")[0]
    wmap, dmap = acn.windows_of("annotations"), acn.windows_of("detect")
    z = oof(args, beats, wins, det, wmap, dmap)
    recs = sorted(acv.record_paths())
    fold_of = {r: k for k, f in enumerate(acn.FOLDS) for r in f}
    lab = beats["label"].isin(ag.BEAT_CLASSES).to_numpy()
    # the nested thresholds: one per outer fold and booster pair, from the inner out-of-fold rows only
    chosen: dict[str, list] = {}
    inner_scores: dict[str, list] = {}
    for cand, second in (("shipped_thrA", "inner_g2"), ("local_thrA", "inner_g2l")):
        chosen[cand], inner_scores[cand] = [], []
        for k, test in enumerate(acn.FOLDS):
            m = (~beats["record"].isin(test).to_numpy()) & lab
            assert np.isfinite(z["inner_g1"][k][m]).all()
            t, sc = pick_threshold((z["inner_g1"][k][m] + z[second][k][m]) / 2.0, beats[m])
            chosen[cand].append(t)
            inner_scores[cand].append(sc)
    ctx = {"ann": af_context(beats), "det": af_context(det)}
    gates: dict[str, list] = {}
    for cand, second in (("shipped_afgate", "inner_g2"), ("local_afgate", "inner_g2l")):
        gates[cand] = []
        for k, test in enumerate(acn.FOLDS):
            m = (~beats["record"].isin(test).to_numpy()) & lab
            g, sc = pick_gate((z["inner_g1"][k][m] + z[second][k][m]) / 2.0, beats[m], ctx["ann"][m])
            gates[cand].append(g)
            inner_scores.setdefault(cand, []).append(sc)
    cands = {  # name -> (members, threshold source)
        "shipped": (("g1", "g2", "cnn"), None),
        "shipped_thrA": (("g1", "g2", "cnn"), "shipped_thrA"),
        "local": (("g1", "g2l", "cnn"), None),
        "local_thrA": (("g1", "g2l", "cnn"), "local_thrA"),
        # context rows (members, no bootstrap-heavy use): each booster alone with the rule
        "shipped_afgate": (("g1", "g2", "cnn"), None),
        "local_afgate": (("g1", "g2l", "cnn"), None),
        "member_gbm_p_bbb120": (("g2",), None),
        "member_gbm_pl_bbb120": (("g2l",), None),
    }
    out = {"protocol": "record-grouped 5-fold CV (records whole; arrhythmia_cnn.FOLDS) on mitdb-ds1 (22) + vfdb-dev "
                       "(4); record bootstrap 95% CI; A threshold nested (inner CV on the training folds)",
           "folds": [list(f) for f in acn.FOLDS], "thresholds_grid": [str(t) for t in THRESHOLDS],
           "chosen_thresholds": {k: [str(t) for t in v] for k, v in chosen.items()}, "inner_scores": inner_scores,
           "gates_grid": [str(g) for g in GATES], "chosen_gates": {k: [str(g) for g in v] for k, v in gates.items()},
           "fold_seconds": {"boosters_outer": z["seconds"][:, 0].round(1).tolist(),
                            "boosters_inner": z["seconds"][:, 1].round(1).tolist(),
                            "cnn": z["seconds"][:, 2].round(1).tolist()},
           "table_version": acv.VERSION, "candidates": {}}
    only = args.only.split(",") if args.only else list(cands)
    prev = json.loads(Path(args.out).read_text()).get("candidates", {}) if Path(args.out).is_file() else {}
    out["candidates"].update({k: v for k, v in prev.items() if k.replace("_detector_peaks", "") not in only})
    for name, (members, tsrc) in cands.items():
        if name not in only:
            continue
        thr = {r: (chosen[tsrc][fold_of[r]] if tsrc else None) for r in recs}
        for src, rows in (("ann", beats), ("det", det)):
            pb = np.mean([z[f"{mm}_{src}"] for mm in members], axis=0)
            boot = args.boot if not name.startswith("member") else args.boot_members
            gm = None
            if name in gates:
                rfold = rows["record"].map(fold_of).to_numpy()
                gm = np.zeros(len(rows), dtype=bool)
                for k in range(len(acn.FOLDS)):
                    gm |= (rfold == k) & gate_mask(ctx[src], gates[name][k])
            rep = score(pb, z[f"pv_{src}"], z["pv_win"], rows, wins, thr, boot, gm)
            key = name if src == "ann" else f"{name}_detector_peaks"
            out["candidates"][key] = rep
            print(key, "macro-F1 %.3f" % rep["macro_f1"], [round(x, 3) for x in rep["macro_f1_ci"]],
                  {k: round(v["f1"], 3) for k, v in rep["per_class_f1"].items()}, flush=True)
            Path(args.out).write_text(json.dumps(out, indent=1))
    out["seconds_total_this_run"] = round(time.perf_counter() - t_start, 1)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("thresholds", out["chosen_thresholds"], "gates", out["chosen_gates"],
          f"{out['seconds_total_this_run']} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    cv = sub.add_parser("cv")
    cv.add_argument("--trees", type=int, default=200)
    cv.add_argument("--epochs", type=int, default=12)
    cv.add_argument("--seed", type=int, default=0)
    cv.add_argument("--boot", type=int, default=500)
    cv.add_argument("--boot-members", type=int, default=200)
    cv.add_argument("--refit", action="store_true")
    cv.add_argument("--only", default="", help="score only these candidates (comma list); others kept from --out")
    cv.add_argument("--out", default=str(acv.CACHE / "sveb_cv.json"))
    cv.set_defaults(func=cmd_cv)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
