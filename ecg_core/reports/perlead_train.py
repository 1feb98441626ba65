"""Train the per-lead CNN (:mod:`ecg_core.ml.zoo_perlead`) on report mosaics (:mod:`ecg_core.reports.perlead`).

``python -m ecg_core train --arch perlead_cnn --data DIR`` (and the Train page) runs :func:`train_perlead`: the
job of :mod:`ecg_core.ml.train` with the panel mosaics as its preprocessing. Steps, each in ``progress.jsonl``
(phases ``preprocess`` (done / total), ``start``, ``train`` / ``epoch``, ``evaluate``, ``done``; the run's STOP file
or SIGTERM stops it between batches):

1. index the dataset (:func:`ecg_core.ml.dataset.scan`), split by duplicate group (train / val / test, stratified;
   :func:`ecg_core.ml.splits.split_by_group`), one file per group;
2. cut the 13 panels of every kept report from its detected layout (sidecar boxes on synthetic reports) into a
   mosaic, cached per file content;
3. fit (:func:`fit_perlead`: Adam, class-balanced sample weights, light augmentation of the training split only:
   a horizontal shift of up to 6 px and an ink gain of 0.8-1.25; early stopping and learning-rate halving on the
   validation split; optional initial weights, e.g. synthetic pretraining);
4. ``model.keras`` (the best checkpoint), ``eval.json`` / ``predictions.csv`` on the test split (group-bootstrap
   CIs), ``run.json`` (``input_kind`` :data:`INPUT_KIND`: the app's whole-image pages do not feed it whole
   reports), TensorBoard logs, ``MODEL_CARD.md``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ecg_core.core.atomic import atomic_write_json, atomic_write_text
from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import get_preset
from ecg_core.ml import registry
from ecg_core.ml.progress import job_guard, keep_best
from ecg_core.reports.perlead import GAP, MOSAIC_VERSION, PANEL_HW, MosaicCache, mosaic_shape

__all__ = ["ARCH", "INPUT_KIND", "RECIPE", "fit_perlead", "predict_mosaics", "train_perlead"]

ARCH = "perlead_cnn"
#: what the model reads: a report, cut into its 13 panels by ecg_core.reports.perlead (not the whole image)
INPUT_KIND = "report_panels"
#: the fixed training recipe (set before any CV; the same in scripts/perlead_cv.py)
RECIPE: dict[str, Any] = {"epochs": 30, "batch_size": 16, "lr": 1e-3, "patience": 8, "reduce_lr_patience": 3,
                          "shift_px": 6, "gain": (0.8, 1.25)}


def _batches(X: np.ndarray, y: np.ndarray, n_classes: int, *, batch_size: int, augment: bool, seed: int,
             weights: np.ndarray | None = None) -> Any:
    """A keras PyDataset of (x, one-hot y, sample weight) batches, reshuffled and re-augmented every epoch."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(X)) if augment else np.arange(len(X))

        def __len__(self) -> int:
            return max(1, int(np.ceil(len(X) / batch_size)))

        def on_epoch_end(self) -> None:
            if augment:
                self.order = self.rng.permutation(len(X))

        def __getitem__(self, i: int) -> tuple[np.ndarray, ...]:
            pos = self.order[i * batch_size:(i + 1) * batch_size]
            xb = X[pos].astype(np.float32, copy=True)
            if augment:
                lo, hi = RECIPE["gain"]
                for j in range(len(xb)):
                    s = int(self.rng.integers(-RECIPE["shift_px"], RECIPE["shift_px"] + 1))
                    if s:
                        xb[j] = np.roll(xb[j], s, axis=1)
                    xb[j] = np.clip(xb[j] * self.rng.uniform(lo, hi), 0.0, 1.0)
            yb = np.eye(n_classes, dtype=np.float32)[y[pos]]
            wb = (weights[y[pos]] if weights is not None else np.ones(len(pos))).astype(np.float32)
            return xb, yb, wb

    return Batches()


def balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class weights n / (k * count) (absent classes 0)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)


def fit_perlead(X: np.ndarray, y: np.ndarray, *, n_classes: int, val: tuple[np.ndarray, np.ndarray] | None = None,
                epochs: int = RECIPE["epochs"], batch_size: int = RECIPE["batch_size"], lr: float = RECIPE["lr"],
                seed: int = 0, init_weights: str | Path | None = None, callbacks: list[Any] | None = None,
                augment: bool = True) -> tuple[Any, Any, Any]:
    """Build and fit one per-lead CNN on mosaics ``X`` (N, H, W, 1) with labels ``y``; returns (model, history,
    BuildResult). With ``val``, early stopping (restoring the best weights) and learning-rate halving watch its
    loss; ``init_weights``: a ``.weights.h5`` file of the same architecture (e.g. synthetic pretraining)."""
    import keras

    from ecg_core.ml import zoo

    y = np.asarray(y, int)
    if len(X) == 0 or len(np.unique(y)) < 2:
        raise ConfigError("the per-lead CNN needs training reports of at least two classes")
    built = zoo.build_model(ARCH, input_shape=tuple(int(v) for v in X.shape[1:]), n_classes=n_classes, seed=seed)
    model = built.model
    if init_weights is not None:
        model.load_weights(str(init_weights))
    zoo.compile_model(model, lr=lr)
    cbs = list(callbacks or [])
    val_data = None
    if val is not None and len(val[0]):
        val_data = _batches(val[0], np.asarray(val[1], int), n_classes, batch_size=batch_size, augment=False,
                            seed=seed)
        if not any(isinstance(c, keras.callbacks.EarlyStopping) for c in cbs):
            cbs += [keras.callbacks.EarlyStopping(monitor="val_loss", patience=RECIPE["patience"],
                                                  restore_best_weights=True),
                    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                      patience=RECIPE["reduce_lr_patience"], min_lr=1e-6)]
    train = _batches(X, y, n_classes, batch_size=batch_size, augment=augment, seed=seed,
                     weights=balanced_weights(y, n_classes))
    history = model.fit(train, epochs=epochs, validation_data=val_data, callbacks=cbs, verbose=0)
    return model, history, built


def predict_mosaics(model: Any, X: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (N, k) of mosaics ``X``."""
    if len(X) == 0:
        return np.zeros((0, int(model.output.shape[-1])))
    return np.asarray(model.predict(X.astype(np.float32), batch_size=batch_size, verbose=0), np.float64)


def train_perlead(data_dir: str | Path, models_dir: str | Path, *, run_id: str | None = None,
                  preset: str = "cardiac-4", epochs: int = RECIPE["epochs"], batch_size: int = RECIPE["batch_size"],
                  lr: float = RECIPE["lr"], seed: int = 0, val_frac: float = 0.15, test_frac: float = 0.15,
                  init_weights: str | Path | None = None, cache_root: str | Path | None = None,
                  n_boot: int = 1000) -> Path:
    """Train one per-lead CNN into ``models_dir/run_id``; returns the run folder (see the module docstring)."""

    from ecg_core.ml.dataset import fingerprint_of, scan
    from ecg_core.ml.evaluate import evaluate_predictions
    from ecg_core.ml.predictions import predictions_frame
    from ecg_core.ml.splits import split_by_group
    from ecg_core.ml.train import TENSORBOARD_DIR, _tensorboard_callback
    from ecg_core.ml.train_config import TrainConfig

    if not isinstance(epochs, int) or epochs < 1 or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be ints >= 1; received {epochs!r}, {batch_size!r}")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ConfigError(f"lr must be > 0; received {lr!r}")
    p = get_preset(preset)
    classes = [c.name for c in p.classes]
    full = scan(data_dir, preset=p)
    index = full[(full["label"] >= 0) & (full["group"] >= 0) & (full["error"] == "")]
    if index.empty:
        raise ConfigError(f"no labelled, readable images in {str(data_dir)!r}")
    index = split_by_group(index, val_frac=val_frac, test_frac=test_frac, seed=seed)
    kept = index[index["split"] != ""].drop_duplicates("group").reset_index(drop=True)
    run_id = registry.check_run_id(run_id or registry.new_run_id(ARCH))
    shape = list(mosaic_shape(PANEL_HW, GAP))
    counts = {s: {"files": int((index["split"] == s).sum()), "distinct": int((kept["split"] == s).sum())}
              for s in ("train", "val", "test")}
    run_dir = registry.create_run(models_dir, run_id, {
        "arch": ARCH, "preset": p.name, "input_kind": INPUT_KIND, "data_dir": str(Path(data_dir).resolve()),
        "class_names": classes, "input_shape": shape,
        "data_source": "synthetic" if (Path(full.attrs.get("root", data_dir)) / "synth_manifest.json").exists()
        else "real", "data_fingerprint": fingerprint_of(full),
        "mosaic": {"panel_hw": list(PANEL_HW), "gap": GAP, "version": MOSAIC_VERSION, "panels": 13,
                   "module": "ecg_core.reports.perlead"},
        "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "val_frac": val_frac,
                  "test_frac": test_frac, "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in RECIPE.items()},
                  "init_weights": str(init_weights) if init_weights else None, "class_weights": "balanced"},
        "split": {"by": "group", "seed": seed, "val_frac": val_frac, "test_frac": test_frac, "dedupe": True,
                  "counts": counts},
        "versions": registry.library_versions(),
    })
    t0 = time.time()
    stopped = "stopped before the first epoch finished: no model was kept"
    with job_guard(run_dir, stopped_error=stopped) as (writer, stop):
        from ecg_core.core import paths
        from ecg_core.ml.progress import training_callbacks

        atomic_write_text(run_dir / "split.csv",
                          kept[["rel_path", "label", "class_name", "group", "sha256", "split"]].to_csv(index=False))
        writer.write({"phase": "preprocess", "done": 0, "total": len(kept)})
        cache = MosaicCache(Path(cache_root) if cache_root else paths.cache_dir() / "perlead")
        X = cache.many(kept, should_stop=stop,
                       progress=lambda i, n: writer.write({"phase": "preprocess", "done": i, "total": n}, force=i == n))
        y = kept["label"].to_numpy(int)
        tr, va, te = (np.flatnonzero(kept["split"].to_numpy() == s) for s in ("train", "val", "test"))
        cfg = TrainConfig(data_dir=str(data_dir), arch=ARCH, preset=p.name, epochs=epochs, batch_size=batch_size,
                          lr=float(lr), seed=seed, patience=RECIPE["patience"],
                          reduce_lr_patience=RECIPE["reduce_lr_patience"])
        steps = max(1, int(np.ceil(len(tr) / batch_size)))
        cbs = training_callbacks(run_dir, writer, stop, cfg, steps)
        cbs.append(_tensorboard_callback(run_dir / TENSORBOARD_DIR))
        writer.write({"phase": "start", "epochs": epochs, "batches": steps, "train_images": len(tr),
                      "val_images": len(va)})
        t_fit = time.time()
        model, history, built = fit_perlead(X[tr], y[tr], n_classes=len(classes), val=(X[va], y[va]), epochs=epochs,
                                            batch_size=batch_size, lr=float(lr), seed=seed,
                                            init_weights=init_weights, callbacks=cbs)
        fit_s = time.time() - t_fit
        stopped = stop()
        model = keep_best(model, run_dir, stopped)
        best = run_dir / "checkpoints" / "best.keras"  # moved into place as the run's model below
        writer.write({"phase": "evaluate"})
        metrics: dict[str, Any] = {}
        if len(te):
            prob = predict_mosaics(model, X[te], batch_size)
            groups = kept["group"].to_numpy()[te]
            rep = evaluate_predictions(y[te], prob, class_names=classes, groups=groups, split="test", n_boot=n_boot,
                                       seed=seed)
            frame = predictions_frame(kept["path"].to_numpy()[te], y[te], prob, class_names=classes, groups=groups)
            atomic_write_text(run_dir / "predictions.csv", frame.to_csv(index=False))
            atomic_write_json(run_dir / "eval.json", rep.to_dict())
            metrics = {"split": "test", "n": rep.n, "n_distinct": rep.n_distinct, "accuracy": rep.accuracy,
                       "macro_f1": rep.macro["f1"], "macro_f1_ci": list(rep.ci.get("macro_f1", (None, None))),
                       "accuracy_ci": list(rep.ci.get("accuracy", (None, None))),
                       "mi_recall": rep.per_class[0].recall}
        import os

        os.replace(best, run_dir / registry.MODEL_FILE)
        try:
            best.parent.rmdir()
        except OSError:
            pass
        status = "stopped" if stopped else "completed"
        epochs_run = len(history.history.get("loss", []))
        registry.update_run(run_dir, status=status, finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                            n_params=int(model.count_params()), last_conv_layer=built.last_conv_layer,
                            attention_layer="lead_attention", metrics=metrics,
                            pretrained={"requested": init_weights is not None, "loaded": init_weights is not None,
                                        "message": f"initial weights {init_weights}" if init_weights else built.message},
                            training={"epochs_run": epochs_run, "seconds_fit": round(fit_s, 1),
                                      "seconds_total": round(time.time() - t0, 1), "train_rows": len(tr),
                                      "stopped_early": epochs_run < epochs})
        write_card(run_dir)
        writer.write({"phase": "done", "status": status,
                      **{k: v for k, v in metrics.items() if not isinstance(v, list)}})
    return run_dir


def write_card(run_dir: str | Path) -> Path:
    """MODEL_CARD.md of a per-lead CNN run, from its run.json and eval.json (and ``cv`` in run.json when present)."""
    import json

    from ecg_core.core.formatting import fmt_num
    from ecg_core.ml.modelcard import CREDITS, DISCLAIMER, _eval_section

    run = registry.read_run(run_dir)
    m = run.meta
    tr = m.get("train", {})
    synthetic = m.get("data_source") == "synthetic"
    lines = [f"# Model card — {run.run_id}", "", DISCLAIMER, "", "## Model", "",
             ("- kind: per-lead CNN (`perlead_cnn`): one shared-weight conv encoder over the 12 lead panels and the "
              "rhythm strip, cut from the detected layout into a 13-slot mosaic (ecg_core.reports.perlead); "
              "attention pooling over the 13 panels (layer `lead_attention`: the per-lead explanation); Grad-CAM on "
              f"`{m.get('last_conv_layer')}` maps back to each panel's box"),
             f"- parameters: {m.get('n_params')}; input {m.get('input_shape')}; mosaic {json.dumps(m.get('mosaic'))}",
             (f"- training: {json.dumps({k: tr.get(k) for k in ('epochs', 'batch_size', 'lr', 'seed', 'init_weights')})}"
              f"; {json.dumps(m.get('training'))}"),
             f"- classes ({m.get('preset')}): {', '.join(m.get('class_names', []))}",
             *([f"- pretraining: {json.dumps(m['pretraining'])}"] if m.get("pretraining") else []),
             "- files: model.keras (loads with safe_mode=True); no pickle", "", "## Data", "",
             (f"- `{Path(str(m.get('data_dir', ''))).name}`, fingerprint `{m.get('data_fingerprint')}`, "
              f"source {m.get('data_source')}"), f"- credit: {CREDITS['synthetic' if synthetic else 'mendeley']}",
             f"- split by duplicate group, one file per group: {(m.get('split') or {}).get('counts')}", "",
             "## Results", ""]
    ev = Path(run_dir) / "eval.json"
    if ev.exists():
        lines += _eval_section("Held-out test split (one file per duplicate group)", json.loads(ev.read_text()))
    cv = m.get("cv") or []
    if cv:
        lines += ["### Repeated group-aware CV on mendeley-dev (scripts/perlead_cv.py)", "",
                  "| candidate | macro-F1 (95 % CI) | MI recall (95 % CI) | s per fold |", "|---|---|---|---:|"]
        for r in cv:
            lines.append(f"| {r.get('candidate')} | {fmt_num(r.get('macro_f1'))} ({r.get('macro_f1_ci')}) | "
                         f"{fmt_num(r.get('mi_recall'))} ({r.get('mi_recall_ci')}) | {fmt_num(r.get('fold_seconds'), 0)} |")
        lines.append("")
    data_limits = (["- Trained and tested on synthetic reports only (ecg_core.reports.synth): it exists to check "
                    "explanations against known pathology leads and for demos, not to read real ECGs."] if synthetic
                   else ["- 21 distinct acute-MI reports in mendeley-dev: wide intervals.",
                         "- Classes follow the dataset's folder labels, which are not verified diagnoses."])
    lines += ["## Limitations", "",
              ("- The panels come from the detected 3x4 + rhythm layout (a synthetic report's own lead boxes); other "
               "layouts fall back to a template and the panels may be misplaced."), *data_limits,
              "- A small held-out split flatters a model: prefer the repeated group CV figures where they are given."]
    path = Path(run_dir) / "MODEL_CARD.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
