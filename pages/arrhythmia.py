"""Arrhythmia page: scroll a single-lead ECG record with its annotations, see every beat as a spectral image, the
model's class per beat along the strip, and Grad-CAM mapped back to time (which part of the beat) and frequency."""

import json

import streamlit as st

from app_ui import auth, cache, common
from app_ui.reading import rhythm_strip_upload
from ecg_core.signals import arrhythmia as arr
from ecg_core.signals import sources, spectral_cam
from ecg_core.core import paths
from ecg_core.viz import signals as viz_signals
from ecg_core.signals.segments import SegmentConfig

auth.page_guard()  # sharing mode: nothing without a login (app_ui/auth.py)
st.title("💓 Arrhythmia")
st.caption("Beats and rhythms of an ECG record, classified by beat features with their RR context (the default "
           "model) or as spectral images (6 classes, MIT-BIH conventions). "
           + common.DISCLAIMER)


# ----------------------------------------------------------------------------------------------- the record
shared = sources.shared_sources()
kinds = (["Demo signals (synthetic)"] + (["Shared MIT-BIH records"] if shared else [])
         + ["Upload a record", "Rhythm strip of a report image"])
kind = st.radio("Record", kinds, horizontal=True, key="arr_source")
csv_fs = None
if kind.startswith("Demo"):
    with common.guard("Creating the demo records"):
        demos = sources.demo_sources()
    labels = [s.label for s in demos]
    path = demos[labels.index(st.selectbox("Demo record", labels, key="arr_demo"))].path
elif kind.startswith("Shared"):
    labels = [s.label for s in shared]
    path = shared[labels.index(st.selectbox("Record", labels, key="arr_shared"))].path
elif kind.startswith("Rhythm strip"):  # a digitised report (issue 14): its rhythm strip as a one-lead CSV
    strip = rhythm_strip_upload()
    if strip is None:
        st.stop()
    with common.guard("Storing the rhythm strip"):
        path = sources.save_upload([(strip[1], strip[0])], common.session_uploads_dir(),
                                   before_write=common.check_upload_quota)
else:
    ups = st.file_uploader("WFDB record (.hea + .dat, optional .atr) or one CSV file", accept_multiple_files=True,
                           type=["hea", "dat", "atr", "csv", "txt"], key="arr_upload")
    csv_fs = st.number_input("Sampling rate of a CSV without a time column (Hz)", 50.0, 5000.0, 360.0, 10.0,
                             key="arr_csv_fs")
    if not ups:
        st.session_state.pop("arr_upload_choice", None)
        st.info("Upload the .hea and .dat files of one WFDB record (add its .atr to see annotations), or one CSV "
                "file with a column per lead (values in mV; a `time` column in seconds gives the rate).")
        st.stop()
    # the uploader keeps earlier files when more are dropped: the files added last replace the record opened
    # before (unless they belong to it, e.g. its .atr)
    choice = sources.choose_upload([(u.file_id, u.name) for u in ups], st.session_state.get("arr_upload_choice"))
    st.session_state["arr_upload_choice"] = choice
    if choice.ignored:
        st.info(f"Showing the record uploaded last ({', '.join(u.name for u in ups if u.file_id in choice.use)}). "
                f"Earlier files are not used: {', '.join(choice.ignored)} (remove them with × if you like).")
    with common.guard("Storing the upload"):
        path = sources.save_upload([(u.name, u.getvalue()) for u in ups if u.file_id in choice.use],
                                   common.session_uploads_dir(), before_write=common.check_upload_quota)
key = sources.record_key(path)
with common.guard("Reading the record"):
    rec, load_warnings = cache.arrhythmia_record(key, str(path), csv_fs)
for msg in load_warnings:
    st.warning(msg)

# ----------------------------------------------------------------------------------------------- the model
runs = arr.arrhythmia_runs(paths.models_dir())
c_model, c_mode = st.columns([3, 2])
run = None
if runs:
    by_id = {r.run_id: r for r in runs}
    run = by_id[c_model.selectbox("Model", list(by_id), format_func=lambda r: by_id[r].label, key="arr_model")]
else:
    c_model.info(f"No trained arrhythmia-6 model was found in `{paths.models_dir()}`: the signal and its spectral "
                 "images are shown without predictions. To train one: `python -m ecg_core spectral-build --records "
                 "DIR --out SPEC` then `python -m ecg_core train --data SPEC --preset arrhythmia-6 --arch shallow_cnn "
                 "--crop-mode none --no-clahe --median 0 --height 64 --width 64 --keep-copies --augment none`.")
mode = c_mode.radio("Cut the record into", list(arr.SEGMENT_MODES), horizontal=True, key="arr_mode",
                    format_func=lambda m: {"beats": "beats (+ VF episodes)", "windows": "sliding windows"}[m],
                    help="beats: one window per annotated (or detected) R peak; sliding windows: every 0.35 s over "
                         "the whole record, e.g. to find VF in an unannotated recording.")
bundle = None
if run is not None:
    model_file = (run.meta.get("model_files") or ["model.keras"])[0]  # LightGBM runs: text files, no model.keras
    stamp = f"{run.meta.get('finished', '')}:{(run.path / model_file).stat().st_mtime_ns}"
    with common.guard("Loading the model"):
        bundle = cache.arrhythmia_model(str(run.path), stamp)
lead_names, lead_default = arr.lead_options(rec)
chosen_lead = None
if len(lead_names) > 1:
    chosen_lead = st.selectbox("Lead", lead_names, index=lead_default, key=f"arr_lead:{key}",
                               help="The lead cut into beats and shown below. The model was trained on MLII "
                                    "(lead II); another lead changes the beat shapes it sees.")
seg_cfg = arr.with_lead(bundle.seg_cfg if bundle else SegmentConfig(), chosen_lead)
spec_cfg = bundle.spec_cfg if bundle else arr.DEFAULT_SPECTRAL
seg_json = json.dumps(seg_cfg.to_dict())
if bundle is not None:
    for msg in arr.record_warnings(rec, bundle.meta, lead=chosen_lead):
        st.warning(msg)

with common.guard("Cutting the record"):
    if bundle is not None:
        table = cache.arrhythmia_predictions(key, str(path), csv_fs, mode, str(run.path), stamp, chosen_lead)
    else:
        table = arr.segment_table(cache.arrhythmia_segments(key, str(path), csv_fs, seg_json, mode),
                                  pre_s=seg_cfg.pre_s, post_s=seg_cfg.post_s)
    segments = cache.arrhythmia_segments(key, str(path), csv_fs, seg_json, mode)
annotations = arr.annotation_table(rec, seg_cfg=seg_cfg)
m1, m2, m3, m4 = st.columns(4)
m1.metric("duration", f"{rec.duration_s:.0f} s")
m2.metric("sampling rate", f"{rec.fs:g} Hz")
m3.metric("segments", len(table))
m4.metric("annotated beats", len(annotations))
if bundle is not None:
    where = cache.arrhythmia_record_splits(str(run.path), stamp).get(rec.record_id)
    if where in ("train", "val"):
        st.warning(f"Record {rec.record_id} was in this model's **{where}** split: its predictions here are "
                   "optimistic. Only records of the test split (or new recordings) show how the model generalises.")
    elif where == "test":
        st.success(f"Record {rec.record_id} was held out (test split): the model never saw this patient.")

# ----------------------------------------------------------------------------------------------- beat selector
filters = arr.segment_filters(table)
pick = st.selectbox("Show", list(filters), key="arr_filter")
subset = filters[pick]
if st.session_state.get("arr_beat", 1) > len(subset):
    st.session_state["arr_beat"] = 1
n_sel = st.slider("Segment", 1, len(subset), key="arr_beat") if len(subset) > 1 else 1
i = int(subset[n_sel - 1])
row = table.iloc[i]
seg = segments[i]

cleaned = st.checkbox("filtered signal (as the model sees it)", True, key="arr_cleaned",
                      help=f"{seg_cfg.clean_method} {seg_cfg.lowcut:g}-{seg_cfg.highcut:g} Hz; unticked: the raw lead.")
times, lead, lead_name = cache.arrhythmia_strip(key, str(path), csv_fs, seg_json, cleaned)
t_sel = float(row["time_s"])
window = (max(0.0, t_sel - 30.0), min(rec.duration_s, t_sel + 30.0))
fig = viz_signals.signal_strip(
    times, lead, annotations=annotations, predictions=table if bundle is not None else None,
    episodes=arr.rhythm_table(rec), selected=(float(row["start_s"]), float(row["end_s"])), window=window,
    view=(max(window[0], t_sel - 5.0), min(window[1], t_sel + 5.0)), lead_name=lead_name,
)
st.plotly_chart(fig, width="stretch", key="arr_strip")
st.caption(f"Strip: {window[0]:.0f}-{window[1]:.0f} s of {rec.duration_s:.0f} s (drag the range slider to scroll; "
           "pick another segment to move further). Letters above the trace: the model's class per beat "
           "(x = disagrees with the annotation); letters below: the annotation.")

# ----------------------------------------------------------------------------------------------- selected beat
label = row["label"] if isinstance(row["label"], str) else None
st.subheader(f"Segment {n_sel} of {len(subset)} · {row['time_s']:.2f} s · {row['kind']} · "
             f"{arr.segment_heading(row['symbol'], label)}")
with common.guard("Rendering the spectral image"):
    image = arr.spectral_images([seg], spec_cfg)[0]
mapping = None
contrib = None
if bundle is not None and bundle.is_gbm:  # a feature model: what drove its beat score, no Grad-CAM
    target = row["pred"] if row["pred"] in arr.GBM_BEAT_CLASSES else "N"
    with common.guard("Feature contributions"):
        rows = cache.arrhythmia_feature_rows(key, str(path), csv_fs, mode, str(run.path), stamp, chosen_lead)
        contrib = arr.gbm_contributions(bundle, rows.iloc[i], target)
elif bundle is not None:
    keys = list(bundle.class_keys)
    choice = st.selectbox("Grad-CAM for class", ["predicted class"] + keys, key="arr_cam_class",
                          format_func=lambda k: k if k == "predicted class" else f"{k} · {arr.class_info(k).name}")
    target = row["pred"] if choice == "predicted class" else choice
    with common.guard("Grad-CAM"):
        x = arr.model_inputs(image.image[None], bundle.preprocess)[0]
        cam = cache.arrhythmia_explainer(str(run.path), stamp)(x, class_index=keys.index(target))
        mapping = spectral_cam.map_cam(cam, image, pre_s=seg_cfg.pre_s, anchor_time_s=float(row["time_s"]),
                              beat=row["kind"] == "beat")
left, right = st.columns([3, 2])
image_title = f"{spec_cfg.method.upper()} image {spec_cfg.size[0]}x{spec_cfg.size[1]}"
anchor = "R peak" if row["kind"] == "beat" else "window anchor"
left.plotly_chart(viz_signals.spectral_figure(image, pre_s=seg_cfg.pre_s, cam=mapping, title=image_title,
                                              anchor=anchor), width="stretch", key="arr_image")
with right:
    if bundle is not None:
        probs = {k: float(row[f"p_{k}"]) for k in bundle.class_keys}
        st.plotly_chart(viz_signals.probability_bars(probs, names=list(bundle.class_names), annotated=label),
                        width="stretch", key="arr_probs")
    shown = [k for k in dict.fromkeys([row["pred"] if bundle is not None else None, label]) if k]
    for k in shown:
        info = arr.class_info(k)
        role = " / ".join(r for r, v in (("predicted", row.get("pred")), ("annotated", label)) if v == k)
        st.info(f"**{info.name} ({info.short})** — {role}\n\n{info.description}\n\n**Look for:** {info.look_for}")
    if not shown:
        st.caption("No annotation maps this segment to a class, and no model is chosen.")
if contrib is not None:
    st.markdown(f"**What drove the beat score of {target} · {arr.class_info(target).name}** (the beat at "
                f"{float(rows.iloc[i]['beat_time_s']):.2f} s; P(VF) comes from the 4 s window around it)")
    st.bar_chart(contrib.set_index("feature")["contribution"], horizontal=True)
    st.dataframe(contrib.round(3), hide_index=True, width="stretch")
    st.caption("LightGBM pred_contrib (TreeSHAP): each feature's additive share of the raw score of this class; "
               "positive values push towards the class. RR features are ratios to the record's own median RR, "
               "morphology is normalised per record, QRS widths are in ms. It explains the model, not the heart."
               + (" This run is an ensemble: the bars explain its first booster (beat_model.txt); the probabilities "
                  "above are the mean of all its members (see About this model)."
                  if getattr(bundle.model, "cnn", None) is not None or getattr(bundle.model, "beat2", None) is not None
                  else ""))
if mapping is not None:
    st.markdown(f"**Grad-CAM for {target} · {arr.class_info(target).name}.** {mapping.summary()}")
    st.plotly_chart(viz_signals.cam_profiles(mapping, segment=seg.x, fs=seg.fs, pre_s=seg_cfg.pre_s),
                    width="stretch", key="arr_cam")
    st.caption("Grad-CAM (Selvaraju et al., 2017) marks the image regions that raise the class score; columns map "
               "to seconds and rows to hertz through the spectral image's own axes. It shows where the model "
               "looked, not whether it was right.")

# ----------------------------------------------------------------------------------------------- reference
if bundle is not None and table["label"].notna().any():
    with st.expander("Predictions vs annotations for this record"):
        agree = table["agree"].dropna()
        st.caption(f"{agree.mean():.0%} of {len(agree)} annotated segments agree (record {rec.record_id}).")
        st.dataframe(arr.agreement_table(table), width="stretch")
with st.expander("The six classes (for teaching)"):
    st.dataframe([{"class": c.key, "name": c.name, "what it is": c.description, "look for": c.look_for}
                  for c in arr.class_infos()], hide_index=True, width="stretch")
if bundle is not None:
    with st.expander("About this model"):
        st.table({k: [v] for k, v in arr.run_facts(bundle.meta).items()})
        conf = arr.record_confusion(run.path)
        if not conf.empty:
            st.markdown(f"**Held-out confusion per record** ({conf.attrs.get('protocol', 'cross-validation')}; "
                        "rows: annotated class, columns: predicted counts)")
            st.dataframe(conf, hide_index=True, width="stretch")
        card = arr.read_model_card(run.path)
        if card:
            st.markdown(card)
