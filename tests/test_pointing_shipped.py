"""Issue 15: the shipped synthetic model's Grad-CAM points at the pathology leads (pointing game of ``explain-eval``
over MI + history of MI), measured on a small fresh synthetic set rendered here, and the scoring itself is checked
against the complement of the pathology leads (a scoring that always says "hit" would pass the bar too).

The bar of the test (:data:`TEST_BAR`) sits below the issue's 0.8 because 16 reports give a coarse estimate: see its
comment. The full figure (120 fresh MI + history-of-MI reports) is in the model card and README.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("tf_keras_vis")

from ecg_core.ml import registry
from ecg_core.reports import localisation
from ecg_core.xai.explainer import ExplainerCache

RUN = Path(__file__).resolve().parents[1] / "models" / "cardiac4-synthetic-custom_cnn"
#: synthetic dataset seed of this test: neither the model's training seed (7), the demo data's (2026), the
#: validation seed of the selection (5150) nor the final test seed (9001)
SEED = 4711
PER_CLASS = 8  # 8 acute MI + 8 history of MI
#: On these 16 reports the shipped model scores 14 of 16 (0.875; deterministic: fixed seed, CPU), the model it
#: replaced 11 of 16 (0.6875). On the 120-report final set (seed 9001) they score 0.792 and 0.750. The bar is 12 of
#: 16: one binomial standard error (0.09 at p = 0.8, n = 16) below the issue's 0.8, so two more misses than today
#: still pass and the old model's behaviour fails.
TEST_BAR = 0.75
METHOD = "gradcam"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    from ecg_core.reports.synth import generate_dataset

    if not (RUN / "model.keras").is_file():
        pytest.skip(f"the shipped run {RUN.name} is absent")
    root = tmp_path_factory.mktemp("pointing") / "fresh"
    generate_dataset(root, per_class=PER_CLASS, seed=SEED, image_format="jpg",
                     classes=("myocardial_infarction", "history_of_mi"))
    run = registry.resolve_run(str(RUN), usable=True)
    explainer = ExplainerCache(max_entries=1).get(run)
    cfg = registry.preprocess_config_of(run)
    items = localisation.localisation_items(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per = localisation.evaluate_localisation(explainer, cfg, items, method=METHOD)
    return explainer, cfg, items, per


def test_shipped_synthetic_model_points_at_the_pathology_leads(fresh) -> None:
    _, _, items, per = fresh
    assert len(items) == 2 * PER_CLASS and (per["error"] == "").all()
    summary = localisation.summarise_localisation(per).set_index("group")
    mi = summary.loc[localisation.MI_GROUP]
    assert mi["n"] == 2 * PER_CLASS
    assert mi["pointing_game"] >= TEST_BAR, summary.to_string()
    # far above chance (the pathology boxes cover about a fifth of the cropped report)
    assert mi["pointing_chance"] < 0.3 and mi["lead_mass"] > 1.5 * mi["area_share"], summary.to_string()
    assert mi["accuracy"] >= 0.9  # it explains a model that recognises these classes


def test_the_scoring_gives_the_complement_leads_the_misses(fresh) -> None:
    """Score the same maps against every OTHER lead box: a hit there is a miss of the pathology leads (the map's
    maximum lies in exactly one box or none), so the two pointing games sum to at most 1 and the other leads' mass
    is the rest of the attention."""
    explainer, cfg, items, per = fresh
    other = []
    for path, sc in items:
        sc2 = dict(sc)
        sc2["pathology_leads"] = [lead for lead in sc["boxes"] if lead not in sc["pathology_leads"]]
        other.append((path, sc2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per2 = localisation.evaluate_localisation(explainer, cfg, other, method=METHOD)
    hit, hit2 = per["pointing_hit"].astype(bool).to_numpy(), per2["pointing_hit"].astype(bool).to_numpy()
    assert not np.any(hit & hit2), "a maximum cannot be inside a pathology lead and inside another lead"
    # misses point at another lead (the rhythm strip or a neighbour), so max_lead names one of the others
    assert set(per.loc[~hit, "max_lead"]) <= set().union(*(s["pathology_leads"] for _, s in other)) | {""}
    assert set(per.loc[hit, "max_lead"]) <= set().union(*(s["pathology_leads"] for _, s in items))
    assert per2["pointing_hit"].astype(float).mean() <= 1.0 - TEST_BAR + 1e-9
    assert per2["lead_mass"].mean() < per["lead_mass"].mean() * 2  # the rest of the mass is spread over ~9 boxes


def test_max_lead_and_pointing_game_agree_on_hand_made_maps() -> None:
    boxes = {"II": (0, 0, 10, 10), "V2": (20, 0, 30, 10)}
    hm = np.zeros((12, 32))
    hm[5, 25] = 1.0
    assert localisation.max_lead(hm, boxes) == "V2" and localisation.pointing_game(hm, boxes, ["V2"])
    assert not localisation.pointing_game(hm, boxes, ["II"])
    hm[:] = 0.0
    hm[11, 15] = 1.0  # between the boxes
    assert localisation.max_lead(hm, boxes) == "" and not localisation.pointing_game(hm, boxes, ["II", "V2"])
    assert localisation.max_lead(np.zeros((12, 32)), boxes) == ""


def test_the_lenient_game_counts_a_pathology_leads_rhythm_strip_only() -> None:
    boxes = {"II": (0, 0, 10, 10), "III": (0, 10, 10, 20), "V1": (20, 0, 30, 10), "II_rhythm": (0, 20, 30, 30),
             "V1_rhythm": (0, 30, 30, 40)}
    hm = np.zeros((40, 32))
    hm[25, 5] = 1.0  # on the lead-II rhythm strip
    assert localisation.max_lead(hm, boxes) == "II_rhythm"
    assert localisation.with_rhythm_strips(["II", "III"], boxes) == ["II", "III", "II_rhythm"]
    assert localisation.with_rhythm_strips(["V1"], boxes) == ["V1", "V1_rhythm"]
    assert not localisation.pointing_game(hm, boxes, ["II", "III"])  # strict: the strip is not the 'II' box
    assert localisation.pointing_game(hm, boxes, localisation.with_rhythm_strips(["II", "III"], boxes))
    assert not localisation.pointing_game(hm, boxes, localisation.with_rhythm_strips(["V1"], boxes))
