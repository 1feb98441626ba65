"""Arrhythmia page — coming next (see the project's open issues)."""

import streamlit as st

st.title("Arrhythmia")
st.info("This page is coming next: its issue has not landed yet. The Data and Preprocess pages work today.")
