"""SVEB features (P wave before the QRS against the record template, premature normal QRS) and the 1-D beat CNN
inputs (issue 17): tiny synthetic records, no data folder needed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecg_core.signals.beat_features import (
    BEAT_FEATURES,
    FEATURE_FS,
    P_FEATURES,
    PreparedRecord,
    beat_features,
)


def _ecg(fs: float, r_times: np.ndarray, n: int, *, p_for: np.ndarray, p_shape: np.ndarray) -> np.ndarray:
    """Gaussian QRS at each R; a P wave 0.16 s before it for the beats flagged in ``p_for``: ``p_shape`` +1 upright,
    -1 inverted (an ectopic atrial focus), 0 none."""
    t = np.arange(n) / fs
    x = np.zeros(n)
    for r, has, sign in zip(r_times, p_for, p_shape, strict=True):
        x += np.exp(-0.5 * ((t - r) / 0.012) ** 2)
        if has:
            x += 0.15 * sign * np.exp(-0.5 * ((t - (r - 0.16)) / 0.025) ** 2)
    return x


def _prep(x: np.ndarray, v1: np.ndarray | None = None) -> PreparedRecord:
    return PreparedRecord("syn", FEATURE_FS, x, v1, "MLII", "V1" if v1 is not None else None)


def test_p_features_flag_an_ectopic_p_wave_of_a_premature_beat() -> None:
    fs = FEATURE_FS
    rr = np.full(40, 0.8)
    rr[[12, 27]] = 0.5  # two premature beats
    rr[[13, 28]] = 1.1  # each followed by a compensatory pause
    r_times = 0.6 + np.cumsum(rr)
    sign = np.ones(40)
    sign[[12, 27]] = -1.0  # with an inverted P wave
    x = _ecg(fs, r_times, int((r_times[-1] + 1) * fs), p_for=np.ones(40, bool), p_shape=sign)
    peaks = np.rint(r_times * fs).astype(int)
    f = beat_features(_prep(x), peaks)
    assert list(f.columns) == list(BEAT_FEATURES) and set(P_FEATURES) <= set(f.columns)
    normal = np.setdiff1d(np.arange(2, 38), [12, 13, 27, 28])
    assert f["p_corr"].iloc[normal].min() > 0.8, f["p_corr"].iloc[normal].min()
    assert f["p_corr"].iloc[[12, 27]].max() < 0.3, f["p_corr"].iloc[[12, 27]]
    # premature with a normal QRS: the SVEB pattern scores; a normal beat scores 0
    assert (f["prem_normal"].iloc[[12, 27]] > 0.25).all() and (f["prem_normal"].iloc[normal] < 0.05).all()
    assert (f["post_local"].iloc[[12, 27]] > 1.05).all()
    assert f["tpl_p_amp"].nunique() == 1 and 0.05 < f["tpl_p_amp"].iloc[0] < 0.5
    assert f["p_corr_v1"].isna().all()  # no V1 lead: missing, not invented


def test_template_p_amplitude_is_near_zero_without_p_waves() -> None:
    """Atrial fibrillation has no P waves: the record-level P / QRS ratio of the template says so."""
    fs = FEATURE_FS
    rng = np.random.default_rng(1)
    r_times = 0.6 + np.cumsum(rng.uniform(0.5, 1.1, 40))
    n = int((r_times[-1] + 1) * fs)
    with_p = _ecg(fs, r_times, n, p_for=np.ones(40, bool), p_shape=np.ones(40))
    without = _ecg(fs, r_times, n, p_for=np.zeros(40, bool), p_shape=np.ones(40))
    peaks = np.rint(r_times * fs).astype(int)
    a = beat_features(_prep(with_p), peaks)["tpl_p_amp"].iloc[0]
    b = beat_features(_prep(without), peaks)["tpl_p_amp"].iloc[0]
    assert b < 0.02 and a > 0.08, (a, b)


def test_beat_windows_are_normalised_per_record_and_v1_is_zero_when_absent() -> None:
    from ecg_core.signals.beat_cnn import beat_windows

    fs = FEATURE_FS
    r_times = np.arange(1.0, 20.0, 0.8)
    x = _ecg(fs, r_times, int(21 * fs), p_for=np.zeros(len(r_times), bool), p_shape=np.ones(len(r_times)))
    peaks = np.rint(r_times * fs).astype(int)
    w_small = beat_windows(_prep(x), peaks)
    w_big = beat_windows(_prep(7.0 * x + 3.0), peaks)  # another gain and offset: same per-record windows
    assert w_small.shape == (len(peaks), 176, 2) and w_small.dtype == np.float32
    np.testing.assert_allclose(w_small, w_big, atol=1e-4)
    assert np.abs(w_small[..., 1]).max() == 0.0
    assert abs(float(w_small[:, 64, 0].mean()) - 1.0) < 0.1  # the R peak sits at sample 64, about 1 QRS amplitude
    w_v1 = beat_windows(_prep(x, -x), peaks)
    np.testing.assert_allclose(w_v1[..., 1], -w_v1[..., 0], atol=1e-4)


def test_rr_matrix_is_finite_and_marks_v1() -> None:
    from ecg_core.signals.beat_cnn import CNN_RR_FEATURES, rr_matrix

    rows = pd.DataFrame({f: [1.0, 0.5, np.nan] for f in CNN_RR_FEATURES})
    rows["v1_term"] = [0.1, np.nan, 0.2]
    m = rr_matrix(rows)
    assert m.shape == (3, len(CNN_RR_FEATURES) + 1) and np.isfinite(m).all()
    assert m[0, 0] == 0.0 and m[1, 0] < -0.6  # log ratio: 1 -> 0, a premature 0.5 -> log 0.5
    assert m[:, -1].tolist() == [1.0, 0.0, 1.0]


def test_beat_cnn_is_a_flat_two_input_graph_that_round_trips_in_safe_mode(tmp_path) -> None:
    import keras

    from ecg_core.signals.beat_cnn import build_beat_cnn

    m = build_beat_cnn(5)
    assert [i.name for i in m.inputs] == ["beat", "rr"] and m.output_shape == (None, 5)
    assert m.count_params() < 50_000
    assert not any(isinstance(layer, keras.Model) for layer in m.layers)  # flat: no nested sub-models
    x = {"beat": np.random.default_rng(0).normal(size=(3, 176, 2)).astype("float32"),
         "rr": np.zeros((3, 9), dtype="float32")}
    p = m.predict(x, verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    m.save(tmp_path / "cnn.keras")
    back = keras.models.load_model(tmp_path / "cnn.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(back.predict(x, verbose=0), p, atol=1e-6)


def test_gbm_with_a_beat_cnn_member_round_trips_and_refuses_a_wrong_cnn(tmp_path) -> None:
    """The ensemble run: two LightGBM text beat boosters + a safe-mode .keras beat CNN; the mean of the three beat
    probabilities feeds the block rule and the VF detector; a CNN of the wrong shape is refused."""
    import json

    import keras
    import pytest

    from ecg_core.core.errors import ConfigError, ModelLoadError
    from ecg_core.ml import registry
    from ecg_core.signals import arrhythmia_gbm as ag
    from ecg_core.signals.beat_cnn import build_beat_cnn
    from ecg_core.signals.vf_segments import VF_FEATURES

    rng = np.random.default_rng(0)
    n = 200
    beats = pd.DataFrame(rng.standard_normal((n, len(BEAT_FEATURES) + len(VF_FEATURES))),
                         columns=list(BEAT_FEATURES + VF_FEATURES))
    beats["label"] = np.array(ag.BEAT_CLASSES)[rng.integers(0, 5, n)]
    beats["record"] = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    wins = pd.DataFrame(rng.standard_normal((100, len(VF_FEATURES))), columns=list(VF_FEATURES))
    wins["vf_frac"] = (rng.random(100) > 0.7).astype(float)
    wins["record"] = "a"
    gbm = ag.GbmArrhythmiaModel.fit(beats, wins, params=ag.GbmParams(n_estimators=5, min_child_samples=5))
    alone = gbm.predict_proba(beats)
    cnn = build_beat_cnn(len(ag.BEAT_CLASSES), width=4)
    gbm2 = ag.GbmArrhythmiaModel.fit(beats, wins, params=ag.GbmParams(n_estimators=4, min_child_samples=5, seed=1),
                                     beat_features=list(P_FEATURES))
    ens = ag.GbmArrhythmiaModel(gbm.beat, gbm.vf, gbm.beat_features, gbm.vf_features, cnn=cnn, beat2=gbm2.beat,
                                beat2_features=tuple(P_FEATURES))
    windows = rng.standard_normal((n, 176, 2)).astype("float32")
    with pytest.raises(ConfigError):
        ens.predict_proba(beats)  # the CNN member needs the windows
    p = ens.predict_proba(beats, windows)
    pc = ens.cnn_proba(beats, windows)
    pv = gbm.vf_proba(beats)
    mean = (gbm.beat_proba(beats) + gbm2.beat_proba(beats) + pc) / 3.0
    np.testing.assert_allclose(p[:, :5], mean * (1 - pv)[:, None], atol=1e-6)
    assert not np.allclose(p, alone)
    run = tmp_path / "toy-ens"
    run.mkdir()
    entries = ens.save(run)
    assert entries["gbm"]["cnn_file"] == ag.CNN_MODEL_FILE and (run / ag.CNN_MODEL_FILE).is_file()
    assert ag.BEAT2_MODEL_FILE in entries["model_files"] and entries["gbm"]["beat2_features"] == list(P_FEATURES)
    meta = {"run_id": run.name, "status": "completed", "preset": "arrhythmia-6", "class_names": list("NLRAVF"),
            **entries}
    (run / "run.json").write_text(json.dumps(meta))
    assert not any(f.suffix in (".pkl", ".pickle", ".joblib") for f in run.iterdir())
    back = ag.GbmArrhythmiaModel.load(registry.read_run(run))
    np.testing.assert_allclose(back.predict_proba(beats, windows), p, atol=1e-6)
    # a CNN with three outputs in place of the beat CNN is refused
    wrong = build_beat_cnn(3, width=4)
    wrong.save(run / ag.CNN_MODEL_FILE)
    with pytest.raises(ModelLoadError, match="refused"):
        ag.GbmArrhythmiaModel.load(registry.read_run(run))
    keras.backend.clear_session()


def test_record_confusion_carries_the_protocol_of_its_cv_file(tmp_path) -> None:
    """The page names the CV protocol the confusion came from (5-fold or leave-one-record-out), read from the file."""
    import json

    from ecg_core.signals.arrhythmia import record_confusion

    cv = {"protocol": "record-grouped 5-fold CV", "candidates": {"ens": {"per_record_confusion": {
        "101": {"N": {"N": 5, "A": 1}, "A": {"A": 2}}}}}}
    (tmp_path / "cv_5fold.json").write_text(json.dumps(cv))
    (tmp_path / "run.json").write_text(json.dumps({"cv_file": "cv_5fold.json", "gbm": {"cv_candidate": "ens"}}))
    conf = record_confusion(tmp_path)
    assert conf.attrs["protocol"] == "record-grouped 5-fold CV"
    row = conf[(conf["record"] == "101") & (conf["annotated"] == "A")].iloc[0]
    assert row["N"] == 1 and row["A"] == 2


def test_a_digitised_rhythm_strip_is_classified_by_the_shipped_default(tmp_path) -> None:
    """A report image -> its digitised rhythm strip (one lead, no annotations, 500 Hz) -> neurokit2 beats -> the
    shipped default (boosters + beat CNN, V1 absent) gives one finite probability row per segment."""
    from pathlib import Path

    import pytest

    from ecg_core.reports.reading.digitize import digitize
    from ecg_core.reports.reading.formats import rhythm_strip_signal
    from ecg_core.reports.synth import RenderOptions, random_spec, render_report, synth_signals
    from ecg_core.signals import arrhythmia as arr
    from ecg_core.signals.records import Annotations, Record

    shipped = Path(__file__).resolve().parents[1] / "models" / arr.DEFAULT_ARRHYTHMIA_RUN
    if not shipped.is_dir():
        pytest.skip("the shipped default arrhythmia run is absent")
    image, sidecar = render_report(synth_signals(random_spec("normal", np.random.default_rng(4))),
                                   RenderOptions(px_per_mm=4.0), seed=4)
    dig = digitize(image, sidecar=sidecar)
    x, lead = rhythm_strip_signal(dig)
    rec = Record("strip", float(dig.fs), x[:, None], (lead,), Annotations(np.zeros(0, np.int64), (), ()))
    bundle = arr.load_arrhythmia_model(shipped)
    assert bundle.is_gbm and bundle.model.beat2 is not None and bundle.model.bbb_local > 0
    segs = arr.record_segments(rec, bundle.seg_cfg, mode="beats")
    table = arr.predict_segments(bundle, segs, record=rec)
    assert len(table) >= 5
    probs = table[[f"p_{k}" for k in bundle.class_keys]].to_numpy()
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_spectral_build_and_evaluate_work_for_the_shipped_ensemble(tmp_path, monkeypatch) -> None:
    """`spectral-build` on a new records folder + `evaluate <shipped default> --data DIR`: the ensemble (two boosters
    + the block rule on the running median QRS width) reads the records behind the folder and scores every indexed segment."""
    import json
    from pathlib import Path

    import pytest

    from ecg_core.cli import main
    from ecg_core.signals.arrhythmia import DEFAULT_ARRHYTHMIA_RUN
    from ecg_core.signals.demo import ensure_demo_records

    shipped = Path(__file__).resolve().parents[1] / "models" / DEFAULT_ARRHYTHMIA_RUN
    if not shipped.is_dir():
        pytest.skip("the shipped default arrhythmia run is absent")
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    ensure_demo_records(tmp_path / "records")
    spec = tmp_path / "spec"
    assert main(["spectral-build", "--records", str(tmp_path / "records"), "--out", str(spec), "--split-by",
                 "none"]) == 0
    assert main(["evaluate", str(shipped), "--data", str(spec), "--out", str(tmp_path / "ev"), "--boot", "20"]) == 0
    ev = json.loads(next((tmp_path / "ev").glob("eval_external-*.json")).read_text())
    assert ev["n"] == len(pd.read_csv(spec / "index.csv")) and ev["n"] > 0
    assert 0.0 <= ev["macro"]["f1"] <= 1.0 and ev["extra"]["model_kind"] == "lightgbm_beat_vf"
