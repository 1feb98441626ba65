"""ecg_core.signals.arrhythmia, sources, spectral_cam and ecg_core.viz.signals: demo records, segments, uploads, the
inference path, Grad-CAM in time and frequency (hand-made maps), figures, the spectral-build command and the training
job's spectral config."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _arrhythmia_run import RUN_ID, SIZE, tiny_models  # noqa: F401  (session fixture)
from ecg_core.core.formatting import fmt_value_ci
from ecg_core.signals import arrhythmia as arr
from ecg_core.signals import sources, spectral_cam
from ecg_core.ml import registry
from ecg_core.viz import signals as viz_signals
from ecg_core.cli import main
from ecg_core.core.errors import ConfigError, EcgCoreError, ModelLoadError, SignalLoadError
from ecg_core.imaging.preprocess import PreprocessConfig, preprocess_file
from ecg_core.signals.demo import DEMO_RECORD_NAMES, ensure_demo_records
from ecg_core.signals.records import read_record
from ecg_core.signals.segments import SegmentConfig
from ecg_core.signals.spectral import SpectralConfig, segment_to_image


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return ensure_demo_records(tmp_path_factory.mktemp("demo"))[0].parent


# ---------------------------------------------------------------------------------------------------- demo records
def test_demo_records_are_deterministic_and_generated_once(tmp_path: Path) -> None:
    a = ensure_demo_records(tmp_path / "a")
    b = ensure_demo_records(tmp_path / "b")
    assert [p.name for p in a] == list(DEMO_RECORD_NAMES)
    for name in DEMO_RECORD_NAMES:
        for ext in (".hea", ".dat", ".atr"):
            assert (tmp_path / "a" / f"{name}{ext}").read_bytes() == (tmp_path / "b" / f"{name}{ext}").read_bytes()
    dat = tmp_path / "a" / "demo_pvc.dat"
    before = dat.stat().st_mtime_ns
    assert ensure_demo_records(tmp_path / "a") == a and dat.stat().st_mtime_ns == before  # not rewritten
    assert not list((tmp_path / "a").glob(".demo-tmp-*"))  # no temporary folder left behind
    stamp = tmp_path / "a" / "demo_signals.json"
    stamp.write_text(json.dumps({"version": -1}))  # an older generator: regenerated
    ensure_demo_records(tmp_path / "a")
    assert json.loads(stamp.read_text())["version"] >= 1 and json.loads(stamp.read_text())["synthetic"] is True
    rec = read_record(a[0])
    assert rec.fs == 360 and rec.channel_names == ("MLII",) and rec.duration_s == pytest.approx(30.0)
    assert "SYNTHETIC" in (tmp_path / "a" / "demo_pvc.hea").read_text()


def test_demo_records_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SignalLoadError, match="ECG_INSIGHT_HOME"):
        ensure_demo_records(blocker / "sub")


def test_sources(demo_dir: Path, tmp_path: Path) -> None:
    demos = sources.demo_sources(demo_dir)
    assert [s.path.name for s in demos] == list(DEMO_RECORD_NAMES) and {s.kind for s in demos} == {"demo"}
    assert sources.shared_sources(tmp_path / "absent") == []
    for folder in ("zz-plain", "aa-annotated"):
        (tmp_path / "signals" / folder).mkdir(parents=True)
        (tmp_path / "signals" / folder / "r1.hea").write_text("r1 1 360 10\n")
    (tmp_path / "signals" / "zz-plain" / "r0.atr").write_bytes(b"")  # annotated collections come first
    labels = [s.label for s in sources.shared_sources(tmp_path)]
    assert labels == ["zz-plain · r1", "aa-annotated · r1"]


# ---------------------------------------------------------------------------------------------------- segments
def test_record_segments_modes(demo_dir: Path) -> None:
    rec = read_record(demo_dir / "demo_vf")
    beats = arr.record_segments(rec, mode="beats")
    kinds = {g.kind for g in beats}
    assert kinds == {"beat", "rhythm"} and {g.label for g in beats if g.kind == "rhythm"} == {"VF"}
    assert [g.sample for g in beats] == sorted(g.sample for g in beats)
    wins = arr.record_segments(rec, mode="windows")
    cfg = SegmentConfig()
    assert abs(len(wins) - int((30.0 - cfg.pre_s - cfg.post_s) / cfg.rhythm_stride_s + 1)) <= 1
    vf = [g for g in wins if g.label == "VF"]
    assert vf and all(10.0 <= g.time_s - cfg.pre_s and g.time_s + cfg.post_s <= 22.0 for g in vf)
    table = arr.segment_table(beats, pre_s=cfg.pre_s, post_s=cfg.post_s)
    np.testing.assert_allclose(table["end_s"] - table["start_s"], cfg.pre_s + cfg.post_s)
    ann = arr.annotation_table(rec)
    assert set(ann["symbol"]) == {"N"} and len(ann) == 21 and "+" not in set(ann["symbol"])
    with pytest.raises(ConfigError, match="expected one of 'beats', 'windows'"):
        arr.record_segments(rec, mode="beat")
    short = type(rec)("short", rec.fs, rec.signal[:100], rec.channel_names)
    with pytest.raises(SignalLoadError, match="gave no segment of 0.70 s with mode='windows'"):
        arr.record_segments(short, mode="windows")


def test_strip_signal_is_filtered_lead(demo_dir: Path) -> None:
    rec = read_record(demo_dir / "demo_pvc")
    t, raw, name = arr.strip_signal(rec, cleaned=False)
    _, filt, _ = arr.strip_signal(rec)
    assert name == "MLII" and t.shape == raw.shape == filt.shape and t[1] == pytest.approx(1 / 360)
    assert abs(raw.mean()) > abs(filt.mean())  # baseline wander removed


# ---------------------------------------------------------------------------------------------------- uploads
def _demo_files(demo_dir: Path, name: str = "demo_pvc", exts=(".hea", ".dat", ".atr")) -> list[tuple[str, bytes]]:
    return [(f"{name}{e}", (demo_dir / f"{name}{e}").read_bytes()) for e in exts]


def test_save_upload_wfdb_and_csv(demo_dir: Path, tmp_path: Path) -> None:
    p = sources.save_upload(_demo_files(demo_dir), tmp_path)
    rec = sources.load_record(p)
    assert rec.record_id == "demo_pvc" and len(rec.annotations) == 35
    assert sources.save_upload(list(reversed(_demo_files(demo_dir))), tmp_path) == p  # same upload -> same folder
    no_ann = sources.load_record(sources.save_upload(_demo_files(demo_dir, exts=(".hea", ".dat")), tmp_path))
    assert len(no_ann.annotations) == 0
    csv = "time,ecg\n" + "\n".join(f"{i / 250:.4f},{np.sin(i / 10):.4f}" for i in range(1000))
    rec_csv = sources.load_record(sources.save_upload([("mine.csv", csv.encode())], tmp_path))
    assert rec_csv.fs == pytest.approx(250.0) and rec_csv.n_samples == 1000
    assert sources.record_key(p) != sources.record_key(tmp_path / "nothing")


@pytest.mark.parametrize(
    "files, match",
    [
        ([], "no file"),
        ([("x.exe", b"MZ")], "unsupported type"),
        ([("bad name.hea", b"x")], "not allowed"),
        ([("a.hea", b"x"), ("b.hea", b"y")], "2 headers"),
        ([("a.hea", b"x"), ("a.csv", b"1\n")], "WFDB files and a CSV"),
        ([("a.dat", b"x")], "expected a WFDB header"),
        ([("a.hea", b"x"), ("a.dat", b"x"), ("b.atr", b"x")], "does not belong to record 'a'"),
    ],
)
def test_save_upload_errors(files, match: str, tmp_path: Path) -> None:
    with pytest.raises(SignalLoadError, match=match) as info:
        sources.save_upload(files, tmp_path)
    assert isinstance(info.value, EcgCoreError)


def test_upload_missing_signal_file_is_a_clear_error(demo_dir: Path, tmp_path: Path) -> None:
    p = sources.save_upload(_demo_files(demo_dir, exts=(".hea",)), tmp_path)
    with pytest.raises(SignalLoadError, match="signal file cannot be read"):
        sources.load_record(p)


def test_a_new_upload_set_replaces_the_earlier_files() -> None:
    """Issue 19.8: the browser's uploader keeps the files dropped before; the set added last is the record."""
    first = sources.choose_upload([("1", "100.hea"), ("2", "100.dat")])
    assert first.use == ("1", "2") and first.ignored == ()
    both = [("1", "100.hea"), ("2", "100.dat"), ("3", "101.hea"), ("4", "101.dat")]
    second = sources.choose_upload(both, first)
    assert second.use == ("3", "4") and second.ignored == ("100.hea", "100.dat")
    assert sources.choose_upload(both, second).use == ("3", "4")  # a rerun keeps it
    atr = sources.choose_upload([("3", "101.hea"), ("4", "101.dat"), ("5", "101.atr")], second)
    assert atr.use == ("3", "4", "5")  # the record's own annotations join it
    csv = sources.choose_upload([*both, ("6", "mine.csv")], second)
    assert csv.use == ("6",) and len(csv.ignored) == 4
    gone = sources.choose_upload([("1", "100.hea"), ("2", "100.dat")], second)  # 101 removed with x
    assert gone.use == ("1", "2")
    again = sources.choose_upload([("1", "100.hea"), ("2", "100.dat"), ("7", "100.dat")], first)
    assert again.use == ("1", "7")  # the same name dropped again: the newer file


def test_upload_and_reading_errors_speak_the_users_language(tmp_path: Path) -> None:
    for files in ([("a.hea", b"x"), ("b.hea", b"y")], [("a.dat", b"x")], [("x.exe", b"MZ")], []):
        with pytest.raises(SignalLoadError) as info:
            sources.save_upload(files, tmp_path)
        assert "save_upload" not in str(info.value) and "received 2 headers" not in str(info.value)
    (tmp_path / "lost.hea").write_text("lost 1 360 100\nlost.dat 16 200 16 0 0 0 0 MLII\n")
    with pytest.raises(SignalLoadError, match="signal file cannot be read") as info:
        sources.load_record(tmp_path / "lost")
    assert "read_record" not in str(info.value)
    (tmp_path / "x.csv").write_text("1\n2\n3\n")
    with pytest.raises(SignalLoadError, match="enter its sampling rate") as info:
        sources.load_record(tmp_path / "x.csv")
    assert "read_csv_signal" not in str(info.value) and "fs=None" not in str(info.value)


def _record(fs: float, names: tuple[str, ...], seconds: float = 10.0):
    from ecg_core.signals.records import Record

    n = int(fs * seconds)
    return Record("r", fs, np.zeros((n, len(names))), names)


SHIPPED_META = {"spectral": {"records": ["101", "106", "203", "418", "419"],
                             "segment_config": {"lead_preference": ["MLII", "II"]}}}
TWELVE = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def test_record_warnings_name_the_rate_and_the_source() -> None:
    """Issue 19.8: a 100 Hz 12-lead record was classified without a word about its rate or source."""
    train = arr.training_signals(SHIPPED_META)
    assert train.rates == {360.0: 3, 250.0: 2} and "MIT-BIH Arrhythmia" in train.databases
    warn = arr.record_warnings(_record(100.0, TWELVE), SHIPPED_META, lead="II")
    assert len(warn) == 2
    assert "sampled at 100 Hz" in warn[0] and "360 Hz" in warn[0]
    assert "12-lead recording" in warn[1] and "not on standard 12-lead ECGs" in warn[1]
    assert arr.record_warnings(_record(360.0, ("MLII", "V1")), SHIPPED_META, lead="MLII") == []
    assert arr.record_warnings(_record(250.0, ("ECG", "ECG")), SHIPPED_META) == []  # VFDB's rate
    v1 = arr.record_warnings(_record(360.0, ("MLII", "V1")), SHIPPED_META, lead="V1")
    assert len(v1) == 1 and "trained on lead MLII" in v1[0]
    stored = {"spectral": {"records": ["x1"], "record_fs": {"x1": 500.0}}}  # newer builds store the rates
    assert arr.training_signals(stored).rates == {500.0: 1}
    assert arr.record_warnings(_record(500.0, ("MLII",)), stored) == []


def test_lead_choice_and_the_no_annotation_heading() -> None:
    assert arr.lead_options(_record(360.0, ("MLII", "V1"))) == (["MLII", "V1"], 0)
    assert arr.lead_options(_record(100.0, TWELVE)) == (list(TWELVE), 1)  # II
    assert arr.lead_options(_record(360.0, ("V1", "V5"))) == (["V1", "V5"], 0)
    assert arr.lead_options(_record(360.0, ("ECG1", "ECG2")))[1] == 0
    cfg = arr.with_lead(SegmentConfig(), "V1")
    assert cfg.lead_preference == ("V1", "MLII", "II") and arr.with_lead(cfg, None) is cfg
    assert arr.segment_heading("?", None) == "no annotation"
    assert arr.segment_heading("", None) == "no annotation"
    assert arr.segment_heading("V", "V") == "annotated V (V)"
    assert arr.segment_heading("F", None) == "annotated F (no class of this model)"
    assert arr.segment_heading("(VF", "VF") == "annotated VF episode (VF)"


def test_band_labels_of_the_cam_profiles_do_not_overlap() -> None:
    """Issue 19.8: the labels of the beat regions and frequency bands sat on one line at the top and overlapped."""
    im, cfg = _image()
    m = spectral_cam.map_cam(np.random.default_rng(0).random((32, 40)), im, pre_s=cfg.pre_s)
    fig = viz_signals.cam_profiles(m, pre_s=cfg.pre_s)
    labels = [a for a in fig.layout.annotations if a.yref != "paper"]  # not the subplot titles
    assert len(labels) == 6
    for xref in {a.xref for a in labels}:
        panel = sorted((a for a in labels if a.xref == xref), key=lambda a: a.x)
        assert len(panel) == 3
        assert len({a.y for a in panel}) == 3 and all(a.y < 1.0 for a in panel)  # own line each, under the title
        assert [a.xanchor for a in panel] == ["left", "center", "right"]  # the outer ones stay inside the panel
    assert any(a.text.startswith("5-15 Hz:") for a in labels)  # frequency labels name their band


def test_tiny_run_stores_the_record_rates(tiny_models: Path) -> None:
    meta = json.loads((tiny_models / RUN_ID / "run.json").read_text())
    rates = meta["spectral"]["record_fs"]
    assert set(rates) == set(meta["spectral"]["records"]) and set(rates.values()) == {360.0}
    assert arr.training_signals(meta).rates == {360.0: len(rates)}


# ---------------------------------------------------------------------------------------------------- Grad-CAM mapping
def _image(method: str = "stft", **kw) -> tuple:
    cfg = SegmentConfig()
    x = np.sin(2 * np.pi * 8 * np.arange(cfg.window_samples) / cfg.fs_target)
    return segment_to_image(x, cfg.fs_target, cfg=SpectralConfig(method=method, size=(32, 40), **kw)), cfg


@pytest.mark.parametrize("freq_scale", ["linear", "log"])
def test_map_cam_hot_spot_lands_on_its_time_and_frequency(freq_scale: str) -> None:
    im, cfg = _image(freq_scale=freq_scale)
    cam = np.zeros((32, 40))
    cam[5, 30] = 1.0  # row 5 (a high frequency: row 0 is the highest), column 30 (late in the window)
    m = spectral_cam.map_cam(cam, im, pre_s=cfg.pre_s, anchor_time_s=12.0)
    assert m.row_unit == "Hz" and m.peak_row_value == pytest.approx(im.freqs[5])
    assert m.peak_time_rel_s == pytest.approx(im.times[30] - cfg.pre_s)
    # column j is (j + 0.5) * 0.7 s / 40 after the window start, i.e. 0.25 s before the R peak at 12 s
    assert m.times_rel_s[30] == pytest.approx((30.5 * 0.7 / 40) - 0.25)
    np.testing.assert_allclose(m.record_times_s, 12.0 - cfg.pre_s + im.times)
    assert int(np.argmax(m.time_profile)) == 30 and int(np.argmax(m.row_profile)) == 5
    assert m.time_profile.max() == pytest.approx(1.0) and m.row_profile.max() == pytest.approx(1.0)
    assert m.regions["ST segment / T wave (after the QRS)"] == pytest.approx(1.0)
    assert sum(m.regions.values()) == pytest.approx(1.0) and sum(m.bands.values()) == pytest.approx(1.0)
    assert m.bands["> 15 Hz (sharp QRS edges, noise)"] == pytest.approx(1.0)
    assert "+" in m.summary() and "ST segment" in m.summary()


def test_map_cam_qrs_stripe_low_band_and_resize() -> None:
    im, cfg = _image()
    rel = im.times - cfg.pre_s
    cam = np.zeros((32, 40))
    cam[:, np.abs(rel) < 0.05] = 1.0  # a vertical stripe around the R peak
    m = spectral_cam.map_cam(cam, im, pre_s=cfg.pre_s)
    assert m.regions["QRS complex"] == pytest.approx(1.0) and abs(m.peak_time_rel_s) < 0.05
    low = np.zeros((32, 40))
    low[im.freqs < 5, :] = 1.0  # a horizontal band below 5 Hz
    assert spectral_cam.map_cam(low, im, pre_s=cfg.pre_s).bands["< 5 Hz (P and T waves, slow VF)"] == pytest.approx(1.0)
    big = np.zeros((64, 80))  # model input twice the image size: resized onto the image grid
    big[10:12, 60:62] = 1.0
    mb = spectral_cam.map_cam(big[..., None], im, pre_s=cfg.pre_s)
    assert mb.cam.shape == (32, 40)
    assert abs(mb.peak_row_value - im.freqs[5]) <= 2 * abs(im.freqs[1] - im.freqs[0])
    assert abs(mb.peak_time_rel_s - (im.times[30] - cfg.pre_s)) <= 2 * (im.times[1] - im.times[0])


def test_map_cam_rhythm_waveform_flat_and_errors() -> None:
    im, cfg = _image()
    rhythm = spectral_cam.map_cam(np.ones((32, 40)), im, pre_s=cfg.pre_s, beat=False)
    assert rhythm.regions == {} and rhythm.bands and "window anchor" in rhythm.summary()
    wave, _ = _image("waveform")
    mw = spectral_cam.map_cam(np.ones((32, 40)), wave, pre_s=cfg.pre_s)
    assert mw.row_unit == "mV" and mw.bands == {} and mw.row_values[0] > mw.row_values[-1]
    flat = spectral_cam.map_cam(np.zeros((32, 40)), im, pre_s=cfg.pre_s)
    assert flat.is_flat and "flat" in flat.summary() and math.isclose(sum(flat.regions.values()), 0.0)
    with pytest.raises(ConfigError, match="2-D"):
        spectral_cam.map_cam(np.zeros((2, 32, 40)), im, pre_s=cfg.pre_s)


# ---------------------------------------------------------------------------------------------------- model path
def test_model_inputs_match_the_training_path(tmp_path: Path) -> None:
    import cv2

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(3, 40, 48), dtype=np.uint8)
    pre = PreprocessConfig(crop_mode="none", clahe=False, median_ksize=0, height=40, width=48, channels=1)
    x = arr.model_inputs(imgs, pre)
    assert x.shape == (3, 40, 48, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], imgs / 255.0, atol=1e-6)  # spectral settings feed the image unchanged
    cv2.imwrite(str(tmp_path / "a.png"), imgs[1])
    np.testing.assert_array_equal(preprocess_file(tmp_path / "a.png", pre), np.rint(x[1] * 255).astype(np.uint8))
    with pytest.raises(ConfigError, match="uint8"):
        arr.model_inputs(imgs.astype(float), pre)


def test_tiny_run_carries_spectral_config_and_predicts(tiny_models: Path, demo_dir: Path) -> None:
    run_dir = tiny_models / RUN_ID
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["spectral"]["spectral_config"]["size"] == list(SIZE) and meta["split"]["by"] == "record"
    assert json.loads((run_dir / "spectral_config.json").read_text()) == meta["spectral"]  # copied by train.py
    runs = arr.arrhythmia_runs(tiny_models)
    assert [r.run_id for r in runs] == [RUN_ID]
    splits = arr.record_splits(run_dir)
    assert len(splits) == 9 and set(splits.values()) == {"train", "val", "test"}
    bundle = arr.load_arrhythmia_model(runs[0])
    assert bundle.class_keys == ("N", "L", "R", "A", "V", "VF") and bundle.spec_cfg.size == SIZE
    segs = arr.record_segments(read_record(demo_dir / "demo_pvc"), bundle.seg_cfg)
    table = arr.predict_segments(bundle, segs)
    probs = table[[f"p_{k}" for k in bundle.class_keys]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert len(table) == 35 and set(table["pred"]) <= set(bundle.class_keys)
    assert table["agree"].notna().all() and set(arr.agreement_table(table).index) <= {"N", "A", "V"}
    filters = arr.segment_filters(table)
    assert len(filters["all segments"]) == 35 and len(filters["annotated V"]) == 4 and len(filters["annotated A"]) == 2
    assert all(table["pred"].iloc[filters[f"predicted {k}"]].eq(k).all() for k in set(table["pred"]))
    assert "predicted N" not in arr.segment_filters(table.drop(columns=["pred"]))
    cam_fn = spectral_cam.SpectralGradcam(bundle.model)
    img = arr.spectral_images(segs[:1], bundle.spec_cfg)[0]
    cam = cam_fn(arr.model_inputs(img.image[None], bundle.preprocess)[0], class_index=4)
    assert cam.shape == SIZE and 0.0 <= cam.min() and cam.max() <= 1.0
    with pytest.raises(ConfigError, match="6 classes"):
        cam_fn(np.zeros((*SIZE, 1), np.float32), class_index=6)
    facts = arr.run_facts(bundle.meta)
    assert facts["architecture"] == "shallow_cnn" and facts["image"] == "stft 32x32"
    assert "leave-one-record-out macro-F1" not in facts  # this run has no such CV
    lo = arr.run_facts({**bundle.meta, "loro": {"macro_f1": 0.647, "macro_f1_ci": [0.483, 0.748]}})
    assert lo["leave-one-record-out macro-F1"] == fmt_value_ci(0.647, [0.483, 0.748]) != ""


def test_non_arrhythmia_runs_are_not_offered(tiny_models: Path, tmp_path: Path) -> None:
    import shutil

    models = tmp_path / "models"
    shutil.copytree(tiny_models / RUN_ID, models / "cardiac")
    registry.update_run(models / "cardiac", preset="cardiac-4", run_id="cardiac")
    shutil.copytree(tiny_models / RUN_ID, models / "nospec")
    meta = json.loads((models / "nospec" / "run.json").read_text())
    meta.pop("spectral")
    registry.atomic_write_json(models / "nospec" / "run.json", {**meta, "run_id": "nospec"})
    assert arr.arrhythmia_runs(models) == []
    with pytest.raises(ModelLoadError, match="preset 'cardiac-4'"):
        arr.load_arrhythmia_model(models / "cardiac")
    with pytest.raises(ModelLoadError, match="no spectral config"):
        arr.load_arrhythmia_model(models / "nospec")


# ---------------------------------------------------------------------------------------------------- figures
def test_figures(demo_dir: Path) -> None:
    rec = read_record(demo_dir / "demo_vf")
    t, x, name = arr.strip_signal(rec)
    segs = arr.record_segments(rec)
    table = arr.segment_table(segs, pre_s=0.25, post_s=0.45).assign(
        pred="N", pred_name="Normal beat", confidence=0.9, agree=1.0)
    fig = viz_signals.signal_strip(t, x, annotations=arr.annotation_table(rec), predictions=table,
                                   episodes=arr.rhythm_table(rec), selected=(1.0, 1.7), window=(0, 20), view=(0, 10),
                                   lead_name=name)
    assert fig.layout.xaxis.rangeslider.visible and list(fig.layout.xaxis.range) == [0, 10]
    assert {tr.name for tr in fig.data} >= {"MLII", "annotation", "prediction (beat)", "prediction (rhythm)"}
    assert max(tr.x.max() for tr in fig.data if tr.x is not None and len(tr.x)) <= 20
    long = np.arange(200_000) / 360.0
    dec = viz_signals.signal_strip(long, np.sin(long), max_points=1000)
    assert len(dec.data[0].x) <= 1000
    im, cfg = _image()
    m = spectral_cam.map_cam(np.ones((32, 40)), im, pre_s=cfg.pre_s)
    sf = viz_signals.spectral_figure(im, pre_s=cfg.pre_s, cam=m)
    assert len(sf.data) == 3 and sf.data[0].y[0] < sf.data[0].y[-1]  # y ascending: the highest row is on top
    assert sf.data[0].x[0] == pytest.approx(im.times[0] - cfg.pre_s)
    assert len(viz_signals.spectral_figure(im, pre_s=cfg.pre_s).data) == 1
    cp = viz_signals.cam_profiles(m, segment=segs[0].x, fs=segs[0].fs, pre_s=cfg.pre_s)
    assert len(cp.data) == 3
    assert viz_signals.cam_profiles(spectral_cam.map_cam(np.zeros((32, 40)), im, pre_s=0.25)).layout.annotations
    pb = viz_signals.probability_bars({"N": 0.7, "V": 0.3}, names=["Normal beat", "PVC"], annotated="V")
    assert list(pb.data[0].y) == ["Normal beat", "PVC"]
    assert viz_signals.signal_strip(np.zeros(0), np.zeros(0)).layout.annotations


# ---------------------------------------------------------------------------------------------------- CLI
def test_spectral_build_cli_on_demo_records(demo_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "spec"
    argv = ["spectral-build", "--records", str(demo_dir), "--out", str(out), "--split-by", "record", "--size",
            "32x48", "--max-per-class-per-record", "5", "--test", "0.34", "--val", "0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    index = pd.read_csv(out / "index.csv", dtype={"record": str})
    assert f"wrote {len(index)} stft images (32x48) of 3 records" in printed and "--keep-copies" in printed
    assert set(index["record"]) == set(DEMO_RECORD_NAMES) and (index.groupby("record")["split"].nunique() == 1).all()
    meta = json.loads((out / "spectral_config.json").read_text())
    assert meta["spectral_config"]["size"] == [32, 48] and meta["max_per_class_per_record"] == 5
    assert main(argv) == 2 and "not empty" in capsys.readouterr().err  # refuses to overwrite
    one = tmp_path / "one"
    assert main(["spectral-build", "--records", str(demo_dir / "demo_vf"), "--out", str(one), "--split-by", "none",
                 "--method", "cwt", "--size", "16"]) == 0
    assert set(pd.read_csv(one / "index.csv")["label"]) == {"N", "VF"}
    for bad, msg in ((["--records", str(tmp_path / "missing")], "expected a folder of WFDB records"),
                     (["--records", str(demo_dir), "--size", "big"], "--size 'big'")):
        assert main(["spectral-build", "--out", str(tmp_path / "x"), *bad]) == 2
        assert msg in capsys.readouterr().err
