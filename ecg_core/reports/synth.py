"""Synthetic 12-lead ECG signals and report images with ground truth (the embedded demo data).

This module is the entry point (import path of everything public); the work is done in

* :mod:`ecg_core.reports.synth_spec` — the classes (``cardiac-4``), subtypes and territories, :class:`SynthSpec`,
  :func:`resolve_spec` / :func:`random_spec` and the recording :class:`Signals12`;
* :mod:`ecg_core.reports.synth_model` — the parametric heart-vector / wave model, :func:`synth_signals`;
* :mod:`ecg_core.reports.synth_render` — the printout (ECG paper, 3x4 + rhythm strip, scan artifacts), whose
  layout is :mod:`ecg_core.reports.layout`.

Here: the convenience :func:`make_report` and the dataset writer :func:`generate_dataset` (folder per class + JSON
sidecar per image + ``synth_manifest.json``; every file written atomically inside a temporary folder that replaces
``out_dir`` at the end).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecg_core.core.atomic import atomic_write_bytes, atomic_write_text
from ecg_core.core.errors import ConfigError, DatasetError
from ecg_core.core.labels import get_preset
from ecg_core.reports.layout import COLUMN_S, RHYTHM_KEY, lead_layout_table
from ecg_core.reports.synth_model import synth_signals
from ecg_core.reports.synth_layouts import LAYOUTS, PAPERS, paper_style
from ecg_core.reports.synth_render import (
    FONTS,
    GRID_STYLES,
    HEADERS,
    RenderOptions,
    encode_image,
    highlight_leads,
    render_report,
)
from ecg_core.reports.synth_spec import (
    CLASS_KEYS,
    MI_TERRITORIES,
    PRESET_NAME,
    SUBTYPE_INFO,
    SUBTYPES,
    TERRITORY_INFO,
    Signals12,
    SynthSpec,
    check_class,
    heart_rate_range,
    random_spec,
    resolve_spec,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "SYNTH_VERSION",
    "PRESET_NAME",
    "CLASS_KEYS",
    "SUBTYPES",
    "SUBTYPE_INFO",
    "MI_TERRITORIES",
    "TERRITORY_INFO",
    "RHYTHM_KEY",
    "COLUMN_S",
    "GRID_STYLES",
    "LAYOUTS",
    "PAPERS",
    "variant_options",
    "random_variant_options",
    "SynthSpec",
    "Signals12",
    "RenderOptions",
    "heart_rate_range",
    "random_spec",
    "resolve_spec",
    "synth_signals",
    "render_report",
    "make_report",
    "highlight_leads",
    "lead_layout_table",
    "generate_dataset",
    "image_seed",
]

SYNTH_VERSION = "1.0"


def make_report(spec: SynthSpec, options: RenderOptions | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Synthesise ``spec`` and render it: (RGB uint8 image of shape (H, W, 3), JSON-ready sidecar dict).

    The render randomness (header text, artifacts) is seeded from ``spec.seed``.
    """
    signals = synth_signals(spec)
    return render_report(signals, options if options is not None else RenderOptions(), seed=spec.seed)


def variant_options(layout: str = "3x4+1", paper: str = "pink", *, grid: bool = True, photo: bool = False,
                    px_per_mm: float = 4.0, font: str = "simplex", header: str = "full", artifacts: bool = False,
                    **extra: Any) -> RenderOptions:
    """:class:`RenderOptions` of a report variant by name: ``layout`` in :data:`LAYOUTS`, ``paper`` in
    :data:`PAPERS` (``bw`` = black-and-white print, ``grey`` = grey grid), ``grid`` on/off, ``photo`` (phone photo
    artifacts), ``artifacts`` (scan artifacts); ``extra`` goes to :class:`RenderOptions` as is."""
    style, bw = paper_style(paper)
    return RenderOptions(px_per_mm=px_per_mm, grid=style, black_and_white=bw, draw_grid=bool(grid), photo=photo,
                         layout=layout, font=font, header=header, artifacts=artifacts, **extra)


def random_variant_options(rng: np.random.Generator, *, layouts: Sequence[str] = LAYOUTS,
                           papers: Sequence[str] = PAPERS, photo_probability: float = 0.5,
                           no_grid_probability: float = 0.1) -> RenderOptions:
    """A random report variant (layout, paper, grid on/off, font, header, resolution 3-8 px/mm, photo or scan
    artifacts) drawn from ``rng``."""
    photo = bool(rng.random() < photo_probability)
    return variant_options(str(rng.choice(list(layouts))), str(rng.choice(list(papers))),
                           grid=bool(rng.random() >= no_grid_probability), photo=photo,
                           px_per_mm=round(float(rng.uniform(3.0, 8.0)), 2), font=str(rng.choice(list(FONTS))),
                           header=str(rng.choice(list(HEADERS))), artifacts=not photo,
                           trace_width_mm=round(float(rng.uniform(0.2, 0.5)), 2))


def image_seed(seed: int, class_id: int, index: int) -> int:
    """Seed of image ``index`` of class ``class_id`` in a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(class_id), int(index)]).generate_state(1)[0])


_STYLE_WEIGHTS: tuple[tuple[str, bool, float], ...] = (
    ("pink", False, 0.55),
    ("red", False, 0.12),
    ("orange", False, 0.06),
    ("blue", False, 0.06),
    ("green", False, 0.06),
    ("gray", False, 0.05),
    ("pink", True, 0.10),  # black-and-white print
)


def _dataset_item(args: tuple[int, str, int, int, dict[str, Any], str, str]) -> dict[str, Any]:
    """Generate, render and write one image + sidecar. Runs in worker processes too (module-level, picklable)."""
    seed, cls, class_id, index, opt_kwargs, image_format, folder = args
    s = image_seed(seed, class_id, index)
    rng = np.random.default_rng(s)
    spec = random_spec(cls, rng)
    kwargs = dict(opt_kwargs)
    write_signals = kwargs.pop("signals", False)
    if kwargs.pop("vary_grid", False):
        w = np.array([x[2] for x in _STYLE_WEIGHTS])
        grid, bw, _ = _STYLE_WEIGHTS[int(rng.choice(len(_STYLE_WEIGHTS), p=w / w.sum()))]
        kwargs.update(grid=grid, black_and_white=bw)
    options = RenderOptions(**kwargs)
    sig = synth_signals(spec)
    image, sidecar = render_report(sig, options, seed=int(rng.integers(0, 2**31 - 1)))
    stem = f"{cls}_{index:04d}"
    ext = "jpg" if image_format in ("jpg", "jpeg") else "png"
    sidecar["image_file"] = f"{stem}.{ext}"
    sidecar["dataset_seed"] = int(seed)
    sidecar["image_seed"] = s
    sidecar["index"] = int(index)
    out = Path(folder)
    if write_signals:  # the true signals beside the image, and the values the reader is scored against
        from ecg_core.reports.reading.truth import truth_fields, write_truth

        sidecar.update(truth_fields(sig))
        sidecar["signals_record"] = stem
        write_truth(sig, out, stem)
    atomic_write_bytes(out / f"{stem}.{ext}", encode_image(image, ext))
    atomic_write_text(out / f"{stem}.json", json.dumps(sidecar, indent=1, sort_keys=True) + "\n")
    return {
        "rel_path": f"{cls}/{stem}.{ext}",
        "class_key": cls,
        "class_id": class_id,
        "subtype": spec.subtype,
        "territory": spec.territory,
        "heart_rate": sidecar["heart_rate_bpm"],
        "severity": spec.severity,
        "seed": sidecar["seed"],
    }


def generate_dataset(
    out_dir: Path | str,
    *,
    per_class: int,
    seed: int,
    px_per_mm: float = 4.0,
    artifacts: bool = True,
    image_format: str = "png",
    classes: Sequence[str] | None = None,
    vary_grid: bool = True,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    signals: bool = False,
    layout: str = "3x4+1",
    paper: str | None = None,
    photo: bool = False,
    grid: bool = True,
) -> pd.DataFrame:
    """Write a synthetic cardiac-4 dataset and return its index.

    Layout: ``out_dir/<class_key>/<class_key>_<i:04d>.<png|jpg>`` + ``.json`` sidecar, and
    ``out_dir/synth_manifest.json``. Image ``i`` of class ``c`` uses seed :func:`image_seed` ``(seed, id(c), i)``,
    so the content does not depend on ``workers`` or on the other classes. Everything is written into a hidden
    temporary sibling folder (``.<name>.partial-*``) that is renamed to ``out_dir`` at the end: an interrupted run
    leaves no ``out_dir``. ``out_dir`` must be absent or empty unless ``overwrite=True``. With ``workers > 1``
    (spawned processes) the calling script needs the usual ``if __name__ == "__main__":`` guard.
    ``progress(done, total)`` is called after each image. ``signals``: also write each report's true 12-lead
    signals as ``<stem>.hea/.dat`` beside it (10 s, mV, standard lead names) and put ``st_mm``, ``hr_bpm`` and
    ``q_leads`` in its sidecar (:mod:`ecg_core.reports.reading.truth`).
    ``layout`` (:data:`LAYOUTS`), ``paper`` (:data:`PAPERS`; given, it replaces ``vary_grid``'s random paper),
    ``photo`` (phone-photo artifacts instead of scan artifacts) and ``grid`` (False: no grid) choose the variant.
    ``workers > 1`` uses a process pool. Returns a DataFrame with columns path, json_path, rel_path, class_key,
    class_id, subtype, territory, heart_rate, severity, seed.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ConfigError(f"per_class must be a positive integer; received {per_class!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer; received {seed!r}")
    if image_format not in ("png", "jpg", "jpeg"):
        raise ConfigError(f"image_format must be one of 'png', 'jpg'; received {image_format!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer; received {workers!r}")
    class_list = tuple(classes) if classes is not None else CLASS_KEYS
    for c in class_list:
        check_class(c)
    variant: dict[str, Any] = {"layout": layout, "photo": bool(photo), "draw_grid": bool(grid)}
    if paper is not None:
        variant["grid"], variant["black_and_white"] = paper_style(paper)
        vary_grid = False
    RenderOptions(px_per_mm=px_per_mm, artifacts=artifacts, **variant)  # validate early
    if _exists_non_empty(out_dir) and not overwrite:
        raise DatasetError(
            f"out_dir {str(out_dir)!r} already exists and is not empty; expected a new or empty folder "
            f"(pass overwrite=True to replace it)"
        )
    preset = get_preset(PRESET_NAME)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        opt_kwargs = {"px_per_mm": float(px_per_mm), "artifacts": bool(artifacts), "vary_grid": bool(vary_grid),
                      "signals": bool(signals), **variant}
        jobs = []
        for cls in class_list:
            (tmp / cls).mkdir()
            cid = preset.info(cls).id
            jobs += [(seed, cls, cid, i, opt_kwargs, image_format, str(tmp / cls)) for i in range(per_class)]
        total = len(jobs)
        records: list[dict[str, Any]] = []
        if workers == 1:
            for k, job in enumerate(jobs):
                records.append(_dataset_item(job))
                if progress is not None:
                    progress(k + 1, total)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                       initializer=_worker_init)
            try:
                for k, rec in enumerate(pool.map(_dataset_item, jobs, chunksize=4)):
                    records.append(rec)
                    if progress is not None:
                        progress(k + 1, total)
            finally:  # on an error or interrupt, drop the queued images instead of finishing them
                pool.shutdown(wait=True, cancel_futures=True)
        manifest = {
            "generator": "ecg_core.reports.synth",
            "version": SYNTH_VERSION,
            "preset": PRESET_NAME,
            "seed": seed,
            "per_class": per_class,
            "counts": {c: per_class for c in class_list},
            "n_images": total,
            "options": {"px_per_mm": float(px_per_mm), "artifacts": bool(artifacts), "image_format":
                        "jpg" if image_format == "jpeg" else image_format, "vary_grid": bool(vary_grid),
                        "signals": bool(signals), "paper": paper, **variant,
                        "render_defaults": RenderOptions(px_per_mm=px_per_mm, artifacts=artifacts).to_dict()},
        }
        atomic_write_text(tmp / "synth_manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        # the finished folder replaces out_dir in one rename (os.replace of a whole tree: core.atomic writes files)
        if _exists_non_empty(out_dir) and overwrite:  # swap, then delete the old tree
            trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, trash / "old")
            os.replace(tmp, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            try:
                os.replace(tmp, out_dir)  # atomic; also replaces an empty folder
            except OSError as e:
                raise DatasetError(
                    f"could not move the finished dataset to {str(out_dir)!r}: {e}; another run probably created "
                    f"it meanwhile (expected a new or empty folder)"
                ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    df = pd.DataFrame.from_records(records)
    df.insert(0, "json_path", [str(out_dir / Path(p).with_suffix(".json")) for p in df["rel_path"]])
    df.insert(0, "path", [str(out_dir / p) for p in df["rel_path"]])
    return df


def _exists_non_empty(path: Path) -> bool:
    if not path.exists():
        return False
    if not path.is_dir():
        return True
    return any(path.iterdir())


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)
