"""Predict and explain with a measurement model (:mod:`ecg_core.ml.measure_model`): a report image is read
(:mod:`.reading.digitize`), measured (:mod:`.reading.measure`) and turned into its feature row
(:mod:`.reading.features`); the model gives calibrated class probabilities and per-feature contributions, which
are summed per lead for the explanation drawn on the report.

A report that cannot be read never stops a batch: an unreadable file or one that is not an ECG gets its reason and
no prediction (as for the CNN, :mod:`.batch`); a report read only in part still gets a prediction from what was
measured (the model takes missing values), and the row's ``reading`` column says what was missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.errors import EcgCoreError
from ecg_core.core.labels import LEADS

ProgressFn = Callable[[int, int], None]
MIN_LEADS_READ = 6
NO_OOD = "unknown: a measurement model has no OOD profile"


@dataclass(frozen=True)
class MeasuredReport:
    """One report read for a measurement model: ``features`` (name -> value), the ``reading`` note ('' when every
    lead was read), the digitised report and its measurements (for drawing)."""

    features: dict[str, float]
    reading: str
    dig: Any = None
    meas: Any = None
    problems: tuple[str, ...] = field(default_factory=tuple)


def read_features(rgb: np.ndarray, *, sidecar: Any = None) -> MeasuredReport:
    """Digitise, measure and featurise one report image (uint8 RGB)."""
    from ecg_core.reports.reading.digitize import QUALITY_PASS, digitize
    from ecg_core.reports.reading.features import report_features
    from ecg_core.reports.reading.measure import measure

    dig = digitize(rgb, sidecar=sidecar)
    meas = measure(dig)
    feats = report_features(dig, meas)
    n_read = sum(float(dig.quality.get(lead, 0.0)) >= QUALITY_PASS for lead in LEADS)
    notes = []
    if n_read == 0:
        notes.append(f"none of the {len(LEADS)} leads read with good quality (a layout the reader does not know?): "
                     "the prediction rests on what little was measured; treat it as unreliable")
    elif n_read < len(LEADS):
        notes.append(f"{n_read} of {len(LEADS)} leads read with good quality")
    if not meas.beats.get("r"):
        notes.append("no beats found: " + meas.problems.get("hr_bpm", "the rhythm could not be measured"))
    return MeasuredReport(feats, "; ".join(notes), dig, meas)


def feature_matrix(rows: Sequence[dict[str, float]], names: Sequence[str]) -> np.ndarray:
    """(n, len(names)) float64, NaN for a feature a row lacks."""
    return np.array([[float(r.get(n, np.nan)) for n in names] for r in rows], dtype=np.float64).reshape(
        len(rows), len(names))


def report_probabilities(model: Any, features: Mapping[str, float]) -> np.ndarray:
    """A measurement model's class probabilities (calibrated, its decision weights applied) for one report's
    features: what predict, Batch, Explain and the ensemble all show."""
    return model.predict_proba(feature_matrix([dict(features)], model.feature_names))[0]


def predict_files_measure(model: Any, files: Sequence[str | Path], *, root: str | Path | None = None,
                          check: bool = True, progress: ProgressFn | None = None,
                          ood: Any = "none") -> pd.DataFrame:
    """One row per file, the columns of :func:`ecg_core.reports.batch.predict_files` (``path``, ``predicted``,
    ``reason``, ``ecg_score``, ``prob_<class>``, ``in_distribution``, ``ood_reason``) plus ``reading``.

    ``ood``: the run's :class:`~ecg_core.reports.ood.OodProfile` (or ``None`` for a run without one): every predicted
    row gets its verdict from the descriptor of the image already decoded here (reusing the ECG check's scan), as
    :func:`~ecg_core.reports.batch.predict_files` does; the default ``"none"`` leaves ``in_distribution`` empty and says so in ``ood_reason``."""
    from ecg_core.imaging.loader import load_image
    from ecg_core.reports.batch import REASON_NOT_ECG, REASON_UNREADABLE, batch_row
    from ecg_core.reports.ecg_check import check_ecg
    from ecg_core.reports.leads import load_sidecar

    from ecg_core.reports.ood import assess, describe_report, verdict_columns

    names = list(model.class_names)
    base = Path(root) if root is not None else None
    describe = not (isinstance(ood, str) and ood == "none")
    rows = []
    for i, f in enumerate(files):
        p = Path(f)
        row: dict[str, Any] = {**batch_row(f, base, names), "in_distribution": "",
                               "ood_reason": "" if describe else NO_OOD, "reading": ""}
        try:
            rgb = load_image(p).rgb
            scan = None
            if check:
                chk = check_ecg(rgb, keep_scan=describe)
                row["ecg_score"] = chk.score
                if not chk.is_ecg:
                    row["reason"] = f"{REASON_NOT_ECG}: " + "; ".join(chk.failed)
                    rows.append(row)
                    continue
                scan = chk.scan
            rep = read_features(rgb, sidecar=load_sidecar(p))
            prob = report_probabilities(model, rep.features)
            row["predicted"] = names[int(np.argmax(prob))]
            row.update({f"prob_{c}": float(v) for c, v in zip(names, prob)})
            row["reading"] = rep.reading
            if describe:
                row.update(verdict_columns(assess(describe_report(rgb, scan=scan), ood)))
        except EcgCoreError as e:
            row["reason"] = f"{REASON_UNREADABLE}: {e}"
        except Exception as e:  # noqa: BLE001 - a report the reader chokes on never stops the batch
            row["reason"] = f"{REASON_UNREADABLE}: could not read the traces ({type(e).__name__}: {e})"
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(files))
    cols = ["path", "predicted", "reason", "ecg_score"] + [f"prob_{c}" for c in names] + \
        ["in_distribution", "ood_reason", "reading"]
    return pd.DataFrame(rows, columns=cols)


def lead_contributions(model: Any, features: dict[str, float], class_index: int) -> tuple[dict[str, float],
                                                                                          pd.DataFrame]:
    """(lead -> summed contribution to the class's margin, table of the features sorted by |contribution|:
    feature, value, contribution, leads). A feature that speaks about several leads (a territory, or a summary such
    as the number of leads with ST elevation: :func:`~ecg_core.reports.reading.features.report_leads`) shares its
    contribution equally among them; global features (rate, intervals, quality) are summed under ``'global'``."""
    from ecg_core.reports.reading.features import report_leads

    names = list(model.feature_names)
    c = model.contributions(feature_matrix([features], names), class_index)[0]
    per: dict[str, float] = {lead: 0.0 for lead in LEADS}
    per["global"] = 0.0
    rows = []
    for name, v in zip(names, c):
        leads = report_leads(name, features)
        if leads:
            for lead in leads:
                per[lead] += float(v) / len(leads)
        else:
            per["global"] += float(v)
        rows.append({"feature": name, "value": features.get(name, np.nan), "contribution": float(v),
                     "leads": ", ".join(leads) if leads else "global"})
    table = pd.DataFrame(rows)
    table = table.reindex(table["contribution"].abs().sort_values(ascending=False).index).reset_index(drop=True)
    return per, table


def evaluate_measure_folder(info: Any, data_dir: str | Path, *, n_boot: int = 1000, seed: int = 0,
                            progress: Callable[[str, int, int], None] | None = None) -> Any:
    """``python -m ecg_core evaluate RUN --data DIR`` for a measurement run: every labelled image of a
    folder-per-class dataset read and predicted (no ECG check, like the CNN's external evaluation), evaluated with
    group-bootstrap intervals over duplicate groups; an :class:`ecg_core.ml.external_eval.ExternalEvaluation`."""
    from ecg_core.ml import registry
    from ecg_core.ml.external_eval import evaluate_folder_by_files

    model = registry.load_model(info)
    return evaluate_folder_by_files(
        info, data_dir, lambda paths, progress=None: predict_files_measure(model, paths, check=False, progress=progress),
        list(model.class_names), n_boot=n_boot, seed=seed, progress=progress)
