"""The Explain page for a measurement model: the verdict with calibrated probabilities and which model spoke, the
per-lead contributions of the measurements (bars and tinted lead boxes on the report), the top features, and the
Reading view. Grad-CAM and the other heatmap methods are for CNNs only; the page says so. Keys are prefixed
``explain_measure_``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app_ui import cache, common, widgets


def render(run: Any, model: Any, data: bytes, fhash: str, name: str, sidecar: dict | None) -> None:
    """Everything the Explain page shows for ``model`` (a :class:`ecg_core.ml.measure_model.MeasureModel`)."""
    import json

    from app_ui.reading import reading_view
    from ecg_core.imaging.loader import load_image
    from ecg_core.reports.measure_predict import lead_contributions, report_probabilities
    from ecg_core.reports.messages import class_messages, training_domain_note
    from ecg_core.reports.reading.features import report_features
    from ecg_core.viz.explain import probability_figure
    from ecg_core.viz.measure import contribution_overlay, lead_boxes, lead_contribution_figure

    with common.safe("Reading the image"):
        rgb = load_image(data).rgb
    widgets.input_check(rgb, name, key="explain_measure_force")
    with common.safe("Reading the traces"), st.spinner("Reading the 12 leads off the report and measuring them..."):
        dig, meas, _findings = cache.reading(fhash, data, json.dumps(sidecar) if sidecar else "")
        feats = report_features(dig, meas)
        probs = report_probabilities(model, feats)
    names = list(model.class_names)
    top = int(np.argmax(probs))
    left, right = st.columns([3, 2])
    left.plotly_chart(probability_figure(probs, names, title="Class probabilities (calibrated)"), width="stretch",
                      key="explain_measure_probs")
    domain = training_domain_note(run.data_source, input_synthetic=sidecar is not None)
    with right:
        st.markdown(f"**Model output:** {names[top]} ({probs[top]:.0%})")
        st.caption(f"Model that spoke: **{run.run_id}**, a measurement model ({model.kind}, "
                   f"{len(model.feature_names)} measurements read off the report; probabilities calibrated on its "
                   f"cross-validation, temperature {model.temperature:.2f}).")
        (st.warning if not domain.matches else st.caption)(domain.text)
        st.caption("A research model's output, not a diagnosis.")
    for msg in class_messages(probs, names, preset=str(run.meta.get("preset", "cardiac-4"))):
        with st.expander(f"{msg.class_name}: {msg.probability:.0%}", expanded=msg.class_index == top):
            st.write(msg.text)
    n_read = sum(dig.passed().values())
    if n_read < len(dig.quality):
        st.warning(f"Only {n_read} of {len(dig.quality)} traces were read with good quality: the prediction uses "
                   "what could be measured.")
    st.info("Grad-CAM and the other heatmap methods explain CNN models only. This model reads measurements, so its "
            "explanation is what each lead's measurements contribute to the chosen class (below).")
    st.subheader("Explanation: contributions per lead")
    cls = st.selectbox("Explain class", names, index=top, key=f"explain_measure_class_{run.run_id}_{fhash[:12]}")
    ci = names.index(cls)
    with common.safe("Computing the contributions"):
        per_lead, table = lead_contributions(model, feats, ci)
    st.plotly_chart(lead_contribution_figure(per_lead, cls), width="stretch", key="explain_measure_leads_fig")
    boxes = lead_boxes(dig.paths, rgb.shape[:2])
    if boxes:
        alpha = st.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05, key="explain_measure_alpha")
        st.image(contribution_overlay(rgb, boxes, per_lead, alpha=alpha), width="stretch",
                 caption=f"{name}: red leads push towards '{cls}', blue away (model margin; 'global' = "
                         f"{per_lead.get('global', 0.0):+.2f} from rate, intervals and quality)")
    else:
        st.caption("No lead could be located on this report: the contributions are shown as bars only.")
    shown = table.head(15).copy()
    shown["value"] = shown["value"].map(lambda v: "not measured" if not np.isfinite(v) else f"{v:.3g}")
    st.markdown("**Top measurements behind this class** (contribution to the model's margin)")
    st.dataframe(pd.DataFrame(shown), hide_index=True, width="stretch", key="explain_measure_table")
    st.divider()
    st.subheader("Reading")
    reading_view(data, fhash, name, sidecar)
