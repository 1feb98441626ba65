"""Record-grouped 5-fold CV of the seed's spectral-image beat CNN with the RR context as a second input (issue 17,
item 4a), on DS1 + vfdb-dev only, judged like every candidate of ``scripts/arrhythmia_cnn.py``.

    nice -n 10 .venv/bin/python scripts/arrhythmia_cv.py features --peaks annotations        # feature tables
    nice -n 10 .venv/bin/python scripts/arrhythmia_cnn.py cv --gbm gbm_all_bbb120 --out C/cnn_cv_allbbb.json
    nice -n 10 .venv/bin/python scripts/arrhythmia_spectral_rr.py images --peaks annotations   # beat images
    nice -n 10 .venv/bin/python scripts/arrhythmia_spectral_rr.py cv --gbm gbm_all_bbb120 --out C/spectral_rr_cv.json

(C = /work/cache/arrhythmia.) The second line caches the booster's out-of-fold beat and VF probabilities on the
same folds (``cnn1_v5_oof_<gbm>.npz``); this script reads them, because the VF rows are decided by the booster's VF
detector for every candidate (``arrhythmia_cnn._final``), and for the mean with the booster.

Images: the shipped seed ``models/arrhythmia6-shallow_cnn-ds1`` (its ``run.json`` -> ``spectral``: segment config
MLII, 250 Hz, band-pass 0.5-40 Hz, -0.25..+0.45 s; STFT 64 x 64 grayscale, 1-40 Hz, 60 dB), one image per row of
the cached beat table at its ``sample``, cut from the whole cleaned lead exactly as
:func:`ecg_core.signals.segments.extract_segments` cuts it (edge-padded where the window leaves the record, where
the seed skipped the beat). Stored as uint8 (the images are uint8; the model reads ``uint8 / 255``, which is what
the seed's ``PreprocessConfig`` gives for them: ``images`` checks both on the first record).

Model: :func:`ecg_core.signals.beat_cnn.build_spectral_rr_cnn` (inputs ``spectral`` and ``rr`` =
:func:`~ecg_core.signals.beat_cnn.rr_matrix`), trained like the 1-D CNN (``arrhythmia_cnn.train_cnn``): at most 400
random beats per (record, class), record-balanced class weights capped at 30, Adam 2e-3, batch 256, fixed epochs, no
early stopping, on the fixed ``arrhythmia_cnn.FOLDS``. Candidates, fixed in advance: the CNN alone, the CNN + the
block rule (``ag.bbb_rule``, QRS >= 120 ms) and the plain mean with the booster + the block rule; the booster alone
is scored from its cache for reference. Every candidate: then the VF detector on 4 s windows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import arrhythmia_cnn as acnn
import arrhythmia_cv as acv

from ecg_core.signals import arrhythmia_gbm as ag
from ecg_core.signals.beat_cnn import build_spectral_rr_cnn, rr_matrix

if TYPE_CHECKING:
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.signals.records import Record
    from ecg_core.signals.segments import SegmentConfig
    from ecg_core.signals.spectral import SpectralConfig

SEED_RUN = ROOT / "models" / "arrhythmia6-shallow_cnn-ds1"
SR_VERSION = "sr1"


def seed_configs() -> tuple[SegmentConfig, SpectralConfig, PreprocessConfig]:
    """(SegmentConfig, SpectralConfig, PreprocessConfig) of the shipped seed spectral CNN (its ``run.json``)."""
    from ecg_core.ml import registry
    from ecg_core.signals.arrhythmia import spectral_configs_of

    info = registry.read_run(SEED_RUN)
    seg_cfg, spec_cfg = spectral_configs_of(info)
    return seg_cfg, spec_cfg, registry.preprocess_config_of(info)


def beat_images(record: Record, samples: np.ndarray, seg_cfg: SegmentConfig,
                spec_cfg: SpectralConfig) -> np.ndarray:
    """uint8 (n, h, w) seed spectral images of the windows anchored at ``samples`` (record rate) of ``record``."""
    from ecg_core.signals.filters import resample_index
    from ecg_core.signals.segments import prepared_lead
    from ecg_core.signals.spectral import segments_to_images

    x = prepared_lead(record, seg_cfg)  # float32 at seg_cfg.fs_target, cleaned over the whole record
    win = seg_cfg.window_samples
    start = resample_index(np.asarray(samples, dtype=np.int64), record.fs, seg_cfg.fs_target) - seg_cfg.pre_samples
    xp = np.pad(x, (win, win), mode="edge")  # a window leaving the record is edge-padded (the seed skipped it)
    segs = xp[np.clip(start, -win, len(x))[:, None] + win + np.arange(win)[None, :]]
    h, w = spec_cfg.size
    if len(segs) == 0:
        return np.zeros((0, h, w), dtype=np.uint8)
    return segments_to_images(segs, seg_cfg.fs_target, cfg=spec_cfg).images


def images_of(peaks: str) -> dict[str, np.ndarray]:
    """record -> uint8 (n_beats, 64, 64) seed images at the beats of the cached ``peaks`` table, cached."""
    from ecg_core.signals.records import read_record

    beats, _ = acv.tables(peaks)
    seg_cfg, spec_cfg, _ = seed_configs()
    out = {}
    for rid, path in acv.record_paths().items():
        f = acv.CACHE / f"{SR_VERSION}_{acv.VERSION}_{rid}_{peaks}_spectral.npy"
        if not f.is_file():
            t0 = time.perf_counter()
            im = beat_images(read_record(path), beats.loc[beats["record"] == rid, "sample"].to_numpy(), seg_cfg,
                             spec_cfg)
            np.save(f, im)
            print(f"{rid}: {len(im)} images, {time.perf_counter() - t0:.1f} s", flush=True)
        out[rid] = np.load(f)
    return out


def check_against_seed(rid: str, images: np.ndarray, beats: pd.DataFrame) -> None:
    """The cached images of record ``rid`` equal the seed's own pipeline (``extract_segments`` -> ``spectral_images``
    -> ``model_inputs``) on the beats the seed keeps; raises ``AssertionError`` otherwise."""
    from ecg_core.signals.arrhythmia import model_inputs, spectral_images
    from ecg_core.signals.records import read_record
    from ecg_core.signals.segments import extract_segments

    seg_cfg, spec_cfg, pre = seed_configs()
    segs = [g for g in extract_segments(read_record(acv.record_paths()[rid]), cfg=seg_cfg) if g.kind == "beat"]
    ref = spectral_images(segs, spec_cfg).images
    rows = beats[beats["record"] == rid].reset_index(drop=True)
    pos = pd.Series(np.arange(len(rows)), index=rows["sample"].to_numpy())
    mine = images[pos.reindex([g.sample for g in segs]).to_numpy()]
    assert np.array_equal(mine, ref), f"{rid}: images differ from the seed's pipeline"
    x = model_inputs(ref[:64], pre)
    assert np.allclose(x[..., 0], ref[:64] / 255.0, atol=1e-7), "the seed's preprocessing is not uint8 / 255"
    print(f"{rid}: {len(segs)} seed beat images identical; seed preprocessing == uint8 / 255", flush=True)


def cmd_images(args: argparse.Namespace) -> None:
    for peaks in args.peaks.split(","):
        im = images_of(peaks)
        print(peaks, sum(len(v) for v in im.values()), "images", flush=True)
        if peaks == "annotations":
            check_against_seed(sorted(im)[0], im[sorted(im)[0]], acv.tables(peaks)[0])


def train_spectral_rr(img: np.ndarray, rr: np.ndarray, y: np.ndarray, groups: np.ndarray, *, epochs: int, seed: int,
                      cap_rows: int = 400, cap_w: float = 30.0) -> Any:
    """Fit :func:`build_spectral_rr_cnn` on uint8 images ``img`` (n, h, w) and ``rr`` (n, 9) with the 1-D CNN's
    recipe: capped (record, class) cells, record-balanced class weights capped at ``cap_w`` (mean 1)."""
    import keras

    sel = ag.cap_cells(y, groups, cap_rows, seed)
    wt = ag.sample_weights(y[sel], groups[sel], cap=cap_w, record_balance=True)
    model = build_spectral_rr_cnn(len(ag.BEAT_CLASSES), image_shape=(*img.shape[1:3], 1), n_rr=rr.shape[1],
                                  seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    feed = {"spectral": (img[sel].astype(np.float32) / np.float32(255.0))[..., None], "rr": rr[sel]}
    model.fit(feed, y[sel], sample_weight=wt / wt.mean(), epochs=epochs, batch_size=256, shuffle=True, verbose=0)
    return model


def predict_images(model: Any, img: np.ndarray, rr: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """(n, 5) beat probabilities, scaled to float32 in chunks (keeps memory flat)."""
    out = [model.predict({"spectral": (img[i:i + chunk].astype(np.float32) / np.float32(255.0))[..., None],
                          "rr": rr[i:i + chunk]}, batch_size=1024, verbose=0) for i in range(0, len(img), chunk)]
    return np.concatenate(out) if out else np.zeros((0, len(ag.BEAT_CLASSES)), dtype=np.float32)


def spectral_oof(beats: pd.DataFrame, ebeats: pd.DataFrame, imap: dict[str, np.ndarray],
                 emap: dict[str, np.ndarray], *, epochs: int, seed: int) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold (n_eval, 5) probabilities over ``arrhythmia_cnn.FOLDS`` and training seconds per fold."""
    img = np.concatenate([imap[r] for r in beats["record"].drop_duplicates()])
    img_ev = np.concatenate([emap[r] for r in ebeats["record"].drop_duplicates()])
    assert len(img) == len(beats) and len(img_ev) == len(ebeats), "images and beat tables disagree"
    rr, rr_ev = rr_matrix(beats), rr_matrix(ebeats)
    cls = {c: i for i, c in enumerate(ag.BEAT_CLASSES)}
    p = np.full((len(ebeats), len(ag.BEAT_CLASSES)), np.nan)
    secs: list[float] = []
    for k, test in enumerate(acnn.FOLDS):
        t0 = time.perf_counter()
        tr = (~beats["record"].isin(test).to_numpy()) & beats["label"].isin(ag.BEAT_CLASSES).to_numpy()
        model = train_spectral_rr(img[tr], rr[tr], beats.loc[tr, "label"].map(cls).to_numpy(),
                                  beats.loc[tr, "record"].to_numpy(), epochs=epochs, seed=seed)
        secs.append(round(time.perf_counter() - t0, 1))
        te = ebeats["record"].isin(test).to_numpy()
        p[te] = predict_images(model, img_ev[te], rr_ev[te])
        print(f"fold {k} {test}: spectral+RR CNN train {secs[-1]} s, predict {time.perf_counter() - t0 - secs[-1]:.0f}"
              f" s ({int(tr.sum())} labelled beats before capping)", flush=True)
    return p, secs


def cmd_cv(args: argparse.Namespace) -> None:
    beats, wins = acv.tables("annotations")  # training rows: annotated beats
    ev = args.eval_peaks
    ebeats = beats if ev == "annotations" else acv.tables(ev)[0]
    tag = "" if ev == "annotations" else f"_{ev}"
    gbm_path = acv.CACHE / f"{acnn.CNN_VERSION}_{acv.VERSION}_oof_{args.gbm}{tag}.npz"
    if not gbm_path.is_file():
        sys.exit(f"{gbm_path} is missing: run `scripts/arrhythmia_cnn.py cv --gbm {args.gbm} --eval-peaks {ev} "
                 "--only NONE` first (the booster's out-of-fold beat and VF probabilities on the same folds)")
    gbm_oof = dict(np.load(gbm_path, allow_pickle=False))
    assert len(gbm_oof["p_gbm"]) == len(ebeats) and len(gbm_oof["pv_win"]) == len(wins), "stale booster cache"
    assert sorted(r for f in acnn.FOLDS for r in f) == sorted(acv.record_paths()), "folds must cover every record"
    oof_path = acv.CACHE / f"{SR_VERSION}_{acv.VERSION}_oof_spectral_rr_e{args.epochs}_s{args.seed}{tag}.npz"
    if oof_path.is_file() and not args.refit:
        z = np.load(oof_path, allow_pickle=False)
        p_sr, secs = z["p_sr"], z["seconds"].tolist()
    else:
        imap = images_of("annotations")
        p_sr, secs = spectral_oof(beats, ebeats, imap, imap if ev == "annotations" else images_of(ev),
                                  epochs=args.epochs, seed=args.seed)
        np.savez(oof_path, p_sr=p_sr, seconds=np.array(secs))
    p_gbm = gbm_oof["p_gbm"]
    cands = {
        f"{args.gbm}_5fold": (p_gbm, True),
        "spectral_rr_5fold": (p_sr, False),
        "spectral_rr_bbb120_5fold": (p_sr, True),
        f"ens_mean_{args.gbm}_spectral_rr_5fold": ((p_gbm + p_sr) / 2.0, True),
    }
    out = {"protocol": "record-grouped 5-fold CV (records whole) on mitdb-ds1 (22) + vfdb-dev (4); record "
                       "bootstrap 95% CI", "folds": [list(f) for f in acnn.FOLDS], "gbm": args.gbm,
           "epochs": args.epochs, "seed": args.seed, "eval_peaks": ev, "seed_run": SEED_RUN.name,
           "fold_seconds": {"gbm": gbm_oof["seconds"].tolist(), "spectral_rr": secs}, "candidates": {}}
    for name, (pb, rule) in cands.items():
        rep = acnn.score(pb, rule, gbm_oof, ebeats, wins, args.boot)
        name = name + tag.replace("_detect", "_detector_peaks")
        out["candidates"][name] = rep
        print(name, "macro-F1 %.3f" % rep["macro_f1"], [round(x, 3) for x in rep["macro_f1_ci"]],
              {k: round(v["f1"], 3) for k, v in rep["per_class_f1"].items()}, flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("\n".join([acnn.fmt_table(out["candidates"]), f"seconds per fold: {out['fold_seconds']}"]), flush=True)


def main() -> None:
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    im = sub.add_parser("images", help="seed spectral image of every beat of the cached beat tables")
    im.add_argument("--peaks", default="annotations")
    im.set_defaults(func=cmd_images)
    cv = sub.add_parser("cv", help="5-fold out-of-fold probabilities and the candidates' report")
    cv.add_argument("--gbm", default="gbm_all_bbb120")
    cv.add_argument("--epochs", type=int, default=12)
    cv.add_argument("--seed", type=int, default=0)
    cv.add_argument("--boot", type=int, default=500)
    cv.add_argument("--refit", action="store_true")
    cv.add_argument("--eval-peaks", default="annotations", choices=("annotations", "detect"),
                    help="rows scored: annotated beats, or neurokit2 detections (training stays on annotations)")
    cv.add_argument("--out", default=str(acv.CACHE / "spectral_rr_cv.json"))
    cv.set_defaults(func=cmd_cv)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
