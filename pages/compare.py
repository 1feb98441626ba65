"""Compare page: training runs side by side — metrics with 95 % CIs and a leakage badge, per-model and per-class
bars, training curves, confusion matrices (two per row, grouped by dataset; pooled only within one dataset), ROC and
precision-recall curves (one class for every run, or every class of one run), calibration, size and measured
latency, k-fold results, the misclassified test images (click one to explain it) — and the leakage demonstration.
Runs trained on different datasets (``run.json``: ``data_source``, ``data_fingerprint``) are flagged."""

from pathlib import Path

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from app_ui import auth, cache, common, widgets
from ecg_core.core import paths
from ecg_core.ml import compare, leakage_demo, registry, report
from ecg_core.viz import evaluation as viz_eval
from ecg_core.core.errors import EcgCoreError

GALLERY_COLUMNS = 4
BADGE = {"ok": st.success, "leaky": st.warning, "unknown": st.info}


def chart(fig, name: str) -> None:
    """A plotly chart whose modebar camera icon downloads it as PNG (done by the browser: no kaleido needed)."""
    st.plotly_chart(fig, width="stretch", key=f"compare_fig_{name}", config={
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": f"ecg-insight-{name}", "scale": 2},
    })


# --------------------------------------------------------------------------------------------------- page
auth.page_guard()  # sharing mode: nothing without a login (app_ui/auth.py)
st.title("📊 Compare runs")
st.caption(
    "Every number is measured on each run's held-out test split, with 95 % confidence intervals from a bootstrap "
    "over distinct images. To save a figure as PNG use the camera icon of its toolbar (top right of the chart); "
    "the table downloads as CSV below it."
)

models_dir = paths.models_dir()
with common.guard("Reading the model registry"):
    infos = registry.list_runs(models_dir)
    records = [cache.run_record(str(r.path), compare.run_signature(r)) for r in infos]
if not records:
    st.info(
        f"No trained runs yet in `{models_dir}`. Train a model on the Train page (or "
        "`python -m ecg_core train --data DIR`), then compare runs here."
    )
    st.stop()

usable = [r for r in records if r.usable]
unusable = [r for r in records if not r.usable]
widgets.unusable_runs(unusable, f"{len(unusable)} run(s) cannot be compared", expanded=not usable)
if not usable:
    st.warning("None of the runs in the registry can be compared yet: see the reasons above.")
    st.stop()

# ---------------------------------------------------------------------------------- leakage demonstration
demo_sig = "|".join(compare.run_signature(r) for r in infos if r.run_id.startswith(leakage_demo.LEAKDEMO_PREFIX))
demos = cache.leakage_demos(str(models_dir), demo_sig) if demo_sig else []
with st.expander("🎓 Leakage demonstration: random file-level split vs group-aware split", expanded=bool(demos)):
    if not demos:
        st.caption(
            "No demonstration in the registry yet. `python -m ecg_core leakage-demo --data DIR --height 96 "
            "--width 160 --epochs 15` (or `scripts/leakage_demo.py`) trains one model twice on the same data — "
            "once with a random file-level split, once split by duplicate group — and it appears here."
        )
    else:
        tags = [d["tag"] for d in demos]
        tag = st.selectbox("Demonstration", tags, key="compare_leak_demo") if len(demos) > 1 else tags[0]
        demo = demos[tags.index(tag)]
        left, right = st.columns(2)
        for col, kind, title in ((left, "file", "Random file-level split (leaky)"),
                                 (right, "group", "Split by duplicate group (honest)")):
            r = demo["runs"][kind]
            acc_ci, f1_ci = r.get("accuracy_ci") or [None, None], r.get("macro_f1_ci") or [None, None]
            with col:
                st.markdown(f"**{title}** · `{r['run_id']}`")
                m1, m2 = st.columns(2)
                m1.metric("test accuracy", f"{r['accuracy']:.1%}" if r.get("accuracy") is not None else "n/a")
                m2.metric("test macro-F1", f"{r['macro_f1']:.3f}" if r.get("macro_f1") is not None else "n/a")
                st.caption(
                    (f"95 % CI accuracy {acc_ci[0]:.1%}–{acc_ci[1]:.1%}, macro-F1 {f1_ci[0]:.3f}–{f1_ci[1]:.3f}. "
                     if None not in acc_ci and None not in f1_ci else "")
                    + f"{r['n_test']} test files = {r['n_test_distinct']} distinct images; "
                    f"{r.get('n_test_exact_in_train', '?')} test files have an exact copy in training "
                    f"({r.get('n_test_group_in_train', '?')} an exact or near copy)."
                )
        st.info(demo["explanation"])

# ------------------------------------------------------------------------------------------- run choice
by_id = {r.run_id: r for r in usable}
chosen = st.multiselect(
    "Runs to compare", list(by_id), default=list(by_id)[:3], key="compare_runs",
    format_func=lambda i: f"{i} ({by_id[i].arch}, split by {by_id[i].split_by})",
)
if not chosen:
    st.info("Choose one or more runs above.")
    st.stop()
sel = [by_id[i] for i in chosen]
reports = {r.run_id: r.report for r in sel}
groups = compare.dataset_groups(sel)
mixed = len(groups) > 1
if mixed:
    st.warning(
        "These runs were trained and tested on **different datasets** — "
        + "; ".join(f"{g}: {', '.join(r.run_id for r in recs)}" for g, recs in groups.items())
        + ". Their numbers come from different test sets and are not directly comparable (a model can score well "
        "on synthetic reports and poorly on real ones); confusion matrices are shown per dataset and never pooled "
        "across them."
    )

# latency is measured only after the button below was pressed (then cached per run and number of passes)
latency: dict[str, dict] = {}
latency_errors: dict[str, str] = {}
n_passes = int(st.session_state.get("compare_latency_n", 20))
if st.session_state.get("compare_latency_on"):
    with st.spinner("Loading models and timing forward passes..."):
        for r in sel:
            try:
                latency[r.run_id] = cache.latency(r.path, compare.run_signature(Path(r.path)), n_passes)
            except EcgCoreError as e:
                latency_errors[r.run_id] = str(e)

# -------------------------------------------------------------------------------------------- the table
st.subheader("Side by side")
table = compare.compare_table(sel, latency_ms={k: v["median_ms"] for k, v in latency.items()} if latency else None)
st.dataframe(compare.display_table(table), hide_index=True, width="stretch")
st.download_button("Download the table (CSV)", table.to_csv(index=False).encode(), "ecg-insight-compare.csv",
                   "text/csv", key="compare_download_csv")
for r in sel:
    badge = r.badge
    BADGE.get(badge.level, st.info)(f"**{r.run_id}** · {badge.text}")

# ------------------------------------------------------------------------------------------ metric charts
chart(viz_eval.metrics_by_model(reports), "metrics-by-model")
same_classes, why = report.compatible_class_sets(reports)
if same_classes:
    chart(viz_eval.metrics_by_class(reports), "metrics-by-class")
else:
    st.warning(f"Per-class charts and confusion matrices are not merged across these runs: {why}. "
               "Each run is shown on its own.")
    for tab, r in zip(st.tabs(chosen), sel):
        with tab:
            chart(viz_eval.metrics_by_class({r.run_id: r.report}), f"metrics-by-class-{r.run_id}")

st.subheader("Training and validation curves")
chart(viz_eval.training_curves({r.run_id: r.history for r in sel}), "training-curves")

st.subheader("Confusion matrices")
CM_COLUMNS = 2  # two readable matrices per row (never one narrow strip per run)
for g, (group, recs) in enumerate(groups.items()):
    if mixed:
        st.markdown(f"**{group}**: {', '.join(r.run_id for r in recs)}")
    for row in range(0, len(recs), CM_COLUMNS):
        cols = st.columns(CM_COLUMNS)
        for col, r in zip(cols, recs[row:row + CM_COLUMNS]):
            with col:
                fig = viz_eval.confusion_heatmap(r.report, title=f"{r.run_id} ({r.data_source} data)")
                fig.update_layout(height=440, margin={"l": 10, "r": 10, "t": 50, "b": 10})
                chart(fig, f"confusion-{r.run_id}")
    group_reports = {r.run_id: r.report for r in recs}
    if len(recs) > 1:
        ok, why_group = report.compatible_class_sets(group_reports)
        if ok:
            with st.expander(f"Pooled confusion matrix — {group} (counts summed over {len(recs)} runs tested on "
                             "this dataset)"):
                fig = viz_eval.confusion_heatmap(report.merge_confusion(group_reports),
                                                 class_names=recs[0].report.class_names, title=f"pooled · {group}")
                fig.update_layout(height=440)
                chart(fig, f"confusion-pooled-{g}")
        else:
            st.caption(f"No pooled confusion matrix for {group}: {why_group}.")
if mixed:
    st.caption("No pooled confusion matrix across datasets: counts from different test sets are never summed.")
elif len(sel) > 1 and not same_classes:
    st.caption(f"No pooled confusion matrix: {why}.")

st.subheader("ROC and precision-recall curves (one-vs-rest)")
classes = list(dict.fromkeys(c for r in sel for c in r.report.class_names))
options = [*classes, "all classes"]
curve_class = st.selectbox("Class", options, key="compare_roc_class", index=len(classes) if len(sel) == 1 else 0,
                           help="one class: its curve for every run; all classes: every class of one run")
if curve_class == "all classes" and len(sel) > 1:
    one = st.selectbox("Run (all classes are drawn for one run at a time)", chosen, key="compare_curve_run")
    curve_runs, wanted = [by_id[one]], None
else:
    curve_runs, wanted = sel, None if curve_class == "all classes" else [curve_class]
labels = {r.run_id: f"{r.run_id} [{r.data_source}]" if mixed else r.run_id for r in curve_runs}
left, right = st.columns(2)
with left:
    fig = viz_eval.roc_curves({labels[r.run_id]: r.report for r in curve_runs}, classes=wanted)
    fig.update_layout(height=520, legend={"orientation": "h", "y": -0.2})
    chart(fig, "roc")
with right:
    fig = viz_eval.pr_curves({labels[r.run_id]: r.pr for r in curve_runs}, classes=wanted)
    fig.update_layout(height=520, legend={"orientation": "h", "y": -0.2})
    chart(fig, "pr")
st.caption("Precision-recall curves from each run's predictions.csv (scikit-learn `precision_recall_curve`); AP = "
           "average precision. With one class, the dotted line is its prevalence (the precision of guessing).")
st.subheader("Calibration")
chart(viz_eval.reliability_diagram(reports), "calibration")

# ------------------------------------------------------------------------------------------ size and speed
st.subheader("Size and inference latency")
c1, c2 = st.columns([1, 3])
c1.number_input("forward passes", 5, 200, 20, step=5, key="compare_latency_n")
c2.button("Measure latency (load each model, time single-image passes)", key="compare_latency_btn",
          on_click=lambda: st.session_state.update(compare_latency_on=True))
if latency:
    st.dataframe(pd.DataFrame([
        {"run": k, "median (ms)": round(v["median_ms"], 2), "p10 (ms)": round(v["p10_ms"], 2),
         "p90 (ms)": round(v["p90_ms"], 2), "passes": v["n"], "input": "x".join(map(str, v["input_shape"]))}
        for k, v in latency.items()
    ]), hide_index=True, width="stretch")
    st.caption("Batch of one preprocessed image, after 3 warm-up passes, on this machine (shared CPU/GPU): "
               "compare runs measured together, not across machines.")
for run_id, msg in latency_errors.items():
    st.warning(f"{run_id}: latency not measured — {msg}")
if not latency and not latency_errors:
    st.caption("Parameters and model size are in the table; press the button to measure latency.")

# -------------------------------------------------------------------------------------------------- k-fold
kfold = {r.run_id: r.kfold_report for r in sel if r.kfold_report is not None}
if kfold:
    st.subheader("Cross-validation (out-of-fold predictions)")
    st.caption("Group-aware k-fold: every file is predicted once by the model that did not train on its group.")
    kf_table = compare.compare_table(sel, split="oof")
    st.dataframe(compare.display_table(kf_table), hide_index=True, width="stretch")
    chart(viz_eval.metrics_by_model(kfold, title="Metrics by model (out-of-fold)"), "metrics-by-model-oof")

# ------------------------------------------------------------------------------------------ misclassified
st.subheader("Misclassified test images")
gallery_run = st.selectbox("Run", chosen, key="compare_gallery_run")
run = by_id[gallery_run]
with common.guard("Reading the predictions"):
    wrong = cache.misclassified(run.path, compare.run_signature(Path(run.path)))
if wrong is None:
    st.info(f"{gallery_run} has no predictions.csv.")
elif wrong.empty:
    st.success(f"{gallery_run} classified every test image correctly.")
else:
    st.caption(f"{len(wrong)} of {run.report.n} test files are wrong, most confident first. "
               "Press “Explain” under an image to open it on the Explain page with this run.")
    shown = st.slider("images shown", 1, len(wrong), min(12, len(wrong)), key="compare_gallery_n") \
        if len(wrong) > 1 else 1
    cols = st.columns(GALLERY_COLUMNS)
    for i, row in enumerate(wrong.head(shown).itertuples(index=False)):
        with cols[i % GALLERY_COLUMNS]:
            thumb = cache.thumbnail(row.path, 320) if Path(row.path).is_file() else None
            if thumb is not None:
                st.image(thumb, width="stretch")
            else:
                st.caption(f"`{Path(row.path).name}` cannot be shown (file moved or unreadable)")
            st.caption(f"true **{row.true}** → predicted **{row.predicted}** ({row.confidence:.0%})")
            if st.button("Explain", key=f"compare_explain_{i}", disabled=thumb is None):
                st.session_state["explain_path"] = row.path
                st.session_state["explain_run"] = gallery_run
                try:
                    st.switch_page("pages/explain.py")
                except StreamlitAPIException:  # the page runs on its own (no navigation), e.g. in a test
                    st.info("Open the Explain page: the image and run are selected there.")
