"""Predict and explain with a per-lead CNN run (``arch`` ``perlead_cnn``): the report is cut into its 13 panels
(:mod:`ecg_core.reports.perlead`), never resized whole.

* :func:`explain_report` — probabilities, the 13 attention weights (layer ``lead_attention``: the per-lead
  explanation) and Grad-CAM on the last conv stage, mapped from the mosaic back to each panel's box on the report;
* :func:`predict_files_perlead` — ``python -m ecg_core predict`` with such a run: the columns of
  :func:`ecg_core.reports.batch.predict_files` plus ``top_leads`` (the three most attended panels) and ``layout``
  (where the boxes came from).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.errors import EcgCoreError
from ecg_core.reports.perlead import PanelMosaic, attention_table, cam_to_report, report_mosaic

__all__ = ["PerleadExplanation", "evaluate_perlead_folder", "explain_report", "is_perlead_run", "predict_files_perlead"]

ProgressFn = Callable[[int, int], None]


def is_perlead_run(meta: dict[str, Any]) -> bool:
    """``run.json`` says the run is a per-lead CNN."""
    return str(meta.get("arch", "")) == "perlead_cnn"


@dataclass(frozen=True)
class PerleadExplanation:
    """What one report gives: ``probs`` (k,), the explained ``class_index``, ``attention`` (13,) in layout order
    and its table (:func:`~ecg_core.reports.perlead.attention_table`), Grad-CAM over the mosaic (``cam``) and in
    the report's pixels (``heatmap``, 0 outside the lead boxes), and the panel ``mosaic`` with its layout."""

    probs: np.ndarray
    class_index: int
    attention: np.ndarray
    attention_rows: list[dict[str, Any]]
    cam: np.ndarray | None
    heatmap: np.ndarray | None
    mosaic: PanelMosaic


def _attention_model(model: Any) -> Any:
    import keras

    from ecg_core.ml.zoo_perlead import ATTENTION_LAYER

    return keras.Model(model.inputs, [model.get_layer(ATTENTION_LAYER).output, model.output])


def explain_report(model: Any, rgb: np.ndarray, *, sidecar: dict[str, Any] | None = None,
                   class_index: int | None = None, gradcam: bool = True, explainer: Any = None) -> PerleadExplanation:
    """Predict one report image (uint8 RGB) and explain it (see :class:`PerleadExplanation`); ``class_index``
    None explains the predicted class; ``gradcam`` False skips the map (attention only)."""
    m = report_mosaic(rgb, sidecar=sidecar)
    x = m.image[None].astype(np.float32)
    att, prob = _attention_model(model)(x, training=False)
    prob = np.asarray(prob, np.float64)[0]
    att = np.asarray(att, np.float64).reshape(-1)
    k = int(np.argmax(prob)) if class_index is None else int(class_index)
    cam = heat = None
    if gradcam:
        from ecg_core.ml.zoo import last_conv_layer_name
        from ecg_core.xai.explainer import Explainer

        ex = explainer if explainer is not None else Explainer(model, layer=last_conv_layer_name(model))
        cam = np.asarray(ex.explain(x, method="gradcam", class_index=k), np.float32)
        cam = cam[0] if cam.ndim == 3 else cam
        heat = cam_to_report(cam, m.layout)
    return PerleadExplanation(prob, k, att, attention_table(att), cam, heat, m)


def predict_files_perlead(model: Any, files: Sequence[str | Path], *, class_names: Sequence[str],
                          root: str | Path | None = None, check: bool = True,
                          progress: ProgressFn | None = None) -> pd.DataFrame:
    """One row per file: ``path``, ``predicted``, ``reason``, ``ecg_score``, ``prob_<class>``, ``in_distribution``
    / ``ood_reason`` (unknown: a per-lead run has no OOD profile yet), ``top_leads``, ``layout``."""
    from ecg_core.imaging.loader import load_image
    from ecg_core.reports.batch import REASON_NOT_ECG, REASON_UNREADABLE, batch_row
    from ecg_core.reports.ecg_check import check_ecg
    from ecg_core.reports.leads import load_sidecar

    names = list(class_names)
    base = Path(root) if root is not None else None
    amodel = _attention_model(model)
    rows = []
    for i, f in enumerate(files):
        p = Path(f)
        row: dict[str, Any] = {**batch_row(f, base, names), "in_distribution": "",
                               "ood_reason": "unknown: per-lead CNN runs have no outside-the-training-data profile",
                               "top_leads": "", "layout": ""}
        try:
            rgb = load_image(p).rgb
            if check:
                chk = check_ecg(rgb)
                row["ecg_score"] = chk.score
                if not chk.is_ecg:
                    row["reason"] = f"{REASON_NOT_ECG}: " + "; ".join(chk.failed)
                    rows.append(row)
                    continue
            m = report_mosaic(rgb, sidecar=load_sidecar(p))
            att, prob = amodel(m.image[None].astype(np.float32), training=False)
            prob = np.asarray(prob, np.float64)[0]
            table = sorted(attention_table(np.asarray(att)), key=lambda r: r["rank"])
            row["predicted"] = names[int(np.argmax(prob))]
            row.update({f"prob_{c}": float(v) for c, v in zip(names, prob)})
            row["top_leads"] = ", ".join(f"{r['lead']} {r['weight']:.2f}" for r in table[:3])
            row["layout"] = m.layout.source
        except EcgCoreError as e:
            row["reason"] = f"{REASON_UNREADABLE}: {e}"
        except Exception as e:  # noqa: BLE001 - one bad file never stops the batch
            row["reason"] = f"{REASON_UNREADABLE}: {type(e).__name__}: {e}"
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(files))
    cols = ["path", "predicted", "reason", "ecg_score"] + [f"prob_{c}" for c in names] + \
        ["in_distribution", "ood_reason", "top_leads", "layout"]
    return pd.DataFrame(rows, columns=cols)


def evaluate_perlead_folder(info: Any, data_dir: str | Path, *, n_boot: int = 1000, seed: int = 0,
                            progress: Callable[[str, int, int], None] | None = None) -> Any:
    """``python -m ecg_core evaluate RUN --data DIR`` for a per-lead CNN: every labelled image of a
    folder-per-class dataset cut into its panels and predicted (no ECG check, like the CNN's external evaluation),
    evaluated with group-bootstrap intervals over duplicate groups; an
    :class:`ecg_core.ml.external_eval.ExternalEvaluation`."""
    from ecg_core.ml import registry
    from ecg_core.ml.external_eval import evaluate_folder_by_files

    model = registry.load_model(info)
    names = list(info.class_names)
    return evaluate_folder_by_files(
        info, data_dir,
        lambda paths, progress=None: predict_files_perlead(model, paths, class_names=names, check=False,
                                                           progress=progress),
        names, n_boot=n_boot, seed=seed, progress=progress)
