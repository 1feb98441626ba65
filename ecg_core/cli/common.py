"""What every command group shares: the progress bar and the exit status of bad input."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ecg_core.core.errors import EcgCoreError

EXIT_BAD_INPUT = 2


def progress(desc: str) -> Callable[[int, int], None]:
    """A tqdm progress callback (i, n) writing to stderr."""
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(i: int, n: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=n, desc=desc, unit="file", file=sys.stderr, leave=False)
        b = bar["bar"]
        b.update(i - b.n)
        if i >= n:
            b.close()

    return update


def preprocess_config_from_args(args: argparse.Namespace):  # -> PreprocessConfig
    """The PreprocessConfig given by --config (a JSON file, or a run.json's "preprocess") and the option flags."""
    from ecg_core.imaging.preprocess import PreprocessConfig

    base = {}
    if args.config:
        try:
            base = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise EcgCoreError(f"cannot read config file {args.config!r}: {e}") from e
        base = base.get("preprocess", base)
    for key in ("crop_mode", "height", "width", "channels", "median_ksize", "clahe_clip"):
        v = getattr(args, key, None)
        if v is not None:
            base[key] = v
    if args.no_clahe:
        base["clahe"] = False
    return PreprocessConfig.from_dict(base)


#: the OOD profile is built at the end of training when the training split has at most this many files (about
#: 0.1 s per file); larger runs print the command instead
OOD_PROFILE_MAX_FILES = 3000


def write_ood_profile(run_dir: Path, data_dir: str) -> None:
    """The run's OOD profile (``ecg_core.reports.ood_build``) from its training split, when cheap; a failure is a
    note, never a failed training."""
    from ecg_core.ml import registry
    from ecg_core.reports import ood_build

    cmd = f"python -m ecg_core ood-profile {run_dir.name} --data {data_dir}"
    try:
        run = registry.read_run(run_dir)
        n = len(ood_build.training_files(run, data_dir))
        if n > OOD_PROFILE_MAX_FILES:
            print(f"OOD profile not built ({n} training files); build it with `{cmd}`")
            return
        profile, _ = ood_build.build_profile(run, data_dir)
        e = profile.embedding
        print(f"OOD profile: {profile.n_reports} training reports, layouts {dict(profile.layouts)}"
              + (f", feature-space threshold {e.threshold:.3f}" if e is not None else ""))
    except (EcgCoreError, OSError, ValueError) as e:
        print(f"OOD profile not built ({e}); build it with `{cmd}`")
