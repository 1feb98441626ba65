"""Train page: queue training jobs (one subprocess per run), watch them live, stop them, list finished runs.

Jobs run outside Streamlit (``python -m ecg_core queue/train``), so leaving the page, rerunning or closing the
browser does not stop them; the page finds running jobs again from the run folders, and redraws itself when a run
appears, finishes or is deleted. Stop stops one run (the next queued one then starts); the Runs table lists every
run, with its model card and a delete button (confirmation; a second one for the runs shipped with the app).
"""

import time

import pandas as pd
import streamlit as st

from app_ui import auth, common
from ecg_core.core import paths
from ecg_core.core.errors import EcgCoreError
from ecg_core.core.atomic import atomic_write_json
from ecg_core.imaging import augment
from ecg_core.imaging.preprocess import PreprocessConfig
from ecg_core.ml import jobs, modelcard, registry
from ecg_core.viz import common as viz
from ecg_core.ml.zoo import list_architectures

auth.page_guard()  # sharing mode: nothing without a login (app_ui/auth.py)
st.title("🏋️ Train")
models_dir = paths.models_dir()
archs = {a.name: f"{a.title} — {a.description}" for a in list_architectures()}
archs.update({"measure_lgbm": "Measurement model (LightGBM) — reads each report (digitised leads: ST, Q, R, T, "
                              "rate, intervals, axis) and classifies the measurements; no image size or epochs",
              "measure_logreg": "Measurement model (logistic regression) — the same measurements, a regularised "
                                "linear model"})

# -------------------------------------------------------------------------------------------------- new jobs
with st.expander("New training job", expanded=not any(r.status == "running" for r in registry.list_runs(models_dir))):
    data_dir = common.current_dataset()
    st.caption(f"Dataset: `{data_dir or '(none chosen)'}` — change it in the sidebar. Splits are by duplicate "
               "group; augmentation and balancing touch the training split only.")
    chosen = st.multiselect("Architectures (queued, trained one after another)", list(archs), ["custom_cnn"],
                            format_func=archs.get, key="train_archs")
    pre_source = st.radio("Preprocessing", ["preprocess_page", "defaults"], horizontal=True, key="train_pre_source",
                          format_func={"preprocess_page": "the Preprocess page's settings",
                                       "defaults": "the defaults, with the size below"}.get)
    page_pre = common.preprocess_settings()
    if pre_source == "preprocess_page":
        if page_pre is None:
            st.warning("The Preprocess page's settings are not valid (it says why); fix them there or train "
                       "with the defaults.")
        else:
            same = " (the defaults)" if page_pre == PreprocessConfig() else ""
            fractions = (f"top {page_pre.crop_top}, bottom {page_pre.crop_bottom}, left {page_pre.crop_left}, "
                         f"right {page_pre.crop_right}")
            crop = {"none": "no crop", "relative": f"crop {fractions}",
                    "auto": f"automatic crop to the grid (else {fractions})"}[page_pre.crop_mode]
            st.caption(f"Trains with the settings of the Preprocess page{same}: {crop}, "
                       f"{'grayscale, ' if page_pre.grayscale else ''}"
                       f"{f'CLAHE {page_pre.clahe_clip}/{page_pre.clahe_tiles}' if page_pre.clahe else 'no CLAHE'}, "
                       f"median {page_pre.median_ksize or 'off'}, input {page_pre.width}x{page_pre.height}x"
                       f"{page_pre.channels} (config `{page_pre.config_hash()}`). Change them on the Preprocess page.")
    c1, c2, c3, c4 = st.columns(4)
    if pre_source == "defaults":
        height = c1.select_slider("height", [64, 96, 128, 160, 192, 224, 256, 384], 192, key="train_h")
        width = c2.select_slider("width", [64, 96, 128, 160, 224, 256, 320, 384], 320, key="train_w")
        channels = c3.radio("channels", [1, 3], horizontal=True, key="train_c",
                            help="transfer models repeat a grayscale input to 3 channels themselves")
        st.caption("Crop, grayscale, CLAHE and median filter are the defaults, **not** the Preprocess page's "
                   "settings; only the size is chosen here.")
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
    init_from = None
    if "perlead_cnn" in chosen:  # synthetic pretraining: start from a finished per-lead run (e.g. on synthetic data)
        perlead_runs = {r.run_id: r for r in registry.list_runs(models_dir, input_kind="report_panels")
                        if r.usable and r.meta.get("arch") == "perlead_cnn"}
        init_id = st.selectbox("Per-lead CNN: initial weights", ["(random initialisation)", *perlead_runs],
                               key="train_perlead_init",
                               help="the weights of a finished per-lead CNN run of the same classes, e.g. one "
                                    "trained on synthetic reports (synthetic pretraining, then fine-tuning here)")
        init_from = perlead_runs.get(init_id)
    no_pre = pre_source == "preprocess_page" and page_pre is None
    start = auth.require_role(auth.EDITOR, "Starting a training job") and st.button(
        "Start training", type="primary", key="train_start", disabled=not (chosen and data_dir) or no_pre)
    if start:
        auth.ensure_role(auth.EDITOR, "Starting a training job")  # on the server, whatever the browser sent
        with common.guard("Starting the training job"):  # refused before anything is written
            common.check_models_quota()
        qid = registry.new_run_id("queue")
        if pre_source == "preprocess_page":  # the job reads the Preprocess page's config from a file (--config)
            pre_file = models_dir / ".jobs" / f"preprocess-{qid}.json"
            with common.guard("Saving the preprocessing settings"):
                atomic_write_json(pre_file, page_pre.to_dict())
            pre_opts = {"config": str(pre_file)}
        else:
            pre_opts = {"height": height, "width": width, "channels": channels}
        runs = []
        for arch in chosen:
            run_id = registry.new_run_id(arch)
            opts = {**pre_opts, "epochs": int(epochs),
                    "batch_size": batch, "lr": lr, "augment": aug, "balance": balance, "seed": int(seed),
                    "kfold": int(kfold), "patience": int(patience), "pretrained": pretrained,
                    "unfreeze": int(unfreeze)}
            if arch == "perlead_cnn" and init_from is not None:
                opts["init_weights"] = str(init_from.path / registry.MODEL_FILE)
            runs.append({"run_id": run_id, "args": jobs.train_args(run_id, models_dir, data_dir, arch, options=opts)})
            time.sleep(0.01)
        with common.guard("Starting the training job"):
            jobs.start_queue(models_dir, qid, runs)
        st.session_state["train_queue"] = qid
        st.success(f"Started {len(runs)} job(s): {', '.join(r['run_id'] for r in runs)}")
        busy, limit = jobs.running_jobs(models_dir), common.limits().max_jobs
        if len(busy) >= limit:
            st.info(f"{len(busy)} training job(s) already run on this server (at most {limit} at a time, "
                    "ECG_INSIGHT_MAX_JOBS): these wait in the queue and start when one ends.")


# ----------------------------------------------------------------------------------------------------- ensembles
with st.expander("New ensemble of finished runs"):
    from ecg_core.reports import ensemble as ens_lib

    eligible = {r.run_id: r for r in registry.list_runs(models_dir) if r.usable
                and r.input_kind in ("report_image", "report_panels")
                and r.meta.get("model_kind") != registry.ENSEMBLE_KIND and (r.path / ens_lib.OOF_FILE).is_file()}
    st.caption("Averages the class probabilities of finished runs with equal weights (fixed beforehand) and fits one "
               "temperature on the averaged **out-of-fold** predictions of their repeated group CV (the runs' "
               f"`{ens_lib.OOF_FILE}`: measurement models write one; the folds of the members must agree). Takes a "
               "few seconds; the new run appears on Compare and Explain.")
    if len(eligible) < 2:
        st.info(f"Needs two finished runs with out-of-fold predictions; {len(eligible)} here "
                f"({', '.join(eligible) or 'none'}).")
    else:
        members = st.multiselect("Members", list(eligible), key="train_ens_members")
        ens_name = st.text_input("Run id of the ensemble", registry.new_run_id("ensemble"), key="train_ens_name")
        build = auth.require_role(auth.EDITOR, "Building an ensemble") and st.button(
            "Build the ensemble", key="train_ens_build", disabled=len(members) < 2 or not ens_name.strip())
        if build:
            auth.ensure_role(auth.EDITOR, "Building an ensemble")
            with common.guard("Building the ensemble"):
                common.check_models_quota()
                if (models_dir / ens_name.strip()).exists():
                    raise EcgCoreError(f"a run named {ens_name.strip()!r} exists already: choose another id")
                with st.spinner("Averaging the members' out-of-fold predictions..."):
                    out = ens_lib.build_ensemble(models_dir, ens_name.strip(), members)
            made = registry.read_run(out).meta.get("metrics") or {}
            st.success(f"Built {out.name}: out-of-fold macro-F1 {made.get('macro_f1', float('nan')):.3f}, MI recall "
                       f"{made.get('mi_recall', float('nan')):.3f} (see its model card on Compare).")


# -------------------------------------------------------------------------------------------------- live jobs
def _signature(runs: list) -> tuple:
    """What the Runs table shows depends on: the run folders and their statuses."""
    return tuple((r.run_id, r.status) for r in runs)


def _queue_entries() -> list[tuple[str, str, str]]:
    """``(queue_id, run_id, state)`` of this session's queue and of every other queue with runs still waiting."""
    ids = list(dict.fromkeys([*([st.session_state["train_queue"]] if st.session_state.get("train_queue") else []),
                              *jobs.list_queues(models_dir)]))
    return [(q, rid, state) for q in ids for rid, state in jobs.queue_state(models_dir, q)]


@st.fragment(run_every=2)
def live_jobs(shown: tuple) -> None:
    runs = registry.list_runs(models_dir)
    if _signature(runs) != shown:  # a job started, finished or a run was deleted: redraw the whole page
        st.rerun()
    active = [r for r in runs if r.status == "running"]
    entries = _queue_entries()
    queued = [e for e in entries if e[2] == jobs.QUEUED]
    if not active and not queued:
        st.caption("No job is running.")
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
            st.plotly_chart(viz.training_progress_figure(state.epochs), width="stretch",
                            key=f"train_curve_{run.run_id}")
            if not auth.can_edit():
                st.caption(f"Stopping a run {auth.NEEDS_EDITOR}.")
            elif st.button("Stop", key=f"train_stop_{run.run_id}",
                           help="stops this run only; the next queued run then starts"):
                auth.ensure_role(auth.EDITOR, "Stopping a run")
                jobs.stop_job(run.path)
                st.info("Stop requested: the job finishes its batch, keeps the best checkpoint and evaluates it"
                        + ("; then the next queued run starts." if queued else "."))
            with st.expander("log"):
                st.code(jobs.job_log(run.path, tail=30) or "(empty)")
    if queued:
        st.caption(f"Queued (each starts when the one before it ends, at most {common.limits().max_jobs} job(s) at "
                   f"a time on this server): {', '.join(e[1] for e in queued)}")
        if auth.can_edit() and st.button("Cancel the queued runs", key="train_cancel_queue"):
            auth.ensure_role(auth.EDITOR, "Cancelling queued runs")
            for q in dict.fromkeys(e[0] for e in queued):
                jobs.stop_queue(models_dir, q)
            st.rerun()
    cancelled = [e[1] for e in entries if e[2] == jobs.CANCELLED]
    if cancelled:
        st.caption(f"Cancelled before they started: {', '.join(cancelled)}")
    orphaned = [e[1] for e in entries if e[2] == jobs.ORPHANED]
    if orphaned:
        st.warning(f"Will not start (the queue runner has ended): {', '.join(orphaned)}. Start them again above.")


st.subheader("Running jobs")
runs = registry.list_runs(models_dir)
live_jobs(_signature(runs))

# ---------------------------------------------------------------------------------------------- finished runs
st.subheader("Runs")
if not runs:
    st.info(f"No runs yet in `{models_dir}`.")
else:
    rows = []
    for r in runs:
        m = r.meta.get("metrics") or {}
        ci = m.get("macro_f1_ci") or [None, None]
        f1 = m.get("macro_f1")
        rows.append({
            "run": r.run_id,
            "arch": f"{r.meta.get('arch')}{' (ImageNet)' if (r.meta.get('pretrained') or {}).get('loaded') else ''}",
            "status": r.status, "usable": r.usable, "data": r.meta.get("data_source"),
            "input": "x".join(map(str, r.meta.get("input_shape", []))), "test acc": m.get("accuracy"),
            "test macro-F1 (95% CI)": "" if f1 is None else f"{f1:.3f}" + (
                f" ({ci[0]:.2f}-{ci[1]:.2f})" if None not in ci else ""),
            "problem": r.problem or r.meta.get("error", ""),
        })
    # every row visible (no inner scrolling) and every column within the page width; problems too long for their
    # cell are listed in full below the table
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height="content", column_config={
        "run": st.column_config.TextColumn("run", width=270, pinned=True),
        "arch": st.column_config.TextColumn("arch", width=100),
        "status": st.column_config.TextColumn("status", width=80),
        "usable": st.column_config.CheckboxColumn("usable", width=50),
        "data": st.column_config.TextColumn("data", width=70),
        "input": st.column_config.TextColumn("input", width=80),
        "test acc": st.column_config.NumberColumn("test acc", format="%.3f", width=70),
        "test macro-F1 (95% CI)": st.column_config.TextColumn("test macro-F1 (95% CI)", width=150),
        "problem": st.column_config.TextColumn("problem", width=70),
    })
    for r in runs:
        why = r.problem or r.meta.get("error", "")
        if why:  # in full (the cell is narrow)
            st.caption(f"**{r.run_id}** ({r.status}): {why}")
    notes = [r for r in runs if (r.meta.get("pretrained") or {}).get("requested")
             and not (r.meta.get("pretrained") or {}).get("loaded")]
    for r in notes:
        st.warning(f"{r.run_id}: ImageNet weights were requested but not used — "
                   f"{(r.meta.get('pretrained') or {}).get('message', '')}")

    # ------------------------------------------------------------------------------- one run: card, delete
    by_id = {r.run_id: r for r in runs}
    pick = st.selectbox("Run", list(by_id), key="train_manage_run", format_func=lambda i: by_id[i].label)
    run = by_id[pick]
    with st.expander(f"Model card of {pick}"):
        card = run.path / "MODEL_CARD.md"
        text = ""
        try:
            if card.is_file():
                text = card.read_text(encoding="utf-8", errors="replace")
            elif run.meta.get("class_names"):  # no card yet: rendered from run.json / eval.json (a view writes nothing)
                text = modelcard.render_model_card(run.path)
        except (OSError, ValueError, EcgCoreError) as e:
            st.caption(f"The model card cannot be made: {e}")
        if text:
            st.download_button("Download MODEL_CARD.md", text.encode(), f"{pick}-MODEL_CARD.md", "text/markdown",
                               key="train_card_download")
            st.markdown(text)
        else:
            st.caption("No model card: this run has no results yet.")
    shipped = registry.is_shipped(pick)
    if run.status == "running":
        st.caption("A running job cannot be deleted: stop it first.")
    elif auth.require_role(auth.EDITOR, "Deleting a run") and st.button(f"Delete run {pick}...",
                                                                       key="train_delete"):
        st.session_state["train_delete_pending"] = pick
    if st.session_state.get("train_delete_pending") == pick and run.status != "running" and auth.can_edit():
        with st.container(border=True):
            st.warning(f"Delete **{pick}** and every file in `{run.path}`? This cannot be undone.")
            second = True
            if shipped:
                second = st.checkbox(f"{pick} ships with the app (a default model used by other pages): delete it "
                                     "anyway", key="train_delete_shipped")
            c1, c2 = st.columns(2)
            if c1.button("Yes, delete", key="train_delete_confirm", type="primary", disabled=not second):
                auth.ensure_role(auth.EDITOR, "Deleting a run")
                with common.guard(f"Deleting run {pick}"):
                    registry.delete_run(models_dir, pick, allow_shipped=shipped and second)
                    st.session_state.pop("train_delete_pending", None)
                    st.session_state["train_deleted"] = pick
                    st.rerun()
            if c2.button("Cancel", key="train_delete_cancel"):
                st.session_state.pop("train_delete_pending", None)
                st.rerun()
if st.session_state.get("train_deleted"):
    st.success(f"Deleted run {st.session_state.pop('train_deleted')}.")
