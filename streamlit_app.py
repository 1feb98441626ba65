"""ECG Insight — entry point: ``streamlit run streamlit_app.py``.

Builds the navigation over the pages (listed explicitly; with st.navigation the pages/ folder is not
auto-discovered) and the shared sidebar (dataset picker). Every page is a thin script over ``ecg_core``.
"""

from __future__ import annotations

import streamlit as st

from app_ui import common

st.set_page_config(page_title="ECG Insight", page_icon="🫀", layout="wide")

PAGES = {
    "": [st.Page("pages/home.py", title="Home", icon="🏠", default=True)],
    "Data": [
        st.Page("pages/data.py", title="Data", icon="🗂️"),
        st.Page("pages/preprocess.py", title="Preprocess", icon="🧪"),
        st.Page("pages/augment.py", title="Augment", icon="🎛️"),
        st.Page("pages/learn.py", title="Learn", icon="🎓"),
    ],
    "Models": [
        st.Page("pages/train.py", title="Train", icon="🏋️"),
        st.Page("pages/compare.py", title="Compare", icon="📊"),
        st.Page("pages/explain.py", title="Explain", icon="🔎"),
        st.Page("pages/arrhythmia.py", title="Arrhythmia", icon="💓"),
    ],
}

nav = st.navigation(PAGES)
common.dataset_sidebar()
with st.sidebar:
    st.divider()
    st.caption(common.DISCLAIMER)
nav.run()
