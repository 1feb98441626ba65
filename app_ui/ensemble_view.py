"""The Explain page for an ensemble run (:mod:`ecg_core.reports.ensemble`): the calibrated average of its members'
probabilities, which models spoke (each member's top class and its probability of the shown class), then each
member's own explanation (:mod:`app_ui.measure_view`, :mod:`app_ui.perlead_view`) under its subheader. Keys are
prefixed ``explain_ensemble_``; the members' views keep theirs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from app_ui import cache, common


def _member_probs(member: Any, bundle: Any, data: bytes, fhash: str, sidecar: dict | None) -> np.ndarray:
    """One member's probabilities of the report, from the same cached computations its own view uses."""
    side = json.dumps(sidecar) if sidecar else ""
    if member.is_measurement:
        from ecg_core.reports.measure_predict import report_probabilities
        from ecg_core.reports.reading.features import report_features

        dig, meas, _ = cache.reading(fhash, data, side)
        return report_probabilities(bundle, report_features(dig, meas))
    _, first = cache.perlead_explanation(cache.run_key(member), fhash, side, None, data, bundle)
    return np.asarray(first.probs, np.float64)


def render(run: Any, data: bytes, fhash: str, name: str, sidecar: dict | None) -> None:
    """Everything the Explain page shows for an ensemble run."""
    from app_ui import measure_view, perlead_view
    from ecg_core.reports.ensemble import spoke_caption
    from ecg_core.viz.explain import probability_figure

    with common.safe(f"Loading the members of {run.run_id}"):
        ens, bundles = cache.ensemble(run)
    members, temperature = ens.members, ens.temperature
    with common.safe("Predicting with every member"), st.spinner("Predicting with every member..."):
        member_probs = [_member_probs(m, b, data, fhash, sidecar) for m, b in zip(members, bundles)]
    probs = ens.combine([p[None] for p in member_probs])[0]
    names = list(run.class_names)
    top = int(np.argmax(probs))
    st.subheader("Ensemble")
    left, right = st.columns([3, 2])
    left.plotly_chart(probability_figure(probs, names, title="Class probabilities (averaged, calibrated)"),
                      width="stretch", key=f"explain_ensemble_probs:{run.run_id}:{fhash}")
    with right:
        st.markdown(f"**Model output:** {names[top]} ({probs[top]:.0%})")
        st.caption(f"Models that spoke ({run.run_id}: weights fixed beforehand, temperature {temperature:.2f} "
                   "fitted on the averaged out-of-fold probabilities):")
        st.markdown("\n".join(f"- {line}" for line in spoke_caption(ens, member_probs, top).split("; ")))
        agree = len({int(np.argmax(p)) for p in member_probs}) == 1
        (st.caption if agree else st.warning)("The members agree on the top class." if agree else
                                              "The members disagree on the top class: read both explanations.")
        st.caption("A research model's output, not a diagnosis.")
    for m, b in zip(members, bundles):
        st.divider()
        st.subheader(f"Member: {m.run_id}")
        if m.is_measurement:
            measure_view.render(m, b, data, fhash, name, sidecar)
        else:
            perlead_view.render(m, b, data, fhash, name, sidecar)
    st.divider()
    _pdf_section(run, ens, bundles, member_probs, probs, data, fhash, name, sidecar)


def _pdf_section(run: Any, ens: Any, bundles: list[Any], member_probs: list[np.ndarray], probs: np.ndarray,
                 data: bytes, fhash: str, name: str, sidecar: dict | None) -> None:
    """The PDF report of the ensemble's verdict: its calibrated probabilities, which models spoke, the per-lead
    member's Grad-CAM of the ensemble's top class with the attention per lead box, the measurement member's
    reading (measurements and the criteria that fired), the input check and the outside-the-training-data verdict."""
    from ecg_core.imaging.loader import load_image
    from ecg_core.reports import pdf as report
    from ecg_core.reports.ecg_check import check_ecg
    from ecg_core.reports.ensemble import spoke_caption
    from ecg_core.reports.leads import lead_attention
    from ecg_core.reports.reading.measure import global_table, lead_table
    from ecg_core.xai.overlay import overlay

    st.subheader("Report")
    if not st.toggle("Prepare a PDF report", key="explain_ensemble_pdf_on"):
        return
    names = list(run.class_names)
    top = int(np.argmax(probs))
    side = json.dumps(sidecar) if sidecar else ""
    with common.safe("Preparing the PDF report"):
        rgb = load_image(data).rgb
        over, table, title, layout_msg = rgb, None, "no heatmap (no per-lead CNN member)", ""
        notes = [f"Ensemble {run.run_id}: the calibrated average of its members' probabilities (weights fixed "
                 "beforehand)."] + [f"Member {line}" for line in spoke_caption(ens, member_probs, top).split("; ")]
        reading = None
        for m, b in zip(ens.members, bundles):
            if m.is_measurement and reading is None:
                _, meas, findings = cache.reading(fhash, data, side)
                reading = (global_table(meas), lead_table(meas), tuple(f.text for f in findings))
            elif not m.is_measurement and table is None:
                _, ex = cache.perlead_explanation(cache.run_key(m), fhash, side, top, data, b)
                if ex.heatmap is not None:
                    over = overlay(rgb, ex.heatmap, alpha=0.55)
                    table = lead_attention(ex.heatmap, ex.mosaic.layout)
                    title = f"Grad-CAM of the per-lead member {m.run_id}"
                    layout_msg = ex.mosaic.layout.message
        ood_message = cache.ood_of_image(run, fhash, data, name).message
        content = report.ReportContent(
            image=rgb, overlay=over, probs=probs, class_names=names, run_meta=run.meta, method_title=title,
            explained_class=names[top], image_name=name, lead_table=table, layout_message=layout_msg,
            ecg_check_message=check_ecg(rgb).message, ood_message=ood_message, notes=notes,
            measurement_tables=reading[:2] if reading else None, criteria=reading[2] if reading else ())
        pdf = cache.pdf_report(f"ensemble|{cache.run_key(run)}|{fhash}|{top}|ood:{ood_message}", content)
    st.download_button("Download the PDF report", pdf, f"{Path(name).stem}_explained.pdf", "application/pdf",
                       key="explain_ensemble_pdf")
