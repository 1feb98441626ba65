"""Lead boxes: synthetic ground truth, detection on synthetic and real full-resolution reports (the printed lead
labels must fall inside their own boxes), the template fallback, and attention per lead / territory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from ecg_core.reports import layout, leads
from ecg_core.core.errors import ConfigError
from ecg_core.imaging.loader import load_image
from ecg_core.core.labels import LEADS
from ecg_core.reports.synth import RenderOptions, SynthSpec, make_report

FULLRES = SHARED_DATA / "mendeley-fullres-samples"

# Centres of the printed lead labels on the Mendeley full-resolution reports (2213 x 1572 px), measured by hand on
# zoomed crops of Normal(1).jpg and MI(1).jpg (all 8 samples come from the same device and share the layout). The
# rhythm strip's label reads "III" or "II" on these reports.
LABELS_2213 = {
    "I": (160, 446), "aVR": (671, 446), "V1": (1151, 446), "V4": (1645, 446),
    "II": (163, 747), "aVL": (672, 747), "V2": (1151, 747), "V5": (1647, 747),
    "III": (166, 1050), "aVF": (672, 1050), "V3": (1151, 1050), "V6": (1647, 1050),
    layout.RHYTHM_KEY: (166, 1351),
}


def _iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def synthetic() -> list[tuple[np.ndarray, dict]]:
    specs = [
        (SynthSpec("myocardial_infarction", territory="inferior", seed=3), RenderOptions(px_per_mm=3.0)),
        (SynthSpec("history_of_mi", territory="lateral", seed=4),
         RenderOptions(px_per_mm=4.0, grid="blue", artifacts=True)),
        (SynthSpec("abnormal_heartbeat", subtype="pvc", seed=5),
         RenderOptions(px_per_mm=4.0, black_and_white=True, artifacts=True)),
    ]
    return [make_report(s, o) for s, o in specs]


def test_layout_from_sidecar_is_the_ground_truth(synthetic) -> None:
    rgb, sc = synthetic[0]
    lay = leads.layout_from_sidecar(sc)
    assert lay.source == "sidecar" and not lay.is_fallback
    assert set(lay.boxes) == set(layout.LEAD_KEYS)
    assert all(tuple(sc["boxes"][k]) == lay.boxes[k] for k in lay.boxes)
    assert lay.image_shape == rgb.shape[:2]
    assert leads.layout_for(rgb, sidecar=sc) == lay


def test_detection_on_synthetic_reports_matches_the_sidecar(synthetic) -> None:
    for rgb, sc in synthetic:
        lay = leads.detect_layout(rgb)
        assert lay.source == "detected", lay.message
        ious = {k: _iou(lay.boxes[k], sc["boxes"][k]) for k in layout.LEAD_KEYS}
        assert min(ious.values()) > 0.6, ious


def test_template_fallback_says_so() -> None:
    blank = np.full((600, 840, 3), 255, np.uint8)
    lay = leads.detect_layout(blank)
    assert lay.source == "template" and lay.is_fallback
    assert "could not be detected" in lay.message and "no ECG traces" in lay.message
    assert set(lay.boxes) == set(layout.LEAD_KEYS)
    # the template keeps the standard order: columns left to right, rows top to bottom
    assert lay.boxes["I"][0] < lay.boxes["aVR"][0] < lay.boxes["V1"][0] < lay.boxes["V4"][0]
    assert lay.boxes["I"][1] < lay.boxes["II"][1] < lay.boxes["III"][1] < lay.boxes[layout.RHYTHM_KEY][1]


def _fullres_files() -> list[Path]:
    if not FULLRES.is_dir():
        pytest.skip(f"real full-resolution samples not present at {FULLRES}")
    files = sorted(FULLRES.rglob("*.jpg"))
    if not files:
        pytest.skip(f"no JPEG in {FULLRES}")
    return files


def test_fullres_samples_boxes_contain_their_printed_labels() -> None:
    files = _fullres_files()
    assert len(files) == 8
    for f in files:
        rgb = load_image(f).rgb
        h, w = rgb.shape[:2]
        lay = leads.detect_layout(rgb)
        assert lay.source == "detected", f"{f.name}: {lay.message}"
        assert "separator" in lay.message
        sx, sy = w / 2213, h / 1572
        for lead, (lx, ly) in LABELS_2213.items():
            x, y = lx * sx, ly * sy
            # the label is really printed there: dark ink around the point
            win = rgb[int(y - 12 * sy): int(y + 12 * sy), int(x - 14 * sx): int(x + 14 * sx)].min(axis=2)
            assert (win < 100).sum() > 10, f"{f.name}: no ink at the {lead} label"
            x0, y0, x1, y1 = lay.boxes[lead]
            assert x0 <= x < x1 and y0 <= y < y1, f"{f.name}: {lead} label {x, y} outside {lay.boxes[lead]}"
            # printed at the start of its cell: in the left 15 % of the box
            assert (x - x0) / (x1 - x0) < 0.15, f"{f.name}: {lead} label not at the left edge"
            others = [k for k, b in lay.boxes.items() if k != lead and b[0] <= x < b[2] and b[1] <= y < b[3]]
            assert others == [], f"{f.name}: {lead} label also inside {others}"


def test_detection_handles_half_resolution_copies() -> None:
    """The Mendeley dev set holds the same reports at 1106 x 786: boxes scale with the image."""
    files = _fullres_files()
    import cv2

    rgb = load_image(files[0]).rgb
    half = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
    full, small = leads.detect_layout(rgb), leads.detect_layout(half)
    assert small.source == "detected"
    for k in layout.LEAD_KEYS:
        assert _iou([v / 2 for v in full.boxes[k]], small.boxes[k]) > 0.9


# --------------------------------------------------------------------------------------------------- attention
def _handmade_layout() -> leads.LeadLayout:
    """13 non-overlapping boxes on a 400 x 520 image: 3 rows x 4 columns of 100 x 130 px, rhythm below."""
    boxes = {}
    for r, row in enumerate(layout.LAYOUT_ROWS):
        for c, lead in enumerate(row):
            boxes[lead] = (c * 130, r * 100, (c + 1) * 130, (r + 1) * 100)
    boxes[layout.RHYTHM_KEY] = (0, 300, 520, 380)
    return leads.LeadLayout(boxes, "detected", "hand-made", (400, 520))


def test_lead_attention_on_a_hand_made_heatmap() -> None:
    lay = _handmade_layout()
    hm = np.zeros((400, 520))
    hm[100:200, 130:260] = 1.0  # aVL, fully
    hm[0:50, 0:130] = 0.5  # half of I at half intensity
    hm[390:400, :] = 1.0  # footer, outside every box
    total = 130 * 100 + 0.5 * 130 * 50 + 10 * 520
    t = leads.lead_attention(hm, lay).set_index("lead")
    assert t.loc["aVL", "mass"] == pytest.approx(13000 / total)
    assert t.loc["I", "mass"] == pytest.approx(3250 / total)
    assert t.loc["aVL", "mean_intensity"] == pytest.approx(1.0) and t.loc["I", "mean_intensity"] == pytest.approx(0.25)
    assert t.loc["aVL", "area_fraction"] == pytest.approx(13000 / (400 * 520))
    assert t.loc["aVL", "enrichment"] == pytest.approx(t.loc["aVL", "mass"] / t.loc["aVL", "area_fraction"])
    assert t.loc["aVL", "rank"] == 1 and t.loc["I", "rank"] == 2
    assert t.loc["V3", "mass"] == 0.0 and t.loc["aVL", "territory"] == "lateral"
    table = leads.lead_attention(hm, lay)
    assert table.attrs["outside_mass"] == pytest.approx(5200 / total)
    assert table["mass"].sum() + table.attrs["outside_mass"] == pytest.approx(1.0)
    terr = leads.territory_attention(table).set_index("territory")
    assert list(terr.index) == ["inferior", "lateral", "septal", "anterior", "aVR", "rhythm strip"]
    assert terr.loc["lateral", "mass"] == pytest.approx((13000 + 3250) / total)
    assert terr.loc["lateral", "leads"] == "I, aVL, V5, V6"
    fig = leads.attention_bar(table)
    assert sum(len(tr.x) for tr in fig.data) == 13


def test_lead_attention_validates_and_handles_empty_maps() -> None:
    lay = _handmade_layout()
    with pytest.raises(ConfigError, match="heatmap_to_original"):
        leads.lead_attention(np.zeros((10, 10)), lay)
    with pytest.raises(ConfigError, match=">= 0"):
        leads.lead_attention(-np.ones((400, 520)), lay)
    t = leads.lead_attention(np.zeros((400, 520)), lay)
    assert (t["mass"] == 0).all() and t.attrs["outside_mass"] == 0.0


def test_layout_validation_and_territories() -> None:
    with pytest.raises(ConfigError, match="source must be one of sidecar, detected, template"):
        leads.LeadLayout({}, "guess", "", (10, 10))
    with pytest.raises(ConfigError, match="unknown"):
        leads.LeadLayout({"V7": (0, 0, 1, 1)}, "detected", "", (10, 10))
    with pytest.raises(ConfigError, match="box of 'I'"):
        leads.LeadLayout({"I": (0, 0, 20, 5)}, "detected", "", (10, 10))
    with pytest.raises(ConfigError, match="no 'boxes'"):
        leads.layout_from_sidecar({"class_name": "Normal"})
    assert {layout.lead_territory(x) for x in LEADS} == {"inferior", "lateral", "septal", "anterior", "aVR"}
    assert layout.lead_territory(layout.RHYTHM_KEY) == "rhythm strip"
    with pytest.raises(ConfigError, match="lead must be one of"):
        layout.lead_territory("V9")


def test_draw_boxes_and_sidecar_file(tmp_path, synthetic) -> None:
    import json

    rgb, sc = synthetic[0]
    lay = leads.layout_from_sidecar(sc)
    out = leads.draw_boxes(rgb, lay, highlight=["II"])
    assert out.shape == rgb.shape and not np.array_equal(out, rgb)
    assert np.array_equal(rgb, make_report(SynthSpec("myocardial_infarction", territory="inferior", seed=3),
                                           RenderOptions(px_per_mm=3.0))[0])  # input untouched
    img = tmp_path / "r.png"
    img.write_bytes(b"")
    assert leads.load_sidecar(img) is None
    (tmp_path / "r.json").write_text(json.dumps(sc))
    assert leads.load_sidecar(img)["boxes"]["I"] == sc["boxes"]["I"]
