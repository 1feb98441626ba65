"""Local-rhythm SVEB features (issue 17, wave 5): prematurity against the beats *before* a beat, the compensatory
pause, the P window against the previous beats' P windows. Tiny synthetic records, no data folder needed."""

from __future__ import annotations

import numpy as np

from ecg_core.signals.beat_features import (
    AF_CONTEXT_FEATURES,
    BEAT_FEATURES,
    FEATURE_FS,
    LOCAL_FEATURES,
    P_FEATURES,
    PreparedRecord,
    beat_features,
    local_rhythm_features,
    rr_features,
)


def _ecg(fs: float, r_times: np.ndarray, n: int, p_shape: np.ndarray) -> np.ndarray:
    t = np.arange(n) / fs
    x = np.zeros(n)
    for r, sign in zip(r_times, p_shape, strict=True):
        x += np.exp(-0.5 * ((t - r) / 0.012) ** 2)
        x += 0.15 * sign * np.exp(-0.5 * ((t - (r - 0.16)) / 0.025) ** 2)
    return x


def _record(rr: np.ndarray, sign: np.ndarray) -> tuple[PreparedRecord, np.ndarray]:
    fs = FEATURE_FS
    r_times = 0.6 + np.cumsum(rr)
    x = _ecg(fs, r_times, int((r_times[-1] + 1) * fs), sign)
    return PreparedRecord("syn", fs, x, None, "MLII", None), np.rint(r_times * fs).astype(int)


def test_local_features_are_appended_and_leave_the_older_columns_unchanged() -> None:
    new = LOCAL_FEATURES + AF_CONTEXT_FEATURES
    assert BEAT_FEATURES[-len(new):] == new
    assert not set(new) & set(BEAT_FEATURES[:-len(new)])
    assert set(P_FEATURES) < set(BEAT_FEATURES)


def test_premature_atrial_beat_against_the_previous_rhythm_and_its_pause() -> None:
    rr = np.full(40, 0.8)
    rr[12] = 0.5  # premature atrial beat, non-compensatory pause (sinus node reset)
    rr[13] = 0.85
    rr[27] = 0.5  # premature ventricular-like timing with a full compensatory pause
    rr[28] = 1.1
    sign = np.ones(40)
    sign[12] = -1.0  # ectopic (inverted) P wave
    prep, peaks = _record(rr, sign)
    f = local_rhythm_features(prep, peaks, rr_features(peaks, FEATURE_FS))
    assert list(f.columns) == list(LOCAL_FEATURES)
    normal = np.setdiff1d(np.arange(2, 38), [12, 13, 27, 28])
    assert np.allclose(f["pre_prev10"].iloc[normal[normal < 12]], 1.0)
    assert abs(f["pre_prev10"].iloc[12] - 0.5 / 0.8) < 1e-9 and abs(f["pre_prev1"].iloc[12] - 0.5 / 0.8) < 1e-9
    # non-compensatory (atrial) vs full compensatory pause
    assert f["comp_pause"].iloc[12] < 0.9 < f["comp_pause"].iloc[27] < 1.05
    assert f["post_prev10"].iloc[27] > 1.3
    # the ectopic P wave differs from the P waves just before it; a normal beat's P does not
    assert f["p_corr_local"].iloc[12] < 0.3 < 0.9 < f["p_corr_local"].iloc[normal].min()
    # the first beat has no previous rhythm: missing, not invented
    assert f.iloc[0].isna().all()
    # beat_features carries them, in the order of BEAT_FEATURES
    full = beat_features(prep, peaks)
    assert list(full.columns) == list(BEAT_FEATURES)
    assert np.allclose(full[list(LOCAL_FEATURES)].to_numpy(), f.to_numpy(), equal_nan=True)


def test_prematurity_reference_ignores_beats_after_the_beat() -> None:
    """The reference is the rhythm before the beat: a run of short RRs after it does not move its features."""
    rr = np.full(40, 0.8)
    rr[12] = 0.5
    rr2 = rr.copy()
    rr2[14:24] = 0.6  # a fast run after the premature beat
    sign = np.ones(40)
    f1 = local_rhythm_features(*_record(rr, sign), rr_features(_record(rr, sign)[1], FEATURE_FS))
    prep2, peaks2 = _record(rr2, sign)
    f2 = local_rhythm_features(prep2, peaks2, rr_features(peaks2, FEATURE_FS))
    assert np.isclose(f1["pre_prev10"].iloc[12], f2["pre_prev10"].iloc[12])
    assert np.isclose(f1["pre_prev10"].iloc[12], 0.5 / 0.8)


def test_rhythm_context_separates_an_irregular_rhythm_without_p_waves_from_isolated_premature_beats() -> None:
    rng = np.random.default_rng(3)
    rr = np.full(80, 0.8)
    rr[[12, 40, 60]] = 0.5  # isolated premature beats in sinus rhythm
    sign = np.ones(80)
    prep, peaks = _record(rr, sign)
    f = beat_features(prep, peaks)
    assert f["af_irr"].iloc[5:75].max() < 0.1 and f["af_pcl"].iloc[5:75].min() > 0.5
    # atrial fibrillation: irregular RR, no P wave (random small atrial activity)
    rr_af = rng.uniform(0.45, 1.1, 80)
    r_times = 0.6 + np.cumsum(rr_af)
    n = int((r_times[-1] + 1) * FEATURE_FS)
    t = np.arange(n) / FEATURE_FS
    x = sum(np.exp(-0.5 * ((t - r) / 0.012) ** 2) for r in r_times) + 0.03 * rng.standard_normal(n)
    peaks_af = np.rint(r_times * FEATURE_FS).astype(int)
    g = beat_features(PreparedRecord("af", FEATURE_FS, x, None, "MLII", None), peaks_af)
    assert g["af_irr"].iloc[5:75].min() > 0.1 and g["af_pcl"].iloc[5:75].median() < 0.5


def test_af_gate_moves_only_gated_a_mass_to_n_and_round_trips(tmp_path) -> None:
    import json

    import pandas as pd
    import pytest

    from ecg_core.core.errors import ModelLoadError
    from ecg_core.ml import registry
    from ecg_core.signals import arrhythmia_gbm as ag
    from ecg_core.signals.vf_segments import VF_FEATURES

    pb = np.array([[0.2, 0.0, 0.0, 0.7, 0.1], [0.2, 0.0, 0.0, 0.7, 0.1], [0.2, 0.0, 0.0, 0.7, 0.1]])
    rows = pd.DataFrame({"af_irr": [0.3, 0.3, np.nan], "af_pcl": [0.1, 0.9, 0.1]})
    out = ag.af_gate(pb, rows, 0.1, 0.5)
    np.testing.assert_allclose(out[0], [0.9, 0.0, 0.0, 0.0, 0.1])
    np.testing.assert_allclose(out[1:], pb[1:])  # P wave present / no context: untouched
    np.testing.assert_allclose(ag.af_gate(pb, rows.drop(columns="af_pcl"), 0.1, 0.5), pb)

    rng = np.random.default_rng(0)
    n = 200
    beats = pd.DataFrame(rng.standard_normal((n, len(BEAT_FEATURES) + len(VF_FEATURES))),
                         columns=list(BEAT_FEATURES + VF_FEATURES))
    beats["label"] = np.array(ag.BEAT_CLASSES)[rng.integers(0, 5, n)]
    beats["record"] = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    beats["af_irr"] = np.where(np.arange(n) % 2 == 0, 0.5, 0.01)  # every other beat in an irregular rhythm
    beats["af_pcl"] = 0.1  # without P waves
    wins = pd.DataFrame(rng.standard_normal((100, len(VF_FEATURES))), columns=list(VF_FEATURES))
    wins["vf_frac"] = (rng.random(100) > 0.7).astype(float)
    wins["record"] = "a"
    gbm = ag.GbmArrhythmiaModel.fit(beats, wins, params=ag.GbmParams(n_estimators=5, min_child_samples=5))
    gated = ag.GbmArrhythmiaModel(gbm.beat, gbm.vf, gbm.beat_features, gbm.vf_features, af_gate=(0.1, 0.5))
    p0, p1 = gbm.predict_proba(beats), gated.predict_proba(beats)
    g = np.arange(n) % 2 == 0
    assert (p1[g, 3] == 0).all() and (p0[g, 3] > 0).all()
    np.testing.assert_allclose(p1[g, 0], p0[g, 0] + p0[g, 3])
    np.testing.assert_allclose(p1[~g], p0[~g])
    for model, has in ((gbm, False), (gated, True)):
        run = tmp_path / f"toy-{has}"
        run.mkdir()
        entries = model.save(run)
        assert ("af_gate" in entries["gbm"]) is has
        meta = {"run_id": run.name, "status": "completed", "preset": "arrhythmia-6", "class_names": list("NLRAVF"),
                **entries}
        (run / "run.json").write_text(json.dumps(meta))
        back = ag.GbmArrhythmiaModel.load(registry.read_run(run))
        assert back.af_gate == model.af_gate
        np.testing.assert_allclose(back.predict_proba(beats), model.predict_proba(beats), atol=1e-9)
    meta["gbm"]["af_gate"] = {"irr_min": "x"}
    (run / "run.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="af_gate"):
        ag.GbmArrhythmiaModel.load(registry.read_run(run))
