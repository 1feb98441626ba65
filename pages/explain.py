"""Explain page: pick a trained model and a report, check that it is an ECG, see the prediction, the heatmap on the
report for any class and method (shown at display resolution, downloadable at full resolution), attention per
lead, faithfulness checks and a PDF report. Widgets -> ``ecg_core.reports.pipeline`` (cached per model,
:mod:`app_ui.cache`) -> figures; keys are prefixed ``explain_``. A folder or a zip of reports: the Batch predict page.

Another page can open an image here with ``st.session_state["explain_path"] = "/path/to/report.jpg"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import streamlit as st

from app_ui import auth, cache, common, widgets
from app_ui.reading import reading_view
from ecg_core.core import paths
from ecg_core.core.errors import EcgCoreError
from ecg_core.core.hashing import file_hash
from ecg_core.imaging.loader import read_bytes
from ecg_core.ml import registry
from ecg_core.reports import leads, pipeline
from ecg_core.reports import pdf as report
from ecg_core.reports.localisation import lead_mass_score, pointing_game
from ecg_core.reports.messages import class_messages, training_domain_note
from ecg_core.viz.explain import faithfulness_figure, probability_figure, zoomable_image_figure
from ecg_core.xai.faithfulness import faithfulness_verdicts, verdict_summary
from ecg_core.xai.methods import method_title
from ecg_core.xai.overlay import overlay


VERDICT_ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return buf.tobytes() if ok else b""


auth.page_guard()  # sharing mode: nothing without a login (app_ui/auth.py)
st.title("🔎 Explain")
st.caption(common.DISCLAIMER)

model = widgets.pick_report_model(measurement=True, panels=True, ensemble=True)
run, run_id, usable, cfg, explainer, rkey = (model.run, model.run_id, model.usable, model.cfg, model.explainer,
                                             model.key)

# ------------------------------------------------------------------------------------------------ one report
data: bytes | None = None
name = ""
path: Path | None = None
linked = st.session_state.get("explain_path")
if linked:
    path = Path(str(linked))
    st.caption(f"Image opened from another page: `{path}`")
    if st.button("Choose another image", key="explain_clear_path"):
        del st.session_state["explain_path"]
        st.rerun()
else:
    sources = ["Dataset sample", "Upload"]
    fullres = paths.shared_data_dir() / "mendeley-fullres-samples"
    if fullres.is_dir():
        sources.insert(1, "Full-resolution sample")
    source = st.radio("Image", sources, horizontal=True, key="explain_source")
    if source == "Upload":
        up = st.file_uploader("ECG report image", type=["jpg", "jpeg", "png", "bmp", "tif", "tiff"],
                              key="explain_upload")
        if up is None:
            st.info("Upload a scan or photo of a 12-lead ECG report.")
            st.stop()
        data, name = up.getvalue(), up.name
    elif source == "Full-resolution sample":
        files = sorted(p for p in fullres.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            st.warning("No images in the full-resolution sample folder.")
            st.stop()
        rel = st.selectbox("Full-resolution report", [str(p.relative_to(fullres)) for p in files],
                           key="explain_fullres")
        path = fullres / rel
    else:
        index = common.require_dataset()
        ok = index[index["error"] == ""]
        if ok.empty:
            st.warning("The dataset has no readable image.")
            st.stop()
        rel = st.selectbox("Report from the current dataset", ok["rel_path"].tolist(), key="explain_sample")
        path = Path(ok.loc[ok["rel_path"] == rel, "path"].iloc[0])
if path is not None:
    with common.safe("Reading the image"):
        data = read_bytes(path)
    name = path.name
assert data is not None

fhash = file_hash(data)
def own_view(view: Any, *args: Any) -> None:
    """A model with its own Explain view (ensemble, measurement, per-lead CNN): the outside-the-training-data
    message first, then the view; nothing below it runs."""
    with common.safe("Comparing the report with the training reports"):
        ood_verdict = cache.ood_of_image(run, fhash, data, name)
    if ood_verdict.in_distribution is False:
        st.warning(ood_verdict.message, icon="⚠️")
    elif ood_verdict.in_distribution is None:
        st.caption(ood_verdict.message)
    view.render(run, *args, data, fhash, name, leads.load_sidecar(path) if path is not None else None)
    st.stop()


if run.meta.get("model_kind") == "ensemble":  # averaged members: which spoke, then each member's own view
    from app_ui import ensemble_view

    own_view(ensemble_view)
if run.is_measurement:  # a measurement model: its own view (contributions per lead; no Grad-CAM)
    from app_ui import measure_view

    own_view(measure_view, explainer)
if run.input_kind == "report_panels":  # a per-lead CNN: its own view (attention per lead, Grad-CAM on the panels)
    from app_ui import perlead_view

    own_view(perlead_view, explainer)
chash = cfg.config_hash()
pipe = cache.report_pipeline(rkey, explainer, cfg)
sidecar = leads.load_sidecar(path) if path is not None else None
# the method chosen last (or the first one): for the top class one pass gives the prediction and the map, while
# the ECG check and the lead detection run beside it
chosen = st.session_state.get("explain_method")
first_method = chosen if chosen in explainer.methods else explainer.methods[0]
with common.safe("Predicting"), st.spinner("Reading, predicting and explaining..."):
    try:
        prepared, first = pipe.analyse(data, name, method=first_method, sidecar=sidecar, key=fhash)
    except EcgCoreError as e:  # unreadable or unusable image (the model's own failures go to safe() above)
        st.error(f"Loading the image failed: {e}")
        st.stop()
pre, rgb, check, layout = prepared.pre, prepared.rgb, prepared.check, prepared.layout
for note in pre.notes:
    st.info(note)
with st.expander("Preprocessing steps (the model's stored configuration)"):
    widgets.step_grid(pre.steps[1:])
    st.caption(f"crop box (x0, y0, x1, y1) in the pixels of the decoded image ({pre.original_shape[1]}x"
               f"{pre.original_shape[0]}): {pre.crop_box} · config hash `{chash}`")

if check.is_ecg:
    st.success(f"Input check: {check.message}.")  # no score: a layout constant on real reports (issue 19.9)
else:
    st.error(f"**Not recognised as an ECG report.** {'; '.join(check.failed)}.")
    with st.expander("Why?"):
        for r in check.reasons:
            st.write("- " + r)
    if not st.checkbox("Explain it anyway (for teaching; the output means nothing for this image)",
                       key="explain_force"):
        st.image(rgb, caption=name, width="stretch")
        st.stop()

# ------------------------------------------------------------------------------------------------ prediction
probs, top = first.probs, first.top
left, right = st.columns([3, 2])
left.plotly_chart(probability_figure(probs, explainer.class_names), width="stretch",
                  key="explain_probs_fig")
domain = training_domain_note(run.data_source, input_synthetic=sidecar is not None)
profile, profile_problem = cache.ood_profile(run)
with common.safe("Comparing the report with the training reports"):
    ood_verdict = pipe.ood(prepared, profile)
with right:
    st.markdown(f"**Model output:** {explainer.class_names[top]} ({probs[top]:.0%})")
    if ood_verdict.in_distribution is False:
        st.warning(ood_verdict.message, icon="⚠️")
    elif ood_verdict.in_distribution is None:
        st.caption(profile_problem or ood_verdict.message)
    else:
        st.caption("The report resembles the reports this model was trained on (layout, paper, size and the "
                   "model's feature space).")
    if not domain.matches:
        st.warning(domain.text)
    else:
        st.caption(domain.text)
    st.caption("A research model's output, not a diagnosis.")
    for msg in class_messages(probs, explainer.class_names, preset=str(run.meta.get("preset", "cardiac-4"))):
        with st.expander(f"{msg.class_name}: {msg.probability:.0%}", expanded=msg.class_index == top):
            st.write(msg.text)

# ------------------------------------------------------------------------------------------------ explanation
c1, c2, c3 = st.columns(3)
method = c1.selectbox("Method", explainer.methods, format_func=method_title, key="explain_method")
# one selector per (model, image): a new image or model starts at its own top class; a choice made for the previous
# image never carries over (a widget with a fixed key would keep it while showing the new default)
class_index = c2.selectbox("Explain class", list(range(len(explainer.class_names))), index=top,
                           format_func=lambda i: f"{explainer.class_names[i]} ({probs[i]:.0%})",
                           key=f"explain_class:{run_id}:{fhash}")
alpha = c3.slider("Heatmap opacity", 0.0, 1.0, 0.55, 0.05, key="explain_alpha")
with common.safe(f"Computing {method_title(method)}"):
    with st.spinner(f"{method_title(method)}..."):
        ex = pipe.explain(prepared, method=method, class_index=int(class_index))
for note in ex.notes:
    st.warning(note)
over = overlay(rgb, ex.heatmap_display, alpha=alpha)
orig_w, orig_h = prepared.original_size
over_caption = (f"{method_title(method)} for “{explainer.class_names[class_index]}” on the report "
                f"(shown at {rgb.shape[1]}x{rgb.shape[0]}; original {orig_w}x{orig_h})")
# two views of the same overlay; assets/style.css shows the one that fits the screen: the picture on a wide screen
# (its full-screen button on hover), the zoomable chart on a narrow one (a phone), where the leads are unreadable
# at the width of the screen. The toggle (wide screens) swaps the picture for the zoomable chart.
ZOOM_HELP = ("Drag a box over the leads (or tap + above the chart) to zoom in, double-tap (double-click) to zoom "
             "out again.")
with st.container(key="explain_zoom_toggle"):
    zoom_wide = st.toggle("Zoom and pan view", key="explain_zoom",
                          help="Shows the heatmap as a chart you can zoom into and pan. " + ZOOM_HELP)
if not zoom_wide:
    with st.container(key="explain_heatmap_image"):
        st.image(over, caption=over_caption, width="stretch")
with st.container(key="explain_heatmap_zoom_all" if zoom_wide else "explain_heatmap_zoom"):
    # about the height the picture takes at the width of a phone's screen, or of a wide page
    st.plotly_chart(zoomable_image_figure(over, nominal_width=1100 if zoom_wide else 380), width="stretch",
                    key="explain_overlay_fig", config={"scrollZoom": True, "displaylogo": False})
    st.caption(f"{over_caption}. {ZOOM_HELP}")
st.download_button("Download the overlay (PNG, full resolution)",
                   lambda: png_bytes(pipeline.full_resolution_overlay(data, name, ex, alpha=alpha)),
                   f"{Path(name).stem}_overlay.png", "image/png", key="explain_overlay_png")

# ------------------------------------------------------------------------------------------------ comparison
if st.toggle("Side-by-side comparison", key="explain_compare"):
    kind = st.radio("Compare with", ["another method", "another model"], horizontal=True, key="explain_compare_kind")
    a, b = st.columns(2)
    a.image(over, caption=f"{run_id} · {method_title(method)}", width="stretch")
    if kind == "another method":
        others = [m for m in explainer.methods if m != method]
        m2 = st.selectbox("Second method", others, format_func=method_title, key="explain_method2")
        with common.safe(f"Computing {method_title(m2)}"):
            ex2 = pipe.explain(prepared, method=m2, class_index=int(class_index))
        b.image(overlay(rgb, ex2.heatmap_display, alpha=alpha), caption=f"{run_id} · "
                f"{method_title(m2)}", width="stretch")
    else:
        others = [r for r in usable if r != run_id]
        if not others:
            b.info("Only one usable model: train another to compare.")
        else:
            r2 = usable[st.selectbox("Second model", others, format_func=lambda r: usable[r].label,
                                     key="explain_run2")]
            with common.safe(f"Explaining with {r2.run_id}"):
                cfg2 = registry.preprocess_config_of(r2)
                exp2 = cache.get_explainer(r2)
                pipe2 = cache.report_pipeline(cache.run_key(r2), exp2, cfg2)
                prepared2 = pipe2.prepare(data, name, sidecar=sidecar, key=fhash)
                target = explainer.class_names[class_index]
                ci2 = exp2.class_names.index(target) if target in exp2.class_names else None
                m2 = method if method in exp2.methods else exp2.methods[0]
                ex2 = pipe2.explain(prepared2, method=m2, class_index=ci2)
            b.image(overlay(prepared2.rgb, ex2.heatmap_display, alpha=alpha), caption=f"{r2.run_id} · "
                    f"{method_title(m2)} for “{exp2.class_names[ex2.class_index]}”", width="stretch")

# ------------------------------------------------------------------------------------------------ leads
st.subheader("Attention per lead")
table = ex.lead_table
if layout.is_fallback:
    st.warning(f"Template lead boxes: {layout.message}.")
else:
    st.caption(layout.message)
lc, rc = st.columns([3, 2])
lc.plotly_chart(leads.attention_bar(table), width="stretch", key="explain_leads_fig")
with rc:
    terr = leads.territory_attention(table)
    st.dataframe(terr.assign(mass=(terr["mass"] * 100).round(1)).rename(columns={"mass": "attention %"}),
                 hide_index=True, width="stretch")
    st.caption(f"{table.attrs.get('outside_mass', 0.0):.0%} of the attention lies outside every lead box.")
    if sidecar and sidecar.get("pathology_leads"):
        truth = list(sidecar["pathology_leads"])
        lm = lead_mass_score(ex.heatmap_display, layout.boxes, truth, region=prepared.crop_box)
        hit = pointing_game(ex.heatmap_display, layout.boxes, truth)
        st.caption(f"Synthetic ground truth: pathology in {', '.join(truth)} · pointing game "
                   f"{'hit' if hit else 'miss'} · {lm.mass_fraction:.0%} of the attention there "
                   f"({lm.ratio:.1f}x their area share)")
top_leads = table["lead"].head(3).tolist()
st.image(leads.draw_boxes(over, layout, highlight=top_leads), caption="Lead boxes (territory colours; the three most "
         "attended leads drawn thicker)", width="stretch")

# ------------------------------------------------------------------------------------------------ faithfulness
st.subheader("Is the map faithful to the model?")
faith_key = f"{rkey}|{fhash}|{method}|{class_index}"
verdicts: tuple = ()  # the faithfulness verdicts, once computed for this image, method and class (into the PDF)
if st.button("Run the faithfulness checks (deletion / insertion curves, model-randomisation test)",
             key="explain_faith_run"):
    st.session_state["explain_faith_key"] = faith_key
if st.session_state.get("explain_faith_key") == faith_key:
    with common.safe("The faithfulness checks"), st.spinner("Deleting and inserting regions, randomising layers..."):
        faith, sanity = cache.faithfulness(rkey, fhash, chash, method, int(class_index), explainer, pre.final,
                                           ex.heatmap)
    verdicts = faithfulness_verdicts(faith, sanity)
    st.plotly_chart(faithfulness_figure(faith), width="stretch", key="explain_faith_fig")
    st.write(faith.summary + ".")
    # one coloured box per test with the rule that decided it, then the overall line (green only when all passed)
    for v in verdicts:
        {"pass": st.success, "fail": st.error}.get(v.status, st.warning)(v.text, icon=VERDICT_ICONS[v.status])
    (st.success if all(v.passed for v in verdicts) else st.warning)(f"{verdict_summary(verdicts)}.")
else:
    st.caption("Slower (a few seconds): removes the most attended regions first (filled with the paper colour) "
               "and compares with a random order, then checks that the map changes when the top layers of the "
               "model are randomised.")

# ------------------------------------------------------------------------------------------------ reading
st.subheader("Reading")
reading = None  # (global table, lead table, criteria) into the PDF once read
if st.toggle("Read the traces and measure them (intervals, ST per lead, Q waves, criteria)", key="explain_reading"):
    reading = reading_view(data, fhash, name, sidecar)

# ------------------------------------------------------------------------------------------------ PDF
st.subheader("Report")
if st.toggle("Prepare a PDF report", key="explain_pdf_on"):
    content = report.ReportContent(
        image=rgb, overlay=over, probs=probs, class_names=explainer.class_names, run_meta=run.meta,
        method_title=method_title(method), explained_class=explainer.class_names[class_index],
        image_name=name, lead_table=table, layout_message=layout.message, ecg_check_message=check.message,
        ood_message=ood_verdict.message, notes=ex.notes, faithfulness=verdicts,
        measurement_tables=reading[:2] if reading else None, criteria=reading[2] if reading else ())
    with common.safe("Building the PDF"):
        pdf = cache.pdf_report(f"{faith_key}|{alpha:.2f}|{layout.source}|ood:{ood_verdict.csv_value}|"
                               f"faith:{len(verdicts)}|reading:"
                               f"{reading is not None}", content)
    st.download_button("Download the PDF report", pdf, f"{Path(name).stem}_explained.pdf", "application/pdf",
                       key="explain_pdf")
