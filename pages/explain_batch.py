"""Batch predict page: one trained model over a folder (searched recursively) or an uploaded zip of report images ->
one row per file (the predicted class, or why there is none), a few counts and a CSV download. Widgets ->
``ecg_core.reports.batch.predict_files`` (cached per model, folder and folder state, :mod:`app_ui.cache`); keys are
prefixed ``explain_batch_`` (the model choice, ``explain_run``, is the Explain page's)."""

from __future__ import annotations

import streamlit as st

from app_ui import auth, cache, common, widgets
from ecg_core.reports import batch

auth.page_guard()  # sharing mode: nothing without a login (app_ui/auth.py)
st.title("🗃️ Batch predict")
st.caption(common.DISCLAIMER)

model = widgets.pick_report_model(measurement=True, panels=True, ensemble=True)
kind = widgets.report_model_kind(model.run)
how = {"measurement": "A measurement model reads and measures each report (about a second per report here); the "
                      "column **reading** says when leads could not be read. ",
       "perlead": "The per-lead CNN cuts each report into its 13 lead panels; **top leads** are the leads it "
                  "attended most. ",
       "ensemble": "Every member of the ensemble predicts each report (the measurement model reads it, about a second "
                   "per report here) and their probabilities are averaged and calibrated; one **top[member]** column "
                   "per member says what each said. ",
       "keras": "The model's stored preprocessing is used. "}[kind]
st.caption("One row per file: the predicted class, or why there is none (unreadable, not an ECG report). " + how
           + "Research and education use only — not a diagnosis.")

source = st.radio("Files", ["Folder path", "Zip upload"], horizontal=True, key="explain_batch_source")
folder = ""
if source == "Folder path":
    folder = st.text_input("Folder with report images (searched recursively)", key="explain_batch_dir").strip()
    if folder:  # only inside the data roots, checked before anything lists the folder
        with common.guard("Opening the folder"):
            folder = str(common.inside_roots(folder))
else:
    up = st.file_uploader("Zip of report images", type=["zip"], key="explain_batch_zip")
    if up is not None:
        with common.safe(f"Extracting {up.name}"):
            root, skipped = common.extract_upload_zip(up.getvalue(), "batch")
        folder = str(root)
        if skipped:
            st.warning(f"{len(skipped)} entries of the zip were not extracted, e.g. "
                       + "; ".join(f"{n} ({why})" for n, why in skipped[:3]))
refuse = st.checkbox("Refuse images that are not recognised as ECG reports", True, key="explain_batch_check")
if st.button("Predict the batch", key="explain_batch_run", disabled=not folder):
    st.session_state["explain_batch_request"] = folder
if not folder or st.session_state.get("explain_batch_request") != folder:
    st.info("Choose a folder or a zip, then press **Predict the batch**.")
    st.stop()

profile, profile_problem = cache.ood_profile(model.run)
if profile_problem:
    st.warning(profile_problem)
predictor = model.explainer
if kind == "ensemble":
    with common.safe(f"Loading the members of {model.run.run_id}"):
        predictor, _ = cache.ensemble(model.run)
with common.safe("Predicting the batch"):
    table = cache.batch_predictions(model.key, folder, cache.folder_signature(folder, stat_files=True), refuse,
                                    predictor, model.cfg, id(profile), profile, kind=kind)
c1, c2, c3, c4 = st.columns(4)
c1.metric("files", len(table))
c2.metric("predicted", int((table["predicted"] != "").sum()))
c3.metric("not an ECG", int(table["reason"].str.startswith(batch.REASON_NOT_ECG).sum()))
c4.metric("unreadable", int(table["reason"].str.startswith(batch.REASON_UNREADABLE).sum()))
n_ood = int((table["in_distribution"] == "false").sum())
if kind == "perlead":
    st.info("Whether these reports resemble the model's training reports is not assessed for a per-lead CNN run "
            "(column **why out of distribution**); its ensemble assesses it.")
elif profile is None:
    st.info("Whether these reports resemble the model's training reports is unknown: the model has no OOD profile "
            "(`python -m ecg_core ood-profile RUN --data DIR` builds one).")
elif n_ood:
    st.warning(f"{n_ood} predicted reports look unlike the reports this model was trained on (column "
               "**in distribution** = false, **why out of distribution** says how): treat their predictions as "
               "unreliable.")
# ecg_score is not shown: on real reports it is one constant (0.9437 for 646 of 648 Mendeley images, the margin of the
# report layout's trace span), so it says nothing about the image; the verdict and its reasons are in `reason`
view = table.drop(columns=["ecg_score"], errors="ignore")
columns = {"path": st.column_config.TextColumn("file", width="medium"),
           "predicted": st.column_config.TextColumn("predicted class", width="medium"),
           "reason": st.column_config.TextColumn("why no prediction", width="large"),
           "in_distribution": st.column_config.TextColumn("in distribution", width="small"),
           "ood_reason": st.column_config.TextColumn("why out of distribution", width="large"),
           "reading": st.column_config.TextColumn("reading", width="large"),
           "top_leads": st.column_config.TextColumn("top leads", width="medium"),
           "layout": st.column_config.TextColumn("layout", width="small")}
columns.update({c: st.column_config.TextColumn(c, width="medium") for c in view.columns if c.startswith("top[")})
columns.update({c: st.column_config.NumberColumn(c.removeprefix("prob_"), format="%.2f", width="small")
                for c in view.columns if c.startswith("prob_")})
st.dataframe(view, hide_index=True, width="stretch", column_config=columns)
st.download_button("Download predictions (CSV)", view.to_csv(index=False).encode(), "predictions.csv",
                   "text/csv", key="explain_batch_csv")
