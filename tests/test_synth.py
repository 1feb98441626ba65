"""Synthetic 12-lead ECGs: the clinical criteria are *measured* back from the signals (ST at J+60 ms against the
PR-segment baseline, Q-wave width/depth, QRS width from the spatial velocity, PR from lead II, RR variability),
lead relations hold exactly, the sidecar boxes contain the drawn traces (also after rotation), generation is
deterministic and atomic, and a tiny CNN learns the classes from tiny images."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from ecg_core.reports import synth
from ecg_core.core.errors import ConfigError, DatasetError
from ecg_core.core.labels import LEADS, get_preset
from ecg_core.reports.synth import (
    MI_TERRITORIES,
    RenderOptions,
    Signals12,
    SynthSpec,
    make_report,
    render_report,
    synth_signals,
)
from ecg_core.reports.synth_render import encode_image

PRESET = get_preset("cardiac-4")
CLEAN = RenderOptions(draw_grid=False, draw_text=False)


# ------------------------------------------------------------------------------------------- measurement helpers
def _pr_baseline(sig: Signals12, x: np.ndarray, k: int) -> float:
    """Mean of the PR segment (P offset .. QRS onset); 30..5 ms before the QRS when there is no P wave."""
    on, p_off = int(sig.qrs_onsets[k]), int(sig.p_offsets[k])
    if p_off >= 0 and on - p_off >= 3:
        return float(np.mean(x[p_off:on]))
    return float(np.mean(x[on - int(0.030 * sig.fs) : on - int(0.005 * sig.fs)]))


def _beats(sig: Signals12, kind: str = "N") -> list[int]:
    """Beats of ``kind`` whose whole complex (P .. T end) lies inside the record."""
    n = sig.n_samples
    return [k for k in range(len(sig.r_peaks)) if sig.beat_types[k] == kind
            and sig.qrs_onsets[k] > int(0.3 * sig.fs) and sig.t_ends[k] < n]


def st_level(sig: Signals12, lead: str) -> float:
    """Median over normal beats of the ST level at J+60 ms relative to the PR-segment baseline (mV)."""
    x = sig.lead(lead)
    vals = [x[sig.j_points[k] + int(round(0.06 * sig.fs))] - _pr_baseline(sig, x, k) for k in _beats(sig)]
    return float(np.median(vals))


def t_wave(sig: Signals12, lead: str) -> float:
    """Median signed T-wave extreme (mV) between J+80 ms and the T end, relative to the PR baseline."""
    x = sig.lead(lead)
    out = []
    for k in _beats(sig):
        seg = x[sig.j_points[k] + int(0.08 * sig.fs) : sig.t_ends[k]] - _pr_baseline(sig, x, k)
        out.append(seg[np.argmax(np.abs(seg))])
    return float(np.median(out))


def q_wave(sig: Signals12, lead: str) -> tuple[float, float, float]:
    """Median over beats of (width s, depth mV, R height mV) of the initial negative QRS deflection."""
    x = sig.lead(lead)
    out = []
    for k in _beats(sig):
        on, j = int(sig.qrs_onsets[k]), int(sig.j_points[k])
        seg = x[on - int(0.01 * sig.fs) : j + 1] - _pr_baseline(sig, x, k)
        r = max(float(seg.max()), 0.0)
        big = np.nonzero(np.abs(seg) > 0.02)[0]
        if len(big) == 0 or seg[big[0]] > 0:
            out.append((0.0, 0.0, r))
            continue
        s = e = int(big[0])
        while s > 0 and seg[s - 1] < 0:
            s -= 1
        while e < len(seg) - 1 and seg[e + 1] < 0:
            e += 1
        out.append(((e - s + 1) / sig.fs, -float(seg[s : e + 1].min()), r))
    w, d, r = np.median(np.array(out), axis=0)
    return float(w), float(d), float(r)


def pathological_q(sig: Signals12, lead: str) -> bool:
    w, d, r = q_wave(sig, lead)
    return w >= 0.040 or (d > 0.05 and d >= 0.25 * r)


def qrs_width(sig: Signals12, k: int) -> float:
    """QRS duration (s) of beat k: span where the spatial velocity of the 12 leads exceeds 15 % of its peak."""
    fs = sig.fs
    vel = np.sqrt(((np.diff(sig.data, axis=1) * fs) ** 2).sum(axis=0))
    r = int(sig.r_peaks[k])
    seg = vel[r - int(0.12 * fs) : r + int(0.15 * fs)]
    idx = np.nonzero(seg > 0.15 * seg.max())[0]
    return float(idx[-1] - idx[0]) / fs


def pr_interval(sig: Signals12, k: int) -> float:
    """PR interval (s): P-wave onset in lead II (10 % of the P peak) to the QRS onset."""
    x = sig.lead("II")
    on = int(sig.qrs_onsets[k])
    seg = x[on - int(0.26 * sig.fs) : on]
    i = int(np.argmax(seg))
    peak = seg[i]
    while i > 0 and seg[i] > 0.1 * peak:
        i -= 1
    return (len(seg) - i) / sig.fs


def rr_cv(sig: Signals12) -> float:
    rr = np.diff(sig.r_peaks) / sig.fs
    return float(rr.std() / rr.mean())


# ----------------------------------------------------------------------------------------------------- signals
ALL_KINDS = [("normal", None), ("myocardial_infarction", None), ("history_of_mi", None)] + [
    ("abnormal_heartbeat", s) for s in synth.SUBTYPES["abnormal_heartbeat"]
]


@pytest.mark.parametrize("cls,subtype", ALL_KINDS)
def test_einthoven_goldberger_exact_even_with_noise(cls, subtype):
    sig = synth_signals(SynthSpec(cls, subtype=subtype, noise=1.0, seed=11))
    L = sig.leads
    i, ii = L["I"], L["II"]
    for name, expected in (("III", ii - i), ("aVR", -(i + ii) / 2), ("aVL", i - ii / 2), ("aVF", ii - i / 2)):
        np.testing.assert_allclose(L[name], expected, rtol=0, atol=1e-12, err_msg=name)
    assert sig.data.shape == (12, 5000) and np.isfinite(sig.data).all()
    assert np.abs(sig.data).max() < 3.0  # mV: physiological range


@pytest.mark.parametrize("seed,hr", [(0, 60.0), (1, 72.0), (2, 85.0), (3, 100.0), (4, None), (5, 100.0)])
def test_normal_intervals_st_and_t_waves(seed, hr):
    sig = synth_signals(SynthSpec("normal", seed=seed, heart_rate=hr, noise=0.0))
    assert 58.0 <= sig.heart_rate <= 102.0
    for lead in LEADS:
        assert abs(st_level(sig, lead)) < 0.05, lead
    widths = [qrs_width(sig, k) for k in _beats(sig)]
    prs = [pr_interval(sig, k) for k in _beats(sig)]
    assert max(widths) < 0.110
    assert 0.120 <= min(prs) and max(prs) <= 0.200
    assert all(sig.p_onsets[k] >= 0 for k in _beats(sig))  # a P wave before every QRS
    for lead in ("I", "II", "V3", "V4", "V5", "V6"):
        assert t_wave(sig, lead) > 0.05, lead
    assert t_wave(sig, "aVR") < -0.05
    for lead in ("I", "II", "aVF", "V4", "V5", "V6"):
        assert not pathological_q(sig, lead), lead
    assert sig.pathology_leads == ()


@pytest.mark.parametrize("territory", list(MI_TERRITORIES))
@pytest.mark.parametrize("seed,severity", [(0, 0.0), (1, 0.3), (2, 0.7), (3, 1.0)])
def test_acute_mi_st_elevation_in_territory(territory, seed, severity):
    spec = SynthSpec("myocardial_infarction", territory=territory, severity=severity, seed=seed, noise=0.0)
    sig = synth_signals(spec)
    leads = MI_TERRITORIES[territory]
    assert sig.pathology_leads == leads
    st = {lead: st_level(sig, lead) for lead in LEADS}
    assert min(st[lead] for lead in leads) >= 0.1, st  # >= 1 mm in every (hence >= 2 contiguous) territory lead
    assert min(st.values()) <= -0.05, st  # reciprocal ST depression somewhere else
    hr = min(max(sig.spec.heart_rate, 60.0), 100.0)
    normal = synth_signals(SynthSpec("normal", seed=seed, noise=0.0, heart_rate=hr, axis_deg=sig.spec.axis_deg))
    hyper = [t_wave(sig, lead) - t_wave(normal, lead) for lead in leads]
    assert min(hyper) > 0.05, hyper  # hyperacute (taller) T waves in the territory


def test_acute_mi_st_survives_noise():
    sig = synth_signals(SynthSpec("myocardial_infarction", territory="inferior", severity=0.3, seed=5, noise=0.5))
    assert min(st_level(sig, lead) for lead in MI_TERRITORIES["inferior"]) >= 0.1


@pytest.mark.parametrize("territory", list(MI_TERRITORIES))
@pytest.mark.parametrize("seed,severity", [(0, 0.0), (1, 0.5), (2, 1.0)])
def test_history_of_mi_pathological_q_without_st_elevation(territory, seed, severity):
    sig = synth_signals(SynthSpec("history_of_mi", territory=territory, severity=severity, seed=seed, noise=0.0))
    for lead in MI_TERRITORIES[territory]:
        w, d, r = q_wave(sig, lead)
        assert w >= 0.040 or d >= 0.25 * r, (lead, w, d, r)
    assert max(st_level(sig, lead) for lead in LEADS) < 0.05


def test_atrial_fibrillation_irregular_without_p_waves():
    for seed in range(4):
        af = synth_signals(SynthSpec("abnormal_heartbeat", subtype="atrial_fibrillation", seed=seed, noise=0.0))
        sinus = synth_signals(SynthSpec("normal", seed=seed, noise=0.0))
        assert af.rhythm == "atrial_fibrillation" and sinus.rhythm == "sinus"
        assert rr_cv(af) > 0.10 and rr_cv(af) > 3 * rr_cv(sinus), (rr_cv(af), rr_cv(sinus))
        assert (af.p_onsets == -1).all()

        def tq_activity(sig: Signals12) -> float:  # f waves: V1 between T end and the next P (or QRS) onset
            x = sig.lead("V1")
            stops = np.where(sig.p_onsets >= 0, sig.p_onsets, sig.qrs_onsets)
            parts = [x[sig.t_ends[k] : stops[k + 1]] for k in range(len(sig.r_peaks) - 1)
                     if stops[k + 1] - sig.t_ends[k] > 10]
            return float(np.median([np.ptp(p) for p in parts]))

        assert tq_activity(af) > 2 * tq_activity(sinus) and tq_activity(af) > 0.05


def test_pvc_wide_early_with_compensatory_pause():
    for seed in range(4):
        sig = synth_signals(SynthSpec("abnormal_heartbeat", subtype="pvc", seed=seed, noise=0.0))
        kinds = sig.beat_types
        pvc = [k for k in range(1, len(kinds) - 1) if kinds[k] == "V"]
        sinus = [k for k in range(1, len(kinds) - 1) if kinds[k] == "N"]
        assert pvc, "at least one PVC inside the record"
        normal_w = np.median([qrs_width(sig, k) for k in sinus])
        rr = np.diff(sig.r_peaks) / sig.fs
        sinus_rr = np.median([rr[k] for k in range(len(rr)) if kinds[k] == "N" and kinds[k + 1] == "N"])
        for k in pvc:
            assert qrs_width(sig, k) >= 0.120 and qrs_width(sig, k) >= normal_w + 0.040
            assert sig.p_onsets[k] == -1
            assert rr[k - 1] < 0.75 * sinus_rr  # early
            assert abs(rr[k - 1] + rr[k] - 2 * sinus_rr) < 0.1 * sinus_rr  # full compensatory pause
        assert "II_rhythm" in sig.pathology_leads and len(sig.pathology_leads) >= 4


@pytest.mark.parametrize("subtype,lo,hi", [("bradycardia", 0, 50), ("tachycardia", 110, 300)])
def test_brady_and_tachycardia_rates(subtype, lo, hi):
    for seed in range(4):
        sig = synth_signals(SynthSpec("abnormal_heartbeat", subtype=subtype, seed=seed, noise=0.0))
        assert lo < sig.heart_rate < hi
        assert sig.rhythm == "sinus" and sig.pathology_leads == ("II_rhythm",)


def test_signals_deterministic_and_seed_sensitive():
    a = synth_signals(SynthSpec("myocardial_infarction", seed=4))
    b = synth_signals(SynthSpec("myocardial_infarction", seed=4))
    c = synth_signals(SynthSpec("myocardial_infarction", seed=5))
    assert np.array_equal(a.data, b.data) and a.spec == b.spec
    assert not np.array_equal(a.data, c.data)
    assert a.spec.territory in MI_TERRITORIES and a.spec.heart_rate is not None
    with pytest.raises(ValueError):
        a.data[0, 0] = 1.0  # read-only


def test_random_spec_covers_subtypes_and_fs():
    rng = np.random.default_rng(0)
    specs = [synth.random_spec("abnormal_heartbeat", rng) for _ in range(40)]
    assert {s.subtype for s in specs} == set(synth.SUBTYPES["abnormal_heartbeat"])
    sig = synth_signals(replace(specs[0], fs=250.0))
    assert sig.data.shape == (12, 2500) and sig.fs == 250.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"cls": "mi"}, "cls must be one of"),
        ({"cls": "normal", "subtype": "pvc"}, "subtype must be None for class 'normal'"),
        ({"cls": "abnormal_heartbeat", "subtype": "vf"}, "subtype for class 'abnormal_heartbeat' must be one of"),
        ({"cls": "normal", "territory": "inferior"}, "territory must be None for class 'normal'"),
        ({"cls": "history_of_mi", "territory": "posterior"}, "territory must be one of"),
        ({"cls": "normal", "heart_rate": 140}, r"heart_rate for normal must be in \[60, 100\] bpm; received 140"),
        ({"cls": "abnormal_heartbeat", "subtype": "bradycardia", "heart_rate": 70}, r"\[30, 49\]"),
        ({"cls": "normal", "severity": 1.5}, r"severity must be a number in \[0, 1\]"),
        ({"cls": "normal", "noise": -0.1}, "noise must be"),
        ({"cls": "normal", "fs": 100}, "fs must be"),
        ({"cls": "normal", "seed": -1}, "seed must be a non-negative integer"),
        ({"cls": "normal", "powerline_hz": 55}, "powerline_hz must be 50 or 60"),
    ],
)
def test_spec_validation_messages(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SynthSpec(**kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"px_per_mm": 0.5}, r"px_per_mm must be in \[1, 20\]"),
        ({"grid": "purple"}, "grid must be one of 'pink'"),
        ({"trace_rgb": (0, 0, 300)}, "trace_rgb must be"),
        ({"min_jpeg_quality": 5}, "min_jpeg_quality"),
        ({"artifacts": "yes"}, "artifacts must be True or False"),
    ],
)
def test_render_options_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RenderOptions(**kwargs)


def test_render_needs_ten_seconds():
    with pytest.raises(ConfigError, match="at least 10 s"):
        render_report(synth_signals(SynthSpec("normal", duration_s=5.0)))


# ------------------------------------------------------------------------------------------------------ images
def _union_mask(shape: tuple[int, int], boxes: list[list[int]]) -> np.ndarray:
    m = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def test_sidecar_fields_and_size():
    img, sc = make_report(SynthSpec("history_of_mi", territory="lateral", seed=3), RenderOptions())
    assert img.dtype == np.uint8 and img.shape == (796, 1120, 3)
    assert sc["image_size"] == [1120, 796]
    assert sc["class_key"] == "history_of_mi" and sc["class_id"] == PRESET.class_of("history_of_mi") == 3
    assert sc["territory"] == "lateral" and sc["pathology_leads"] == ["I", "aVL", "V5", "V6"]
    assert set(sc["boxes"]) == set(LEADS) | {"II_rhythm"}
    assert sc["px_per_mm"] == 4.0 and sc["paper_speed_mm_s"] == 25.0 and sc["gain_mm_mv"] == 10.0
    assert 50 <= sc["heart_rate_bpm"] <= 100 and sc["seed"] == 3
    json.dumps(sc)  # JSON-ready
    # 3 x 4 layout, column k shows [2.5k, 2.5k + 2.5) s; the rhythm strip spans the 4 columns below
    b = sc["boxes"]
    assert b["I"][1] < b["II"][1] < b["III"][1] < b["II_rhythm"][1]
    assert b["I"][0] < b["aVR"][0] < b["V1"][0] < b["V4"][0] and b["V4"][2] <= b["II_rhythm"][2] + 1
    assert sc["lead_windows_s"]["V1"] == [5.0, 7.5]
    assert sc["layout"][0] == ["I", "aVR", "V1", "V4"]


def test_lead_boxes_contain_their_traces():
    """Zero one lead, re-render: every pixel that changes belongs to that lead and must lie inside its box."""
    sig = synth_signals(SynthSpec("myocardial_infarction", territory="anterior", noise=0.4, seed=2))
    full, sc = render_report(sig, CLEAN, seed=1)
    h, w = full.shape[:2]
    for i, lead in enumerate(LEADS):
        data = sig.data.copy()
        data[i] = 0.0
        flat, _ = render_report(replace(sig, data=data), CLEAN, seed=1)
        changed = (full != flat).any(axis=2)
        keys = [lead, "II_rhythm"] if lead == "II" else [lead]
        inside = _union_mask((h, w), [sc["boxes"][k] for k in keys])
        n = int(changed.sum())
        assert n > 300, (lead, n)
        assert changed[inside].sum() >= 0.995 * n, (lead, changed[~inside].sum(), n)


def test_trace_pixels_are_substantial_in_every_box():
    sig = synth_signals(SynthSpec("normal", seed=0, noise=0.2))
    img, sc = render_report(sig, RenderOptions(trace_rgb=(0, 0, 255)), seed=0)
    trace = (img[..., 2] > 180) & (img[..., 0] < 90) & (img[..., 1] < 90)
    for key, (x0, y0, x1, y1) in sc["boxes"].items():
        cols = trace[y0:y1, x0:x1].any(axis=0)
        assert cols.mean() > 0.95, key  # the trace crosses the whole box
        assert trace[y0:y1, x0:x1].sum() >= (x1 - x0), key
    inside = _union_mask(trace.shape, list(sc["boxes"].values()))
    cal_zone = np.zeros_like(trace)
    cal_zone[:, : sc["boxes"]["I"][0]] = True  # calibration pulses left of the first column
    assert (trace & ~inside & ~cal_zone).sum() <= 0.005 * trace.sum()


def test_rotated_boxes_follow_the_trace():
    opts = RenderOptions(artifacts=True, max_rotation_deg=4.0, max_blur_px=0.0, min_jpeg_quality=95, max_shading=0.0,
                         max_sensor_noise=0.0, draw_grid=False, draw_text=False)
    sig = synth_signals(SynthSpec("normal", seed=1, noise=0.0))
    seed = next(s for s in range(50) if abs(render_report(sig, opts, seed=s)[1]["artifacts"]["rotation_deg"]) > 2)
    full, sc = render_report(sig, opts, seed=seed)
    unrotated = render_report(sig, replace(opts, artifacts=False), seed=seed)[1]["boxes"]
    assert sc["boxes"]["V6"] != unrotated["V6"]
    h, w = full.shape[:2]
    for lead in ("I", "aVR", "V4", "III", "V6"):
        data = sig.data.copy()
        data[LEADS.index(lead)] = 0.0
        flat, _ = render_report(replace(sig, data=data), opts, seed=seed)
        changed = np.abs(full.astype(int) - flat.astype(int)).max(axis=2) > 60
        inside = _union_mask((h, w), [sc["boxes"][lead]])
        assert changed.sum() > 100
        assert changed[inside].sum() >= 0.99 * changed.sum(), lead


def test_report_bytes_deterministic_per_seed():
    opts = RenderOptions(artifacts=True, grid="blue")
    spec = SynthSpec("abnormal_heartbeat", subtype="pvc", seed=9)
    a_img, a_sc = make_report(spec, opts)
    b_img, b_sc = make_report(spec, opts)
    c_img, _ = make_report(replace(spec, seed=10), opts)
    assert encode_image(a_img) == encode_image(b_img)
    assert json.dumps(a_sc, sort_keys=True) == json.dumps(b_sc, sort_keys=True)
    assert encode_image(a_img) != encode_image(c_img)


def test_black_and_white_and_resolution():
    img, sc = make_report(SynthSpec("normal", seed=2), RenderOptions(black_and_white=True, px_per_mm=8.0))
    assert img.shape == (1592, 2240, 3) and sc["px_per_mm"] == 8.0
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])


def test_highlight_only_touches_pathology_boxes():
    img, sc = make_report(SynthSpec("myocardial_infarction", territory="lateral", seed=1), CLEAN)
    hl = synth.highlight_leads(img, sc)
    changed = (hl != img).any(axis=2)
    inside = _union_mask(changed.shape, [sc["boxes"][k] for k in sc["pathology_leads"]])
    assert changed.sum() > 1000 and not changed[~inside].any()
    with pytest.raises(ConfigError, match="leads must be keys"):
        synth.highlight_leads(img, sc, ["V7"])
    table = synth.lead_layout_table(sc["pathology_leads"])
    assert table.shape == (3, 4) and table.iloc[0, 0].startswith("● I")


# ----------------------------------------------------------------------------------------------------- dataset
def test_generate_dataset_tree_manifest_and_determinism(tmp_path):
    calls = []
    out = tmp_path / "synth"
    df = synth.generate_dataset(out, per_class=2, seed=5, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (8, 8) and len(df) == 8
    assert sorted(p.name for p in out.iterdir()) == sorted([*synth.CLASS_KEYS, "synth_manifest.json"])
    for cls in synth.CLASS_KEYS:
        files = sorted(p.name for p in (out / cls).iterdir())
        assert files == [f"{cls}_0000.json", f"{cls}_0000.png", f"{cls}_0001.json", f"{cls}_0001.png"]
        sc = json.loads((out / cls / f"{cls}_0001.json").read_text())
        assert sc["class_key"] == cls and sc["class_id"] == PRESET.class_of(cls)
        img = cv2.imread(str(out / cls / f"{cls}_0001.png"))
        assert [img.shape[1], img.shape[0]] == sc["image_size"]
    manifest = json.loads((out / "synth_manifest.json").read_text())
    assert manifest["seed"] == 5 and manifest["counts"] == {c: 2 for c in synth.CLASS_KEYS}
    assert manifest["version"] == synth.SYNTH_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["synth"]  # no temporary folders left
    assert set(df["class_key"]) == set(synth.CLASS_KEYS) and Path(df["path"][0]).is_file()

    with pytest.raises(DatasetError, match="already exists"):
        synth.generate_dataset(out, per_class=1, seed=5)
    again = tmp_path / "again"  # same seed -> same bytes, also with 2 worker processes
    synth.generate_dataset(again, per_class=2, seed=5, workers=2, classes=["normal", "history_of_mi"])
    for rel in ("normal/normal_0001.png", "normal/normal_0001.json", "history_of_mi/history_of_mi_0000.png"):
        assert (out / rel).read_bytes() == (again / rel).read_bytes()
    synth.generate_dataset(out, per_class=1, seed=6, image_format="jpg", overwrite=True)
    assert sorted(p.name for p in (out / "normal").iterdir()) == ["normal_0000.jpg", "normal_0000.json"]


def test_generate_dataset_is_atomic_when_interrupted(tmp_path):
    def boom(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synth.generate_dataset(tmp_path / "ds", per_class=2, seed=1, progress=boom)
    assert list(tmp_path.iterdir()) == []  # neither a half-written dataset nor a temp folder
    (tmp_path / "empty").mkdir()  # an existing empty folder is fine
    synth.generate_dataset(tmp_path / "empty", per_class=1, seed=1, artifacts=False, classes=["normal"])
    assert (tmp_path / "empty" / "synth_manifest.json").is_file()
    with pytest.raises(ConfigError, match="per_class must be a positive integer"):
        synth.generate_dataset(tmp_path / "x", per_class=0, seed=1)


# ------------------------------------------------------------------------------------------------ learnability
def test_tiny_cnn_learns_the_classes():
    """~40 reports per class at 2 px/mm, grid area cropped, 64 x 96 grayscale; a 3-conv CNN must beat chance
    (0.25) by a wide margin on 20 held-out reports per class."""
    keras = pytest.importorskip("keras")
    ppm = 2.0

    def make(split: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for ci, cls in enumerate(synth.CLASS_KEYS):
            for i in range(n):
                rng = np.random.default_rng(synth.image_seed(split, ci, i))
                spec = synth.random_spec(cls, rng)
                img, _ = render_report(synth_signals(spec), RenderOptions(px_per_mm=ppm), seed=int(rng.integers(99)))
                g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[int(24 * ppm) : int(189 * ppm), int(7 * ppm) : int(272 * ppm)]
                xs.append(cv2.resize(g, (96, 64), interpolation=cv2.INTER_AREA))
                ys.append(PRESET.class_of(cls))
        return 1.0 - np.stack(xs)[..., None].astype("float32") / 255.0, np.array(ys)

    x_train, y_train = make(1, 40)
    x_test, y_test = make(2, 20)
    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((64, 96, 1)),
        layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dropout(0.3),
        layers.Dense(32, activation="relu"), layers.Dense(4, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=25, batch_size=16, verbose=0)
    acc = float((model.predict(x_test, verbose=0).argmax(axis=1) == y_test).mean())
    assert acc >= 0.6, acc
