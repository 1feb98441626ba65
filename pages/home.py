"""Landing page: what the app does, for whom, and the research/education-use disclaimer (the longer prose and the
example reports are in ``assets/``: ``app_ui.assets``)."""

import streamlit as st
from streamlit.errors import StreamlitAPIException

from app_ui import assets, auth, cache, common

auth.page_guard()  # sharing mode: nothing without a login (app_ui/auth.py)
st.title("🫀 ECG Insight")
st.subheader("Explore, train and explain CNNs on 12-lead ECG report images")
st.warning(common.DISCLAIMER, icon="⚠️")

START_HINT = ("**Where to start:** open **Explain**, choose *Upload* there and upload a photo or scan of a 12-lead "
              "ECG report: you get the model's prediction and a heatmap of the leads it used (a sample report of "
              "the current dataset is explained until you do).")
st.markdown(START_HINT)
try:
    st.page_link("pages/explain.py", label="Upload an ECG → Explain", icon="🔎")
except StreamlitAPIException:  # the page runs on its own (no navigation), e.g. in a test
    st.caption("Open **Explain** in the sidebar (Models → Explain).")


_warmup = cache.start_warmup()  # started by streamlit_app.py; also when this page runs alone
_polling = not _warmup.state().done
# every poll is a fragment run that competes with the warm-up thread for the interpreter: polling twice a second
# made the warm-up itself take 49-197 s in the server (bench/cold_start.py, 2 busy cores) against 13-17 s when
# polling every 2 s. So that "ready" shows without waiting for the next poll, each poll (a fragment-only run, never
# the page's first run: the rest of the page must not wait) also waits up to WARMUP_WAIT_S on the warm-up's done
# event, which holds no interpreter lock; the price: a click during the first seconds may wait up to that long
WARMUP_POLL_S = 2.0
WARMUP_WAIT_S = 1.5


def _fragment_only_run() -> bool:
    """True when this script run reruns fragments only (a poll), not the whole page."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


@st.fragment(run_every=WARMUP_POLL_S if _polling else None)
def _warmup_status(polling: bool) -> None:
    """One line about the background load of the default model; polls every WARMUP_POLL_S s while it loads."""
    s = _warmup.state()
    if s.status == "warming" and polling and _fragment_only_run():
        s = _warmup.wait(timeout=WARMUP_WAIT_S)
    if s.status == "warming":
        which = f" (`{s.run_id}`)" if s.run_id else ""
        st.caption(f"⏳ Loading the default model in the background…{which} {s.seconds:.0f} s so far; every page "
                   "works meanwhile.")
        return
    if polling:  # it finished while this fragment polls: rerun the page once, without polling
        st.rerun()
    if s.status == "ready":
        st.caption(f"✅ Default model ready: `{s.run_id}` (loaded in {s.seconds:.1f} s); the Explain page opens it "
                   "without waiting.")
    elif s.status == "failed" and s.run_id is None:
        st.info(f"No default model to load: {s.message}. Train one on the **Train** page; the other pages work "
                "without one.", icon="ℹ️")
    elif s.status == "failed":
        st.warning(f"The default model `{s.run_id}` could not be loaded in the background: {s.message}. "
                   "The Explain page will try again when you open it.", icon="⚠️")
    else:  # disabled
        st.caption(f"Background loading of the default model is off ({s.message}); the Explain page loads a model "
                   "when you open it.")


_warmup_status(_polling)

st.markdown(assets.text("home"))

with st.expander("What a report looks like (two synthetic examples)"):
    for col, (caption, rel) in zip(st.columns(len(assets.DEMO_REPORTS)), assets.DEMO_REPORTS.items()):
        col.image(str(assets.path(rel)), caption=caption, width="stretch")

with st.expander("Data credits"):
    st.markdown(assets.text("credits"))
