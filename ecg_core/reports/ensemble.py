"""An ensemble run (issue 15, item 4): the fixed-weight average of member runs' class probabilities, calibrated by
one temperature fitted on the averaged out-of-fold probabilities only.

The run folder holds ``run.json`` (``model_kind`` ``ensemble``, ``members``: ``[{"run_id", "weight"}]``,
``temperature``), ``predictions_oof.csv`` / ``eval_kfold.json`` (the averaged, calibrated out-of-fold predictions,
group bootstrap), ``MODEL_CARD.md`` (the candidates table, measured from the members' files) and ``ood_profile.json``
(a member's descriptor profile). Members are run folders beside it (same models folder). No model file of its own:
nothing to unpickle.

* :func:`average_oof`: the members' out-of-fold rows aligned on (path, repeat), refused unless the rows, true
  classes, groups (and folds, where stored) and classes agree; the weighted mean of their probabilities.
* :func:`build_ensemble`: writes the folder atomically (a temporary folder renamed into place).
* :func:`load_ensemble` / :func:`predict_files_ensemble`: ``predict``'s table (members' top classes included).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.errors import EcgCoreError
from ecg_core.ml.registry import ENSEMBLE_KIND, RunInfo, read_run

OOF_FILE = "predictions_oof.csv"
KFOLD_FILE = "eval_kfold.json"
ProgressFn = Callable[[int, int], None]


def _prob_cols(names: Sequence[str]) -> list[str]:
    return [f"prob_{c}" for c in names]


def average_oof(frames: Sequence[pd.DataFrame], weights: Sequence[float], class_names: Sequence[str],
                *, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """The members' out-of-fold frames (columns path, true, group, repeat, prob_<class>, optional fold) averaged
    with ``weights``: one row per (path, repeat), in the first frame's order. Raises :class:`EcgCoreError` when the
    members do not predict the same (path, repeat) rows, disagree on a row's true class, group or fold, or lack a
    class column."""
    labels = list(labels) if labels is not None else [f"member {i + 1}" for i in range(len(frames))]
    if len(frames) < 2 or len(frames) != len(weights):
        raise EcgCoreError("an ensemble needs at least two members, each with a weight")
    cols = _prob_cols(class_names)
    key = ["path", "repeat"]
    base = frames[0]
    for f, lab in zip(frames, labels):
        missing = [c for c in key + ["true", "group"] + cols if c not in f.columns]
        if missing:
            raise EcgCoreError(f"{lab}: out-of-fold predictions lack {', '.join(missing)} (different classes?)")
        if f.duplicated(key).any():
            raise EcgCoreError(f"{lab}: out-of-fold predictions repeat a (path, repeat) row")
    out = base[key + ["true", "group"] + (["fold"] if "fold" in base.columns else [])].reset_index(drop=True)
    acc = np.zeros((len(out), len(cols)))
    for f, w, lab in zip(frames, weights, labels):
        if len(f) != len(base) or set(map(tuple, f[key].to_numpy())) != set(map(tuple, base[key].to_numpy())):
            raise EcgCoreError(f"{lab} and {labels[0]} were not evaluated on the same out-of-fold rows "
                               f"({len(f)} vs {len(base)}): different folds or data; refused")
        m = out[key].merge(f, on=key, how="left", suffixes=("", "_m"))
        for c in ("true", "group") + (("fold",) if "fold" in out.columns and "fold" in f.columns else ()):
            if not (m[c].astype(str).to_numpy() == out[c].astype(str).to_numpy()).all():
                raise EcgCoreError(f"{lab} and {labels[0]} disagree on the {c} of some rows: different folds; "
                                   "refused")
        acc += float(w) * m[cols].to_numpy(dtype=np.float64)
    acc /= float(np.sum(weights))
    for c, v in zip(cols, acc.T):
        out[c] = v
    return out


def fit_calibration(prob: np.ndarray, y: np.ndarray) -> float:
    """The temperature of the averaged probabilities (the measurement model's :func:`fit_temperature` on their
    logarithms)."""
    from ecg_core.ml.measure_model import fit_temperature

    return fit_temperature(np.log(np.clip(prob, 1e-12, 1.0)), y)


def calibrate(prob: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(prob) / T) row-wise (the class order, hence the top class, unchanged)."""
    from ecg_core.ml.measure_model import softmax

    return softmax(np.log(np.clip(np.asarray(prob, np.float64), 1e-12, 1.0)), temperature)


def _member_runs(models_dir: Path, ids: Sequence[str]) -> list[RunInfo]:
    runs = []
    for rid in ids:
        info = read_run(models_dir / rid)
        if not info.usable:
            raise EcgCoreError(f"member {rid!r} is not a usable run in {models_dir}: {info.problem or info.status}")
        runs.append(info)
    names = runs[0].class_names
    for r in runs[1:]:
        if r.class_names != names:
            raise EcgCoreError(f"members {runs[0].run_id!r} and {r.run_id!r} have different classes; refused")
    return runs


def _evaluate(oof: pd.DataFrame, names: Sequence[str], *, n_boot: int, seed: int) -> dict[str, Any]:
    from ecg_core.ml.evaluate import evaluate_predictions

    y = oof["true"].map({c: i for i, c in enumerate(names)}).to_numpy(dtype=int)
    rep = evaluate_predictions(y, oof[_prob_cols(names)].to_numpy(), class_names=list(names),
                               groups=oof["group"].to_numpy(), split="oof", n_boot=n_boot, seed=seed)
    return rep.to_dict()


def _row(label: str, ev: dict[str, Any], names: Sequence[str], mi: str) -> str:
    ci = ev.get("ci") or {}

    def fmt(key: str, value: float) -> str:
        lo_hi = ci.get(key)
        return f"{value:.3f} ({lo_hi[0]:.3f}-{lo_hi[1]:.3f})" if lo_hi else f"{value:.3f}"

    rec = {p["name"] if "name" in p else names[i]: p for i, p in enumerate(ev["per_class"])}
    others = " | ".join(f"{rec[c]['recall']:.3f}" for c in names if c != mi)
    return (f"| {label} | {fmt('macro_f1', ev['macro']['f1'])} | {fmt(f'recall[{mi}]', rec[mi]['recall'])} | "
            f"{others} | {ev['ece']:.3f} |")


def build_ensemble(models_dir: str | Path, name: str, members: Sequence[str], *,
                   weights: Sequence[float] | None = None, n_boot: int = 1000, seed: int = 0) -> Path:
    """Write the ensemble run ``models_dir/name`` of ``members`` (run ids in ``models_dir``; equal weights unless
    given) atomically; returns its folder. An existing folder of that name is replaced."""
    from ecg_core.ml.registry import check_run_id, library_versions

    d = Path(models_dir)
    check_run_id(name)
    runs = _member_runs(d, members)
    names = runs[0].class_names
    w = [1.0 / len(runs)] * len(runs) if weights is None else [float(x) for x in weights]
    frames = []
    for r in runs:
        if not (r.path / OOF_FILE).is_file():
            raise EcgCoreError(f"member {r.run_id!r} has no out-of-fold predictions ({OOF_FILE})")
        frames.append(pd.read_csv(r.path / OOF_FILE))
    avg = average_oof(frames, w, names, labels=[r.run_id for r in runs])
    y = avg["true"].map({c: i for i, c in enumerate(names)}).to_numpy(dtype=int)
    raw = avg[_prob_cols(names)].to_numpy()
    temp = fit_calibration(raw, y)
    ev_raw = _evaluate(avg, names, n_boot=n_boot, seed=seed)
    cal = avg.copy()
    cal[_prob_cols(names)] = calibrate(raw, temp)
    cal.insert(2, "predicted", [names[i] for i in cal[_prob_cols(names)].to_numpy().argmax(1)])
    cal.insert(3, "correct", cal["predicted"] == cal["true"])
    ev = _evaluate(cal, names, n_boot=n_boot, seed=seed)
    ev["extra"] = {**(ev.get("extra") or {}), "temperature": temp, "ece_before_calibration": ev_raw["ece"],
                   "members": [r.run_id for r in runs], "weights": w}
    mi = "Myocardial Infarction" if "Myocardial Infarction" in names else names[0]
    meta = {"run_id": name, "status": "completed", "arch": "ensemble", "model_kind": ENSEMBLE_KIND,
            "preset": runs[0].meta.get("preset"), "input_kind": "report_image", "class_names": names,
            "data_source": runs[0].data_source, "data_dir": runs[0].meta.get("data_dir"),
            "data_fingerprint": runs[0].meta.get("data_fingerprint"),
            "members": [{"run_id": r.run_id, "weight": wi} for r, wi in zip(runs, w)],
            "temperature": temp, "weights_chosen": "fixed beforehand (equal), nothing tuned",
            "calibration": "temperature on log(averaged out-of-fold probabilities), fitted on those only",
            "split": {"by": "group", "kfold_rows": int(len(cal)), "distinct": int(cal["path"].nunique()),
                      "repeats": int(cal["repeat"].nunique())},
            "metrics": {"split": "oof", "n": int(len(cal)), "macro_f1": ev["macro"]["f1"],
                        "mi_recall": next(p["recall"] for i, p in enumerate(ev["per_class"]) if names[i] == mi)},
            "versions": library_versions()}
    head = ("| 5 x 3 group CV out-of-fold | macro-F1 (95 % CI) | MI recall (95 % CI) | "
            + " | ".join(f"{c} recall" for c in names if c != mi) + " | ECE |")
    rows = [head, "|---|---|---|" + "---:|" * (len(names) - 1) + "---:|"]
    for r in runs:
        rows.append(_row(r.run_id, json.loads((r.path / KFOLD_FILE).read_text()), names, mi))
    rows.append(_row(f"average, weights {w} (before calibration)", ev_raw, names, mi))
    rows.append(_row(f"**{name}** (average, temperature {temp:.3f})", ev, names, mi))
    card = "\n".join([
        f"# {name}", "", "Ensemble run (issue 15, item 4): the fixed-weight average of the class probabilities of "
        + ", ".join(f"`{r.run_id}` ({wi:g})" for r, wi in zip(runs, w)) + ". Weights fixed beforehand; nothing "
        "tuned. One temperature fitted on the averaged out-of-fold probabilities only (it does not change the top "
        "class, so macro-F1 and recall are those of the plain average; the ECE after calibration is measured on the "
        "predictions it was fitted on, so it is optimistic).", "",
        f"Out-of-fold rows: {len(cal)} ({cal['path'].nunique()} images x {cal['repeat'].nunique()} repeats), the "
        "members' own out-of-fold predictions on the same group folds; 95 % CIs by group bootstrap "
        f"({n_boot} replicates). The numbers below are read from each member's `{KFOLD_FILE}` and measured on the "
        "average by `python -m ecg_core ensemble`.", "", *rows, "",
        "Not a medical device; for teaching and research only.", ""])
    d.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=d))
    try:
        cal.to_csv(tmp / OOF_FILE, index=False)
        (tmp / KFOLD_FILE).write_text(json.dumps(ev, indent=1, default=float))
        # no test split of its own (like a measurement run): Compare's main report is the out-of-fold one
        shutil.copy(tmp / OOF_FILE, tmp / "predictions.csv")
        shutil.copy(tmp / KFOLD_FILE, tmp / "eval.json")
        (tmp / "MODEL_CARD.md").write_text(card)
        prof = next((r.path / "ood_profile.json" for r in runs if (r.path / "ood_profile.json").is_file()), None)
        if prof is not None:
            p = json.loads(prof.read_text())
            p["run_id"], p["notes"] = name, list(p.get("notes") or []) + [f"descriptor part of {prof.parent.name}"]
            (tmp / "ood_profile.json").write_text(json.dumps(p, indent=1))
        (tmp / "run.json").write_text(json.dumps(meta, indent=1, default=str))
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        os.chmod(tmp, 0o755)
        final = d / name
        old = None
        if final.exists():
            old = d / f".{name}.old.{os.getpid()}"
            final.rename(old)
        tmp.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


@dataclass
class Ensemble:
    """A loaded ensemble: its run, the member runs, their loaded models, weights and the temperature."""

    run: RunInfo
    members: list[RunInfo]
    models: list[Any]
    weights: list[float]
    temperature: float

    @property
    def class_names(self) -> list[str]:
        return self.run.class_names

    def combine(self, member_probs: Sequence[np.ndarray]) -> np.ndarray:
        """The calibrated weighted average of the members' probabilities (rows: reports)."""
        p = sum(float(w) * np.asarray(q, np.float64) for w, q in zip(self.weights, member_probs))
        return calibrate(p / float(sum(self.weights)), self.temperature)


def member_runs(info: RunInfo) -> tuple[list[RunInfo], list[float], float]:
    """An ensemble run's member runs (refused when one is unusable or their classes differ), weights, temperature."""
    spec = info.meta.get("members") or []
    return (_member_runs(info.path.parent, [m["run_id"] for m in spec]), [float(m["weight"]) for m in spec],
            float(info.meta.get("temperature", 1.0)))


def assemble(info: RunInfo, members: list[RunInfo], models: list[Any], weights: Sequence[float],
             temperature: float) -> Ensemble:
    """The :class:`Ensemble` of an ensemble run from its member runs and their loaded models (refused when the
    members' classes differ from the run's)."""
    if members and members[0].class_names != info.class_names:
        raise EcgCoreError(f"run {info.run_id!r}: its classes disagree with its members'; refused")
    return Ensemble(info, members, models, [float(w) for w in weights], float(temperature))


def load_ensemble(info: RunInfo) -> Ensemble:
    """Load an ensemble run's members (each through :func:`ecg_core.ml.registry.load_model`)."""
    from ecg_core.ml.registry import load_model

    runs, weights, temperature = member_runs(info)
    return assemble(info, runs, load_model(info), weights, temperature)


def member_table(ens: Ensemble, model_index: int, files: Sequence[str | Path], *, root: Any = None,
                 check: bool = True) -> pd.DataFrame:
    """One member's ``predict`` table of ``files`` (no OOD columns: the ensemble adds its own)."""
    r, m = ens.members[model_index], ens.models[model_index]
    if r.is_measurement:
        from ecg_core.reports.measure_predict import predict_files_measure

        return predict_files_measure(m, files, root=root, check=check)
    if r.input_kind == "report_panels":
        from ecg_core.reports.perlead_predict import predict_files_perlead

        return predict_files_perlead(m, files, class_names=r.class_names, root=root, check=check)
    raise EcgCoreError(f"member {r.run_id!r}: only measurement and per-lead runs can be ensemble members")


def predict_files_ensemble(ens: Ensemble, files: Sequence[str | Path], *, root: Any = None, check: bool = True,
                           ood: Any = None, progress: ProgressFn | None = None) -> pd.DataFrame:
    """One row per file: ``path``, ``predicted``, ``reason``, ``prob_<class>`` (calibrated average), one
    ``top[<member>]`` column per member (its top class; empty: it said nothing), ``in_distribution`` /
    ``ood_reason`` (from ``ood``, the ensemble's profile; unknown without one). A report is predicted only when
    every member read it; otherwise ``reason`` is the first failing member's."""
    from ecg_core.reports.ood import NO_PROFILE

    names = ens.class_names
    tables = []
    for i in range(len(ens.members)):
        tables.append(member_table(ens, i, files, root=root, check=check))
        if progress is not None:
            progress(i + 1, len(ens.members))
    cols = _prob_cols(names)
    out = pd.DataFrame({"path": tables[0]["path"], "predicted": "", "reason": ""})
    for c in cols:
        out[c] = np.nan
    spoke = np.ones(len(out), bool)
    for r, t in zip(ens.members, tables):
        out[f"top[{r.run_id}]"] = t["predicted"].fillna("")
        ok = t["predicted"].fillna("").to_numpy() != ""
        out.loc[~ok & (out["reason"] == ""), "reason"] = t.loc[~ok, "reason"].map(lambda s, n=r.run_id: f"{s} ({n})")
        spoke &= ok
    if spoke.any():
        p = ens.combine([t.loc[spoke, cols].to_numpy(np.float64) for t in tables])
        out.loc[spoke, cols] = p
        out.loc[spoke, "predicted"] = [names[k] for k in p.argmax(1)]
    out["in_distribution"], out["ood_reason"] = "", f"unknown: {NO_PROFILE}"
    if ood is not None and spoke.any():
        from ecg_core.reports.ood_build import add_ood_columns

        out = add_ood_columns(out, [Path(f) for f in files], ood)
    return out


def explain_probabilities(ens: Ensemble, rgb: np.ndarray, sidecar: Any = None) -> tuple[np.ndarray,
                                                                                        list[np.ndarray]]:
    """(calibrated average, the members' probabilities) of one decoded report (the Explain page)."""
    probs = []
    for r, m in zip(ens.members, ens.models):
        if r.is_measurement:
            from ecg_core.reports.measure_predict import read_features, report_probabilities

            rep = read_features(rgb, sidecar=sidecar)
            probs.append(report_probabilities(m, rep.features))
        else:
            from ecg_core.reports.perlead_predict import explain_report

            probs.append(np.asarray(explain_report(m, rgb, sidecar=sidecar, gradcam=False).probs, np.float64))
    return ens.combine([p[None] for p in probs])[0], probs


def spoke_caption(ens: Ensemble, member_probs: Sequence[np.ndarray], k: int) -> str:
    """Which models spoke: each member's top class and its probability of class ``k``."""
    names = ens.class_names
    return "; ".join(f"{r.run_id} (weight {w:g}): top class {names[int(np.argmax(p))]}, "
                     f"{names[k]} {100 * float(p[k]):.1f} %"
                     for r, w, p in zip(ens.members, ens.weights, member_probs))

