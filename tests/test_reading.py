"""Reading the ECG (issue 14): digitiser, WFDB/CSV files, measurements, criteria and the reading commands.

The thresholds of the issue are asserted on a few fresh synthetic reports (their true signals are known); the
real-data checks skip when ../shared/data is absent.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA
from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import LEADS
from ecg_core.reports.layout import RHYTHM_KEY, lead_windows
from ecg_core.reports.reading.criteria import evaluate
from ecg_core.reports.reading.digitize import Digitized, DigitizeOptions, digitize, draw_traces, snr_db
from ecg_core.reports.reading.formats import csv_bytes, read_12lead, write_digitized
from ecg_core.reports.reading.measure import LeadMeasure, Measurements, measure, measure_signals
from ecg_core.reports.synth import CLASS_KEYS, RenderOptions, random_spec, render_report, synth_signals

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _report(cls: str, seed: int, **opts):
    sig = synth_signals(random_spec(cls, np.random.default_rng(seed)))
    image, sidecar = render_report(sig, RenderOptions(**opts), seed=seed)
    return sig, image, sidecar


def _snrs(truth: np.ndarray, dig: Digitized) -> dict[str, float]:
    out = {}
    for i, lead in enumerate(LEADS):
        t0, t1 = (0.0, 10.0) if lead == dig.rhythm_lead else lead_windows()[lead]
        a, b = int(t0 * dig.fs), int(t1 * dig.fs)
        out[lead] = snr_db(truth[i, a:b], dig.signals[i, a:b])
    return out


@pytest.fixture(scope="module")
def synthetic_set():
    """One clean report per class at 4 px/mm, digitised and measured."""
    out = []
    for k, cls in enumerate(CLASS_KEYS):
        sig, image, sidecar = _report(cls, 100 + k)
        dig = digitize(image, sidecar=sidecar)
        out.append((cls, sig, image, sidecar, dig, measure(dig)))
    return out


def test_digitized_shape_names_and_rate(synthetic_set):
    _, _, image, _, dig, _ = synthetic_set[0]
    assert dig.fs == 500.0 and dig.signals.shape == (12, 5000)
    assert set(dig.leads) == set(LEADS)
    assert dig.rhythm_lead == "II"  # the synthetic strip is lead II, found by matching its cell
    for lead in ("I", "aVR", "V1", "V4"):  # column 0..3 of row 1: shown only in its own 2.5 s
        t0, t1 = lead_windows()[lead]
        x = dig.lead(lead)
        assert np.isfinite(x[int(t0 * 500) : int(t1 * 500)]).mean() > 0.95
        assert np.isnan(np.delete(x, np.s_[int(t0 * 500) : int(t1 * 500)])).all()
    assert np.isfinite(dig.lead("II")).mean() > 0.95  # filled from the 10 s strip
    assert set(dig.paths) == set(LEADS) | {RHYTHM_KEY}
    assert all(p.shape[1] == 2 for p in dig.paths.values())
    assert dig.all_passed
    over = draw_traces(image, dig, alpha=0.5)
    assert over.shape == image.shape and not np.array_equal(over, image)


def test_digitize_snr_on_synthetic_reports(synthetic_set):
    per_lead = {lead: [] for lead in LEADS}
    for _, sig, _, _, dig, _ in synthetic_set:
        for lead, v in _snrs(sig.data, dig).items():
            per_lead[lead].append(v)
    medians = {lead: float(np.median(v)) for lead, v in per_lead.items()}
    assert float(np.median([v for vs in per_lead.values() for v in vs])) >= 12.0, medians
    assert min(medians.values()) >= 10.0, medians


def test_digitize_straightens_a_rotated_scan():
    sig, image, sidecar = _report("normal", 7, artifacts=True, max_rotation_deg=3.0)
    dig = digitize(image, sidecar=sidecar)
    assert abs(dig.skew_deg - sidecar["artifacts"]["rotation_deg"]) <= 0.2
    assert float(np.median(list(_snrs(sig.data, dig).values()))) >= 8.0


def test_measurements_on_synthetic_reports(synthetic_set):
    st_err, hr_err, tp, fp, fn = [], [], 0, 0, 0
    for cls, sig, _, _, _, m in synthetic_set:
        st_err += [abs(m.leads[lead].st_mm - 10 * sig.st_deviation_mv[lead]) for lead in LEADS]
        hr_err.append(abs(m.values["hr_bpm"] - sig.heart_rate))
        truth = set(sig.pathology_leads) - {RHYTHM_KEY} if cls == "history_of_mi" else set()
        found = {lead for lead in LEADS if m.leads[lead].q_pathological}
        tp, fp, fn = tp + len(found & truth), fp + len(found - truth), fn + len(truth - found)
    assert float(np.nanmedian(st_err)) <= 0.5
    assert float(np.median(hr_err)) <= 3.0
    assert tp / max(1, tp + fp) >= 0.8 and tp / max(1, tp + fn) >= 0.8, (tp, fp, fn)


def test_criteria_fire_on_acute_and_old_infarction():
    sig, image, sidecar = _report("myocardial_infarction", 3)
    m = measure(digitize(image, sidecar=sidecar))
    keys = {f.key: f for f in evaluate(m)}
    assert "st_elevation" in keys and sig.spec.territory.split()[0][:4] in keys["st_elevation"].territory + "anterior"
    m2 = measure_signals(synth_signals(random_spec("history_of_mi", np.random.default_rng(5), territory="inferior")
                                       ).data, 500.0)
    q = [f for f in evaluate(m2) if f.key == "pathological_q"]
    assert q and "inferior" in q[0].territory


def test_criteria_contiguity_and_reciprocal_depression():
    leads = {lead: LeadMeasure(st_mm=0.0, n_beats=3) for lead in LEADS}
    for lead in ("II", "III", "aVF"):
        leads[lead] = LeadMeasure(st_mm=2.0, n_beats=3)
    leads["aVL"] = LeadMeasure(st_mm=-1.0, n_beats=3)
    found = evaluate(Measurements({"hr_bpm": 70.0}, leads))
    ste = [f for f in found if f.key == "st_elevation"][0]
    assert ste.territory == "inferior" and "aVL" in ste.leads and "reciprocal" in ste.text
    lone = {lead: LeadMeasure(st_mm=0.0, n_beats=3) for lead in LEADS} | {"V1": LeadMeasure(st_mm=3.0, n_beats=3),
                                                                       "V4": LeadMeasure(st_mm=3.0, n_beats=3)}
    assert not [f for f in evaluate(Measurements({}, lone)) if f.key == "st_elevation"]  # not contiguous


def test_implausible_values_are_not_numbers():
    flat = np.zeros((12, 5000))
    m = measure_signals(flat, 500.0)
    assert all(math.isnan(v) for v in m.values.values())
    assert m.shown("hr_bpm").startswith("could not measure")
    assert measure_signals(np.full((12, 5000), np.nan), 500.0).problems["hr_bpm"]


def test_wfdb_and_csv_round_trip(tmp_path, synthetic_set):
    _, _, _, _, dig, _ = synthetic_set[0]
    paths = write_digitized(dig, tmp_path, "rec1")
    assert sorted(p.name for p in paths) == ["rec1.dat", "rec1.hea"]
    back, fs = read_12lead(tmp_path / "rec1.hea")
    assert fs == 500.0 and back.shape == dig.signals.shape
    assert np.array_equal(np.isnan(back), np.isnan(dig.signals))
    ok = np.isfinite(back)
    assert np.max(np.abs(back[ok] - dig.signals[ok])) < 0.005
    assert "mV" in (tmp_path / "rec1.hea").read_text() and not list(tmp_path.glob(".*"))
    df = pd.read_csv(__import__("io").BytesIO(csv_bytes(dig.signals, dig.fs)))
    assert list(df.columns) == ["time_s", *LEADS] and len(df) == 5000


def test_options_are_checked():
    with pytest.raises(ConfigError):
        DigitizeOptions(rhythm_lead="X")
    with pytest.raises(ConfigError):
        digitize(np.zeros((10, 10), np.uint8))


def test_cli_digitize_measure_and_render(tmp_path):
    from ecg_core.cli import main
    from ecg_core.reports.synth_render import encode_image

    src = tmp_path / "in"
    src.mkdir()
    _, image, _ = _report("normal", 11)
    (src / "good report.png").write_bytes(encode_image(image, "png"))
    (src / "broken.png").write_bytes(b"not an image")
    assert main(["digitize", str(src), "--out", str(tmp_path / "out")]) == 0
    summary = pd.read_csv(tmp_path / "out" / "digitize_summary.csv")
    assert len(summary) == 2
    assert set(summary["status"]) == {"ok", "failed"}
    assert summary.loc[summary["status"] == "failed", "reason"].str.len().min() > 0
    assert (tmp_path / "out" / "good_report.hea").exists() and (tmp_path / "out" / "good_report.dat").exists()
    assert main(["measure", str(src), "--out", str(tmp_path / "m.csv")]) == 0
    m = pd.read_csv(tmp_path / "m.csv")
    for col in ("hr_bpm", "qrs_ms", "qtc_ms", "st_V1_mm", "q_V1", "criteria"):
        assert col in m.columns
    good = m[m["status"] == "ok"].iloc[0]
    assert 40 <= good["hr_bpm"] <= 120
    # render the record we just wrote back into a report image
    assert main(["render", str(tmp_path / "out" / "good_report"), "--out", str(tmp_path / "r.png"),
                 "--px-per-mm", "4"]) == 0
    assert (tmp_path / "r.png").stat().st_size > 1000 and (tmp_path / "r.json").exists()


# ------------------------------------------------------------------------------------------------ real data
needs_shared = pytest.mark.skipif(not (SHARED_DATA / "signals" / "12lead").is_dir(),
                                  reason="../shared/data is absent (the real-data checks need it)")


@needs_shared
def test_render_then_digitize_real_recordings():
    from ecg_core.reports.reading.render import render_record

    for hea in sorted((SHARED_DATA / "signals" / "12lead").glob("*.hea")):
        sig, fs = read_12lead(hea)
        image, sidecar, s12 = render_record(sig, fs, RenderOptions(px_per_mm=8.0))
        assert sidecar["class_key"] is None
        dig = digitize(image, sidecar=sidecar)
        assert float(np.median(list(_snrs(s12.data, dig).values()))) >= 10.0, hea.stem


@needs_shared
def test_mendeley_report_passes_the_quality_check():
    from ecg_core.reports.reading.digitize import digitize_file

    files = sorted((SHARED_DATA / "mendeley-dev").rglob("*.jpg"))
    if not files:
        pytest.skip("no Mendeley images in ../shared/data/mendeley-dev")
    dig = digitize_file(files[0])
    assert dig.layout_source == "detected"
    assert dig.mean_quality >= 0.8
    assert 2.0 <= dig.px_per_mm <= 10.0
    m = measure(dig)
    assert 30 <= m.values["hr_bpm"] <= 200


@needs_shared
def test_vendor_report_heart_rate():
    from ecg_core.reports.reading.digitize import digitize_file

    path = SHARED_DATA / "realworld-dev" / "bio__1282423_20210205_133933_p1.png"
    if not path.exists():
        pytest.skip("realworld-dev report absent")
    dig = digitize_file(path)
    assert dig.layout_source == "strips" and len(dig.strips) == 6
    assert abs(measure(dig).values["hr_bpm"] - 63) <= 5  # the machine printed 63 bpm


def test_truth_fields_and_record(tmp_path):
    from ecg_core.reports.reading.truth import truth_fields, write_truth

    sig = synth_signals(random_spec("history_of_mi", np.random.default_rng(1), territory="lateral"))
    t = truth_fields(sig)
    assert set(t["st_mm"]) == set(LEADS) and t["q_leads"] == ["I", "aVL", "V5", "V6"]
    assert abs(t["hr_bpm"] - sig.heart_rate) < 0.01
    write_truth(sig, tmp_path, "history_of_mi_0000")
    back, fs = read_12lead(tmp_path / "history_of_mi_0000")
    assert fs == sig.fs and np.max(np.abs(back - sig.data[:, :5000])) < 0.005


def test_pdf_measurement_table(synthetic_set):
    from ecg_core.reports import pdf
    from ecg_core.reports.reading.measure import global_table, lead_table

    _, _, image, _, _, m = synthetic_set[1]
    base = dict(image=image, overlay=image, probs=[0.1, 0.2, 0.3, 0.4], class_names=list("abcd"), run_meta={},
                method_title="Grad-CAM", explained_class="a")
    plain = pdf.build_report(pdf.ReportContent(**base))
    g, lt = global_table(m), lead_table(m)
    assert list(g.columns) == ["measurement", "value", "normal", "flag"] and "flags" in lt.columns
    full = pdf.build_report(pdf.ReportContent(**base, measurement_tables=(g, lt), criteria=("irregular RR",)))
    assert full.startswith(b"%PDF") and len(full) > len(plain) + 1000


def test_synth_signals_set_is_read_back_within_the_thresholds(tmp_path):
    """``synth --signals`` (clean) -> digitize + measure each report -> its true signals and sidecar values."""
    import json

    from ecg_core.cli import main
    from ecg_core.reports.reading.digitize import digitize_file

    out = tmp_path / "set"
    assert main(["synth", "--out", str(out), "--per-class", "1", "--seed", "5", "--clean", "--signals",
                 "--workers", "1"]) == 0
    images = sorted(out.rglob("*.png"))
    assert len(images) == 4
    snrs, st_err, hr_err, tp, fp, fn = [], [], [], 0, 0, 0
    for image in images:
        side = json.loads(image.with_suffix(".json").read_text())
        assert {"st_mm", "hr_bpm", "q_leads", "signals_record"} <= set(side)
        truth, fs = read_12lead(image.with_suffix(".hea"))
        assert truth.shape == (12, 5000) and fs == 500.0
        dig = digitize_file(image)
        snrs += list(_snrs(truth, dig).values())
        m = measure(dig)
        st_err += [abs(m.leads[lead].st_mm - side["st_mm"][lead]) for lead in LEADS]
        hr_err.append(abs(m.values["hr_bpm"] - side["hr_bpm"]))
        found, want = {lead for lead in LEADS if m.leads[lead].q_pathological}, set(side["q_leads"])
        tp, fp, fn = tp + len(found & want), fp + len(found - want), fn + len(want - found)
    assert float(np.median(snrs)) >= 12.0
    assert float(np.nanmedian(st_err)) <= 0.5 and float(np.median(hr_err)) <= 3.0
    assert tp / max(1, tp + fp) >= 0.8 and tp / max(1, tp + fn) >= 0.8, (tp, fp, fn)
