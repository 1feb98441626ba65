"""Renderer variety: layouts, papers, grid on/off, fonts/headers, phone-photo artifacts; sidecars carry the layout
name and lead boxes that follow the photo's perspective warp; the default output is unchanged."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import LEADS
from ecg_core.reports.synth import (
    LAYOUTS,
    PAPERS,
    RenderOptions,
    SynthSpec,
    make_report,
    random_variant_options,
    render_report,
    synth_signals,
    variant_options,
)
from ecg_core.reports.synth_layouts import page_layout
from ecg_core.reports.synth_photo import PhotoOptions, transform_box

# sha256 of the RGB bytes of make_report(SynthSpec("normal", seed=3), RenderOptions()) before the variants existed
DEFAULT_SHA = "def8676d1c55a1d14e08c59ed9a3d11f8781354fee810ac7bd5bed1a94ddf191"


def _union(shape, boxes):
    m = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def test_default_render_is_unchanged() -> None:
    """The default options draw the 3x4+1 page as before (pixel hash recorded before the layouts were added)."""
    img, sc = make_report(SynthSpec("normal", seed=3), RenderOptions())
    assert hashlib.sha256(img.tobytes()).hexdigest() == DEFAULT_SHA, "the default report's pixels changed"
    assert sc["layout_name"] == "3x4+1" and sc["photo"] is False and sc["homography"] is None
    assert sc["layout"][3] == ["II_rhythm"] and sc["gain_mm_mv"] == 10.0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_has_its_leads_inside_the_image(layout) -> None:
    img, sc = make_report(SynthSpec("myocardial_infarction", territory="anterior", seed=5), variant_options(layout))
    h, w = img.shape[:2]
    lay = page_layout(layout)
    assert sc["layout_name"] == layout and sc["layout"] == lay.rows()
    assert set(LEADS) <= set(sc["boxes"]), layout  # every lead is printed once at least
    assert len(sc["boxes"]) == len(lay.panels)
    for k, (x0, y0, x1, y1) in sc["boxes"].items():
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (k, sc["boxes"][k])
    assert set(sc["lead_windows_s"]) == set(sc["boxes"])


def test_layout_geometry() -> None:
    assert [page_layout(n).n_rows for n in LAYOUTS] == [4, 6, 6, 12, 2]
    assert page_layout("12x1").gain_mm_mv == 5.0
    six = page_layout("6x2")
    assert [p.key for p in six.panels if p.col == 1] == ["V1", "V2", "V3", "V4", "V5", "V6"]
    assert {p.key for p in page_layout("3x4+3").panels if p.row >= 3} == {"II_rhythm", "V1_rhythm", "V5_rhythm"}
    with pytest.raises(ConfigError, match="layout must be one of"):
        RenderOptions(layout="4x3")
    with pytest.raises(ConfigError, match="paper must be one of"):
        variant_options(paper="purple")


@pytest.mark.parametrize("paper", PAPERS)
def test_papers_differ_and_bw_is_grey(paper) -> None:
    img, sc = make_report(SynthSpec("normal", seed=1), variant_options("3x4+1", paper, px_per_mm=2.5))
    sat = img.max(axis=2).astype(int) - img.min(axis=2)
    if paper in ("bw", "grey"):
        assert sat.max() <= 2 if paper == "bw" else sat.mean() < 2
    else:
        assert sat.mean() > 3, paper  # coloured paper or grid
    plain, _ = make_report(SynthSpec("normal", seed=1), variant_options("3x4+1", paper, px_per_mm=2.5, grid=False))
    assert not np.array_equal(plain, img)


def test_fonts_and_headers_change_only_the_text() -> None:
    spec = SynthSpec("normal", seed=2)
    a, _ = make_report(spec, variant_options(header="full"))
    b, _ = make_report(spec, variant_options(header="none"))
    c, _ = make_report(spec, variant_options(font="triplex"))
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    top = slice(0, int(0.1 * a.shape[0]))
    assert (a[top] != b[top]).any() and (a[top] < 100).sum() > (b[top] < 100).sum()


def test_photo_boxes_follow_the_warp_onto_the_traces() -> None:
    """Zero one lead, re-render the same photo: the pixels that change lie inside that lead's (warped) box."""
    sig = synth_signals(SynthSpec("normal", seed=4, noise=0.0))
    opts = variant_options("6x2", "pink", photo=True, px_per_mm=4.0)
    seed = next(s for s in range(60) if abs(render_report(sig, opts, seed=s)[1]["artifacts"]["rotation_deg"]) > 8)
    full, sc = render_report(sig, opts, seed=seed)
    assert sc["photo"] and len(sc["homography"]) == 3
    flat_sc = render_report(sig, replace(opts, photo=False), seed=seed)[1]
    assert sc["boxes"]["V6"] != flat_sc["boxes"]["V6"]  # the boxes moved with the page
    h, w = full.shape[:2]
    for lead in ("I", "aVF", "V1", "V6"):
        data = sig.data.copy()
        data[LEADS.index(lead)] = 0.0
        other, _ = render_report(replace(sig, data=data), opts, seed=seed)
        changed = np.abs(full.astype(int) - other.astype(int)).max(axis=2) > 40
        assert changed.sum() > 30, lead
        inside = _union((h, w), [sc["boxes"][lead]])
        assert changed[inside].sum() >= 0.97 * changed.sum(), (lead, int(changed[~inside].sum()), int(changed.sum()))


def test_photo_is_a_page_on_a_desk() -> None:
    img, sc = make_report(SynthSpec("normal", seed=6), variant_options("3x4+1", "cream", photo=True))
    art = sc["artifacts"]
    assert abs(art["rotation_deg"]) <= 15 and 0.5 <= art["scale"] <= 1.0 and 40 <= art["jpeg_quality"] <= 92
    assert sc["image_size"] == [img.shape[1], img.shape[0]]
    corners = np.array([img[2, 2], img[2, -3], img[-3, 2], img[-3, -3]], float)
    page = np.array(img[img.shape[0] // 2, img.shape[1] // 2], float)
    assert corners.mean() < page.mean()  # the desk shows around the page
    with pytest.raises(ConfigError):
        PhotoOptions(max_rotation_deg=40)


def test_transform_box_is_the_hull_of_the_warped_corners() -> None:
    hom = np.array([[1.0, 0.1, 5.0], [0.0, 1.0, 3.0], [0.0, 0.0, 1.0]])
    assert transform_box([10, 10, 20, 30], hom, 100, 100) == [16, 13, 28, 33]
    assert transform_box([10, 10, 20, 30], None, 100, 100) == [10, 10, 20, 30]
    assert transform_box([-5, -5, 200, 20], None, 100, 100) == [0, 0, 100, 20]


def test_random_variants_are_deterministic() -> None:
    a = random_variant_options(np.random.default_rng(3))
    b = random_variant_options(np.random.default_rng(3))
    assert a == b and a.layout in LAYOUTS
    kinds = {random_variant_options(np.random.default_rng(s)).layout for s in range(40)}
    assert kinds == set(LAYOUTS)
    json.dumps(a.to_dict())


def test_cli_synth_writes_the_variant(tmp_path) -> None:
    from ecg_core.cli import main

    out = tmp_path / "ds"
    rc = main(["synth", "--out", str(out), "--per-class", "1", "--layout", "12x1", "--paper", "bw", "--photo",
               "--workers", "1"])
    assert rc == 0
    sidecars = sorted(out.rglob("*_0000.json"))
    assert len(sidecars) == 4
    sc = json.loads(sidecars[0].read_text())
    assert sc["layout_name"] == "12x1" and sc["photo"] is True and sc["black_and_white"] is True
    manifest = json.loads((out / "synth_manifest.json").read_text())
    assert manifest["options"]["layout"] == "12x1" and manifest["options"]["paper"] == "bw"
