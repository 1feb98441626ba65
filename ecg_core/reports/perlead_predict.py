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
    from ecg_core.reports.batch import REASON_NOT_ECG, REASON_UNREADABLE
    from ecg_core.reports.ecg_check import check_ecg
    from ecg_core.reports.leads import load_sidecar

    names = list(class_names)
    base = Path(root) if root is not None else None
    amodel = _attention_model(model)
    rows = []
    for i, f in enumerate(files):
        p = Path(f)
        try:
            shown = str(p.relative_to(base)) if base is not None else str(p)
        except ValueError:
            shown = str(p)
        row: dict[str, Any] = {"path": shown, "predicted": "", "reason": "", "ecg_score": np.nan,
                               **{f"prob_{c}": np.nan for c in names}, "in_distribution": "",
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
    from ecg_core.core.errors import DatasetError
    from ecg_core.core.labels import get_preset
    from ecg_core.ml import dataset, registry
    from ecg_core.ml.evaluate import evaluate_predictions
    from ecg_core.ml.external_eval import ExternalEvaluation
    from ecg_core.ml.predictions import predictions_frame

    preset = get_preset(str(info.meta.get("preset", "cardiac-4")))
    names = list(info.class_names)
    model = registry.load_model(info)
    index = dataset.scan(data_dir, preset=preset,
                         progress=(lambda i, n: progress("scanning", i, n)) if progress else None)
    readable = index[index["error"] == ""]
    skipped = [(str(r), str(e)) for r, e in zip(index.loc[index["error"] != "", "rel_path"],
                                                index.loc[index["error"] != "", "error"])]
    rows = readable[readable["label"] >= 0].sort_values("rel_path").reset_index(drop=True)
    if rows.empty:
        raise DatasetError(f"no readable image in {str(data_dir)!r} sits in a folder of a class of the run's preset")
    df = predict_files_perlead(model, rows["path"].tolist(), class_names=names, check=False,
                               progress=(lambda i, n: progress("predicting", i, n)) if progress else None)
    ok = (df["predicted"] != "").to_numpy()
    skipped += [(str(r), str(w)) for r, w in zip(rows.loc[~ok, "rel_path"], df.loc[~ok, "reason"])]
    if not ok.any():
        raise DatasetError(f"none of the {len(rows)} labelled images in {str(data_dir)!r} could be read")
    p = df.loc[ok, [f"prob_{c}" for c in names]].to_numpy(dtype=np.float64)
    used = rows[ok].reset_index(drop=True)
    y, groups = used["label"].to_numpy(dtype=np.int64), used["group"].astype(str).to_numpy()
    rep = evaluate_predictions(y, p, class_names=names, groups=groups, split="external", n_boot=n_boot, seed=seed)
    return ExternalEvaluation(
        run_id=info.run_id, data_dir=str(Path(data_dir).expanduser().resolve()), report=rep,
        predictions=predictions_frame(used["path"].to_numpy(), y, p, class_names=names, groups=groups),
        n_files=int(len(index)), skipped=tuple(skipped), n_unlabelled=int((readable["label"] < 0).sum()),
        n_ignored=len(index.attrs.get("skipped", [])), grouped_by="duplicate group")
