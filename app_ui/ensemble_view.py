"""The Explain page for an ensemble run (:mod:`ecg_core.reports.ensemble`): the calibrated average of its members'
probabilities, which models spoke (each member's top class and its probability of the shown class), then each
member's own explanation (:mod:`app_ui.measure_view`, :mod:`app_ui.perlead_view`) under its subheader. Keys are
prefixed ``explain_ensemble_``; the members' views keep theirs."""

from __future__ import annotations

import json
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
