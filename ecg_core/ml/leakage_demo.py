"""The leakage demonstration: one architecture trained twice on the same folder, with the leaky random file-level
split and with the group-aware split, and the summary of the pair.

* :func:`leakage_demo` — trains both runs (``leakdemo-file-<tag>``, ``leakdemo-group-<tag>``) and writes the summary
  ``leakage_demo.json`` into both run folders;
* :func:`leakage_summary` / :func:`explain_gap` — the summary of a pair (test accuracy and macro-F1 with 95 % CI,
  test files with a copy in training, the gap) and its one-sentence explanation;
* :func:`find_leakage_demos` — such pairs in a registry (the Compare page).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ecg_core.core.atomic import atomic_write_json
from ecg_core.core.errors import ConfigError, EcgCoreError
from ecg_core.core.formatting import finite_or_none, json_safe
from ecg_core.ml import registry
from ecg_core.ml.compare import LEAKDEMO_FILE, load_report, run_split_overlap
from ecg_core.ml.registry import RunInfo, resolve_run

__all__ = ["LEAKDEMO_PREFIX", "explain_gap", "find_leakage_demos", "leakage_demo", "leakage_summary"]

LEAKDEMO_PREFIX = "leakdemo"


def leakage_summary(file_run: RunInfo | str | os.PathLike[str], group_run: RunInfo | str | os.PathLike[str],
                    *, models_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """JSON-safe summary of a leakage-demo pair: both runs' test accuracy and macro-F1 with 95 % CI, test files,
    distinct test images, test files with a copy in training, the gaps, and a one-sentence explanation."""
    runs: dict[str, Any] = {}
    for kind, run in (("file", file_run), ("group", group_run)):
        info = resolve_run(run, models_dir=models_dir)
        rep = load_report(info)
        if rep is None:
            raise ConfigError(f"run {info.run_id!r} has no test evaluation (eval.json); the demo cannot be summarised")
        ov = run_split_overlap(info)
        runs[kind] = {
            "run_id": info.run_id,
            "split_by": str((info.meta.get("split") or {}).get("by", "unknown")),
            "accuracy": rep.accuracy,
            "accuracy_ci": list(rep.ci.get("accuracy", (math.nan, math.nan))),
            "macro_f1": rep.macro.get("f1", math.nan),
            "macro_f1_ci": list(rep.ci.get("macro_f1", (math.nan, math.nan))),
            "n_test": rep.n,
            "n_test_distinct": rep.n_distinct,
            "n_test_exact_in_train": ov.n_test_exact_in_train if ov else None,
            "n_test_group_in_train": ov.n_test_group_in_train if ov else None,
            "n_train": ov.n_train if ov else None,
            "epochs_run": (info.meta.get("training") or {}).get("epochs_run"),
        }
    meta = resolve_run(group_run, models_dir=models_dir).meta
    summary = {
        "kind": "leakage_demo",
        "tag": _demo_tag(runs["file"]["run_id"]) or _demo_tag(runs["group"]["run_id"]) or "",
        "data_dir": meta.get("data_dir"),
        "arch": meta.get("arch"),
        "input_shape": meta.get("input_shape"),
        "seed": (meta.get("train") or {}).get("seed"),
        "epochs": (meta.get("train") or {}).get("epochs"),
        "runs": runs,
        "gap": {
            "accuracy": runs["file"]["accuracy"] - runs["group"]["accuracy"],
            "macro_f1": runs["file"]["macro_f1"] - runs["group"]["macro_f1"],
        },
    }
    summary["explanation"] = explain_gap(summary)
    return json_safe(summary)


def explain_gap(summary: Mapping[str, Any]) -> str:
    """One sentence on why the file-level split scores differently from the group split."""
    f, g = summary["runs"]["file"], summary["runs"]["group"]
    acc_f, acc_g = finite_or_none(f.get("accuracy")), finite_or_none(g.get("accuracy"))
    copies = f.get("n_test_group_in_train")
    exact = f.get("n_test_exact_in_train")
    copy_txt = (f"{copies} of its {f.get('n_test')} test files have a copy in the training set "
                f"({exact} byte-identical)" if copies is not None else "its test files may have copies in training")
    if acc_f is None or acc_g is None:
        return f"The file-level split cannot be compared: an accuracy is missing; {copy_txt}."
    gap = (acc_f - acc_g) * 100
    if gap > 0:
        return (f"The random file-level split reports {gap:.0f} percentage points more accuracy ({acc_f:.1%} vs "
                f"{acc_g:.1%}) because {copy_txt}, so the model is partly graded on images it has already seen, "
                f"while the group split tests on {g.get('n_test_distinct')} images it never saw in any copy.")
    return (f"Here the file-level split scored no higher ({acc_f:.1%} vs {acc_g:.1%}) even though {copy_txt}; with "
            "so few test images chance dominates — its number is still not an honest estimate.")


def _demo_tag(run_id: str) -> str | None:
    for kind in ("file", "group"):
        prefix = f"{LEAKDEMO_PREFIX}-{kind}-"
        if run_id.startswith(prefix):
            return run_id[len(prefix):]
    return None


def find_leakage_demos(runs: Sequence[RunInfo]) -> list[dict[str, Any]]:
    """Leakage-demo pairs among ``runs`` (ids ``leakdemo-file-<tag>`` and ``leakdemo-group-<tag>``, both usable
    with a test evaluation), newest first; each is the stored ``leakage_demo.json`` or, when missing, a summary
    computed from the two run folders. Pairs that cannot be summarised are skipped."""
    by_tag: dict[str, dict[str, RunInfo]] = {}
    for r in runs:
        tag = _demo_tag(r.run_id)
        if tag is not None and r.usable:
            kind = "file" if r.run_id.startswith(f"{LEAKDEMO_PREFIX}-file-") else "group"
            by_tag.setdefault(tag, {})[kind] = r
    out = []
    for tag, pair in by_tag.items():
        if set(pair) != {"file", "group"}:
            continue
        summary = None
        stored = pair["group"].path / LEAKDEMO_FILE
        try:
            data = json.loads(stored.read_text(encoding="utf-8"))
            if data.get("kind") == "leakage_demo" and {"file", "group"} <= set(data.get("runs", {})):
                summary = data
        except (OSError, ValueError, AttributeError):
            summary = None
        if summary is None:
            try:
                summary = leakage_summary(pair["file"], pair["group"])
            except (EcgCoreError, OSError, ValueError):
                continue
        summary = dict(summary, tag=tag)
        summary["created"] = str(pair["group"].meta.get("created", ""))
        out.append(summary)
    return sorted(out, key=lambda s: s["created"], reverse=True)


def leakage_demo(
    data_dir: str | os.PathLike[str],
    *,
    models_dir: str | os.PathLike[str],
    arch: str = "custom_cnn",
    preprocess: Any = None,
    epochs: int = 15,
    seed: int = 0,
    patience: int = 5,
    tag: str | None = None,
    cache_root: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
    **train_options: Any,
) -> dict[str, Any]:
    """Train ``arch`` twice on ``data_dir`` — random file-level split, then group-aware split — and summarise.

    Only the split differs: both runs keep every file (``dedupe=False``, so copies stay in the data and the file
    split can put them on both sides), use the same seed, preprocessing, epochs and options. Writes the runs
    ``leakdemo-file-<tag>`` and ``leakdemo-group-<tag>`` into ``models_dir`` and the summary
    (:func:`leakage_summary`) as ``leakage_demo.json`` into both run folders; returns the summary.

    Args:
        data_dir: dataset folder (one sub-folder per class).
        models_dir: registry folder for the two runs.
        arch: architecture name of the zoo.
        preprocess: a :class:`~ecg_core.imaging.preprocess.PreprocessConfig` (default: the library default).
        epochs, seed, patience: training options shared by both runs.
        tag: suffix of the run ids (default: ``<arch>-<timestamp>``); letters, digits, '-', '_', '.'.
        train_options: further :class:`~ecg_core.ml.train_config.TrainConfig` fields (batch_size, preset, augment, ...).
    """
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml.train import run_training
    from ecg_core.ml.train_config import TrainConfig

    for forbidden in ("split_by", "dedupe", "data_dir", "kfold"):
        if forbidden in train_options:
            raise ConfigError(f"leakage_demo sets {forbidden!r} itself; remove it from the options")
    tag = tag or f"{arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    ids = {kind: registry.check_run_id(f"{LEAKDEMO_PREFIX}-{kind}-{tag}") for kind in ("file", "group")}
    root = Path(models_dir)
    taken = [i for i in ids.values() if (root / i).exists()]
    if taken:
        raise ConfigError(f"run(s) {taken} already exist in {str(root)!r}; choose another tag")
    pre = preprocess if preprocess is not None else PreprocessConfig()
    base = dict(data_dir=str(data_dir), arch=arch, preprocess=pre, epochs=epochs, seed=seed, patience=patience,
                dedupe=False, **train_options)
    configs = {"file": TrainConfig(split_by="file", **base), "group": TrainConfig(split_by="group", **base)}
    run_dirs = {}
    for kind in ("file", "group"):
        if progress:
            progress(f"training {ids[kind]} ({'random file-level' if kind == 'file' else 'group-aware'} split)")
        run_dirs[kind] = run_training(configs[kind], models_dir=root, run_id=ids[kind], cache_root=cache_root)
        status = registry.read_run(run_dirs[kind]).status
        if status not in registry.USABLE_STATUSES:
            raise ConfigError(f"run {ids[kind]!r} ended with status {status!r}; the demo needs both runs")
    summary = leakage_summary(run_dirs["file"], run_dirs["group"])
    summary["tag"] = tag
    for d in run_dirs.values():
        atomic_write_json(d / LEAKDEMO_FILE, summary)
    return summary
