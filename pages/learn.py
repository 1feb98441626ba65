"""Learn page: synthetic 12-lead reports with ground truth — what each class looks like and where to look."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_ui import assets, auth, cache, common
from app_ui.reading import record_section
from ecg_core.reports import synth
from ecg_core.core.labels import get_preset

PRESET = get_preset(synth.PRESET_NAME)
_PAPERS = (*synth.GRID_STYLES, "black & white")


auth.page_guard()  # sharing mode: nothing without a login (app_ui/auth.py)
st.title("Learn: reading a 12-lead ECG")
st.caption(assets.text("learn"))

c1, c2, c3 = st.columns(3)
with c1:
    cls = st.selectbox("Class", synth.CLASS_KEYS, format_func=lambda k: PRESET.info(k).name, key="learn_class")
subtype = territory = None
with c2:
    if cls in synth.SUBTYPES:
        subtype = st.selectbox("Subtype", synth.SUBTYPES[cls], format_func=lambda k: synth.SUBTYPE_INFO[k][0],
                               key="learn_subtype")
    elif cls in ("myocardial_infarction", "history_of_mi"):
        territory = st.selectbox("Territory", tuple(synth.MI_TERRITORIES), key="learn_territory")
with c3:
    seed = int(st.number_input("Seed", min_value=0, max_value=999_999, value=0, step=1, key="learn_seed"))

with st.expander("Heart rate, severity, noise and paper", expanded=False):
    lo, hi = synth.heart_rate_range(cls, subtype)
    hr_auto = st.checkbox("Heart rate drawn from the seed", value=True, key="learn_hr_auto")
    heart_rate = None
    if not hr_auto:
        heart_rate = float(st.slider("Heart rate (bpm)", int(lo), int(hi), int((lo + hi) / 2),
                                     key=f"learn_hr_{cls}_{subtype}"))
    severity = st.slider("Severity", 0.0, 1.0, 0.6, 0.05, key="learn_severity")
    noise = st.slider("Noise (baseline wander, mains, muscle)", 0.0, 1.0, 0.2, 0.05, key="learn_noise")
    paper = st.selectbox("Paper", _PAPERS, key="learn_paper")
    artifacts = st.checkbox("Scan / photo artifacts", value=False, key="learn_artifacts")
highlight = st.checkbox("Highlight the affected leads", value=True, key="learn_highlight")

with common.guard("Drawing the report"):
    image, sidecar = cache.synth_report(cls, subtype, territory, heart_rate, severity, noise, seed, paper,
                                        artifacts, highlight)

info = PRESET.info(cls)
affected = [lead.replace("_", " ") for lead in sidecar["pathology_leads"]]
st.image(image, caption=f"{info.name} — HR {sidecar['heart_rate_bpm']:.0f} bpm"
         + (f" — affected: {', '.join(affected)}" if affected else ""), width="stretch")

left, right = st.columns(2)
with left:
    st.subheader(info.name)
    st.write(info.description)
    st.markdown(f"**What a cardiologist looks for:** {info.look_for}")
    if subtype is not None:
        name, text = synth.SUBTYPE_INFO[subtype]
        st.markdown(f"**{name}:** {text}")
    if territory is not None:
        st.markdown(f"**{territory.capitalize()} territory:** {synth.TERRITORY_INFO[territory]}")
with right:
    st.subheader("Where each lead sits")
    st.caption("● = affected lead in this report; territory in brackets.")
    st.table(synth.lead_layout_table(sidecar["pathology_leads"]))
    st.table(pd.DataFrame({"leads": [", ".join(v) for v in synth.MI_TERRITORIES.values()],
                           "meaning": list(synth.TERRITORY_INFO.values())},
                          index=list(synth.MI_TERRITORIES)))

with st.expander("Ground truth of this report (JSON sidecar)"):
    st.json(sidecar, expanded=False)

st.subheader("The four classes")
for c in PRESET.classes:
    with st.expander(c.name, expanded=False):
        st.write(c.description)
        st.markdown(f"**Look for:** {c.look_for}")

record_section(paper, artifacts)  # a real 12-lead recording printed with the same paper (issue 14)
