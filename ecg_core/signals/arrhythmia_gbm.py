"""The gradient-boosting arrhythmia model: per-beat features (RR context, per-record morphology, QRS width, V1) for
N / L / R / A / V and a rhythm detector of 4 s windows for VF.

* :func:`record_tables` turns one record into its beat table (:mod:`ecg_core.signals.beat_features` plus the VF
  features of the 4 s window around each beat) and its window table (1 s stride, VF features, the annotated VF
  fraction);
* :class:`GbmArrhythmiaModel` holds two LightGBM boosters saved as **text** (no pickle): ``beat_model.txt``
  (5 classes) and ``vf_model.txt`` (VF vs not); ``predict_proba`` combines them: P(VF) from the window, the beat
  classes times 1 - P(VF);
* an ensemble run adds members to the beat booster: a second beat booster on other features (``beat_model_2.txt``,
  ``run.json`` ``gbm.beat2_features``) and / or the 1-D beat CNN (:mod:`ecg_core.signals.beat_cnn`, ``.keras``
  loaded in safe mode, ``gbm.cnn_file``); the beat probabilities are the plain mean of the members, then the
  block rule and the VF detector;
* :func:`dataset_predictions` predicts the rows of a spectral dataset folder (``index.csv`` of
  ``spectral-build``) from the records it was built from — what ``evaluate RUN --data DIR`` uses for this kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.atomic import atomic_write_text
from ecg_core.core.errors import ConfigError, ModelLoadError
from ecg_core.signals.beat_features import (BEAT_FEATURES, FEATURE_FS, V1_FEATURES, prepare_record, record_beat_table,
                                            without_v1)
from ecg_core.signals.records import Record
from ecg_core.signals.segments import DEFAULT_BEAT_SYMBOLS
from ecg_core.signals.vf_segments import VF_FEATURES, record_std, vf_mask, window_features, window_matrix

MODEL_KIND = "lightgbm_beat_vf"
BEAT_CLASSES: tuple[str, ...] = ("N", "L", "R", "A", "V")
CLASS_KEYS: tuple[str, ...] = BEAT_CLASSES + ("VF",)
SYMBOL_TO_CLASS: dict[str, str] = {s: k for k, syms in DEFAULT_BEAT_SYMBOLS for s in syms}
BEAT_MODEL_FILE = "beat_model.txt"
VF_MODEL_FILE = "vf_model.txt"
CNN_MODEL_FILE = "beat_cnn.keras"
BEAT2_MODEL_FILE = "beat_model_2.txt"
WINDOW_STRIDE_S = 1.0


def record_tables(record: Record, *, peaks: str = "annotations", snap: bool = False,
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(beats, windows) of one record.

    ``beats``: ``record``, ``sample``, ``sample_f``, ``symbol``, ``label`` (class key or ``None``), ``time_s``,
    :data:`BEAT_FEATURES`, :data:`VF_FEATURES` of the window centred on the beat. ``windows``: ``record``,
    ``time_s`` (centre), ``vf_frac`` (annotated VF fraction of the window), :data:`VF_FEATURES`, 1 s stride."""
    prep = prepare_record(record)
    beats = record_beat_table(record, peaks=peaks, prep=prep, snap=snap)
    beats["label"] = [SYMBOL_TO_CLASS.get(s) for s in beats["symbol"]]
    beats["time_s"] = beats["sample"] / record.fs
    rs = record_std(prep.ml)
    bw = window_features(window_matrix(prep.ml, beats["sample_f"].to_numpy()), record_std=rs)
    beats = pd.concat([beats, bw], axis=1)
    centers_s = np.arange(WINDOW_STRIDE_S, prep.n / FEATURE_FS - WINDOW_STRIDE_S / 2, WINDOW_STRIDE_S)
    ww = window_features(window_matrix(prep.ml, np.rint(centers_s * FEATURE_FS)), record_std=rs)
    windows = pd.concat([pd.DataFrame({"record": record.record_id, "time_s": centers_s,
                                       "vf_frac": vf_mask(record, centers_s)}), ww], axis=1)
    return beats, windows


# --------------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GbmParams:
    """LightGBM settings shared by both boosters; ``max_class_weight`` caps the balanced class weights;
    ``max_per_cell`` keeps at most that many random training rows per (record, class) (speed; the record balance
    of :func:`sample_weights` down-weights big cells anyway)."""

    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 40
    subsample: float = 0.8
    colsample: float = 0.7
    reg_lambda: float = 1.0
    max_class_weight: float = 30.0
    record_balance: bool = True
    max_per_cell: int = 400
    bbb_qrs_ms: float | None = None
    #: the block rule's QRS width: 0 = each beat's own, n > 0 = the running median of n beats (see :func:`bbb_rule`)
    bbb_local: int = 0
    snap_peaks: bool = False
    #: train on every (capped) beat twice, once as read and once without its V1 features
    #: (:func:`~ecg_core.signals.beat_features.without_v1`), so that a record lacking V1 is not a class cue
    v1_dropout: bool = False
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def lgb(self, objective: str, **more: Any) -> dict[str, Any]:
        return {"objective": objective, "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                "min_data_in_leaf": self.min_child_samples, "bagging_fraction": self.subsample, "bagging_freq": 1,
                "feature_fraction": self.colsample, "lambda_l2": self.reg_lambda, "seed": self.seed,
                "num_threads": 1, "verbosity": -1, "deterministic": True, **self.extra, **more}


def sample_weights(labels: np.ndarray, groups: np.ndarray, *, cap: float, record_balance: bool) -> np.ndarray:
    """Balanced class weights capped at ``cap``; with ``record_balance`` each (record, class) cell counts at most
    as much as the median cell of its class, so that one patient's many beats do not define a class."""
    labels = np.asarray(labels)
    w = np.ones(labels.size)
    if record_balance:
        cell = pd.Series(1, index=pd.MultiIndex.from_arrays([groups, labels])).groupby(level=[0, 1]).size()
        med = cell.groupby(level=1).median()
        sizes = cell.reindex(pd.MultiIndex.from_arrays([groups, labels])).to_numpy(dtype=np.float64)
        w *= np.minimum(1.0, med.reindex(labels).to_numpy(dtype=np.float64) / sizes)
    classes, inv = np.unique(labels, return_inverse=True)
    tot = np.bincount(inv, weights=w)
    cw = np.minimum(tot.sum() / (len(classes) * tot), cap)
    return w * cw[inv]


def cap_cells(labels: np.ndarray, groups: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Positions keeping at most ``cap`` random rows per (group, label) cell, sorted."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"g": np.asarray(groups), "y": np.asarray(labels)})
    keep = []
    for _, idx in frame.groupby(["g", "y"], sort=True).indices.items():
        keep.append(idx if len(idx) <= cap else rng.choice(idx, cap, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def train_booster(x: pd.DataFrame, y: np.ndarray, groups: np.ndarray, *, n_class: int, params: GbmParams) -> Any:
    """One LightGBM booster on ``x`` (features) and integer labels ``y``."""
    import lightgbm as lgb

    if params.max_per_cell:
        keep = cap_cells(y, groups, params.max_per_cell, params.seed)
        x, y, groups = x.iloc[keep], np.asarray(y)[keep], np.asarray(groups)[keep]
    if params.v1_dropout and set(V1_FEATURES) & set(x.columns):
        x = pd.concat([x, without_v1(x)], ignore_index=True)
        y, groups = np.concatenate([y, y]), np.concatenate([groups, groups])

    w = sample_weights(y, groups, cap=params.max_class_weight, record_balance=params.record_balance)
    obj = params.lgb("multiclass", num_class=n_class) if n_class > 2 else params.lgb("binary")
    ds = lgb.Dataset(x.to_numpy(dtype=np.float64), label=y, weight=w, feature_name=list(x.columns),
                     free_raw_data=True)
    return lgb.train(obj, ds, num_boost_round=params.n_estimators)


@dataclass
class GbmArrhythmiaModel:
    """Beat booster (5 classes of :data:`BEAT_CLASSES`) and VF booster, with their feature names."""

    beat: Any
    vf: Any
    beat_features: tuple[str, ...] = BEAT_FEATURES + VF_FEATURES
    vf_features: tuple[str, ...] = VF_FEATURES
    vf_threshold: float = 0.5
    bbb_qrs_ms: float | None = None
    snap_peaks: bool = False
    cnn: Any = None
    beat2: Any = None
    beat2_features: tuple[str, ...] = ()
    af_gate: tuple[float, float] | None = None
    bbb_local: int = 0

    @classmethod
    def fit(cls, beats: pd.DataFrame, windows: pd.DataFrame, *, params: GbmParams | None = None,
            beat_features: Sequence[str] | None = None) -> GbmArrhythmiaModel:
        """Train on labelled beats (``label`` in :data:`BEAT_CLASSES`) and windows (``vf_frac`` 1 = VF, 0 = not;
        windows partly inside VF are left out)."""
        params = params or GbmParams()
        feats = tuple(beat_features or (BEAT_FEATURES + VF_FEATURES))
        b = beats[beats["label"].isin(BEAT_CLASSES)]
        yb = b["label"].map({k: i for i, k in enumerate(BEAT_CLASSES)}).to_numpy()
        if len(np.unique(yb)) < 2:
            raise ConfigError("GbmArrhythmiaModel.fit: the beats carry fewer than two classes; nothing to learn.")
        beat = train_booster(b[list(feats)], yb, b["record"].astype(str).to_numpy(), n_class=len(BEAT_CLASSES),
                             params=params)
        w = windows[(windows["vf_frac"] >= 0.999) | (windows["vf_frac"] <= 0.0)]
        yv = (w["vf_frac"] >= 0.999).astype(int).to_numpy()
        vf = train_booster(w[list(VF_FEATURES)], yv, w["record"].astype(str).to_numpy(), n_class=2,
                           params=GbmParams(**{**params.__dict__, "record_balance": False}))
        return cls(beat, vf, feats, VF_FEATURES, bbb_qrs_ms=params.bbb_qrs_ms, snap_peaks=params.snap_peaks,
                   bbb_local=params.bbb_local)

    def beat_proba(self, rows: pd.DataFrame) -> np.ndarray:
        p = np.asarray(self.beat.predict(rows[list(self.beat_features)].to_numpy(dtype=np.float64)))
        return p.reshape(len(rows), len(BEAT_CLASSES))

    def vf_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.vf.predict(rows[list(self.vf_features)].to_numpy(dtype=np.float64))).reshape(-1)

    def cnn_proba(self, rows: pd.DataFrame, windows: np.ndarray | None) -> np.ndarray:
        """Beat probabilities of the CNN member from the beat ``windows`` (:func:`~ecg_core.signals.beat_cnn.beat_windows`
        of the rows' beats) and the rows' RR context."""
        from ecg_core.signals.beat_cnn import rr_matrix

        if windows is None or len(windows) != len(rows):
            raise ConfigError("this arrhythmia model has a beat CNN: it needs the beat windows of every row.")
        return np.asarray(self.cnn.predict({"beat": np.asarray(windows, dtype=np.float32), "rr": rr_matrix(rows)},
                                           batch_size=1024, verbose=0), dtype=np.float64)

    def block_beat_proba(self, rows: pd.DataFrame, windows: np.ndarray | None = None) -> np.ndarray:
        """(n, 5) beat-class probabilities (:data:`BEAT_CLASSES`) after the members' mean, the AF gate and the
        bundle-branch-block rule (:func:`bbb_rule`), before the VF detector. With a running-median block width
        (``bbb_local``) the rows must be consecutive beats of their records (``record`` / ``time_s``)."""
        pb = self.beat_proba(rows)
        members = [pb]
        if self.beat2 is not None:
            x2 = rows[list(self.beat2_features)].to_numpy(dtype=np.float64)
            members.append(np.asarray(self.beat2.predict(x2)).reshape(len(rows), len(BEAT_CLASSES)))
        if self.cnn is not None:
            members.append(self.cnn_proba(rows, windows))
        pb = np.mean(members, axis=0)
        if self.af_gate:
            pb = af_gate(pb, rows, *self.af_gate)
        if self.bbb_qrs_ms:
            pb = bbb_rule(pb, rows, self.bbb_qrs_ms, local=self.bbb_local)
        return pb

    def predict_proba(self, rows: pd.DataFrame, windows: np.ndarray | None = None) -> np.ndarray:
        """(n, 6) probabilities in :data:`CLASS_KEYS` order for rows holding both feature sets (and the QRS / V1
        features of the bundle-branch-block rule, see :func:`bbb_rule`); ``windows``: the beat windows, needed
        when the model has a CNN member."""
        pv = self.vf_proba(rows)
        return np.column_stack([self.block_beat_proba(rows, windows) * (1.0 - pv)[:, None], pv])

    def contributions(self, rows: pd.DataFrame, class_index: int) -> pd.DataFrame:
        """Per-feature contributions (LightGBM ``pred_contrib``, raw score) of the beat booster to one class."""
        x = rows[list(self.beat_features)].to_numpy(dtype=np.float64)
        c = np.asarray(self.beat.predict(x, pred_contrib=True))
        k = len(self.beat_features) + 1
        c = c.reshape(len(rows), len(BEAT_CLASSES), k) if c.shape[1] == k * len(BEAT_CLASSES) else c[:, None, :]
        return pd.DataFrame(c[:, class_index, :-1], columns=list(self.beat_features))

    # -- safe persistence (LightGBM text + JSON) ----------------------------------------------------------------
    def save(self, folder: str | Path) -> dict[str, Any]:
        """Write both boosters as LightGBM text; returns the ``run.json`` entries of the model (``model_kind``,
        ``model_files``, ``gbm``)."""
        folder = Path(folder)
        from ecg_core.core.atomic import atomic_write_to_path

        files = [(BEAT_MODEL_FILE, self.beat), (VF_MODEL_FILE, self.vf)]
        if self.beat2 is not None:
            files.append((BEAT2_MODEL_FILE, self.beat2))
        for name, booster in files:
            atomic_write_text(folder / name, booster.model_to_string())
        gbm: dict[str, Any] = {"beat_features": list(self.beat_features), "vf_features": list(self.vf_features),
                               "vf_threshold": self.vf_threshold, "beat_classes": list(BEAT_CLASSES),
                               "bbb_qrs_ms": self.bbb_qrs_ms, "snap_peaks": self.snap_peaks,
                               "feature_fs": FEATURE_FS}
        if self.bbb_local:
            gbm["bbb_local_beats"] = int(self.bbb_local)
        if self.cnn is not None:
            atomic_write_to_path(folder / CNN_MODEL_FILE, lambda tmp: self.cnn.save(str(tmp)), suffix=".keras")
            gbm["cnn_file"] = CNN_MODEL_FILE
        if self.beat2 is not None:
            gbm["beat2_features"] = list(self.beat2_features)
        if self.af_gate:
            gbm["af_gate"] = {"irr_min": float(self.af_gate[0]), "pcl_max": float(self.af_gate[1])}
        if len(files) > 2 or self.cnn is not None:
            gbm["ensemble"] = "mean of the beat members' probabilities, then the block rule and the VF detector"
        return {"model_kind": MODEL_KIND, "model_files": [f for f, _ in files], "gbm": gbm}

    @classmethod
    def load(cls, run: Any) -> GbmArrhythmiaModel:
        """Load a run folder / :class:`~ecg_core.ml.registry.RunInfo` of this kind: both boosters from their
        LightGBM text files (:func:`ecg_core.ml.registry.load_model`), checked against ``run.json``."""
        from ecg_core.ml import registry

        info = run if isinstance(run, registry.RunInfo) else registry.read_run(run)
        if not is_gbm_run(info.meta):
            raise ModelLoadError(f"run {info.run_id!r} is not a {MODEL_KIND} run (model_kind "
                                 f"{info.meta.get('model_kind')!r}).")
        boosters = registry.load_model(info)
        gbm = info.meta.get("gbm", {})
        if set(boosters) - {BEAT2_MODEL_FILE} != {BEAT_MODEL_FILE, VF_MODEL_FILE}:
            raise ModelLoadError(f"run {info.run_id!r}: model_files must be {BEAT_MODEL_FILE} and {VF_MODEL_FILE} "
                                 f"(and optionally {BEAT2_MODEL_FILE}).")
        feats = tuple(gbm.get("beat_features", BEAT_FEATURES + VF_FEATURES))
        vfeats = tuple(gbm.get("vf_features", VF_FEATURES))
        beat, vf = boosters[BEAT_MODEL_FILE], boosters[VF_MODEL_FILE]
        if list(beat.feature_name()) != list(feats) or list(vf.feature_name()) != list(vfeats):
            raise ModelLoadError(f"run {info.run_id!r}: the boosters' features differ from run.json gbm; refused.")
        if beat.num_model_per_iteration() != len(BEAT_CLASSES):
            raise ModelLoadError(f"run {info.run_id!r}: {BEAT_MODEL_FILE} does not have {len(BEAT_CLASSES)} classes.")
        beat2 = boosters.get(BEAT2_MODEL_FILE)
        feats2 = tuple(gbm.get("beat2_features") or ())
        if beat2 is not None and (list(beat2.feature_name()) != list(feats2)
                                  or beat2.num_model_per_iteration() != len(BEAT_CLASSES)):
            raise ModelLoadError(f"run {info.run_id!r}: {BEAT2_MODEL_FILE} disagrees with run.json gbm.beat2_features "
                                 f"or does not have {len(BEAT_CLASSES)} classes; refused.")
        unknown = (set(feats) | set(feats2)) - set(BEAT_FEATURES + VF_FEATURES)
        if unknown:
            raise ModelLoadError(f"run {info.run_id!r}: unknown features {sorted(unknown)}; refused.")
        bbb = gbm.get("bbb_qrs_ms")
        cnn = _load_cnn(info, gbm) if gbm.get("cnn_file") else None
        gate = gbm.get("af_gate")
        if gate is not None:
            try:
                gate = (float(gate["irr_min"]), float(gate["pcl_max"]))
            except (TypeError, KeyError, ValueError) as e:
                raise ModelLoadError(f"run {info.run_id!r}: gbm.af_gate must be {{irr_min, pcl_max}}; refused.") from e
        local = gbm.get("bbb_local_beats", 0)
        if not isinstance(local, int) or isinstance(local, bool) or local < 0:
            raise ModelLoadError(f"run {info.run_id!r}: gbm.bbb_local_beats must be a whole number >= 0; refused.")
        return cls(beat, vf, feats, vfeats, float(gbm.get("vf_threshold", 0.5)),
                   float(bbb) if isinstance(bbb, (int, float)) and bbb > 0 else None,
                   bool(gbm.get("snap_peaks", False)), cnn, beat2, feats2 if beat2 is not None else (), gate, local)


def _load_cnn(info: Any, gbm: dict[str, Any]) -> Any:
    """The beat CNN member of a run (``gbm.cnn_file``): Keras in safe mode, two inputs ``beat`` / ``rr``, one
    softmax over :data:`BEAT_CLASSES`; :class:`ModelLoadError` otherwise."""
    name = str(gbm["cnn_file"])
    path = Path(info.path) / name
    if "/" in name or path.suffix != ".keras" or not path.is_file():
        raise ModelLoadError(f"run {info.run_id!r}: the beat CNN {name!r} is missing or not a .keras file.")
    import keras

    try:
        cnn = keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as e:  # ValueError / TypeError / OSError / zipfile errors of a damaged or unsafe file
        raise ModelLoadError(f"run {info.run_id!r}: {name} cannot be loaded in safe mode ({e}).") from e
    names = [i.name for i in cnn.inputs]
    if names != ["beat", "rr"] or cnn.output_shape[-1] != len(BEAT_CLASSES):
        raise ModelLoadError(f"run {info.run_id!r}: {name} has inputs {names} and {cnn.output_shape[-1]} outputs; "
                             f"a beat CNN (beat, rr) -> {len(BEAT_CLASSES)} classes is expected; refused.")
    return cnn


def af_gate(pb: np.ndarray, rows: pd.DataFrame, irr_min: float, pcl_max: float) -> np.ndarray:
    """The atrial-fibrillation gate (issue 17, wave 5; fixed rule, its two limits chosen by nested CV in
    ``scripts/arrhythmia_sveb.py``): a beat whose 21-beat neighbourhood is irregular (``af_irr`` >= ``irr_min``)
    without a consistent P wave (``af_pcl`` < ``pcl_max``) cannot be a premature atrial beat: its P(A) moves to N.
    Rows without the context columns (or NaN there) are untouched."""
    pb = np.array(pb, dtype=np.float64, copy=True)
    if not {"af_irr", "af_pcl"} <= set(rows.columns):
        return pb
    irr = rows["af_irr"].to_numpy(dtype=np.float64)
    pcl = rows["af_pcl"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        m = (irr >= irr_min) & (pcl < pcl_max)
    n_, a_ = BEAT_CLASSES.index("N"), BEAT_CLASSES.index("A")
    pb[m, n_] += pb[m, a_]
    pb[m, a_] = 0.0
    return pb


def local_qrs_ms(rows: pd.DataFrame, pb: np.ndarray, n: int) -> np.ndarray:
    """Each beat's QRS width as the running median (``n`` beats, centred) of ``qrs_ms`` over the beats of its record
    that ``pb`` does not call V (an ectopic beat is wide by itself and names no block), in time order (``record`` /
    ``time_s`` when the rows carry them). A record whose every beat is V, or a beat without a measured neighbour,
    keeps its own width. A bundle branch block is a property of the conducted rhythm, not of one beat whose
    delineation slipped: in the DS1 tables a per-beat 120 ms threshold flags 78 % of record 118's RBBB beats and
    39 % of record 122's normal beats; the 31-beat median 99 % and 13 %."""
    q = rows["qrs_ms"].to_numpy(dtype=np.float64)
    out = q.copy()
    ectopic = pb.argmax(axis=1) == BEAT_CLASSES.index("V")
    rec = rows["record"].astype(str).to_numpy() if "record" in rows else np.zeros(len(rows), dtype=str)
    t = rows["time_s"].to_numpy(dtype=np.float64) if "time_s" in rows else np.arange(len(rows), dtype=np.float64)
    for r in np.unique(rec):
        at = np.flatnonzero(rec == r)
        at = at[np.argsort(t[at], kind="stable")]
        v = pd.Series(np.where(ectopic[at], np.nan, q[at]))
        med = v.rolling(n, center=True, min_periods=min(3, n)).median().to_numpy()
        out[at] = np.where(np.isfinite(med), med, q[at])
    return out


def bbb_rule(pb: np.ndarray, rows: pd.DataFrame, qrs_ms: float, *, local: int = 0) -> np.ndarray:
    """The clinical bundle-branch-block criterion on top of the beat booster (fixed, not learned): a beat the
    booster calls N, L or R whose QRS (``qrs_ms``, MLII; with ``local`` > 0 the running median of ``local`` beats,
    :func:`local_qrs_ms`) lasts at least ``qrs_ms`` ms is a block; right (R) when
    V1 shows a terminal R' or a positive terminal QRS (``v1_rprime`` / ``v1_term > 0``), left (L) otherwise; without
    a V1 lead the booster's choice between L and R stands. The block gets 90 % of the beat's N + L + R probability,
    N keeps 10 %; A and V are untouched. With two or three training patients per block the booster alone does not
    transfer (leave-one-record-out L and R F1 about 0)."""
    pb = np.array(pb, dtype=np.float64, copy=True)
    n_, l_, r_ = (BEAT_CLASSES.index(k) for k in ("N", "L", "R"))
    width = local_qrs_ms(rows, pb, local) if local > 0 else rows["qrs_ms"].to_numpy(dtype=np.float64)
    wide = width >= qrs_ms
    sel = wide & np.isin(pb.argmax(axis=1), [n_, l_, r_])
    if not sel.any():
        return pb
    term = rows["v1_term"].to_numpy(dtype=np.float64)
    rprime = rows["v1_rprime"].to_numpy(dtype=np.float64)
    has_v1 = np.isfinite(term)
    right = np.where(has_v1, (np.nan_to_num(rprime) > 0) | (np.nan_to_num(term) > 0), pb[:, r_] >= pb[:, l_])
    mass = pb[:, [n_, l_, r_]].sum(axis=1)
    for idx, to, other in ((sel & right, r_, l_), (sel & ~right, l_, r_)):
        pb[idx, to] = 0.9 * mass[idx]
        pb[idx, other] = 0.0
        pb[idx, n_] = 0.1 * mass[idx]
    return pb


def is_gbm_run(meta: dict[str, Any]) -> bool:
    """True for a run folder of this model kind (``run.json`` ``model_kind``)."""
    return str(meta.get("model_kind", "")) == MODEL_KIND


# --------------------------------------------------------------------------------------------------------------
# Predicting records and spectral dataset folders
# --------------------------------------------------------------------------------------------------------------
def nearest_rows(beats: pd.DataFrame, times_s: np.ndarray) -> np.ndarray:
    """Index (positional) of the beat nearest to each time; -1 when the table is empty."""
    t = beats["time_s"].to_numpy(dtype=np.float64)
    if t.size == 0:
        return np.full(len(times_s), -1, dtype=np.int64)
    k = np.clip(np.searchsorted(t, times_s), 1, max(1, t.size - 1)) if t.size > 1 else np.zeros(len(times_s), int)
    left = np.clip(k - 1, 0, t.size - 1)
    right = np.clip(k, 0, t.size - 1)
    return np.where(np.abs(t[left] - times_s) <= np.abs(t[right] - times_s), left, right).astype(np.int64)


def segment_feature_rows(record: Record, times_s: np.ndarray, kinds: Sequence[str], *, peaks: str = "auto",
                         snap: bool = False, prep: Any = None, beats: pd.DataFrame | None = None) -> pd.DataFrame:
    """The model's input rows for segments of ``record`` at ``times_s`` (a beat's R peak, or a window's anchor):
    :data:`BEAT_FEATURES` of the nearest beat (annotated beats when the record has any, else neurokit2
    detections) and :data:`VF_FEATURES` of the 4 s window centred on the segment; ``beat_time_s`` and
    ``beat_sample_f`` (at :data:`FEATURE_FS`) say which beat gave the beat features. ``prep``: the record already
    prepared (:func:`~ecg_core.signals.beat_features.prepare_record`); ``beats``: its beat table already made
    (:func:`record_beats`)."""
    prep = prep if prep is not None else prepare_record(record)
    beats = beats if beats is not None else record_beats(record, peaks=peaks, snap=snap, prep=prep)
    times = np.asarray(times_s, dtype=np.float64)
    # a window's anchor is 0.25 s after its start; its centre is 0.1 s later (0.7 s windows)
    centre = times + np.where(np.asarray(kinds) != "beat", 0.1, 0.0)
    vf = window_features(window_matrix(prep.ml, np.rint(centre * FEATURE_FS)), record_std=record_std(prep.ml))
    near = nearest_rows(beats, times)
    if len(beats):
        rows = beats.iloc[np.clip(near, 0, None)][list(BEAT_FEATURES)].reset_index(drop=True)
        bt = beats["time_s"].to_numpy()[np.clip(near, 0, None)]
        bs = beats["sample_f"].to_numpy(dtype=np.int64)[np.clip(near, 0, None)]
    else:
        rows = pd.DataFrame(np.nan, index=range(len(times)), columns=list(BEAT_FEATURES))
        bt = np.full(len(times), np.nan)
        bs = np.rint(times * FEATURE_FS).astype(np.int64)
    return pd.concat([rows, vf, pd.DataFrame({"beat_time_s": bt, "beat_sample_f": bs})], axis=1)


def record_beats(record: Record, *, peaks: str = "auto", snap: bool = False, prep: Any = None) -> pd.DataFrame:
    """Every beat of ``record`` with :data:`BEAT_FEATURES` and ``time_s``: annotated beats when the record has any
    (``peaks='auto'``), else neurokit2 detections."""
    use = peaks
    if peaks == "auto":
        use = "annotations" if record.annotations.has_beats else "detect"
    prep = prep if prep is not None else prepare_record(record)
    beats = record_beat_table(record, peaks=use, prep=prep, snap=snap)
    beats["time_s"] = beats["sample"] / record.fs
    return beats


def predict_record_rows(model: GbmArrhythmiaModel, record: Record, times_s: np.ndarray, kinds: Sequence[str],
                        *, peaks: str = "auto") -> np.ndarray:
    """(n, 6) probabilities (:data:`CLASS_KEYS` order) for segments of ``record``, see
    :func:`segment_feature_rows`; a model with a beat CNN also reads the beat windows of those beats. With a
    running-median block width (``model.bbb_local``) the beat classes are computed on every beat of the record in
    time order (the width is a property of the neighbouring beats, not of the segments asked for) and each segment
    takes those of its beat."""
    from ecg_core.signals.beat_cnn import beat_windows

    prep = prepare_record(record)
    beats = record_beats(record, peaks=peaks, snap=model.snap_peaks, prep=prep)
    rows = segment_feature_rows(record, times_s, kinds, peaks=peaks, snap=model.snap_peaks, prep=prep, beats=beats)
    if not (model.bbb_qrs_ms and model.bbb_local) or not len(beats):
        windows = beat_windows(prep, rows["beat_sample_f"].to_numpy(dtype=np.int64)) if model.cnn is not None else None
        return model.predict_proba(rows, windows)
    beats = beats.sort_values("time_s", kind="stable").reset_index(drop=True)
    t = beats["time_s"].to_numpy(dtype=np.float64)
    every = segment_feature_rows(record, t, ["beat"] * len(t), peaks=peaks, snap=model.snap_peaks, prep=prep,
                                 beats=beats)
    windows = (beat_windows(prep, every["beat_sample_f"].to_numpy(dtype=np.int64)) if model.cnn is not None
               else None)
    pb = model.block_beat_proba(every, windows)
    near = nearest_rows(beats, rows["beat_time_s"].to_numpy(dtype=np.float64))
    pv = model.vf_proba(rows)
    return np.column_stack([pb[np.clip(near, 0, None)] * (1.0 - pv)[:, None], pv])


def explain_row(model: GbmArrhythmiaModel, row: pd.Series | pd.DataFrame, class_key: str, *, top: int = 12,
                ) -> pd.DataFrame:
    """What drove the beat booster's score of ``class_key`` for one row: ``feature``, ``value``, ``contribution``
    (LightGBM ``pred_contrib``: additive raw-score contributions), the ``top`` largest by magnitude."""
    if class_key not in BEAT_CLASSES:
        raise ConfigError(f"explain_row: class {class_key!r}; contributions exist for {', '.join(BEAT_CLASSES)}.")
    frame = row.to_frame().T if isinstance(row, pd.Series) else row.iloc[:1]
    c = model.contributions(frame, BEAT_CLASSES.index(class_key)).iloc[0]
    vals = frame[list(model.beat_features)].iloc[0]
    out = pd.DataFrame({"feature": c.index, "value": vals.to_numpy(dtype=np.float64), "contribution": c.to_numpy()})
    return out.reindex(out["contribution"].abs().sort_values(ascending=False).index).head(top).reset_index(drop=True)


def dataset_predictions(model: GbmArrhythmiaModel, index: pd.DataFrame, record_paths: dict[str, Path],
                        ) -> np.ndarray:
    """(n, 6) probabilities for the rows of a spectral dataset ``index`` (``record``, ``time_s``, ``kind``),
    computed from the WFDB records in ``record_paths`` (record id -> path)."""
    from ecg_core.signals.records import read_record

    out = np.full((len(index), len(CLASS_KEYS)), np.nan)
    for rid, grp in index.groupby(index["record"].astype(str), sort=False):
        if rid not in record_paths:
            raise ConfigError(f"record {rid!r} of the dataset is not among the records found ({len(record_paths)}).")
        rec = read_record(record_paths[rid])
        pos = index.index.get_indexer(grp.index)
        kinds = grp["kind"].astype(str).to_numpy() if "kind" in grp else np.array(["beat"] * len(grp))
        out[pos] = predict_record_rows(model, rec, grp["time_s"].to_numpy(dtype=np.float64), kinds)
    return out


SOURCE_RECORDS_FILE = "source_records.json"


def write_source_records(out_dir: str | Path, record_paths: Sequence[Path]) -> Path:
    """``out_dir/source_records.json``: record id -> absolute WFDB path of every record a spectral dataset was built
    from, so that a feature model (RR context needs the whole record) can be evaluated on the folder."""
    import json

    mapping = {Path(p).name: str(Path(p).expanduser().resolve()) for p in record_paths}
    return atomic_write_text(Path(out_dir) / SOURCE_RECORDS_FILE, json.dumps(mapping, indent=1, sort_keys=True))


def source_records(data_dir: str | Path) -> dict[str, Path]:
    """The record paths of :func:`write_source_records`; :class:`ConfigError` when the folder has none."""
    import json

    p = Path(data_dir) / SOURCE_RECORDS_FILE
    try:
        raw = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{p}: cannot be read ({type(e).__name__}); a gradient-boosting arrhythmia model reads features of the "
            "whole records: build the folder with `python -m ecg_core spectral-build --records DIR --out DATA` "
            "(it writes source_records.json), and keep the records where they were."
        ) from e
    return {str(k): Path(v) for k, v in raw.items()}


def evaluate_spectral_folder(run: Any, data_dir: str | Path, *, n_boot: int = 1000, seed: int = 0) -> Any:
    """Evaluate a run of this kind on a spectral dataset folder (``index.csv`` + ``source_records.json`` of
    ``spectral-build``): one prediction per indexed segment from its record's features; confidence intervals
    resample records. Returns an :class:`ecg_core.ml.external_eval.ExternalEvaluation`."""
    from ecg_core.core.errors import DatasetError
    from ecg_core.ml import registry
    from ecg_core.ml.evaluate import evaluate_predictions
    from ecg_core.ml.external_eval import ExternalEvaluation, _with_extra
    from ecg_core.ml.predictions import predictions_frame
    from ecg_core.signals.spectral_dataset import INDEX_FILE

    info = run if isinstance(run, registry.RunInfo) else registry.resolve_run(run)
    model = GbmArrhythmiaModel.load(info)
    data = Path(data_dir).expanduser().resolve()
    try:
        index = pd.read_csv(data / INDEX_FILE, dtype={"record": str})
    except (OSError, ValueError) as e:
        raise DatasetError(f"{data / INDEX_FILE}: cannot be read ({e}); expected a spectral-build folder.") from e
    index = index[index["label"].isin(CLASS_KEYS)].sort_values("path").reset_index(drop=True)
    if index.empty:
        raise DatasetError(f"{data}: index.csv has no segment of the classes {', '.join(CLASS_KEYS)}.")
    p = dataset_predictions(model, index, source_records(data))
    p = p / p.sum(axis=1, keepdims=True)
    y = index["label"].map({k: i for i, k in enumerate(CLASS_KEYS)}).to_numpy(dtype=np.int64)
    groups = index["record"].astype(str).to_numpy()
    names = list(info.class_names)
    rep = evaluate_predictions(y, p, class_names=names, groups=groups, split="external", n_boot=n_boot, seed=seed)
    rep = _with_extra(rep, run_id=info.run_id, data_dir=str(data), preset=str(info.meta.get("preset")),
                      grouped_by="record", n_skipped=0, skipped=[], n_unlabelled=0, model_kind=MODEL_KIND)
    frame = predictions_frame((data / index["path"].astype(str)).astype(str).to_numpy(), y, p, class_names=names,
                              groups=groups)
    return ExternalEvaluation(info.run_id, str(data), rep, frame, len(index), (), 0, 0, "record")


__all__ = [
    "BEAT_CLASSES",
    "CLASS_KEYS",
    "BEAT2_MODEL_FILE",
    "CNN_MODEL_FILE",
    "MODEL_KIND",
    "SOURCE_RECORDS_FILE",
    "GbmArrhythmiaModel",
    "GbmParams",
    "af_gate",
    "bbb_rule",
    "local_qrs_ms",
    "dataset_predictions",
    "evaluate_spectral_folder",
    "explain_row",
    "is_gbm_run",
    "nearest_rows",
    "predict_record_rows",
    "record_beats",
    "record_tables",
    "sample_weights",
    "segment_feature_rows",
    "source_records",
    "train_booster",
    "write_source_records",
]
