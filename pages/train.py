"""Train page: queue training jobs (one subprocess per run), watch them live, stop them, list finished runs.

Jobs run outside Streamlit (``python -m ecg_core queue/train``), so leaving the page, rerunning or closing the
browser does not stop them; the page finds running jobs again from the run folders.
"""

import time

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_ui import common
from ecg_core.core import paths
from ecg_core.imaging import augment
from ecg_core.ml import jobs, registry
from ecg_core.viz import common as viz
from ecg_core.ml.zoo import list_architectures

st.title("🏋️ Train")
models_dir = paths.models_dir()
archs = {a.name: a for a in list_architectures()}

# -------------------------------------------------------------------------------------------------- new jobs
with st.expander("New training job", expanded=not any(r.status == "running" for r in registry.list_runs(models_dir))):
    data_dir = common.current_dataset()
    st.caption(f"Dataset: `{data_dir or '(none chosen)'}` — change it in the sidebar. Splits are by duplicate "
               "group; augmentation and balancing touch the training split only.")
    chosen = st.multiselect("Architectures (queued, trained one after another)", list(archs), ["custom_cnn"],
                            format_func=lambda a: f"{archs[a].title} — {archs[a].description}", key="train_archs")
    c1, c2, c3, c4 = st.columns(4)
    height = c1.select_slider("height", [64, 96, 128, 160, 192, 224, 256, 384], 192, key="train_h")
    width = c2.select_slider("width", [64, 96, 128, 160, 224, 256, 320, 384], 320, key="train_w")
    channels = c3.radio("channels", [1, 3], horizontal=True, key="train_c",
                        help="transfer models repeat a grayscale input to 3 channels themselves")
    epochs = c4.number_input("epochs", 1, 300, 30, key="train_epochs")
    c5, c6, c7, c8 = st.columns(4)
    batch = c5.select_slider("batch size", [2, 4, 8, 16, 32, 64], 16, key="train_batch")
    lr = c6.select_slider("learning rate", [1e-4, 3e-4, 1e-3, 3e-3], 1e-3, key="train_lr")
    aug = c7.selectbox("augmentation", list(augment.PRESETS), index=list(augment.PRESETS).index("light"),
                       key="train_aug")
    balance = c8.selectbox("class balance", ["oversample", "class_weights", "none"], key="train_balance")
    c9, c10, c11, c12 = st.columns(4)
    seed = c9.number_input("seed", 0, 100_000, 0, key="train_seed")
    kfold = c10.selectbox("k-fold CV (extra)", [0, 3, 5], key="train_kfold", help="0 = single split only")
    patience = c11.number_input("early-stopping patience", 1, 50, 8, key="train_patience")
    pretrained = c12.checkbox("ImageNet weights", False, key="train_pretrained",
                              help="transfer models only; without internet they fall back to random init (said "
                                   "in run.json)")
    unfreeze = st.slider("unfreeze top N layers of a pretrained base", 0, 100, 0, key="train_unfreeze")
    start = st.button("Start training", type="primary", key="train_start", disabled=not (chosen and data_dir))
    if start:
        qid = registry.new_run_id("queue")
        runs = []
        for arch in chosen:
            run_id = registry.new_run_id(arch)
            opts = {"height": height, "width": width, "channels": channels, "epochs": int(epochs),
                    "batch_size": batch, "lr": lr, "augment": aug, "balance": balance, "seed": int(seed),
                    "kfold": int(kfold), "patience": int(patience), "pretrained": pretrained,
                    "unfreeze": int(unfreeze)}
            runs.append({"run_id": run_id, "args": jobs.train_args(run_id, models_dir, data_dir, arch, options=opts)})
            time.sleep(0.01)
        with common.guard("Starting the training job"):
            jobs.start_queue(models_dir, qid, runs)
        st.session_state["train_queue"] = qid
        st.success(f"Started {len(runs)} job(s): {', '.join(r['run_id'] for r in runs)}")


# -------------------------------------------------------------------------------------------------- live jobs
def _curves(epochs: list[dict]) -> go.Figure:
    if not epochs:
        return viz.empty_figure("waiting for the first epoch")
    df = pd.DataFrame(epochs)
    fig = go.Figure()
    for col, dash in (("loss", None), ("val_loss", "dash"), ("accuracy", None), ("val_accuracy", "dash")):
        if col in df:
            fig.add_scatter(x=df["epoch"], y=df[col], name=col, line={"dash": dash},
                            yaxis="y2" if "acc" in col else "y")
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 20, "b": 10}, xaxis_title="epoch",
                      yaxis={"title": "loss"}, yaxis2={"title": "accuracy", "overlaying": "y", "side": "right",
                                                        "range": [0, 1]},
                      legend={"orientation": "h", "y": 1.15})
    return fig


@st.fragment(run_every=2)
def live_jobs() -> None:
    runs = registry.list_runs(models_dir)
    active = [r for r in runs if r.status == "running"]
    queued = [q for q in jobs.queue_runs(models_dir, st.session_state.get("train_queue", "x"))
              if q not in {r.run_id for r in runs}]
    if not active and not queued:
        st.caption("No job is running.")
        return
    for run in active:
        state = jobs.job_state(run.path)
        last = state.last
        with st.container(border=True):
            st.markdown(f"**{run.run_id}** · `{run.meta.get('arch')}` · {state.status}")
            phase = str(last.get("phase", ""))
            if phase == "preprocess" and last.get("total"):
                st.progress(last["done"] / last["total"], text=f"preprocessing {last['done']}/{last['total']}")
            elif last.get("epochs"):
                ep = int(last.get("epoch", 0) or 0)
                frac_ep = (last.get("batch", 0) or 0) / max(1, last.get("batches", 1) or 1) if "train" in phase else 0
                total = last["epochs"]
                done = min(1.0, ((ep - 1 if "train" in phase else ep) + frac_ep) / total)
                eta = f" · ETA {state.eta_s / 60:.1f} min" if state.eta_s is not None else ""
                st.progress(done, text=f"{phase} · epoch {ep}/{total}{eta}")
                if "train" in phase:
                    st.progress(min(1.0, frac_ep), text=f"batch {last.get('batch')}/{last.get('batches')}")
            st.plotly_chart(_curves(state.epochs), width="stretch", key=f"train_curve_{run.run_id}")
            if st.button("Stop", key=f"train_stop_{run.run_id}"):
                jobs.stop_job(run.path)
                if st.session_state.get("train_queue"):
                    jobs.stop_queue(models_dir, st.session_state["train_queue"])
                st.info("Stop requested: the job finishes its batch, keeps the best checkpoint and evaluates it.")
            with st.expander("log"):
                st.code(jobs.job_log(run.path, tail=30) or "(empty)")
    if queued:
        st.caption(f"Queued: {', '.join(queued)}")


st.subheader("Running jobs")
live_jobs()

# ---------------------------------------------------------------------------------------------- finished runs
st.subheader("Runs")
runs = registry.list_runs(models_dir)
if not runs:
    st.info(f"No runs yet in `{models_dir}`.")
else:
    rows = []
    for r in runs:
        m = r.meta.get("metrics") or {}
        ci = m.get("macro_f1_ci") or [None, None]
        rows.append({
            "run": r.run_id, "arch": r.meta.get("arch"), "status": r.status, "usable": r.usable,
            "problem": r.problem or r.meta.get("error", ""), "data": r.meta.get("data_source"),
            "input": "x".join(map(str, r.meta.get("input_shape", []))),
            "test acc": m.get("accuracy"), "test macro-F1": m.get("macro_f1"),
            "macro-F1 95% CI": f"{ci[0]:.2f}-{ci[1]:.2f}" if None not in ci else "",
            "ImageNet": (r.meta.get("pretrained") or {}).get("loaded"),
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    notes = [r for r in runs if (r.meta.get("pretrained") or {}).get("requested")
             and not (r.meta.get("pretrained") or {}).get("loaded")]
    for r in notes:
        st.warning(f"{r.run_id}: ImageNet weights were requested but not used — "
                   f"{(r.meta.get('pretrained') or {}).get('message', '')}")
