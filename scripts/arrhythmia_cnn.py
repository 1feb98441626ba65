"""Cross-validation of the beat members on DS1 + vfdb-dev only (issue 17): the 1-D beat CNN (+ RR input), the
gradient-boosting models and their means, record-grouped 5-fold or leave-one-record-out, and shipping the default.

    nice -n 10 .venv/bin/python scripts/arrhythmia_cv.py features --peaks annotations,detect   # feature tables
    nice -n 10 .venv/bin/python scripts/arrhythmia_cnn.py windows --peaks annotations,detect     # beat windows
    P=".venv/bin/python scripts/arrhythmia_cnn.py cv --folds loro --boot 200"
    $P --gbm gbm_p_bbb120_v1drop --only NONE                       # out-of-fold probabilities of the second booster
    $P --gbm gbm_all_bbb120_v1drop --gbm2 gbm_p_bbb120_v1drop --bbb-local 31 [--eval-peaks detect] [--no-v1] \
        [--cnn-v1drop] --out C/loro_v1drop_loc31.json               # booster, CNN, their means; the block rule
    (the same with --folds 5 for the record-grouped 5 folds)
    ... arrhythmia_cnn.py ship --gbm gbm_all_bbb120_v1drop --gbm2 gbm_p_bbb120_v1drop --bbb-local 31 --no-cnn \
            --candidate ens_mean_gbm_all_bbb120_v1drop_gbm_p_bbb120_v1drop_loro_loc31 \
            --candidate-5fold ens_mean_gbm_all_bbb120_v1drop_gbm_p_bbb120_v1drop_5fold_loc31 \
            --loro <loro JSON files> --cv5 <5-fold JSON files> --choice-note <JSON>

(C = /work/cache/arrhythmia.) ``ship`` writes into an existing run folder (its run.json, spectral config,
split): both boosters (and the CNN unless ``--no-cnn``) are refitted on all 26 records. Out-of-fold probabilities
are cached per booster / CNN and peak source, so a rerun only re-scores.

Folds: leave-one-record-out (26; a CNN fold trains in 15-35 s on one thread), or 5 folds with every record kept
whole (fixed assignment below: the L records 109 / 207 and the R records 118 / 207 / 124 sit in different folds).
The means are fixed (the plain mean of the members' beat probabilities, then the block rule and the VF detector),
not tuned. Fixed epochs, no early stopping (a held-out fold never steers training). The CNN is not reproducible
from run to run on this machine (the same code gave leave-one-record-out 0.617 and 0.582 with the block rule);
the boosters are (LightGBM deterministic, one thread).

Evaluation rows as in ``arrhythmia_cv.py``: labelled beats (annotations) and 4 s windows fully inside VF/VFL (a
window not called VF takes the beat class of the nearest beat).
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

import arrhythmia_cv as acv

from ecg_core.signals import arrhythmia_gbm as ag
from ecg_core.signals.beat_cnn import beat_windows, build_beat_cnn, rr_matrix
from ecg_core.signals.beat_features import without_v1

FOLDS: tuple[tuple[str, ...], ...] = (
    ("109", "118", "101", "112", "201", "418"),
    ("207", "115", "203", "220", "419"),
    ("124", "106", "205", "223", "424"),
    ("108", "114", "116", "208", "426"),
    ("119", "122", "209", "215", "230"),
)
CNN_VERSION = "cnn1"


def windows_of(peaks: str) -> dict[str, np.ndarray]:
    """record -> (n_beats, 176, 2) float16 windows at the beats of the cached ``peaks`` table, cached."""
    from ecg_core.signals.beat_features import prepare_record
    from ecg_core.signals.records import read_record

    beats, _ = acv.tables(peaks)
    out = {}
    for rid, path in acv.record_paths().items():
        f = acv.CACHE / f"{CNN_VERSION}_{acv.VERSION}_{rid}_{peaks}_windows.npy"
        if not f.is_file():
            t0 = time.perf_counter()
            s_f = beats.loc[beats["record"] == rid, "sample_f"].to_numpy()
            w = beat_windows(prepare_record(read_record(path)), s_f).astype(np.float16)
            np.save(f, w)
            print(f"{rid}: {len(w)} windows, {time.perf_counter() - t0:.1f} s", flush=True)
        out[rid] = np.load(f)
    return out


def train_cnn(x: np.ndarray, r: np.ndarray, y: np.ndarray, groups: np.ndarray, *, epochs: int, seed: int,
              cap_rows: int = 400, cap_w: float = 30.0, v1_dropout: bool = False):
    """Train the beat CNN on capped (record, class) cells with record-balanced class weights capped at ``cap_w``;
    with ``v1_dropout`` every capped beat once as read and once without V1 (its V1 channel zero, "has V1" 0: what
    a record without V1 looks like), so that a missing V1 names no class (MIT-BIH: of the records without V1 one
    is all RBBB, 124)."""
    import keras

    keep = ag.cap_cells(y, groups, cap_rows, seed)
    x, r, y, groups = x[keep], r[keep], y[keep], groups[keep]
    w = ag.sample_weights(y, groups, cap=cap_w, record_balance=True)
    w = w / w.mean()
    if v1_dropout:
        x, r = np.concatenate([x, drop_v1(x)]), np.concatenate([r, drop_v1_rr(r)])
        y, w = np.concatenate([y, y]), np.concatenate([w, w])
    model = build_beat_cnn(len(ag.BEAT_CLASSES), seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    model.fit({"beat": x.astype(np.float32), "rr": r}, y, sample_weight=w, epochs=epochs, batch_size=256,
              shuffle=True, verbose=0)
    return model


def drop_v1(x: np.ndarray) -> np.ndarray:
    """Beat windows (n, samples, 2) as a record without V1 gives them: the V1 channel zero."""
    out = np.array(x, copy=True)
    out[..., 1] = 0
    return out


def drop_v1_rr(r: np.ndarray) -> np.ndarray:
    """``rr_matrix`` rows as a record without V1 gives them: the last column ("has V1") 0."""
    out = np.array(r, copy=True)
    out[:, -1] = 0.0
    return out


def vf_window_rows(ebeats: pd.DataFrame, wins: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The VF evaluation windows (``vf_frac >= 0.999``): their positions in ``wins``, the position in ``ebeats`` of
    the nearest beat of the same record (-1 for a record without beats) and their record ids."""
    vf = np.flatnonzero((wins["vf_frac"] >= 0.999).to_numpy())
    near = np.full(len(vf), -1, dtype=np.int64)
    rec_w = wins["record"].to_numpy()[vf]
    for rid in np.unique(rec_w):
        at = np.flatnonzero((ebeats["record"] == rid).to_numpy())
        m = rec_w == rid
        loc = ag.nearest_rows(ebeats.iloc[at], wins["time_s"].to_numpy(dtype=np.float64)[vf[m]])
        near[m] = np.where(loc >= 0, at[np.clip(loc, 0, None)] if len(at) else -1, -1)
    return vf, near, rec_w


def score(pb: np.ndarray, rule: bool, gbm_oof: dict[str, np.ndarray], ebeats: pd.DataFrame, wins: pd.DataFrame,
          n_boot: int, *, local: int = 0) -> dict:
    """``acv.macro_report`` of beat probabilities ``pb`` (n_eval, 5) over the labelled beats and the VF windows, with
    the booster's out-of-fold VF probabilities ``gbm_oof`` (``pv_beat``, ``pv_win``) and the block rule when ``rule``
    (its QRS width the running median of ``local`` beats when > 0, ``ag.local_qrs_ms``): the evaluation rows of
    every candidate of this script and of ``arrhythmia_spectral_rr.py``."""
    keyid = {k: i for i, k in enumerate(ag.CLASS_KEYS)}
    prob = _final(pb, gbm_oof["pv_beat"], ebeats, rule, local)
    lab = ebeats["label"].isin(ag.BEAT_CLASSES).to_numpy()
    vf, near, rec_w = vf_window_rows(ebeats, wins)
    beat_of_near = np.where(near >= 0, prob[np.clip(near, 0, None), :len(ag.BEAT_CLASSES)].argmax(axis=1), 0)
    y = np.concatenate([ebeats.loc[lab, "label"].map(keyid).to_numpy(), np.full(len(vf), keyid["VF"])])
    yhat = np.concatenate([prob[lab].argmax(axis=1),
                           np.where(gbm_oof["pv_win"][vf] >= 0.5, keyid["VF"], beat_of_near)])
    groups = np.concatenate([ebeats.loc[lab, "record"].to_numpy(), rec_w])
    return acv.macro_report(y.astype(np.int64), yhat.astype(np.int64), groups, n_boot=n_boot)


def cmd_windows(args: argparse.Namespace) -> None:
    for peaks in args.peaks.split(","):
        w = windows_of(peaks)
        print(peaks, sum(len(v) for v in w.values()), "windows")


def _final(pb: np.ndarray, pv: np.ndarray, rows: pd.DataFrame, rule: bool, local: int = 0) -> np.ndarray:
    if rule:
        pb = ag.bbb_rule(pb, rows, 120.0, local=local)
    return np.column_stack([pb * (1.0 - pv)[:, None], pv])


def cmd_cv(args: argparse.Namespace) -> None:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    beats, wins = acv.tables("annotations")  # training rows: annotated beats
    wmap = windows_of("annotations")
    ev = args.eval_peaks
    ebeats = beats if ev == "annotations" else acv.tables(ev)[0]  # evaluation rows
    emap = wmap if ev == "annotations" else windows_of(ev)
    tag = ("" if ev == "annotations" else f"_{ev}") + ("_nov1" if args.no_v1 else "")
    if args.no_v1:  # the held-out rows as a record without V1 gives them (training rows unchanged)
        ebeats = without_v1(ebeats)
    ctag = "_v1d" if args.cnn_v1drop else ""
    feats = acv.CANDIDATES[args.gbm][0]
    params = acv.params_of(args.gbm, args.trees)
    recs = sorted(acv.record_paths())
    folds = FOLDS if args.folds == "5" else tuple((r,) for r in recs)
    fs, cand = ("", "5fold") if args.folds == "5" else ("_loro", "loro")  # cache tag, candidate suffix
    assert sorted(r for f in folds for r in f) == recs, "fold assignment must cover every record once"
    gbm_path = acv.CACHE / f"{CNN_VERSION}_{acv.VERSION}_oof{fs}_{args.gbm}{tag}.npz"
    cnn_path = acv.CACHE / f"{CNN_VERSION}_{acv.VERSION}_oof{fs}_cnn{ctag}_e{args.epochs}_s{args.seed}{tag}.npz"
    seconds: dict[str, list[float]] = {"gbm": [], "cnn": []}
    if gbm_path.is_file() and not args.refit:
        z = np.load(gbm_path, allow_pickle=False)
        p_gbm, pv_beat, pv_win = z["p_gbm"], z["pv_beat"], z["pv_win"]
        seconds["gbm"] = z["seconds"].tolist()
    else:
        p_gbm = np.full((len(ebeats), len(ag.BEAT_CLASSES)), np.nan)
        pv_beat = np.full(len(ebeats), np.nan)
        pv_win = np.full(len(wins), np.nan)
        for k, test in enumerate(folds):
            t0 = time.perf_counter()
            te_b = beats["record"].isin(test).to_numpy()
            te_w = wins["record"].isin(test).to_numpy()
            gbm = ag.GbmArrhythmiaModel.fit(beats[~te_b], wins[~te_w], params=params, beat_features=feats)
            te_e = ebeats["record"].isin(test).to_numpy()
            rows = ebeats[te_e]
            p_gbm[te_e] = gbm.beat_proba(rows)
            pv_beat[te_e] = gbm.vf_proba(rows)
            pv_win[te_w] = gbm.vf_proba(wins[te_w])
            seconds["gbm"].append(round(time.perf_counter() - t0, 1))
            print(f"fold {k} {test}: gbm {seconds['gbm'][-1]} s", flush=True)
        np.savez(gbm_path, p_gbm=p_gbm, pv_beat=pv_beat, pv_win=pv_win, seconds=np.array(seconds["gbm"]))
    if cnn_path.is_file() and not args.refit:
        z = np.load(cnn_path, allow_pickle=False)
        p_cnn = z["p_cnn"]
        seconds["cnn"] = z["seconds"].tolist()
    else:
        p_cnn = np.full((len(ebeats), len(ag.BEAT_CLASSES)), np.nan)
        rr_all = rr_matrix(beats)
        x_all = np.concatenate([wmap[r] for r in beats["record"].drop_duplicates()])
        rr_ev = rr_matrix(ebeats)
        x_ev = np.concatenate([emap[r] for r in ebeats["record"].drop_duplicates()])
        assert len(x_all) == len(beats) and len(x_ev) == len(ebeats)
        if args.no_v1:
            x_ev = drop_v1(x_ev)
        for k, test in enumerate(folds):
            t1 = time.perf_counter()
            te_b = beats["record"].isin(test).to_numpy()
            lab = (~te_b) & beats["label"].isin(ag.BEAT_CLASSES).to_numpy()
            y = beats.loc[lab, "label"].map({c: i for i, c in enumerate(ag.BEAT_CLASSES)}).to_numpy()
            # the fold's trained CNN is kept, so that scoring other rows (--eval-peaks) does not train it again
            wfile = acv.CACHE / (f"{CNN_VERSION}_{acv.VERSION}_cnnfold{fs}_{'-'.join(test)}{ctag}_e{args.epochs}"
                                 f"_s{args.seed}.weights.h5")
            if wfile.is_file() and not args.refit:
                cnn = build_beat_cnn(len(ag.BEAT_CLASSES), seed=args.seed)
                cnn.load_weights(wfile)
            else:
                cnn = train_cnn(x_all[lab], rr_all[lab], y, beats.loc[lab, "record"].to_numpy(),
                                epochs=args.epochs, seed=args.seed, v1_dropout=args.cnn_v1drop)
                cnn.save_weights(wfile)
            t2 = time.perf_counter()
            te_e = ebeats["record"].isin(test).to_numpy()
            p_cnn[te_e] = cnn.predict({"beat": x_ev[te_e].astype(np.float32), "rr": rr_ev[te_e]},
                                      batch_size=1024, verbose=0)
            seconds["cnn"].append(round(t2 - t1, 1))
            print(f"fold {k} {test}: cnn train {t2 - t1:.0f} s ({int(lab.sum())} labelled beats before capping)",
                  flush=True)
        np.savez(cnn_path, p_cnn=p_cnn, seconds=np.array(seconds["cnn"]))
    # ---- candidates from the out-of-fold probabilities ----
    cands = {
        f"{args.gbm}_{cand}": (p_gbm, True),
        f"cnn1d{ctag}_rr_{cand}": (p_cnn, False),
        f"cnn1d{ctag}_rr_bbb120_{cand}": (p_cnn, True),
        f"ens_mean_{args.gbm}_cnn1d{ctag}_{cand}": ((p_gbm + p_cnn) / 2.0, True),
    }
    if args.gbm2:  # a second booster's out-of-fold probabilities (run `cv --gbm <it>` first, same --eval-peaks)
        z2 = np.load(acv.CACHE / f"{CNN_VERSION}_{acv.VERSION}_oof{fs}_{args.gbm2}{tag}.npz", allow_pickle=False)
        cands[f"ens_mean_{args.gbm}_{args.gbm2}_cnn1d{ctag}_{cand}"] = ((p_gbm + z2["p_gbm"] + p_cnn) / 3.0, True)
        cands[f"ens_mean_{args.gbm}_{args.gbm2}_{cand}"] = ((p_gbm + z2["p_gbm"]) / 2.0, True)  # no CNN
    if args.only:
        cands = {k: v for k, v in cands.items() if any(o in k for o in args.only.split(","))}
    scheme = "record-grouped 5-fold CV (records whole)" if args.folds == "5" else "leave-one-record-out CV"
    out = {"protocol": f"{scheme} on mitdb-ds1 (22) + vfdb-dev (4); record bootstrap 95% CI",
           "folds": [list(f) for f in folds], "gbm": args.gbm,
           "epochs": args.epochs, "eval_peaks": ev, "fold_seconds": seconds, "candidates": {}}
    for name, (pb, rule) in cands.items():
        rep = score(pb, rule, {"pv_beat": pv_beat, "pv_win": pv_win}, ebeats, wins, args.boot, local=args.bbb_local)
        name = name + (f"_loc{args.bbb_local}" if rule and args.bbb_local else "") + tag.replace(
            "_detect", "_detector_peaks").replace("_nov1", "_no_v1")
        out["candidates"][name] = rep
        print(name, "macro-F1 %.3f" % rep["macro_f1"], [round(x, 3) for x in rep["macro_f1_ci"]],
              {k: round(v["f1"], 3) for k, v in rep["per_class_f1"].items()}, flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("windows")
    w.add_argument("--peaks", default="annotations")
    w.set_defaults(func=cmd_windows)
    cv = sub.add_parser("cv")
    cv.add_argument("--gbm", default="gbm_all_bbb120")
    cv.add_argument("--trees", type=int, default=200)
    cv.add_argument("--epochs", type=int, default=12)
    cv.add_argument("--seed", type=int, default=0)
    cv.add_argument("--boot", type=int, default=500)
    cv.add_argument("--refit", action="store_true")
    cv.add_argument("--gbm2", default="", help="also the mean of --gbm, this booster and the CNN")
    cv.add_argument("--only", default="", help="score only candidates whose name contains one of these (comma list)")
    cv.add_argument("--eval-peaks", default="annotations", choices=("annotations", "detect"),
                    help="rows scored: annotated beats, or neurokit2 detections (training stays on annotations)")
    cv.add_argument("--cnn-v1drop", action="store_true", help="train the CNN with V1 dropout (train_cnn)")
    cv.add_argument("--no-v1", action="store_true", help="score the held-out rows with their V1 removed (as a "
                    "record without V1)")
    cv.add_argument("--bbb-local", type=int, default=0, help="the block rule's QRS width: the running median of "
                    "this many beats (ag.local_qrs_ms); 0: each beat's own")
    cv.add_argument("--folds", default="5", choices=("5", "loro"),
                    help="the fixed record-grouped 5 folds (FOLDS), or leave-one-record-out (26 folds)")
    cv.add_argument("--out", default=str(acv.CACHE / "cnn_cv.json"))
    cv.set_defaults(func=cmd_cv)
    sh = sub.add_parser("ship", help="train the ensemble on all records into --run (its run.json must exist)")
    sh.add_argument("--run", default=str(ROOT / "models" / "arrhythmia6-lightgbm-ds1"))
    sh.add_argument("--gbm", default="gbm_all_bbb120")
    sh.add_argument("--gbm2", default="gbm_p_bbb120")
    sh.add_argument("--epochs", type=int, default=12)
    sh.add_argument("--seed", type=int, default=0)
    sh.add_argument("--trees", type=int, default=200)
    sh.add_argument("--candidate", required=True, help="the shipped candidate's name in the --loro files")
    sh.add_argument("--candidate-5fold", required=True, help="its name in the --cv5 files")
    sh.add_argument("--no-cnn", action="store_true", help="the two boosters only (no beat CNN member)")
    sh.add_argument("--choice-note", default="", help="JSON {loro: [lines], bullets: [lines]}: the model card's "
                    "account of the choice (measured numbers)")
    sh.add_argument("--cv5", required=True, help="comma list of cv JSON files of this script")
    sh.add_argument("--loro", required=True, help="comma list of leave-one-record-out cv JSON files")
    sh.add_argument("--cnn-v1drop", action="store_true", help="train the CNN with V1 dropout")
    sh.add_argument("--bbb-local", type=int, default=0, help="the block rule's running-median width (beats)")
    sh.add_argument("--af-gate", default="", help="irr_min,pcl_max of the atrial-fibrillation gate (ag.af_gate); "
                    "empty: no gate")
    sh.add_argument("--spectral-rr", default="", help="comma list of scripts/arrhythmia_spectral_rr.py cv JSON files "
                    "for the card's item-4a paragraph")
    sh.set_defaults(func=cmd_ship)
    cd = sub.add_parser("card", help="write MODEL_CARD.md of a shipped run folder again from its JSON files")
    cd.add_argument("--run", default=str(ROOT / "models" / "arrhythmia6-lightgbm-ds1"))
    cd.add_argument("--spectral-rr", default="")
    cd.set_defaults(func=cmd_card)
    args = ap.parse_args()
    args.func(args)


CARD = """# {run_id}

Arrhythmia-6 (N, L, R, A, V, VF) as an **ensemble** (issue 17): the plain mean of the beat probabilities of
{members_short}, then the clinical bundle-branch-block rule ({rule_text}; V1 terminal R' -> R, else L) and the VF
detector on 4 s windows (P(VF) x, the beat classes x 1 - P(VF)). The run keeps its folder name for the app's
default; everything is in safe formats (LightGBM text{keras_fmt}, JSON).

{member_bullets}
- `vf_model.txt`: VF vs not on 4 s windows (12 classic VF features).

Trained on all 26 records of MIT-BIH DS1 (22) + vfdb-dev (4): {n_beats} labelled beats, {n_win} windows ({n_vf}
inside VF/VFL); training took {train_s} on one shared CPU thread. One sampling rate (250 Hz) for every source;
leads by name (MLII; V1 only when a channel is named V1).

## Cross-validation (DS1 + vfdb-dev only; DS2 never used)

Rows: every labelled beat and every 4 s window lying fully inside a VF/VFL episode (1 s stride); a window not called
VF takes the class of the nearest beat. F1 with 95 % intervals from a record bootstrap (200-500 replicates).
`_detector_peaks`: the same models scored on neurokit2 R peaks matched to the annotations within 75 ms (training
stays on annotated beats); `_no_v1`: the held-out beats with their V1 features removed (a record without V1);
`_loc31`: the block rule on the running median QRS width of 31 beats.

**Leave-one-record-out** (26 folds; `scripts/arrhythmia_cnn.py cv --folds loro --gbm A --gbm2 B [--bbb-local 31]
[--eval-peaks detect] [--no-v1] [--cnn-v1drop]`; the boosters' rows reproduce `scripts/arrhythmia_cv.py`'s):

{tableloro}

The shipped candidate is **{chosen}**.
{loro_note}
**Record-grouped 5-fold** (records whole; folds: {folds}; the protocol of the previous choice):

{table5}

## Per-record confusion of the shipped candidate ({per_record_protocol}; true class -> predicted counts, held out)

L lives in 109 and 207 only, R in 118, 124 and 207; A mostly in 209, 201, 207, 118, 220 and 223. With two or three
patients per bundle branch block the learned members alone call the block beats of a held-out patient N; L and R
come from the fixed clinical rule. Its false blocks sit in records whose measured QRS is wide (108, 203).

{per_record}

## Choice, and what it is worth

{choice}
{spectral_rr}

## Limits

Not validated on DS2 (hidden). Beat positions come from the annotations or, for uploads without them, neurokit2
detections (the `_detector_peaks` row). VF is judged on 4 s windows; a beat inside a detected VF span is VF.
The page's feature contributions explain the first booster only (LightGBM `pred_contrib`); the other members have
no per-feature attribution there.
"""


# --------------------------------------------------------------------------------------------------------------
# Ship the ensemble: both boosters and the CNN trained on all 26 records, into a run folder
# --------------------------------------------------------------------------------------------------------------
def fmt_table(cands: dict[str, dict]) -> str:
    rows = ["| candidate | macro-F1 (95% CI) | " + " | ".join(ag.CLASS_KEYS) + " |",
            "|---|---|" + "---|" * len(ag.CLASS_KEYS)]
    return "\n".join(rows + [acv.fmt_row(n, r) for n, r in cands.items()])


def _summary(rep: dict) -> dict:
    return {"macro_f1": rep["macro_f1"], "macro_f1_ci": rep["macro_f1_ci"],
            "per_class_f1": {k: v["f1"] for k, v in rep["per_class_f1"].items()}}


def _spectral_rr_section(files: str) -> str:
    """The model card's item-4a paragraph from ``scripts/arrhythmia_spectral_rr.py cv`` outputs (comma list): the
    seed-0 rows as a table, and the macro-F1 of every training seed per candidate (a file's ``seed``, else the
    ``_s<N>`` of its name, else 0)."""
    import re
    import statistics

    if not files:
        return ("- The spectral-image CNN with the RR features as a second input (issue 17 item 4a,"
                " `scripts/arrhythmia_spectral_rr.py`) is not in this card's tables: it was judged on the previous "
                "default's 5 folds (README: it swings with the training seed as much as it differs from the boosters;"
                " not shipped).")
    table: dict[str, dict] = {}
    by_seed: dict[str, dict[int, float]] = {}
    for f in files.split(","):
        part = json.loads(Path(f).read_text())
        m = re.search(r"_s(\d+)$", Path(f).stem)
        seed = int(part.get("seed", m.group(1) if m else 0))
        for name, rep in part["candidates"].items():
            if "spectral_rr" not in name:  # its booster rows are those of the table above
                continue
            if seed == 0:
                table[name] = rep
            by_seed.setdefault(name, {})[seed] = rep["macro_f1"]
    spread = [f"`{n}` {', '.join(f'{v[k]:.3f}' for k in sorted(v))} (mean {statistics.mean(v.values()):.3f} +- "
              f"{statistics.stdev(v.values()):.3f})" for n, v in by_seed.items() if len(v) > 1]
    text = ("- Item 4a, the seed's spectral-image CNN with the RR features as a second input "
            "(`ecg_core.signals.beat_cnn.build_spectral_rr_cnn`, `scripts/arrhythmia_spectral_rr.py`; the same 5 "
            "folds, one recipe fixed before any run; training seed 0):\n\n" + fmt_table(table) + "\n")
    if spread:
        text += ("\n  Macro-F1 by training seed (" + ", ".join(str(k) for k in sorted(next(
            v for v in by_seed.values() if len(v) > 1))) + "): " + "; ".join(spread) + ". Not shipped: with the "
            "block rule it swings with the seed as much as it differs from the shipped ensemble, and its mean with "
            "the booster is no better than the shipped ensemble inside every interval.\n")
    return text


def _members(meta: dict) -> tuple[str, str]:
    """(short list, markdown bullets) of a shipped run's beat members, from its run.json."""
    g, params = meta["gbm"], meta["train"].get("params", {})
    boosters = [(k, v) for k, v in params.items() if k not in ("cnn1d", "block_rule")]
    drop = any(v.get("v1_dropout") for _, v in boosters)
    short = [f"{'two' if len(boosters) == 2 else len(boosters)} LightGBM beat boosters"]
    bullets = [f"- `beat_model.txt`: {len(g['beat_features'])} features: RR context as ratios to the record median "
               "and absolute, QRS width, template correlation, per-record amplitude, MLII and V1 QRS shape, 15 "
               "per-record-normalised window means, and the 12 VF features of the 4 s window around the beat"
               + (f" = candidate `{boosters[0][0]}`" if boosters else "") + ";"]
    if g.get("beat2_features"):
        bullets.append(f"- `beat_model_2.txt`: the same + 7 SVEB features ({len(g['beat2_features'])}; P wave against "
                       "the record's median pre-QRS window in MLII and V1, P-region amplitudes, the pause after the "
                       "beat, prematurity x QRS-template correlation)"
                       + (f" = candidate `{boosters[1][0]}`" if len(boosters) > 1 else "") + ";")
    if drop:
        bullets.append("- both boosters trained on every capped beat twice, once as read and once with its V1 "
                       "features removed (`GbmParams.v1_dropout`), so that a record without V1 is not a class cue "
                       "(of the training records without V1, 124 is all RBBB);")
    if g.get("cnn_file"):
        short.append("a 1-D beat CNN")
        cnn = params.get("cnn1d", {})
        bullets.append("- `beat_cnn.keras`: 3 x (Conv1D, BN, ReLU, max-pool) -> global average pooling, concatenated "
                       "with a Dense embedding of 8 RR ratios (log) and a \"has V1\" flag -> softmax; input the beat "
                       "window -0.256..+0.448 s at 250 Hz of MLII and V1 (zeros without V1) over the record's median "
                       f"QRS amplitude; {cnn.get('epochs', '?')} epochs, Adam 2e-3, at most 400 beats per (record, "
                       "class), record-balanced class weights capped at 30"
                       + ("; V1 dropout as the boosters" if cnn.get("v1_dropout") else "") + ";")
    return " and ".join(short), "\n".join(bullets)


def render_card(run: Path, *, spectral_rr: str = "") -> str:
    """MODEL_CARD.md of a run folder written by ``ship``: from its run.json and CV files (no training)."""
    meta = json.loads((run / "run.json").read_text())
    cv5 = json.loads((run / meta.get("cv_5fold_file", "cv_5fold.json")).read_text())
    loro = json.loads((run / meta.get("cv_loro_file", "cv_loro.json")).read_text())
    shown = json.loads((run / meta["cv_file"]).read_text())
    g, tr = meta["gbm"], meta["train"]
    rep = shown["candidates"][g["cv_candidate"]]
    local = int(g.get("bbb_local_beats", 0))
    rule = (f"the running median QRS width of {local} beats, V calls left out, >= {g['bbb_qrs_ms']:g} ms" if local
            else f"QRS >= {g['bbb_qrs_ms']:g} ms")
    short, bullets = _members(meta)
    secs = tr.get("seconds", {})
    train_s = f"{round(secs.get('boosters', 0))} s (boosters)" + (
        f" + {round(secs['cnn1d'])} s (CNN)" if g.get("cnn_file") and "cnn1d" in secs else "")
    note = "".join(f"\n{line}\n" for line in meta.get("choice_note", {}).get("loro", []))
    choice = "\n".join(f"- {line}" for line in meta.get("choice_note", {}).get("bullets", [])) or "-"
    card = CARD.format(
        run_id=run.name, chosen=g["cv_candidate"], n_beats=tr["n_beats"], n_win=tr["n_windows"],
        n_vf=tr.get("n_vf_windows", "?"), table5=fmt_table(cv5["candidates"]), tableloro=fmt_table(loro["candidates"]),
        loro_note=note, per_record_protocol=shown.get("protocol", "cross-validation").split(" on ")[0],
        per_record="\n".join(acv.per_record_lines(rep)), spectral_rr=_spectral_rr_section(spectral_rr),
        folds="; ".join(", ".join(f) for f in cv5["folds"]), members_short=short, rule_text=rule,
        keras_fmt=", `.keras` in safe mode" if g.get("cnn_file") else "", member_bullets=bullets, train_s=train_s,
        choice=choice)
    gate = g.get("af_gate")
    if gate:
        card += (f"\n## Atrial-fibrillation gate\n\nA beat whose 21 neighbouring beats are irregular (median |delta "
                 f"pre-RR| / local RR >= {gate['irr_min']:g}) without a consistent P wave (median `p_corr_local` < "
                 f"{gate['pcl_max']:g}) cannot be A (its P(A) moves to N): `ecg_core.signals.arrhythmia_gbm.af_gate`, "
                 "limits chosen by nested CV in `scripts/arrhythmia_sveb.py` (post hoc: the gate was designed after "
                 "seeing the 5-fold confusion of the shipped ensemble).\n")
    return card


def cmd_card(args: argparse.Namespace) -> None:
    from ecg_core.core.atomic import atomic_write_text

    run = Path(args.run)
    atomic_write_text(run / "MODEL_CARD.md", render_card(run, spectral_rr=args.spectral_rr))
    print(f"wrote {run / 'MODEL_CARD.md'}")


def _merge_cv(files: str, *, folds: bool = False) -> dict:
    """One CV document from a comma list of ``cv`` JSON outputs: their candidates merged (a later file wins), the
    protocol (and the fold list when ``folds``) of the last."""
    out: dict = {"candidates": {}}
    for f in files.split(","):
        part = json.loads(Path(f).read_text())
        out["protocol"] = part.get("protocol")
        if folds:
            out["folds"] = part["folds"]
        out["candidates"].update(part["candidates"])
    return out


def cmd_ship(args: argparse.Namespace) -> None:
    import datetime as dt

    import lightgbm

    from ecg_core.core.atomic import atomic_write_json, atomic_write_text

    run = Path(args.run)
    meta = json.loads((run / "run.json").read_text())
    cv5, loro = _merge_cv(args.cv5, folds=True), _merge_cv(args.loro)
    chosen, chosen5 = args.candidate, args.candidate_5fold
    lrep, rep5 = loro["candidates"][chosen], cv5["candidates"][chosen5]  # KeyError before any training
    note = json.loads(Path(args.choice_note).read_text()) if args.choice_note else {}
    beats, wins = acv.tables("annotations")
    t0 = time.perf_counter()
    main_m = ag.GbmArrhythmiaModel.fit(beats, wins, params=acv.params_of(args.gbm, args.trees),
                                       beat_features=acv.CANDIDATES[args.gbm][0])
    m2 = ag.GbmArrhythmiaModel.fit(beats, wins, params=acv.params_of(args.gbm2, args.trees),
                                   beat_features=acv.CANDIDATES[args.gbm2][0])
    t1 = time.perf_counter()
    cnn = None
    if not args.no_cnn:
        wmap = windows_of("annotations")
        lab = beats["label"].isin(ag.BEAT_CLASSES).to_numpy()
        x_all = np.concatenate([wmap[r] for r in beats["record"].drop_duplicates()])
        y = beats.loc[lab, "label"].map({c: i for i, c in enumerate(ag.BEAT_CLASSES)}).to_numpy()
        cnn = train_cnn(x_all[lab], rr_matrix(beats[lab]), y, beats.loc[lab, "record"].to_numpy(),
                        epochs=args.epochs, seed=args.seed, v1_dropout=args.cnn_v1drop)
    t2 = time.perf_counter()
    gate = tuple(float(v) for v in args.af_gate.split(",")) if args.af_gate else None
    local = args.bbb_local or main_m.bbb_local
    model = ag.GbmArrhythmiaModel(main_m.beat, main_m.vf, main_m.beat_features, main_m.vf_features,
                                  bbb_qrs_ms=main_m.bbb_qrs_ms, cnn=cnn, beat2=m2.beat,
                                  beat2_features=m2.beat_features, af_gate=gate, bbb_local=local)
    keep = {ag.BEAT_MODEL_FILE, ag.VF_MODEL_FILE, ag.BEAT2_MODEL_FILE} | ({ag.CNN_MODEL_FILE} if cnn else set())
    for old in [*run.glob("*.txt"), *run.glob("*.keras")]:
        if old.name not in keep:
            old.unlink()
    entries = model.save(run)
    entries["gbm"]["cv_candidate"] = chosen
    entries["gbm"]["cv_candidate_5fold"] = chosen5
    now = dt.datetime.now().isoformat(timespec="seconds")
    for k in ("gbm", "kfold", "loro", "choice_note"):
        meta.pop(k, None)
    meta.update({
        "created": now, "finished": now, "arch": "lightgbm x2" + (" + cnn1d" if cnn else "") + " (mean)", **entries,
        "kfold": {"scheme": "record-grouped 5-fold (records whole, DS1 + vfdb-dev)", **_summary(rep5)},
        "loro": {"scheme": "leave-one-record-out (26 folds, DS1 + vfdb-dev)", **_summary(lrep)},
        "cv_file": "cv_loro.json", "cv_5fold_file": "cv_5fold.json", "cv_loro_file": "cv_loro.json",
        "versions": {"lightgbm": lightgbm.__version__, "python": sys.version.split()[0]},
    })
    if cnn:
        import keras

        meta["versions"]["keras"] = keras.__version__
    if note:
        meta["choice_note"] = note
    meta["train"]["params"] = {args.gbm: acv.params_of(args.gbm, args.trees).__dict__,
                               args.gbm2: acv.params_of(args.gbm2, args.trees).__dict__,
                               "block_rule": {"qrs_ms": main_m.bbb_qrs_ms, "local_beats": int(local)}}
    if cnn:
        meta["train"]["params"]["cnn1d"] = {"epochs": args.epochs, "batch": 256, "adam_lr": 2e-3, "max_per_cell": 400,
                                            "max_class_weight": 30.0, "seed": args.seed,
                                            "v1_dropout": bool(args.cnn_v1drop)}
    meta["train"]["seconds"] = {"boosters": round(t1 - t0, 1), **({"cnn1d": round(t2 - t1, 1)} if cnn else {})}
    meta["train"]["n_beats"] = int(beats["label"].isin(ag.BEAT_CLASSES).sum())
    meta["train"]["n_windows"] = len(wins)
    meta["train"]["n_vf_windows"] = int((wins["vf_frac"] >= 0.999).sum())
    atomic_write_json(run / "run.json", meta)
    atomic_write_json(run / "cv_5fold.json", cv5)
    atomic_write_json(run / "cv_loro.json", loro)
    atomic_write_text(run / "MODEL_CARD.md", render_card(run, spectral_rr=args.spectral_rr))
    size = sum(f.stat().st_size for f in run.iterdir())
    print(f"wrote {run} ({size / 1e6:.2f} MB); boosters {t1 - t0:.0f} s, CNN {t2 - t1:.0f} s", flush=True)


if __name__ == "__main__":
    main()
