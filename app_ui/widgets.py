"""Widgets shared by several pages: the table of runs that cannot be used, the grid of preprocessing steps, and the
report-model picker of the Explain and Batch predict pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from app_ui import cache, common

if TYPE_CHECKING:
    import numpy as np

    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml.registry import RunInfo
    from ecg_core.xai.explainer import Explainer


def unusable_runs(runs: Sequence[Any], title: str, *, expanded: bool = False) -> None:
    """An expander listing ``runs`` (objects with ``run_id``, ``status`` and ``problem``) with the reason each cannot
    be used; nothing when there is none."""
    if not runs:
        return
    with st.expander(title, expanded=expanded):
        st.dataframe(pd.DataFrame({"run": [r.run_id for r in runs], "status": [r.status for r in runs],
                                   "reason": [r.problem or f"status {r.status}" for r in runs]}),
                     hide_index=True, width="stretch")


def step_grid(steps: Sequence[tuple[str, np.ndarray]], columns: int = 3) -> None:
    """Preprocessing steps ``(label, image)`` in rows of ``columns`` images, each captioned with its size."""
    for row in range(0, len(steps), columns):
        cols = st.columns(columns)
        for col, (label, step) in zip(cols, steps[row : row + columns]):
            col.image(step, caption=f"{label} · {step.shape[1]}x{step.shape[0]}", width="stretch")


@dataclass(frozen=True)
class ReportModel:
    """The model chosen on a report page: its run, the other usable runs, its stored preprocessing, the loaded
    explainer and the run's cache key (:func:`app_ui.cache.run_key`)."""

    run: RunInfo
    usable: dict[str, RunInfo]
    cfg: PreprocessConfig
    explainer: Explainer
    key: str

    @property
    def run_id(self) -> str:
        return self.run.run_id


def pick_report_model(key: str = "explain_run", *, measurement: bool = False, panels: bool = False,
                      ensemble: bool = False) -> ReportModel:
    """Select box of the trained models that read report images (default: the registry's default run), with the
    runs that cannot be used listed above; loads the chosen one. Stops the page when there is no usable model.
    ``measurement``: also offer measurement models (then ``cfg`` is None and ``explainer`` is the loaded
    :class:`ecg_core.ml.measure_model.MeasureModel`; the caller checks ``run.is_measurement``). ``panels``: also
    offer per-lead CNNs (input ``report_panels``; then ``cfg`` is None and ``explainer`` is the pair (Keras model,
    Grad-CAM explainer) of :func:`app_ui.cache.perlead_model`; the caller checks ``run.input_kind``). ``ensemble``:
    also offer ensemble runs (``model_kind`` ``ensemble``; then ``cfg`` and ``explainer`` are None: the caller's
    :mod:`app_ui.ensemble_view` loads the members)."""
    from ecg_core.core import labels, paths
    from ecg_core.ml import registry

    # only models that read report images: a spectral-beat arrhythmia model has no meaning on a 12-lead report
    runs = registry.list_runs(paths.models_dir(), input_kind=labels.INPUT_REPORT_IMAGE)
    if panels:  # per-lead CNNs read the same report, cut into its 13 lead panels
        from ecg_core.reports.perlead_train import INPUT_KIND as PANELS

        runs += [r for r in registry.list_runs(paths.models_dir(), input_kind=PANELS) if r.input_kind == PANELS]
    if not measurement:
        runs = [r for r in runs if not r.is_measurement]
    if not ensemble:
        runs = [r for r in runs if r.meta.get("model_kind") != registry.ENSEMBLE_KIND]
    usable = {r.run_id: r for r in runs if r.usable}
    unusable = [r for r in runs if not r.usable]
    unusable_runs(unusable, f"{len(unusable)} runs cannot be used")
    if not usable:
        st.info(f"No trained model is available in `{paths.models_dir()}`. Train one on the Train page (or with "
                "`python -m ecg_core train --data <folder>`), then come back to explain its predictions.")
        st.stop()
    default = registry.choose_default(runs)
    run_id = st.selectbox("Model", list(usable), format_func=lambda r: usable[r].label, key=key,
                          index=list(usable).index(default.run_id) if default is not None and default.run_id in usable
                          else 0)
    run = usable[run_id]
    if run.meta.get("model_kind") == registry.ENSEMBLE_KIND:  # the caller shows app_ui.ensemble_view
        return ReportModel(run, usable, None, None, cache.run_key(run))
    if run.is_measurement:  # no preprocessing, no Keras: the caller shows its own view (app_ui.measure_view)
        with common.safe(f"Loading model {run_id}"):
            measure = cache.measure_model(str(run.path), cache.run_key(run))
        return ReportModel(run, usable, None, measure, cache.run_key(run))
    if run.input_kind == "report_panels":  # a per-lead CNN: the caller shows its own view (app_ui.perlead_view)
        with common.safe(f"Loading model {run_id}"):
            bundle = cache.perlead_model(str(run.path), cache.run_key(run))
        return ReportModel(run, usable, None, bundle, cache.run_key(run))
    with common.safe("Reading the model's preprocessing"):
        cfg = registry.preprocess_config_of(run)
    with common.safe(f"Loading model {run_id}"):
        explainer = cache.get_explainer(run)
    return ReportModel(run, usable, cfg, explainer, cache.run_key(run))


def report_model_kind(run: Any) -> str:
    """What a report model is, for the pages that run it: ``ensemble``, ``measurement``, ``perlead`` (input
    ``report_panels``) or ``keras`` (a whole-page CNN with its stored preprocessing)."""
    from ecg_core.ml import registry

    if run.meta.get("model_kind") == registry.ENSEMBLE_KIND:
        return "ensemble"
    if run.is_measurement:
        return "measurement"
    return "perlead" if run.input_kind == "report_panels" else "keras"


def input_check(rgb: Any, name: str, *, key: str) -> None:
    """The ECG check of an uploaded report, said above a model's own Explain view: a pass in green; a refusal in red
    with its reasons, and the page stops there unless the user asks to explain the image anyway (teaching)."""
    from ecg_core.reports.ecg_check import check_ecg

    check = check_ecg(rgb)
    if check.is_ecg:
        st.success(f"Input check: {check.message}.")
        return
    st.error(f"**Not recognised as an ECG report.** {'; '.join(check.failed)}.")
    if not st.checkbox("Explain it anyway (for teaching; the output means nothing for this image)", key=key):
        st.image(rgb, caption=name, width="stretch")
        st.stop()
