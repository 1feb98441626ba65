"""Tests of ecg_core.signals.records, filters, segments and demo (records, beats, VF windows) and
ecg_core.signals.spectral and spectral_dataset (images, splits, dataset builder).

Tests marked ``needs_data`` use the MIT-BIH files of ``../shared/data/signals`` and are skipped when that folder is
absent (a fresh clone); the rest run on the synthetic demo records (``signals.ensure_demo_records``) and on toy arrays.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecg_core.core.errors import ConfigError, DatasetError, EcgCoreError, SignalLoadError
from ecg_core.signals.demo import ensure_demo_records
from ecg_core.signals.filters import resample
from ecg_core.signals.records import Record, read_csv_signal, read_record, write_csv_signal
from ecg_core.signals.segments import SegmentConfig, extract_segments, rhythm_episodes, segments_frame
from ecg_core.signals.spectral import SpectralConfig, segment_to_image, segments_to_images
from ecg_core.signals.spectral_dataset import (
    build_spectral_dataset,
    load_spectral_dataset,
    record_kfold,
    record_split,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "signals"
MITDB = DATA / "mitdb-ds1"
VFDB = DATA / "vfdb-dev"
DEMO = ensure_demo_records()[0].parent  # synthetic records, generated on first use (<app home>/demo-signals)
needs_data = pytest.mark.skipif(
    not (MITDB.is_dir() and VFDB.is_dir()),
    reason=f"MIT-BIH signal data not found at {DATA} (only present beside the repo as ../shared)",
)

# Published beat counts (MIT-BIH Arrhythmia Database directory, physionet.org/content/mitdb) for a few records.
PUBLISHED = {
    "101": {"N": 1860, "A": 3},
    "106": {"N": 1507, "V": 520},
    "109": {"L": 2492, "V": 38},
    "118": {"R": 2166, "A": 96, "V": 16},
    "124": {"R": 1531, "A": 2 + 29, "V": 47},  # A: 2 A + 29 J (nodal premature)
    "207": {"L": 1457, "R": 86, "A": 107, "V": 105 + 105},  # V: 105 V + 105 E
    "208": {"N": 1586, "A": 2, "V": 992},  # A: 2 S
}
# The mapping written out independently of ecg_core (see the ecg_core.signals.segments docstring).
REFERENCE_MAP = {"N": "N", "L": "L", "R": "R", "A": "A", "a": "A", "J": "A", "S": "A", "V": "V", "E": "V"}


def _counts(segments) -> dict[str, int]:
    return dict(collections.Counter(g.label for g in segments))


# ---------------------------------------------------------------------------------------------------------- beats
@needs_data
@pytest.mark.parametrize("rec_id", sorted(PUBLISHED))
def test_beat_counts_match_annotations(rec_id: str) -> None:
    import wfdb

    ann = wfdb.rdann(str(MITDB / rec_id), "atr")
    reference = collections.Counter(REFERENCE_MAP[s] for s in ann.symbol if s in REFERENCE_MAP)
    got = _counts(s for s in extract_segments(read_record(MITDB / rec_id)) if s.kind == "beat")
    assert set(got) == set(reference)
    for cls, n in reference.items():
        assert n - 2 <= got[cls] <= n, (cls, got[cls], n)  # only beats too close to the record's ends may drop
        assert abs(got[cls] - PUBLISHED[rec_id].get(cls, 0)) <= 2, (cls, got[cls], PUBLISHED[rec_id])


@needs_data
def test_segments_have_fixed_length_and_point_back_to_the_record() -> None:
    cfg = SegmentConfig(fs_target=250, pre_s=0.25, post_s=0.45)
    rec = read_record(MITDB / "106")
    segs = extract_segments(rec, cfg=cfg)
    assert {g.x.shape for g in segs} == {(cfg.window_samples,)} and cfg.window_samples == 175
    assert all(g.x.dtype == np.float32 and g.fs == 250 for g in segs)
    annotated = set(rec.annotations.sample.tolist())
    assert all(g.sample in annotated for g in segs)  # sample is the annotation index at 360 Hz
    df = segments_frame(segs)
    assert list(df.columns) == ["record", "sample", "time_s", "label", "symbol", "kind"]
    np.testing.assert_allclose(df["time_s"], df["sample"] / 360.0)


@needs_data
@pytest.mark.parametrize("folder, rec_id", [("vfdb-dev", "419"), ("vfdb-dev", "424"), ("mitdb-ds1", "207")])
def test_vf_windows_lie_inside_vf_episodes(folder: str, rec_id: str) -> None:
    cfg = SegmentConfig()
    rec = read_record(DATA / folder / rec_id)
    eps = rhythm_episodes(rec)
    vf = eps[eps["rhythm"].isin(["VF", "VFL", "VFIB"])]
    assert len(vf) > 0
    segs = [g for g in extract_segments(rec, cfg=cfg) if g.label == "VF"]
    assert len(segs) > 0 and all(g.kind == "rhythm" and g.symbol.startswith("(VF") for g in segs)
    one = 1.0 / cfg.fs_target  # rounding of the anchor to the record's rate
    for g in segs:
        start, end = g.time_s - cfg.pre_s, g.time_s + cfg.post_s
        inside = (vf["start_s"] <= start + one) & (end - one <= vf["end_s"])
        assert inside.any(), (g.time_s, start, end)
    # sliding windows: about one per stride per episode
    expected = sum(
        max(0, int((e - s - cfg.window_samples / cfg.fs_target) // cfg.rhythm_stride_s) + 1)
        for s, e in zip(vf["start_s"], vf["end_s"])
    )
    assert abs(len(segs) - expected) <= len(vf)


@needs_data
def test_vfdb_record_without_beat_annotations() -> None:
    rec = read_record(VFDB / "418", channel=0)
    assert rec.signal.ndim == 1 and rec.fs == 250 and not rec.annotations.has_beats
    assert all(not a.endswith("\x00") for a in rec.annotations.aux)
    assert {"N", "VFL"} <= set(rhythm_episodes(rec)["rhythm"])
    assert set(_counts(extract_segments(rec))) == {"VF"}


def test_demo_records_give_every_demo_class() -> None:
    got = collections.Counter()
    for name in ("demo_pvc", "demo_lbbb", "demo_vf"):
        rec = read_record(DEMO / name)
        assert rec.fs == 360 and rec.channel_names == ("MLII",)
        got.update(_counts(extract_segments(rec)))
    assert {"N", "A", "V", "L", "VF"} <= set(got)


def test_detected_peaks_match_annotated_beats() -> None:
    rec = read_record(DEMO / "demo_pvc", channel=0)
    segs = extract_segments(rec, cfg=SegmentConfig(peaks="detect", include_unlabeled=True))
    labelled = [g for g in segs if g.label is not None]
    assert len(labelled) >= 0.9 * len(extract_segments(rec))
    bare = Record("bare", rec.fs, rec.signal, rec.channel_names)  # same signal, no annotations
    unl = extract_segments(bare, cfg=SegmentConfig(include_unlabeled=True))
    assert len(unl) >= 30 and all(g.label is None and g.symbol == "?" for g in unl)
    assert extract_segments(bare) == []  # without include_unlabeled an unannotated record gives nothing


# ---------------------------------------------------------------------------------------------------------- images
@pytest.mark.parametrize("method", ["stft", "cwt"])
@pytest.mark.parametrize("freq_scale", ["linear", "log"])
@pytest.mark.parametrize("f0", [6.0, 10.0, 25.0])
def test_sine_lands_on_its_frequency_row(method: str, freq_scale: str, f0: float) -> None:
    fs = 250.0
    t = np.arange(175) / fs  # one 0.7 s segment
    cfg = SpectralConfig(method=method, freq_scale=freq_scale, size=(128, 96))
    im = segment_to_image(np.sin(2 * np.pi * f0 * t), fs, cfg=cfg)
    assert im.image.shape == (128, 96) and im.image.dtype == np.uint8
    assert im.freqs[0] == pytest.approx(cfg.fmax) and im.freqs[-1] == pytest.approx(cfg.fmin)  # row 0 = highest
    row = int(np.argmax(im.image.astype(float).mean(axis=1)))
    bin_hz = max(abs(np.diff(im.freqs))[min(row, len(im.freqs) - 2)], fs / cfg.nfft if method == "stft" else 0)
    assert abs(im.freqs[row] - f0) <= bin_hz, (im.freqs[row], f0, bin_hz)
    assert im.row_of_freq(f0) == pytest.approx(row, abs=max(2, round(bin_hz / abs(np.diff(im.freqs)).min())))


def test_time_axis_and_burst_position() -> None:
    fs = 250.0
    x = np.zeros(250)
    x[150:175] = np.sin(2 * np.pi * 20 * np.arange(25) / fs)  # burst at 0.6..0.7 s
    for method in ("stft", "cwt"):
        im = segment_to_image(x, fs, cfg=SpectralConfig(method=method, size=(64, 100)))
        assert im.times[0] == pytest.approx(0.005) and im.times[-1] == pytest.approx(0.995)
        col = int(np.argmax(im.image.astype(float).sum(axis=0)))
        assert 0.5 <= im.times[col] <= 0.8, (method, im.times[col])


def test_waveform_image_and_colormap() -> None:
    fs = 250.0
    x = np.sin(2 * np.pi * 2 * np.arange(250) / fs)
    im = segment_to_image(x, fs, cfg=SpectralConfig(method="waveform", size=(64, 64), amplitude_range_mv=2.0))
    assert im.freqs is None and im.amplitudes[0] == pytest.approx(2.0) and im.amplitudes[-1] == pytest.approx(-2.0)
    top_row = int(np.nonzero(im.image.max(axis=1) > 128)[0][0])
    assert im.amplitudes[top_row] == pytest.approx(1.0, abs=0.15)  # the sine's crest at +1 mV
    rgb = segment_to_image(x, fs, cfg=SpectralConfig(method="stft", colormap="viridis", size=(32, 32)))
    assert rgb.image.shape == (32, 32, 3)


def test_batch_equals_single_and_resampling() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 175))
    cfg = SpectralConfig(method="cwt", size=(32, 32))
    stack = segments_to_images(X, 250.0, cfg=cfg)
    assert stack.images.shape == (5, 32, 32)
    np.testing.assert_array_equal(stack[3].image, segment_to_image(X[3], 250.0, cfg=cfg).image)
    im = segment_to_image(resample(X[0], 250, 360), 360.0, cfg=SpectralConfig(fs_target=250, size=(32, 32)))
    assert im.fs == 250 and im.times[-1] < 0.7
    flat = segment_to_image(np.zeros(175), 250.0, cfg=cfg)
    assert flat.image.max() == 0


def test_config_hash_is_stable_and_round_trips() -> None:
    a, b = SpectralConfig(), SpectralConfig(size=[128, 128])
    assert a.config_hash() == b.config_hash() and len(a.config_hash()) == 40
    assert SpectralConfig(method="cwt").config_hash() != a.config_hash()
    assert SpectralConfig.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    s = SegmentConfig()
    assert SegmentConfig.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert s.config_hash() == SegmentConfig().config_hash() != SegmentConfig(pre_s=0.3).config_hash()


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: SpectralConfig(method="mfcc"), "method='mfcc'"),
        (lambda: SpectralConfig(fmin=50, fmax=40), "fmin < fmax"),
        (lambda: SpectralConfig(size=(4, 128)), "size"),
        (lambda: SpectralConfig(noverlap=64), "noverlap"),
        (lambda: SpectralConfig(method="cwt", wavelet="db4"), "wavelet='db4'"),
        (lambda: SpectralConfig(colormap="rainbowish"), "colormap"),
        (lambda: SpectralConfig(fs_target=60), "fmax"),
        (lambda: SegmentConfig(clean_method="wiener"), "clean_method"),
        (lambda: SegmentConfig(beat_symbols=(("Q", "Q"),)), "class key 'Q'"),
        (lambda: SegmentConfig(beat_symbols=(("N", "N"), ("V", "N"))), "mapped to both"),
        (lambda: SegmentConfig(pre_s=0.01, post_s=0.02), "at least 16"),
        (lambda: SpectralConfig.from_dict({"method": "stft", "hop": 8}), "unknown field"),
        (lambda: segment_to_image(np.zeros(40), 250.0), "nperseg=64"),
        (lambda: segment_to_image(np.zeros(175), 60.0), "Nyquist"),
        (lambda: segment_to_image(np.zeros((2, 175)), 250.0), "1-D"),
    ],
)
def test_config_errors(factory, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        factory()


# ---------------------------------------------------------------------------------------------------------- splits
def _toy_index(seed: int = 0) -> pd.DataFrame:
    """26 records shaped like DS1 + vfdb: N common, L/R in 2-3 records, VF in 5, A/V scattered."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(26):
        classes = ["N"] if r < 20 else ["VF"]
        if r in (2, 9):
            classes = ["L", "V"]
        if r in (5, 11, 20):
            classes += ["R"]
        if r in (3, 7, 13, 17, 21):
            classes += ["A", "V"]
        if r == 9:
            classes += ["VF"]
        for c in classes:
            rows += [(f"r{r:02d}", c)] * int(rng.integers(5, 50))
    return pd.DataFrame(rows, columns=["record", "label"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_record_split_keeps_records_whole_and_spreads_classes(seed: int) -> None:
    idx = _toy_index(seed)
    out = record_split(idx, test_frac=0.2, val_frac=0.1, seed=seed)
    assert out["split"].notna().all() and len(out) == len(idx)
    assert (out.groupby("record")["split"].nunique() == 1).all()  # no record in two splits
    per = out.groupby("split")["record"].nunique()
    assert per["test"] == 5 and per["val"] == 3 and per["train"] == 18
    classes = out.groupby("split")["label"].agg(set)
    assert classes["train"] == set(idx["label"])  # train gets every class
    assert {"N", "V", "A", "R", "VF"} <= classes["test"]  # every class held by >= 2 records
    assert {"N", "V", "A", "R", "VF"} <= classes["val"] or len(classes["val"]) >= 4
    again = record_split(idx, test_frac=0.2, val_frac=0.1, seed=seed)
    pd.testing.assert_series_equal(out["split"], again["split"])  # deterministic


@pytest.mark.parametrize("k", [3, 5])
def test_record_kfold_keeps_records_whole(k: int) -> None:
    idx = _toy_index()
    out = record_kfold(idx, k=k, seed=0)
    assert (out.groupby("record")["fold"].nunique() == 1).all()
    sizes = out.groupby("fold")["record"].nunique()
    assert sorted(sizes.index) == list(range(k)) and sizes.max() - sizes.min() <= 1
    for c in ("N", "V", "A"):  # classes held by >= k records appear in every fold
        assert out.loc[out["label"] == c, "fold"].nunique() == k


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda i: record_split(i, test_frac=0.7, val_frac=0.4), "test_frac"),
        (lambda i: record_split(i.rename(columns={"record": "patient"})), "record"),
        (lambda i: record_kfold(i, k=1), "k=1"),
        (lambda i: record_kfold(i.iloc[:0]), "empty"),
    ],
)
def test_split_errors(call, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call(_toy_index())


# ---------------------------------------------------------------------------------------------------------- builder
def test_build_dataset_from_demo_records(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    calls = []
    paths = [DEMO / n for n in ("demo_pvc", "demo_lbbb", "demo_vf")]
    index = build_spectral_dataset(
        paths,
        out,
        spec_cfg=SpectralConfig(size=(32, 48)),
        test_frac=0.34,
        val_frac=0.0,
        max_per_class_per_record=5,
        seed=1,
        progress=lambda f, m: calls.append(f),
    )
    assert calls and calls[-1] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary folder left behind
    disk = pd.read_csv(out / "index.csv", dtype={"record": str})
    assert list(disk.columns[:4]) == ["path", "label", "record", "sample"]
    assert len(disk) == len(index) and (disk.groupby("record")["split"].nunique() == 1).all()
    for rel, label in zip(disk["path"], disk["label"]):
        assert rel.startswith(f"{label}/") and (out / rel).is_file()
    import cv2

    assert cv2.imread(str(out / disk["path"][0]), cv2.IMREAD_UNCHANGED).shape == (32, 48)
    train = disk[disk["split"] == "train"]
    assert train.groupby(["record", "label"]).size().max() <= 5  # caps in train only ...
    full = {n: _counts(extract_segments(read_record(DEMO / n))) for n in ("demo_pvc", "demo_lbbb", "demo_vf")}
    for rid, grp in disk[disk["split"] == "test"].groupby("record"):
        assert grp["label"].value_counts().to_dict() == full[rid]  # ... test keeps every segment
    meta = json.loads((out / "spectral_config.json").read_text())
    assert meta["spectral_config"]["size"] == [32, 48] and meta["segment_config_hash"] == SegmentConfig().config_hash()
    idx2, seg_cfg, spec_cfg = load_spectral_dataset(out)
    assert spec_cfg == SpectralConfig(size=(32, 48)) and seg_cfg == SegmentConfig() and len(idx2) == len(disk)
    with pytest.raises(DatasetError, match="not empty"):
        build_spectral_dataset(paths[:1], out, split_by=None)
    small = SpectralConfig(size=(16, 16))
    again = build_spectral_dataset(paths[:1], out, split_by=None, overwrite=True, spec_cfg=small)
    assert "split" not in again and set(pd.read_csv(out / "index.csv")["record"].astype(str)) == {"demo_pvc"}


# ---------------------------------------------------------------------------------------------------------- I/O
def test_csv_round_trip(tmp_path: Path) -> None:
    rec = read_record(DEMO / "demo_pvc")
    p = write_csv_signal(rec, tmp_path / "x.csv")
    back = read_csv_signal(p)
    assert back.fs == pytest.approx(360.0) and back.channel_names == ("MLII",) and back.record_id == "x"
    np.testing.assert_allclose(back.signal, rec.signal[:, 0], atol=1e-6)
    assert len(back.annotations) == 0
    # no header, semicolons, rate given
    np.savetxt(tmp_path / "y.csv", np.column_stack([rec.signal[:, 0], -rec.signal[:, 0]]), delimiter=";")
    two = read_csv_signal(tmp_path / "y.csv", fs=360)
    assert two.signal.shape == (rec.n_samples, 2) and two.channel_names == ("ch0", "ch1")
    one = read_csv_signal(tmp_path / "y.csv", fs=360, channel=1)
    np.testing.assert_allclose(one.signal, -rec.signal[:, 0], atol=1e-6)
    # time in milliseconds
    pd.DataFrame({"time_ms": np.arange(500) * 4.0, "ecg": np.zeros(500)}).to_csv(tmp_path / "z.csv", index=False)
    assert read_csv_signal(tmp_path / "z.csv").fs == pytest.approx(250.0)


def _write(tmp: Path, name: str, content: str | bytes) -> Path:
    p = tmp / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return p


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda t: read_record(t / "nothing"), "does not exist"),
        (lambda t: read_record(_write(t, "bad.hea", "this is not a header\n")), "header cannot be parsed"),
        (lambda t: read_record(_write(t, "lost.hea", "lost 1 360 100\nlost.dat 212 200 11 1024 0 0 0 MLII\n")),
         "signal file cannot be read"),
        (lambda t: read_record(DEMO / "demo_pvc", channel="V5"), "no such channel"),
        (lambda t: read_csv_signal(t / "missing.csv", fs=250), "does not exist"),
        (lambda t: read_csv_signal(_write(t, "empty.csv", ""), fs=250), "empty"),
        (lambda t: read_csv_signal(_write(t, "words.csv", "a,b\nfoo,bar\nbaz,qux\n"), fs=250), "hold no numbers"),
        (lambda t: read_csv_signal(_write(t, "nofs.csv", "0.1\n0.2\n0.3\n")), "sampling rate is unknown"),
        (lambda t: read_csv_signal(_write(t, "jitter.csv", "time,ecg\n0,1\n0.004,1\n0.02,1\n")), "not uniformly"),
        (lambda t: read_csv_signal(_write(t, "bin.csv", b"\xff\xfe\x00\x81garbage"), fs=250), "not a UTF-8"),
    ],
)
def test_bad_files_raise_signal_load_error(tmp_path: Path, make, match: str) -> None:
    with pytest.raises(SignalLoadError, match=match) as info:
        make(tmp_path)
    assert isinstance(info.value, EcgCoreError)
