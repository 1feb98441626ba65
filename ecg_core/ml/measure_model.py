"""The measurement model: a classifier over a report's measurement features (a float matrix, NaN where not
measured), saved in safe formats only — LightGBM's text model (``model.txt``) or a logistic regression's
coefficients with its imputation and scaling statistics (``model.json``); the calibration (a temperature fitted
on out-of-fold margins) and the feature / class names live in ``measure.json``. No pickle anywhere.

This module knows arrays only (the ml layer does not read reports): the report side
(:mod:`ecg_core.reports.reading.features`) turns an image into the feature row.

* :func:`fit_lgbm` / :func:`fit_logreg`: one model from (X, y), classes weighted by inverse frequency;
* :func:`repeated_group_cv`: out-of-fold margins of repeated stratified group k-fold (copies of one image never
  straddle a fold), for choosing features / hyper-parameters and for the calibration;
* :func:`fit_temperature`: the temperature minimising the out-of-fold negative log-likelihood;
* :class:`MeasureModel`: ``predict_proba`` (calibrated, then the stored decision weights applied), ``contributions`` (per-feature additive contributions to
  a class's margin: LightGBM's ``pred_contrib`` (TreeSHAP), or coefficient x standardised value), save / load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecg_core.core.atomic import atomic_write_json, atomic_write_text
from ecg_core.core.errors import ConfigError, ModelLoadError

MEASURE_JSON = "measure.json"
LGBM_FILE = "model.txt"
LOGREG_FILE = "model.json"
KINDS = ("lgbm", "logreg")

LGBM_DEFAULTS: dict[str, Any] = {
    "objective": "multiclass", "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 5,
    "feature_fraction": 0.5, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "verbose": -1,
    "num_threads": 1, "seed": 0, "deterministic": True, "force_col_wise": True,
}
LGBM_ROUNDS = 200


def class_weights(y: np.ndarray, k: int, boost: Sequence[float] | None = None) -> np.ndarray:
    """Per-sample weights n / (k x count of the sample's class) (scikit-learn's 'balanced'), times ``boost[c]``
    for class c when given (e.g. more weight on the rare acute MI)."""
    counts = np.bincount(y, minlength=k).astype(np.float64)
    w = len(y) / (k * np.maximum(counts, 1.0))
    if boost is not None:
        w = w * np.asarray(boost, dtype=np.float64)[:k]
    return w[y]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class MeasureModel:
    """A fitted measurement classifier. ``kind``: 'lgbm' or 'logreg'; ``temperature`` divides the margins before
    the softmax (1 = uncalibrated); ``decision_weights`` (one positive factor per class, or None) multiply the
    calibrated probabilities, renormalised (a prior shift, e.g. more weight on acute MI chosen by nested CV), so the
    arg-max of :meth:`predict_proba` everywhere (CLI predict, Batch, Explain) is the decision rule."""

    kind: str
    feature_names: list[str]
    class_names: list[str]
    temperature: float = 1.0
    booster: Any = None
    lr: dict[str, list] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    decision_weights: list[float] | None = None

    # -------------------------------------------------------------------------------------------- predict
    def _check_x(self, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.shape[1] != len(self.feature_names):
            raise ConfigError(f"the measurement model expects {len(self.feature_names)} features; received "
                              f"{x.shape[1]}")
        return x

    def _lr_design(self, x: np.ndarray) -> np.ndarray:
        fill = np.asarray(self.lr["fill"], dtype=np.float64)
        miss = ~np.isfinite(x)
        xi = np.where(miss, fill, x)
        ind = miss[:, np.asarray(self.lr["indicator_cols"], dtype=int)].astype(np.float64)
        z = np.hstack([xi, ind])
        return (z - np.asarray(self.lr["mean"])) / np.asarray(self.lr["scale"])

    def margins(self, X: np.ndarray) -> np.ndarray:
        """Uncalibrated class margins (n, k)."""
        x = self._check_x(X)
        if self.kind == "lgbm":
            return np.asarray(self.booster.predict(x, raw_score=True), dtype=np.float64).reshape(len(x), -1)
        z = self._lr_design(x)
        return z @ np.asarray(self.lr["coef"]).T + np.asarray(self.lr["intercept"])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (n, k), with the decision weights applied (renormalised) when stored."""
        return apply_decision_weights(_softmax(self.margins(X) / self.temperature), self.decision_weights)

    def contributions(self, X: np.ndarray, class_index: int) -> np.ndarray:
        """Per-feature additive contributions (n, n_features) to the margin of ``class_index`` (before the
        temperature); the margin is their sum plus a bias (LightGBM: TreeSHAP values; logistic regression:
        coefficient x standardised value, a missing value's indicator counted to its feature)."""
        x = self._check_x(X)
        d = len(self.feature_names)
        if self.kind == "lgbm":
            c = np.asarray(self.booster.predict(x, pred_contrib=True), dtype=np.float64)
            return c.reshape(len(x), len(self.class_names), d + 1)[:, class_index, :d]
        z = self._lr_design(x)
        coef = np.asarray(self.lr["coef"])[class_index]
        terms = z * coef
        out = terms[:, :d].copy()
        for j, col in enumerate(self.lr["indicator_cols"]):
            out[:, int(col)] += terms[:, d + j]
        return out

    # ----------------------------------------------------------------------------------------- save / load
    def save(self, folder: str | Path) -> None:
        p = Path(folder)
        meta = {"kind": self.kind, "feature_names": self.feature_names, "class_names": self.class_names,
                "temperature": self.temperature, "params": self.params}
        if self.decision_weights is not None:
            meta["decision_weights"] = [float(v) for v in self.decision_weights]
        if self.kind == "lgbm":
            atomic_write_text(p / LGBM_FILE, self.booster.model_to_string())
        else:
            atomic_write_json(p / LOGREG_FILE, self.lr)
        atomic_write_json(p / MEASURE_JSON, meta)

    @classmethod
    def load(cls, folder: str | Path) -> MeasureModel:
        """Load a saved model (text / JSON only); :class:`ModelLoadError` for a missing or damaged file."""
        p = Path(folder)
        try:
            meta = json.loads((p / MEASURE_JSON).read_text())
            kind = meta["kind"]
            names, classes = list(meta["feature_names"]), list(meta["class_names"])
            temp = float(meta.get("temperature", 1.0))
            dw = meta.get("decision_weights")
            dw = None if dw is None else [float(v) for v in dw]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"{MEASURE_JSON} in {p.name!r} is missing or damaged ({e})") from e
        if kind not in KINDS or not names or not classes or not (0.0 < temp < 1e3):
            raise ModelLoadError(f"{MEASURE_JSON} in {p.name!r} is not a measurement model description")
        if dw is not None and (len(dw) != len(classes) or not all(math.isfinite(v) and 0.0 < v < 1e6 for v in dw)):
            raise ModelLoadError(f"{MEASURE_JSON} in {p.name!r}: decision_weights must be {len(classes)} positive "
                                 "numbers")
        if kind == "lgbm":
            import lightgbm as lgb

            try:
                booster = lgb.Booster(model_str=(p / LGBM_FILE).read_text())
            except (OSError, ValueError, lgb.basic.LightGBMError) as e:
                raise ModelLoadError(f"{LGBM_FILE} in {p.name!r} cannot be loaded ({e})") from e
            if booster.num_feature() != len(names) or booster.num_model_per_iteration() != len(classes):
                raise ModelLoadError(f"{LGBM_FILE} in {p.name!r} disagrees with {MEASURE_JSON} (features / classes)")
            return cls(kind, names, classes, temp, booster=booster, params=dict(meta.get("params", {})),
                       decision_weights=dw)
        try:
            lr = json.loads((p / LOGREG_FILE).read_text())
            d = len(names) + len(lr["indicator_cols"])
            ok = (np.asarray(lr["coef"]).shape == (len(classes), d) and len(lr["intercept"]) == len(classes)
                  and len(lr["mean"]) == d and len(lr["scale"]) == d and len(lr["fill"]) == len(names))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"{LOGREG_FILE} in {p.name!r} cannot be loaded ({e})") from e
        if not ok:
            raise ModelLoadError(f"{LOGREG_FILE} in {p.name!r} disagrees with {MEASURE_JSON} (shapes)")
        return cls(kind, names, classes, temp, lr=lr, params=dict(meta.get("params", {})), decision_weights=dw)


def model_file_problem(folder: str | Path) -> str:
    """What is missing from a measurement run folder, or "" (cheap: file presence and the JSON description)."""
    p = Path(folder)
    try:
        meta = json.loads((p / MEASURE_JSON).read_text())
        kind = meta.get("kind")
    except (OSError, ValueError, AttributeError) as e:
        return f"{MEASURE_JSON} is missing or damaged ({e})"
    if kind not in KINDS:
        return f"{MEASURE_JSON} names an unknown model kind {kind!r}"
    name = LGBM_FILE if kind == "lgbm" else LOGREG_FILE
    if not (p / name).is_file():
        return f"{name} is missing"
    if kind == "lgbm":
        try:
            with open(p / name, encoding="utf-8") as fh:
                head = fh.read(64)
        except (OSError, UnicodeDecodeError) as e:
            return f"{name} cannot be read ({e})"
        if not head.startswith("tree"):
            return f"{name} is damaged (not a LightGBM text model)"
    return ""


# -------------------------------------------------------------------------------------------------- fitting
def fit_lgbm(X: np.ndarray, y: np.ndarray, *, feature_names: Sequence[str], class_names: Sequence[str],
             params: Mapping[str, Any] | None = None, rounds: int = LGBM_ROUNDS,
             boost: Sequence[float] | None = None, record: dict[str, Any] | None = None) -> MeasureModel:
    """A LightGBM model of the measurements; ``record`` (a dict) receives the weighted training multi-logloss per
    boosting round (``record['train']['multi_logloss']``: the training curve; the trees do not depend on it)."""
    import lightgbm as lgb

    k = len(class_names)
    prm = {**LGBM_DEFAULTS, **(params or {}), "num_class": k}
    ds = lgb.Dataset(np.asarray(X, dtype=np.float64), label=np.asarray(y),
                     weight=class_weights(np.asarray(y), k, boost),
                     feature_name=[_safe_name(n) for n in feature_names], free_raw_data=record is None)
    if record is None:
        booster = lgb.train(prm, ds, num_boost_round=int(rounds))
    else:
        booster = lgb.train({**prm, "metric": "multi_logloss"}, ds, num_boost_round=int(rounds), valid_sets=[ds],
                            valid_names=["train"], callbacks=[lgb.record_evaluation(record)])
    return MeasureModel("lgbm", list(feature_names), list(class_names), booster=booster,
                        params={**prm, "rounds": int(rounds), "boost": list(boost) if boost is not None else None})


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def fit_logreg(X: np.ndarray, y: np.ndarray, *, feature_names: Sequence[str], class_names: Sequence[str],
               C: float = 0.1, boost: Sequence[float] | None = None) -> MeasureModel:
    """Multinomial L2 logistic regression on median-imputed, standardised features plus a missing-value
    indicator per feature that has missing values in training."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(X, dtype=np.float64)
    miss = ~np.isfinite(x)
    with np.errstate(all="ignore"):
        fill = np.nanmedian(np.where(miss, np.nan, x), axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    ind_cols = [int(j) for j in np.flatnonzero(miss.any(axis=0))]
    z = np.hstack([np.where(miss, fill, x), miss[:, ind_cols].astype(np.float64)])
    mean, scale = z.mean(axis=0), z.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    zs = (z - mean) / scale
    k = len(class_names)
    clf = LogisticRegression(C=float(C), max_iter=2000)
    clf.fit(zs, np.asarray(y), sample_weight=class_weights(np.asarray(y), k, boost))
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] != k:  # a class missing from y (tiny data): give it a margin far below the others
        full = np.zeros((k, zs.shape[1]))
        full_b = np.full(k, -30.0)
        full[clf.classes_] = coef if coef.shape[0] == len(clf.classes_) else np.vstack([-coef, coef])
        full_b[clf.classes_] = intercept if len(intercept) == len(clf.classes_) else np.r_[-intercept, intercept]
        coef, intercept = full, full_b
    lr = {"coef": coef.tolist(), "intercept": np.asarray(intercept).tolist(), "mean": mean.tolist(),
          "scale": scale.tolist(), "fill": fill.tolist(), "indicator_cols": ind_cols}
    return MeasureModel("logreg", list(feature_names), list(class_names), lr=lr,
                        params={"C": float(C), "boost": list(boost) if boost is not None else None})


def fit_temperature(margins: np.ndarray, y: np.ndarray) -> float:
    """The temperature T (0.05-20) that minimises the negative log-likelihood of softmax(margins / T)."""
    from scipy.optimize import minimize_scalar

    z, yy = np.asarray(margins, dtype=np.float64), np.asarray(y, dtype=int)

    def nll(log_t: float) -> float:
        p = _softmax(z / math.exp(log_t))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(yy)), yy], 1e-12, 1.0))))

    res = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(res.x))


def repeated_group_cv(X: np.ndarray, y: np.ndarray, groups: np.ndarray, fit: Callable[[np.ndarray, np.ndarray],
                      MeasureModel], *, folds: int = 5, repeats: int = 3, seed: int = 0,
                      on_fold: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Out-of-fold margins (repeats, n, k) of ``fit`` under ``repeats`` x stratified group ``folds``-fold
    (scikit-learn's StratifiedGroupKFold, shuffled with seed ``seed + r``): one group never straddles a fold.
    ``on_fold(done, total)`` is called after each fold (progress)."""
    from sklearn.model_selection import StratifiedGroupKFold

    x, yy, g = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=int), np.asarray(groups)
    out: list[np.ndarray] = []
    done = 0
    for r in range(repeats):
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + r)
        oof = np.full((len(yy), 0), np.nan)
        for tr, te in cv.split(x, yy, g):
            m = fit(x[tr], yy[tr])
            z = m.margins(x[te])
            if oof.shape[1] == 0:
                oof = np.full((len(yy), z.shape[1]), np.nan)
            oof[te] = z
            done += 1
            if on_fold is not None:
                on_fold(done, folds * repeats)
        out.append(oof)
    return np.stack(out)


def apply_decision_weights(prob: np.ndarray, weights: Sequence[float] | None) -> np.ndarray:
    """``prob`` x ``weights`` per class, renormalised row-wise (``prob`` unchanged when ``weights`` is None)."""
    if weights is None:
        return prob
    q = np.asarray(prob, dtype=np.float64) * np.asarray(weights, dtype=np.float64)
    return q / q.sum(axis=-1, keepdims=True)


def softmax(margins: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(margins / temperature) row-wise."""
    return _softmax(np.asarray(margins, dtype=np.float64) / float(temperature))
