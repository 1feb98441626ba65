"""The Explain page for a per-lead CNN (input ``report_panels``, :mod:`ecg_core.reports.perlead_predict`): the
verdict with its probabilities, the Grad-CAM heatmap mapped from the 13 lead panels back onto the report, and the
model's attention weight per lead (bars and tinted lead boxes). Keys are prefixed ``explain_perlead_``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import streamlit as st

from app_ui import cache, common, widgets

ATTENTION_CAPTION = ("The attention weights are the model's own pooling weights over the 13 panels (12 leads and the "
                     "rhythm strip; they sum to 100 %): how much each panel's encoding counts in the verdict. They "
                     "are the same for every class; the Grad-CAM map above is computed for the chosen class.")


def render(run: Any, bundle: tuple[Any, Any], data: bytes, fhash: str, name: str, sidecar: dict | None) -> None:
    """Everything the Explain page shows for a per-lead CNN (``bundle``: :func:`app_ui.cache.perlead_model`)."""
    from ecg_core.reports.messages import class_messages, training_domain_note
    from ecg_core.viz.explain import probability_figure
    from ecg_core.viz.measure import contribution_overlay
    from ecg_core.viz.perlead import attention_weight_figure
    from ecg_core.xai.overlay import overlay

    rkey, side = cache.run_key(run), json.dumps(sidecar) if sidecar else ""
    with common.safe("Predicting"), st.spinner("Cutting the report into its lead panels, predicting..."):
        rgb, first = cache.perlead_explanation(rkey, fhash, side, None, data, bundle)
    widgets.input_check(rgb, name, key="explain_perlead_force")
    names = list(run.class_names)
    probs, top = np.asarray(first.probs), int(np.argmax(first.probs))
    left, right = st.columns([3, 2])
    left.plotly_chart(probability_figure(probs, names), width="stretch", key="explain_perlead_probs")
    domain = training_domain_note(run.data_source, input_synthetic=sidecar is not None)
    with right:
        st.markdown(f"**Model output:** {names[top]} ({probs[top]:.0%})")
        st.caption(f"Model that spoke: **{run.run_id}**, a per-lead CNN (one encoder over the 12 lead panels and "
                   "the rhythm strip, pooled with attention over the leads).")
        (st.warning if not domain.matches else st.caption)(domain.text)
        st.caption("A research model's output, not a diagnosis.")
    for msg in class_messages(probs, names, preset=str(run.meta.get("preset", "cardiac-4"))):
        with st.expander(f"{msg.class_name}: {msg.probability:.0%}", expanded=msg.class_index == top):
            st.write(msg.text)
    layout = first.mosaic.layout
    if layout.is_fallback:
        st.warning(f"Template lead boxes: {layout.message}. The panels may be misplaced.")
    else:
        st.caption(layout.message)

    st.subheader("Explanation: Grad-CAM on the lead panels")
    c1, c2 = st.columns(2)
    # one selector per (model, image): a new image starts at its own top class
    ci = c1.selectbox("Explain class", list(range(len(names))), index=top,
                      format_func=lambda i: f"{names[i]} ({probs[i]:.0%})",
                      key=f"explain_perlead_class:{run.run_id}:{fhash}")
    alpha = c2.slider("Heatmap opacity", 0.0, 1.0, 0.55, 0.05, key="explain_perlead_alpha")
    with common.safe("Computing Grad-CAM"), st.spinner("Grad-CAM..."):
        _, ex = (rgb, first) if int(ci) == top else cache.perlead_explanation(rkey, fhash, side, int(ci), data,
                                                                              bundle)
    if ex.heatmap is not None:
        st.image(overlay(rgb, ex.heatmap, alpha=alpha), width="stretch",
                 caption=f"Grad-CAM (layer {run.meta.get('last_conv_layer', 'last conv')}) for “{names[int(ci)]}”, "
                         "computed on the 13 panels and drawn back into each lead's box (0 outside the boxes)")
        if sidecar and sidecar.get("pathology_leads") and sidecar.get("boxes"):  # a synthetic report: its truth
            from ecg_core.reports.localisation import lead_mass_score, max_lead, pointing_game

            truth, boxes_gt = list(sidecar["pathology_leads"]), sidecar["boxes"]
            lm = lead_mass_score(ex.heatmap, boxes_gt, truth)
            hit = pointing_game(ex.heatmap, boxes_gt, truth)
            st.caption(f"Synthetic ground truth: pathology in {', '.join(truth)} · pointing game "
                       f"{'hit' if hit else 'miss'} (maximum in {max_lead(ex.heatmap, boxes_gt) or 'no box'}) · "
                       f"{lm.mass_fraction:.0%} of the map there")
    st.subheader("Attention per lead")
    st.plotly_chart(attention_weight_figure(first.attention_rows), width="stretch", key="explain_perlead_att_fig")
    st.caption(ATTENTION_CAPTION)
    per_lead = {("II_rhythm" if r["lead"] == "rhythm" else r["lead"]): r["weight"] for r in first.attention_rows}
    boxes = {k: tuple(int(v) for v in b) for k, b in layout.boxes.items() if k in per_lead}
    if boxes:
        st.image(contribution_overlay(rgb, boxes, per_lead, alpha=0.45), width="stretch",
                 caption=f"{name}: each lead box tinted by its attention weight (the strongest at full tint)")
    ranked = sorted(first.attention_rows, key=lambda r: r["rank"])[:3]
    st.markdown("**Most attended:** " + ", ".join(f"{r['lead']} ({r['weight']:.0%})" for r in ranked))
