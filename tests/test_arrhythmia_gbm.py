"""The gradient-boosting arrhythmia model (issue 17): per-record RR features, QRS width, resampling, VF windows,
LightGBM text round trip, the registry kind, the spectral-build + evaluate path and the shipped run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecg_core.core.errors import ModelLoadError
from ecg_core.signals import arrhythmia_gbm as ag
from ecg_core.signals.beat_features import (
    BEAT_FEATURES,
    FEATURE_FS,
    morphology_features,
    prepare_record,
    qrs_bounds,
    rr_features,
)
from ecg_core.signals.records import Annotations, Record
from ecg_core.signals.vf_segments import VF_FEATURES, vf_mask, window_features

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "arrhythmia6-lightgbm-ds1"


def _beats(fs: float, r_times: np.ndarray, n: int, sigma_s: float = 0.012) -> np.ndarray:
    t = np.arange(n) / fs
    x = np.zeros(n)
    for r in r_times:
        x += np.exp(-0.5 * ((t - r) / sigma_s) ** 2)
    return x


# ---------------------------------------------------------------------------------------------- RR context
def test_rr_ratios_are_invariant_to_a_record_wide_rate_change() -> None:
    rng = np.random.default_rng(0)
    rr = rng.uniform(0.75, 0.85, 60)
    rr[[10, 30]] *= 0.6  # beats 10 and 30 come early
    peaks = np.rint(np.cumsum(rr) * 250).astype(int)
    slow = rr_features(peaks, 250.0)
    fast = rr_features(np.rint(peaks * 0.7).astype(int), 250.0)  # same rhythm, 1/0.7 x the rate
    ratios = ["pre_rr_rec", "post_rr_rec", "local_rr_rec", "pre_local", "post_pre", "pre_local_med", "local_cv"]
    np.testing.assert_allclose(slow[ratios].to_numpy(), fast[ratios].to_numpy(), atol=0.02)
    assert not np.allclose(slow["pre_rr"], fast["pre_rr"])  # the absolute intervals did change
    assert slow["pre_rr_rec"].iloc[10] < 0.7 and slow["pre_rr_rec"].iloc[20] > 0.85  # the premature beat stands out
    assert slow["post_pre"].iloc[10] > 1.4


def test_qrs_width_of_a_wide_beat_exceeds_a_narrow_one() -> None:
    fs = FEATURE_FS
    r = np.array([1.0, 2.0, 3.0])
    narrow = _beats(fs, r, int(4 * fs), sigma_s=0.010)
    wide = _beats(fs, r, int(4 * fs), sigma_s=0.035)
    peaks = np.rint(r * fs).astype(int)
    on_n, off_n = qrs_bounds(narrow, peaks, fs, frac=0.07)
    on_w, off_w = qrs_bounds(wide, peaks, fs, frac=0.07)
    w_n, w_w = (off_n - on_n) / fs * 1000, (off_w - on_w) / fs * 1000
    assert (w_w > w_n + 40).all(), (w_n, w_w)
    assert (w_n < 100).all() and (w_w > 120).all()


def test_resampling_keeps_beat_positions() -> None:
    fs_in = 360.0
    r_times = np.arange(0.8, 19.5, 0.83)
    x = _beats(fs_in, r_times, int(20 * fs_in))
    ann = Annotations(np.rint(r_times * fs_in).astype(np.int64), ("N",) * len(r_times), ("",) * len(r_times))
    rec = Record("syn", fs_in, np.column_stack([x, -x]), ("MLII", "V1"), ann)
    prep = prepare_record(rec)
    assert prep.ml_name == "MLII" and prep.v1_name == "V1" and prep.n == int(20 * FEATURE_FS)
    table = ag.record_tables(rec)[0]
    for s in table["sample_f"]:
        seg = prep.ml[s - 10: s + 11]
        assert abs(int(np.argmax(seg)) - 10) <= 1
    assert np.allclose(table["time_s"], r_times, atol=1 / 360)


def test_snapping_moves_annotations_to_nearby_detected_peaks_only() -> None:
    from ecg_core.signals.beat_features import snap_to_detected

    ann = np.array([100, 300, 500, 700])
    det = np.array([110, 340, 505, 506])  # 10 samples (40 ms) off, 40 samples (160 ms) off, 5 samples off
    out = snap_to_detected(ann, det, tolerance_s=0.075, fs=250.0)  # 75 ms = 18.75 samples
    assert out.tolist() == [110, 300, 505, 700]
    clash = snap_to_detected(np.array([500, 504]), np.array([502]), fs=250.0)  # both would land on 502
    assert clash.tolist() == [502, 504] and (np.diff(clash) > 0).all()


def test_v1_is_taken_by_name_only() -> None:
    x = _beats(360.0, np.arange(1, 9), 3600)
    rec = Record("v5", 360.0, np.column_stack([x, x]), ("V5", "MLII"))
    prep = prepare_record(rec)
    assert prep.ml_name == "MLII" and prep.v1 is None
    feats = morphology_features(prep, np.rint(np.arange(1, 9) * FEATURE_FS).astype(int))
    assert feats["v1_pos_frac"].isna().all() and feats["qrs_ms"].notna().all()


# ---------------------------------------------------------------------------------------------- VF windows
def test_vf_features_separate_sine_like_vf_from_normal_beats() -> None:
    fs = FEATURE_FS
    t = np.arange(int(4 * fs)) / fs
    rng = np.random.default_rng(1)
    vf = np.stack([np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) + 0.05 * rng.standard_normal(t.size)
                   for f in (4.0, 5.0, 6.0)])
    beats = np.stack([_beats(fs, np.arange(0.3 + o, 4.0, 0.9), t.size) + 0.02 * rng.standard_normal(t.size)
                      for o in (0.0, 0.2, 0.4)])
    fv, fb = window_features(vf), window_features(beats)
    assert (fv["vf_kurt"].max() < fb["vf_kurt"].min())
    assert (fv["vf_tcsc"].min() > fb["vf_tcsc"].max())
    assert (fv["vf_band"].min() > fb["vf_band"].max())
    assert (fv["vf_leak"].max() < fb["vf_leak"].min())


def test_vf_mask_follows_rhythm_annotations() -> None:
    ann = Annotations(np.array([0, 2500, 5000]), ("+", "+", "+"), ("(N", "(VF", "(N"))
    rec = Record("r", 250.0, np.zeros(7500), ("ECG",), ann)
    m = vf_mask(rec, np.array([4.0, 15.0, 10.0, 25.0]))
    np.testing.assert_allclose(m, [0.0, 1.0, 0.5, 0.0])


# ---------------------------------------------------------------------------------------------- the model
def _toy_tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 300
    beats = pd.DataFrame(rng.standard_normal((n, len(BEAT_FEATURES) + len(VF_FEATURES))),
                         columns=list(BEAT_FEATURES + VF_FEATURES))
    beats["label"] = np.array(ag.BEAT_CLASSES)[rng.integers(0, 5, n)]
    beats.loc[beats["label"] == "V", "qrs_ms"] += 3.0
    beats["record"] = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    wins = pd.DataFrame(rng.standard_normal((200, len(VF_FEATURES))), columns=list(VF_FEATURES))
    wins["vf_frac"] = (rng.random(200) > 0.7).astype(float)
    wins.loc[wins["vf_frac"] == 1.0, "vf_kurt"] -= 3.0
    wins["record"] = np.array(["a", "b", "c", "d"])[rng.integers(0, 4, 200)]
    return beats, wins


def _write_run(folder: Path, model: ag.GbmArrhythmiaModel) -> Path:
    folder.mkdir(parents=True)
    entries = model.save(folder)
    meta = {"run_id": folder.name, "status": "completed", "preset": "arrhythmia-6", "class_names": [
        "Normal beat", "Left bundle branch block", "Right bundle branch block", "Atrial premature beat",
        "Premature ventricular contraction", "Ventricular fibrillation"], **entries}
    (folder / "run.json").write_text(json.dumps(meta))
    return folder


def test_text_round_trip_gives_identical_probabilities(tmp_path) -> None:
    from ecg_core.ml import registry

    beats, wins = _toy_tables()
    model = ag.GbmArrhythmiaModel.fit(beats, wins, params=ag.GbmParams(n_estimators=15, min_child_samples=5,
                                                                        bbb_qrs_ms=1.0, snap_peaks=True))
    run = _write_run(tmp_path / "toy-gbm", model)
    assert not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in run.iterdir())
    info = registry.read_run(run)
    assert info.usable, info.problem
    loaded = ag.GbmArrhythmiaModel.load(info)
    assert loaded.bbb_qrs_ms == 1.0 and loaded.snap_peaks and loaded.beat_features == model.beat_features
    p0, p1 = model.predict_proba(beats), loaded.predict_proba(beats)
    assert np.array_equal(p0, p1)
    np.testing.assert_allclose(p0.sum(axis=1), 1.0)
    c = ag.explain_row(loaded, beats.iloc[0], "V", top=5)
    assert list(c.columns) == ["feature", "value", "contribution"] and len(c) == 5


def test_registry_refuses_a_damaged_or_incomplete_text_run(tmp_path) -> None:
    from ecg_core.ml import registry

    beats, wins = _toy_tables()
    model = ag.GbmArrhythmiaModel.fit(beats, wins, params=ag.GbmParams(n_estimators=5, min_child_samples=5))
    run = _write_run(tmp_path / "bad-gbm", model)
    (run / ag.BEAT_MODEL_FILE).write_text("not a lightgbm model")
    with pytest.raises(ModelLoadError):
        ag.GbmArrhythmiaModel.load(run)
    (run / ag.VF_MODEL_FILE).unlink()
    info = registry.read_run(run)
    assert not info.usable and "vf_model.txt" in info.problem


def test_bbb_rule_turns_wide_normal_beats_into_blocks_by_v1() -> None:
    #            N    L    R    A    V
    pb = np.array([[0.8, 0.1, 0.0, 0.05, 0.05],   # wide, V1 R'          -> R
                   [0.8, 0.0, 0.1, 0.05, 0.05],   # wide, V1 negative    -> L
                   [0.8, 0.1, 0.0, 0.05, 0.05],   # narrow               -> unchanged
                   [0.1, 0.0, 0.0, 0.1, 0.8],     # wide but V (ectopic) -> unchanged
                   [0.7, 0.1, 0.2, 0.0, 0.0]])    # wide, no V1 lead     -> the booster's R over L
    rows = pd.DataFrame({"qrs_ms": [140, 140, 80, 160, 130], "v1_term": [0.3, -0.4, 0.3, 0.1, np.nan],
                         "v1_rprime": [1, 0, 1, 0, np.nan]})
    out = ag.bbb_rule(pb, rows, 120.0)
    top = [ag.BEAT_CLASSES[i] for i in out.argmax(axis=1)]
    assert top == ["R", "L", "N", "V", "R"]
    np.testing.assert_allclose(out.sum(axis=1), pb.sum(axis=1))
    np.testing.assert_array_equal(out[2], pb[2])


def test_record_balance_caps_one_patient_dominating_a_class() -> None:
    labels = np.array(["L"] * 900 + ["L"] * 100 + ["N"] * 1000)
    groups = np.array(["109"] * 900 + ["207"] * 100 + ["x"] * 1000)
    plain = ag.sample_weights(labels, groups, cap=30.0, record_balance=False)
    bal = ag.sample_weights(labels, groups, cap=30.0, record_balance=True)
    assert plain[0] == plain[900]
    assert bal[0] < bal[900]  # the 900 beats of one patient count less each than the other patient's 100
    capped = ag.sample_weights(np.array(["N"] * 1000 + ["A"]), np.array(["x"] * 1001), cap=5.0,
                               record_balance=False)
    assert capped[-1] / capped[0] == pytest.approx(5.0 / (1001 / 2000), rel=1e-6)


def test_demo_records_build_and_evaluate_with_a_gbm_run(tmp_path, monkeypatch) -> None:
    """spectral-build writes source_records.json and evaluate RUN --data DIR uses it for this model kind."""
    from ecg_core.cli import main
    from ecg_core.signals.demo import ensure_demo_records

    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    recs = ensure_demo_records(tmp_path / "demo")
    from ecg_core.signals.sources import load_record

    tables = [ag.record_tables(load_record(p)) for p in recs]
    beats = pd.concat([t[0] for t in tables], ignore_index=True)
    wins = pd.concat([t[1] for t in tables], ignore_index=True)
    model = ag.GbmArrhythmiaModel.fit(beats, wins, params=ag.GbmParams(n_estimators=10, min_child_samples=3))
    run = _write_run(tmp_path / "models" / "demo-gbm", model)
    spec = tmp_path / "spec"
    assert main(["spectral-build", "--records", str(tmp_path / "demo"), "--out", str(spec), "--split-by",
                 "none"]) == 0
    assert (spec / ag.SOURCE_RECORDS_FILE).is_file()
    assert main(["evaluate", str(run), "--data", str(spec), "--out", str(tmp_path / "ev"), "--boot", "20"]) == 0
    ev = json.loads(next((tmp_path / "ev").glob("eval_external-*.json")).read_text())
    assert ev["n"] == len(pd.read_csv(spec / "index.csv"))
    (spec / ag.SOURCE_RECORDS_FILE).unlink()
    from ecg_core.core.errors import ConfigError

    with pytest.raises(ConfigError, match="source_records.json"):
        ag.evaluate_spectral_folder(run, spec, n_boot=5)


# ---------------------------------------------------------------------------------------------- shipped run
@pytest.mark.skipif(not SHIPPED.is_dir(), reason="the shipped gradient-boosting run is absent")
def test_shipped_gbm_run_loads_and_classifies_the_demo_records(tmp_path) -> None:
    import ecg_core
    from ecg_core.ml import registry

    info = registry.read_run(SHIPPED)
    assert info.usable and info.input_kind == "spectral_beat", info.problem
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 5e6
    cnn = registry.read_run(REPO / "models" / "arrhythmia6-shallow_cnn-ds1")
    assert info.class_names == cnn.class_names
    bundle = ecg_core.load_arrhythmia_model(SHIPPED)
    assert bundle.is_gbm
    got = {}
    for path in ecg_core.ensure_demo_records(tmp_path / "demo-signals"):
        record = ecg_core.load_record(path)
        segments = ecg_core.record_segments(record, bundle.seg_cfg, mode="beats")
        table = ecg_core.predict_segments(bundle, segments, record=record)
        got[Path(path).stem] = table
        assert np.allclose(table[[f"p_{k}" for k in bundle.class_keys]].sum(axis=1), 1.0)
    vf = got["demo_vf"]
    assert (vf.loc[vf["label"] == "VF", "pred"] == "VF").mean() > 0.8
    pvc = got["demo_pvc"]
    assert (pvc.loc[pvc["label"] == "V", "pred"] == "V").mean() >= 0.5


def test_the_shipped_gbm_stays_the_default_when_a_newer_run_appears(tmp_path) -> None:
    """Planted bug: arrhythmia_runs ordered newest first only, so any newer run (a CNN trained today) silently became
    the Arrhythmia page's default instead of the model chosen by leave-one-record-out CV."""
    import shutil

    from ecg_core.signals import arrhythmia as arr

    if not SHIPPED.is_dir():
        pytest.skip(f"the shipped run {SHIPPED} is missing")
    cnn = REPO / "models" / "arrhythmia6-shallow_cnn-ds1"
    models = tmp_path / "models"
    shutil.copytree(SHIPPED, models / SHIPPED.name)
    shutil.copytree(cnn, models / "arrhythmia6-newer-cnn")
    meta = json.loads((models / "arrhythmia6-newer-cnn" / "run.json").read_text())
    meta.update(run_id="arrhythmia6-newer-cnn", created="2999-01-01T00:00:00")
    (models / "arrhythmia6-newer-cnn" / "run.json").write_text(json.dumps(meta))
    ids = [r.run_id for r in arr.arrhythmia_runs(models)]
    assert set(ids) == {SHIPPED.name, "arrhythmia6-newer-cnn"}
    assert ids[0] == arr.DEFAULT_ARRHYTHMIA_RUN == SHIPPED.name
    assert [r.run_id for r in arr.arrhythmia_runs(models, preferred="none")][0] == "arrhythmia6-newer-cnn"


def test_without_v1_masks_the_v1_features_only() -> None:
    from ecg_core.signals.beat_features import V1_FEATURES, without_v1

    rows = pd.DataFrame({f: [1.0, 2.0] for f in V1_FEATURES} | {"qrs_ms": [90.0, 130.0], "qrs_max_ms": [110.0, 150.0],
                                                                   "pre_rr": [0.8, 0.9]})
    out = without_v1(rows)
    assert out[list(V1_FEATURES)].isna().all().all()
    assert out["qrs_max_ms"].tolist() == [90.0, 130.0] and out["pre_rr"].tolist() == [0.8, 0.9]
    assert rows["v1_term"].tolist() == [1.0, 2.0]  # the input is not changed


def test_v1_dropout_stops_a_missing_v1_from_naming_a_class() -> None:
    # training: every class-1 beat comes from records without V1 (as R in MIT-BIH 124); class 0 has V1
    rng = np.random.default_rng(0)
    n = 600
    y = np.array([0] * n + [1] * n)
    x = pd.DataFrame({"qrs_ms": np.r_[rng.normal(80, 8, n), rng.normal(135, 8, n)],
                      "v1_term": np.r_[rng.normal(0, 1, n), np.full(n, np.nan)]})
    groups = np.array(["a"] * n + ["b"] * n)
    test = pd.DataFrame({"qrs_ms": rng.normal(80, 8, 200), "v1_term": np.nan})  # narrow beats of a no-V1 record
    p = ag.GbmParams(n_estimators=60, max_per_cell=0, record_balance=False)
    plain = ag.train_booster(x, y, groups, n_class=2, params=p)
    drop = ag.train_booster(x, y, groups, n_class=2, params=ag.GbmParams(**{**p.__dict__, "v1_dropout": True}))
    assert (plain.predict(test.to_numpy()) > 0.5).mean() > 0.9  # the shortcut: no V1 -> class 1
    assert (drop.predict(test.to_numpy()) < 0.5).mean() > 0.9  # with V1 dropout the QRS width decides


def _onehot(classes: list[str]) -> np.ndarray:
    pb = np.full((len(classes), len(ag.BEAT_CLASSES)), 0.025)
    for i, c in enumerate(classes):
        pb[i, ag.BEAT_CLASSES.index(c)] = 0.9
    return pb


def test_local_block_width_follows_the_rhythm_not_one_beat() -> None:
    """A block is a property of the conducted rhythm: beats of an RBBB record whose own QRS measured narrow stay R,
    an occasional wide-measured normal beat is no block, and frequent wide ectopic beats do not widen the median."""
    rng = np.random.default_rng(0)
    n = 60
    rbbb = np.full(n, 135.0)
    rbbb[rng.choice(n, 10, replace=False)] = 110.0  # delineation slipped on 10 block beats
    normal = np.full(n, 90.0)
    normal[[10, 30, 50]] = 125.0  # three normal beats measured wide
    pvc_rich = np.where(np.arange(n) % 2 == 0, 170.0, 95.0)  # bigeminy: every other beat a wide V
    cls_pvc = ["V" if i % 2 == 0 else "N" for i in range(n)]
    rows = pd.DataFrame({
        "record": ["rbbb"] * n + ["norm"] * n + ["pvc"] * n,
        "time_s": np.r_[np.arange(n), np.arange(n), np.arange(n)] * 0.8,
        "qrs_ms": np.r_[rbbb, normal, pvc_rich],
        "v1_term": np.r_[np.full(n, 0.4), np.full(n, -0.2), np.full(n, -0.2)],
        "v1_rprime": np.r_[np.ones(n), np.zeros(n), np.zeros(n)]})
    classes = np.array(["N"] * (2 * n) + cls_pvc)
    pb = _onehot(list(classes))
    order = rng.permutation(len(rows))  # rows in any order: the median runs per record in time order
    rows, pb, classes = rows.iloc[order].reset_index(drop=True), pb[order], classes[order]
    top = lambda p: np.array(ag.BEAT_CLASSES)[p.argmax(axis=1)]  # noqa: E731
    per_beat, local = top(ag.bbb_rule(pb, rows, 120.0)), top(ag.bbb_rule(pb, rows, 120.0, local=31))
    rec = rows["record"].to_numpy()
    assert (per_beat[rec == "rbbb"] == "R").sum() == n - 10 and (local[rec == "rbbb"] == "R").all()
    assert (per_beat[rec == "norm"] == "L").sum() == 3 and (local[rec == "norm"] == "N").all()
    assert (local[rec == "pvc"] == classes[rec == "pvc"]).all()  # V stays V, N stays N
    width = ag.local_qrs_ms(rows, pb, 31)
    assert np.allclose(width[rec == "pvc"], 95.0)  # the V beats are left out of the median


def test_local_block_width_travels_with_the_run_and_segments_take_their_beat(tmp_path) -> None:
    from ecg_core.ml import registry
    from ecg_core.signals.demo import ensure_demo_records
    from ecg_core.signals.sources import load_record

    recs = [load_record(p) for p in ensure_demo_records(tmp_path / "demo")]
    tables = [ag.record_tables(r) for r in recs]
    beats = pd.concat([t[0] for t in tables], ignore_index=True)
    wins = pd.concat([t[1] for t in tables], ignore_index=True)
    params = ag.GbmParams(n_estimators=10, min_child_samples=3, bbb_qrs_ms=100.0, bbb_local=9)
    model = ag.GbmArrhythmiaModel.fit(beats, wins, params=params)
    run = _write_run(tmp_path / "models" / "loc-gbm", model)
    loaded = ag.GbmArrhythmiaModel.load(registry.read_run(run))
    assert loaded.bbb_local == 9 and loaded.bbb_qrs_ms == 100.0
    rec = recs[0]
    all_beats = ag.record_beats(rec)
    t = all_beats["time_s"].to_numpy()
    full = ag.predict_record_rows(loaded, rec, t, ["beat"] * len(t))
    some = np.arange(0, len(t), 7)
    part = ag.predict_record_rows(loaded, rec, t[some], ["beat"] * len(some))
    np.testing.assert_allclose(part, full[some])  # asking for fewer segments does not change a beat's class
    every = ag.segment_feature_rows(rec, t, ["beat"] * len(t))
    np.testing.assert_allclose(full[:, :5], loaded.block_beat_proba(every) * (1 - full[:, 5:]), atol=1e-12)
    meta = json.loads((run / "run.json").read_text())
    meta["gbm"]["bbb_local_beats"] = -3
    (run / "run.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="bbb_local_beats"):
        ag.GbmArrhythmiaModel.load(registry.read_run(run))
