"""Issue 15, item 7: the synthetic-data explanation model retrained on the per-lead architecture
(``models/cardiac4-synthetic-perlead``, ``arch`` ``perlead_cnn``) points at the pathology leads: the pointing game
of ``explain-eval`` over MI + history of MI on a small fresh synthetic set rendered here, and a check that the same
scoring fails a map that points elsewhere (the complement of the pathology leads).

The full figures (120 fresh MI + history-of-MI reports of seed 9101, used once) are in the run's model card.
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
from ecg_core.reports.perlead_predict import is_perlead_run
from ecg_core.xai.explainer import ExplainerCache

RUN = Path(__file__).resolve().parents[1] / "models" / "cardiac4-synthetic-perlead"
#: synthetic dataset seed of this test: neither the training seed (7), the demo data's (2026), the validation seed
#: of the selection (5150), the final seeds (9001, 9101) nor the custom CNN's test seed (4711)
SEED = 4712
PER_CLASS = 20  # 20 acute MI + 20 history of MI
#: On these 40 reports the per-lead model scores 40 of 40 (1.000; deterministic: fixed seed, CPU) and the shipped
#: whole-page custom CNN 35 of 40 (0.875). On the 120-report final set (seed 9101) they score 1.000 and 0.742, on
#: the validation set (seed 5150) 0.983 and 0.758. The bar is 36 of 40: 1.5 binomial standard errors (0.034 at
#: p = 0.95, n = 40) below 0.95, so four misses still pass while the custom CNN's behaviour on the same reports fails.
TEST_BAR = 0.9
METHOD = "gradcam"


def _evaluate(explainer, items):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return localisation.evaluate_localisation(explainer, None, items, method=METHOD, perlead=True)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    from ecg_core.reports.synth import generate_dataset

    if not (RUN / "model.keras").is_file():
        pytest.skip(f"the shipped run {RUN.name} is absent")
    root = tmp_path_factory.mktemp("pointing_perlead") / "fresh"
    generate_dataset(root, per_class=PER_CLASS, seed=SEED, image_format="jpg",
                     classes=("myocardial_infarction", "history_of_mi"))
    run = registry.resolve_run(str(RUN), usable=True)
    assert is_perlead_run(run.meta)
    explainer = ExplainerCache(max_entries=1).get(run)
    items = localisation.localisation_items(root)
    return explainer, items, _evaluate(explainer, items)


def test_shipped_perlead_model_points_at_the_pathology_leads(fresh) -> None:
    explainer, items, per = fresh
    assert explainer.layer == "block3_relu"
    assert len(items) == 2 * PER_CLASS and (per["error"] == "").all(), per["error"].tolist()
    summary = localisation.summarise_localisation(per).set_index("group")
    mi = summary.loc[localisation.MI_GROUP]
    assert mi["n"] == 2 * PER_CLASS
    assert mi["pointing_game"] >= TEST_BAR, summary.to_string()
    # far above chance (the pathology boxes cover about a quarter of the 13 lead boxes)
    assert mi["pointing_chance"] < 0.3 and mi["lead_mass"] > 1.5 * mi["area_share"], summary.to_string()
    assert mi["accuracy"] >= 0.9  # it explains a model that recognises these classes
    for cls in ("Myocardial Infarction", "History of MI"):  # neither class carries the other
        assert summary.loc[cls, "pointing_game"] >= TEST_BAR - 0.1, summary.to_string()


def test_the_scoring_gives_the_complement_leads_the_misses(fresh) -> None:
    """Score the same maps against every OTHER lead box: the game must fail there. Neighbouring synthetic boxes
    share a 4 px border, so a maximum on such a border may count for both sets; that stays rare."""
    explainer, items, per = fresh
    other = []
    for path, sc in items:
        sc2 = dict(sc)
        sc2["pathology_leads"] = [lead for lead in sc["boxes"] if lead not in sc["pathology_leads"]]
        other.append((path, sc2))
    per2 = _evaluate(explainer, other)
    hit, hit2 = per["pointing_hit"].astype(bool).to_numpy(), per2["pointing_hit"].astype(bool).to_numpy()
    assert np.all(hit | hit2)  # the map of a per-lead run peaks inside a lead box, always
    assert (hit & hit2).sum() <= 2, "maxima on a shared border of a pathology and another box should be rare"
    assert per2["pointing_hit"].astype(float).mean() <= 1.0 - TEST_BAR + 2 / len(items) + 1e-9
    # all the mass lies in the lead boxes (the shared borders count twice, hence a little over 1)
    assert (per2["lead_mass"] + per["lead_mass"]).between(0.999, 1.1).all()
    for i in np.flatnonzero(~hit):  # a miss names the box it points at instead, never a pathology lead
        assert per.loc[i, "max_lead"] not in items[i][1]["pathology_leads"]


def test_explain_page_scores_the_shown_map_against_the_synthetic_truth(fresh, monkeypatch, tmp_path) -> None:
    """The Explain page's per-lead view on a synthetic report says what explain-eval counts for that report: the
    pathology leads, hit or miss and where the maximum lies (the same map, the true class explained)."""
    import shutil

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    _, items, per = fresh
    models = tmp_path / "models"
    shutil.copytree(RUN, models / RUN.name, ignore=shutil.ignore_patterns("tensorboard"))
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(models))
    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    st.cache_data.clear()
    path, sc = items[0]
    row = per.set_index("path").loc[str(path)]
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "explain.py"), default_timeout=300)
    at.session_state["explain_path"] = str(path)
    at.session_state["explain_run"] = RUN.name
    at.run()
    assert not at.exception, at.exception
    said = [c.value for c in at.caption if c.value.startswith("Synthetic ground truth")]
    assert len(said) == 1, [c.value for c in at.caption]
    assert ", ".join(sc["pathology_leads"]) in said[0]
    if row["predicted"] == row["explained"]:  # the page explains the predicted class, explain-eval the true one
        assert ("hit" if row["pointing_hit"] else "miss") in said[0] and f"maximum in {row['max_lead']}" in said[0]
