"""Does a map point at the pathology? Scores of heatmaps against the pathology leads of synthetic ground truth.

:func:`pointing_game` (is the maximum inside a pathology lead's box?) and :func:`lead_mass_score` (share of the
attention inside those boxes against their share of the area) for one map; :func:`evaluate_localisation` and
:func:`summarise_localisation` over a synthetic dataset (its ``.json`` sidecars hold the boxes and leads).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError, EcgCoreError
from ecg_core.core.labels import get_preset
from ecg_core.xai.explainer import Explainer
from ecg_core.xai.methods import method_class
from ecg_core.xai.overlay import heatmap_to_original

ProgressFn = Callable[[int, int], None]


def _union_mask(shape: tuple[int, int], boxes: Mapping[str, Sequence[int]], leads: Iterable[str]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for lead in leads:
        if lead not in boxes:
            raise ConfigError(f"lead {lead!r} has no box; boxes are known for {', '.join(boxes)}")
        x0, y0, x1, y1 = (int(v) for v in boxes[lead])
        mask[max(y0, 0):y1, max(x0, 0):x1] = True
    return mask


def pointing_game(heatmap_orig: np.ndarray, boxes: Mapping[str, Sequence[int]], leads: Sequence[str], *,
                  tolerance_px: int = 0) -> bool:
    """Pointing game (Zhang et al., ECCV 2016): is the heatmap's maximum inside one of the ``leads``' boxes
    (grown by ``tolerance_px``)? A map that is zero everywhere points nowhere (False). With several maxima the
    first in row-major order counts."""
    hm = np.asarray(heatmap_orig, dtype=np.float64)
    if hm.ndim != 2:
        raise ConfigError(f"heatmap_orig must be 2-D (H, W); received shape {hm.shape}")
    if not leads or float(hm.max(initial=0.0)) <= 0.0:
        return False
    y, x = np.unravel_index(int(np.argmax(hm)), hm.shape)
    t = int(tolerance_px)
    for lead in leads:
        if lead not in boxes:
            raise ConfigError(f"lead {lead!r} has no box; boxes are known for {', '.join(boxes)}")
        x0, y0, x1, y1 = (int(v) for v in boxes[lead])
        if x0 - t <= x < x1 + t and y0 - t <= y < y1 + t:
            return True
    return False


def max_lead(heatmap_orig: np.ndarray, boxes: Mapping[str, Sequence[int]]) -> str:
    """Name of the lead box that holds the heatmap's maximum (first in row-major order), ``''`` when the map is
    zero everywhere or its maximum lies in no box: where a miss of the pointing game points instead."""
    hm = np.asarray(heatmap_orig, dtype=np.float64)
    if hm.ndim != 2 or float(hm.max(initial=0.0)) <= 0.0:
        return ""
    y, x = np.unravel_index(int(np.argmax(hm)), hm.shape)
    for lead, box in boxes.items():
        x0, y0, x1, y1 = (int(v) for v in box)
        if x0 <= x < x1 and y0 <= y < y1:
            return str(lead)
    return ""


def with_rhythm_strips(leads: Sequence[str], boxes: Mapping[str, Sequence[int]]) -> list[str]:
    """``leads`` plus the rhythm strips that print one of them (``'II_rhythm'`` for II, ``'V1_rhythm'`` ...) among
    ``boxes``: the lenient reading of the pointing game, where the lead-II rhythm strip of an inferior infarct
    counts as lead II. The strict game (:func:`pointing_game` over the sidecar's leads) stays the headline."""
    from ecg_core.reports.layout import RHYTHM_KEY, RHYTHM_LEAD

    out = list(leads)
    for lead in leads:
        key = RHYTHM_KEY if lead == RHYTHM_LEAD else f"{lead}_rhythm"
        if key in boxes and key not in out:
            out.append(key)
    return out


@dataclass(frozen=True)
class LeadMassScore:
    """Share of the attention inside the pathology leads' boxes (``mass_fraction``) against the share of the
    image area they cover (``area_fraction``, within ``region``): ``ratio`` > 1 means the map concentrates on
    them more than a uniform map would."""

    mass_fraction: float
    area_fraction: float

    @property
    def ratio(self) -> float:
        return self.mass_fraction / self.area_fraction if self.area_fraction > 0 else float("nan")


def lead_mass_score(heatmap_orig: np.ndarray, boxes: Mapping[str, Sequence[int]], leads: Sequence[str], *,
                    region: Sequence[int] | None = None) -> LeadMassScore:
    """:class:`LeadMassScore` of a heatmap for a set of leads. ``region`` (x0, y0, x1, y1): where the map is
    defined (the preprocessing crop); areas are counted inside it (default: the whole image). Overlapping boxes
    count once."""
    hm = np.asarray(heatmap_orig, dtype=np.float64)
    if hm.ndim != 2:
        raise ConfigError(f"heatmap_orig must be 2-D (H, W); received shape {hm.shape}")
    mask = _union_mask(hm.shape, boxes, leads)
    reg = np.zeros(hm.shape, dtype=bool)
    if region is None:
        reg[:] = True
    else:
        x0, y0, x1, y1 = (int(v) for v in region)
        reg[max(y0, 0):y1, max(x0, 0):x1] = True
    total = float(hm[reg].sum())
    mass = float(hm[mask & reg].sum()) / total if total > 0 else 0.0
    area = float((mask & reg).sum()) / max(float(reg.sum()), 1.0)
    return LeadMassScore(mass, area)


def localisation_items(folder: str | Path, *, limit: int | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Images under ``folder`` that have a synthetic sidecar with pathology leads, as (image path, sidecar),
    taken round-robin over the classes (so ``limit`` keeps every class) and sorted by name within a class."""
    from ecg_core.imaging.loader import IMAGE_EXTENSIONS
    from ecg_core.reports.leads import load_sidecar

    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{str(root)!r} is not a folder; pass the folder of a synthetic dataset (with .json "
                          "sidecars)")
    per_class: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() not in IMAGE_EXTENSIONS or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        sc = load_sidecar(p)
        if sc is None or not sc.get("pathology_leads"):
            continue
        per_class.setdefault(str(sc.get("class_name", "?")), []).append((p, sc))
    items: list[tuple[Path, dict[str, Any]]] = []
    queues = [list(v) for _, v in sorted(per_class.items())]
    while any(queues) and (limit is None or len(items) < limit):
        for q in queues:
            if q and (limit is None or len(items) < limit):
                items.append(q.pop(0))
    return items


def _perlead_map(explainer: Explainer, rgb: np.ndarray, sc: Mapping[str, Any], method: str, class_index: int | None
                 ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """A per-lead CNN's (probabilities, explained class, map in report pixels, union of its 13 lead boxes) for one
    report: :func:`ecg_core.reports.perlead_predict.explain_report` (Grad-CAM mapped from the panel mosaic back to
    each lead's box, 0 outside them); other methods run on the same mosaic and map back the same way."""
    from ecg_core.reports.perlead import cam_to_report
    from ecg_core.reports.perlead_predict import explain_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ex = explain_report(explainer.model, rgb, sidecar=dict(sc), class_index=class_index,
                            gradcam=method == "gradcam", explainer=explainer)
        if ex.heatmap is not None:
            hmo = ex.heatmap
        else:
            hmo = cam_to_report(explainer.explain(ex.mosaic.image[None], method=method, class_index=ex.class_index),
                                ex.mosaic.layout)
    region = _union_mask(hmo.shape, ex.mosaic.layout.boxes, ex.mosaic.layout.boxes)
    return ex.probs, ex.class_index, np.asarray(hmo, np.float64), region


def evaluate_localisation(explainer: Explainer, cfg: Any, items: Sequence[tuple[Path, Mapping[str, Any]]], *,
                          method: str = "gradcam", target: str = "true", progress: ProgressFn | None = None,
                          perlead: bool = False) -> pd.DataFrame:
    """Pointing game and lead-mass score of every item (image path, sidecar) against its pathology leads.

    ``perlead``: the explainer's model is a per-lead CNN (``arch`` ``perlead_cnn``,
    :func:`ecg_core.reports.perlead_predict.is_perlead_run`; ``cfg`` is then unused): each report is cut into its
    13 panels and the map comes back in report pixels, 0 outside the lead boxes
    (:func:`ecg_core.reports.perlead_predict.explain_report`). Since such a map can only peak inside a lead box,
    its ``pointing_chance`` / ``area_share`` are the pathology boxes' share of the **union of the 13 lead boxes**
    (what a random point on a panel scores), not of the whole image or crop (which would make chance look lower).
    Whole-page models keep the preprocessing crop as that region.

    ``target``: explain the true class (``'true'``, when the model knows it) or the predicted one
    (``'predicted'``). Columns: path, class_name, subtype, territory, pathology_leads, predicted, correct,
    explained, pointing_hit, pointing_chance (area share of the pathology boxes in the crop: what a random point
    scores), lead_mass, area_share, mass_ratio, max_lead (the box holding the map's maximum, :func:`max_lead`),
    pointing_hit_strips (the lenient game: a pathology lead's rhythm strip counts, :func:`with_rhythm_strips`),
    error.
    """
    from ecg_core.imaging.loader import load_image
    from ecg_core.imaging.preprocess import preprocess

    if target not in ("true", "predicted"):
        raise ConfigError(f"target must be 'true' or 'predicted'; received {target!r}")
    method_class(method)
    rows = []
    for i, (path, sc) in enumerate(items):
        row: dict[str, Any] = {"path": str(path), "class_name": sc.get("class_name", ""),
                               "subtype": sc.get("subtype") or "", "territory": sc.get("territory") or "",
                               "pathology_leads": " ".join(sc.get("pathology_leads", [])), "error": ""}
        try:
            rgb = load_image(path).rgb
            true = explainer.class_names.index(row["class_name"]) if row["class_name"] in explainer.class_names \
                else None
            boxes = sc["boxes"]
            leads = list(sc["pathology_leads"])
            if perlead:
                probs, cls, hmo, region = _perlead_map(explainer, rgb, sc, method,
                                                       true if target == "true" else None)
                pred = int(np.argmax(probs))
                lm = lead_mass_score(hmo, boxes, leads)  # all the map's mass lies inside the lead boxes
                lm = LeadMassScore(lm.mass_fraction, float((_union_mask(hmo.shape, boxes, leads) & region).sum())
                                   / max(float(region.sum()), 1.0))
            else:
                pre = preprocess(rgb, cfg, keep_steps=False)
                probs = explainer.predict_proba(pre.final)
                pred = int(np.argmax(probs))
                cls = true if (target == "true" and true is not None) else pred
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    hm = explainer.explain(pre.final, method=method, class_index=cls)
                hmo = heatmap_to_original(hm, pre.crop_box, pre.original_shape)
                lm = lead_mass_score(hmo, boxes, leads, region=pre.crop_box)
            row.update(predicted=explainer.class_names[pred], correct=(true == pred) if true is not None else None,
                       explained=explainer.class_names[cls], pointing_hit=pointing_game(hmo, boxes, leads),
                       pointing_chance=lm.area_fraction, lead_mass=lm.mass_fraction, area_share=lm.area_fraction,
                       mass_ratio=lm.ratio, max_lead=max_lead(hmo, boxes),
                       pointing_hit_strips=pointing_game(hmo, boxes, with_rhythm_strips(leads, boxes)))
        except (EcgCoreError, KeyError, ValueError) as e:
            row["error"] = str(e)
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(items))
    cols = ["path", "class_name", "subtype", "territory", "pathology_leads", "predicted", "correct", "explained",
            "pointing_hit", "pointing_chance", "lead_mass", "area_share", "mass_ratio", "max_lead",
            "pointing_hit_strips", "error"]
    return pd.DataFrame(rows, columns=cols)


MI_GROUP = "MI + history of MI"
#: the cardiac-4 classes whose synthetic reports carry a territory (acute and old infarction): the MI group
_TERRITORY_CLASS_KEYS = ("myocardial_infarction", "history_of_mi")


def _territory_class_names() -> list[str]:
    preset = get_preset("cardiac-4")
    return [preset.info(key).name for key in _TERRITORY_CLASS_KEYS]


def summarise_localisation(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean scores of :func:`evaluate_localisation` over the MI and history-of-MI images together (the
    territory classes) and per class. Columns: group, n, pointing_game, pointing_chance, lead_mass, area_share,
    mass_ratio, accuracy, pointing_game_strips (the lenient game, when the per-image table has it)."""
    ok = per_image[per_image["error"] == ""].copy()
    groups: list[tuple[str, pd.DataFrame]] = [
        (MI_GROUP, ok[ok["class_name"].isin(_territory_class_names())])]
    groups += [(str(c), g) for c, g in ok.groupby("class_name", sort=True)]
    rows = []
    for name, g in groups:
        if g.empty:
            continue
        acc = g["correct"].dropna()
        rows.append({"group": name, "n": int(len(g)), "pointing_game": float(g["pointing_hit"].astype(float).mean()),
                     "pointing_chance": float(g["pointing_chance"].mean()), "lead_mass": float(g["lead_mass"].mean()),
                     "area_share": float(g["area_share"].mean()), "mass_ratio": float(g["mass_ratio"].mean()),
                     "accuracy": float(acc.astype(float).mean()) if len(acc) else float("nan"),
                     "pointing_game_strips": float(g["pointing_hit_strips"].astype(str).eq("True").mean())
                     if "pointing_hit_strips" in g else float("nan")})
    return pd.DataFrame(rows, columns=["group", "n", "pointing_game", "pointing_chance", "lead_mass", "area_share",
                                       "mass_ratio", "accuracy", "pointing_game_strips"])
