"""Augmentation presets for ECG report images (albumentations 2.x) and class-balancing plans.

What an augmentation may change on a 12-lead report: what a scanner or a phone camera changes (a small skew,
keystone, exposure, JPEG blocks, a shadow, a photocopy in black and white, a little blur or sensor noise, a
slightly different crop). What it must not change: the direction of time (left to right), the polarity of the
waves (up is positive) and the lead layout — those carry the diagnosis. Hence flips are off by default and every
option that can break the semantics is explained in :data:`SEMANTIC_RISKS` and warned about when used.

Images are ``uint8`` arrays of shape ``(H, W)`` (grayscale) or ``(H, W, 3)`` (RGB); augmented images keep shape
and dtype. Geometric transforms fill uncovered borders with white (paper), not black.

Balancing: :func:`balancing_plan` turns the TRAINING split's class counts into integer multipliers (like the
seed's x5/x10/x10/x12) so that the classes end near-equal; :func:`expand_with_plan` repeats only training rows,
adding ``aug_copy`` (0 = the original) and ``aug_seed`` (the seed for online augmentation, -1 = do not augment).

Example::

    cfg = PRESETS["moderate"]
    out = augment(image, cfg, seed=3)               # deterministic for (image, cfg, seed)
    plan = balancing_plan({"MI": 10, "Normal": 40})  # multipliers {MI: 4, Normal: 1}
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import albumentations as A
import cv2
import numpy as np
import pandas as pd

from ecg_core.core.config import FrozenConfig
from ecg_core.core.errors import ConfigError

__all__ = [
    "AugmentConfig",
    "Augmenter",
    "BalancingPlan",
    "PRESETS",
    "SEMANTIC_RISKS",
    "augment",
    "balancing_plan",
    "build_pipeline",
    "derive_seed",
    "expand_with_plan",
    "preview_grid",
    "seed_pipeline",
    "semantic_risks",
]

_PAPER_WHITE = 255

# ------------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class AugmentConfig(FrozenConfig):
    """Strengths of each augmentation; 0 (or False) switches a transform off.

    Every enabled transform fires independently with probability ``p``.

    Geometric
        rotate_deg: max |rotation| in degrees (scanner skew; keep <= ~5).
        shift_frac: max translation as a fraction of width/height.
        scale_frac: max zoom change (0.05 -> scale in [0.95, 1.05]).
        perspective: max keystone distortion (albumentations ``Perspective`` scale; phone photos ~0.02-0.06).
        crop_pad_frac: max crop (negative) or pad (positive) per side as a fraction, size kept.
    Photometric
        brightness, contrast: max relative change (0.2 -> +-20 %).
        gamma: max gamma deviation (0.2 -> gamma in [0.8, 1.2]).
        clahe_clip: CLAHE clip limit upper bound (0 = off, otherwise >= 1).
    Noise and blur
        noise_std: max Gaussian noise std as a fraction of 255.
        blur_kernel: max (odd) kernel of a Gaussian or motion blur in pixels (0 = off, otherwise 3..31).
    Scan/photo artifacts
        jpeg_quality_min: lowest JPEG quality (100 = off; quality drawn in [jpeg_quality_min, 95]).
        shadow: max shadow darkness 0..1 (``RandomShadow``).
        to_gray: black-and-white copy (``ToGray``; skipped for grayscale input).
    Semantics-breaking (see :data:`SEMANTIC_RISKS`)
        hflip: horizontal flip — reverses time; off by default.
        vflip: vertical flip — inverts polarity and the row order of leads; off by default.
    """

    rotate_deg: float = 0.0
    shift_frac: float = 0.0
    scale_frac: float = 0.0
    perspective: float = 0.0
    crop_pad_frac: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    gamma: float = 0.0
    clahe_clip: float = 0.0
    noise_std: float = 0.0
    blur_kernel: int = 0
    jpeg_quality_min: int = 100
    shadow: float = 0.0
    to_gray: bool = False
    hflip: bool = False
    vflip: bool = False
    p: float = 0.5

    def __post_init__(self) -> None:
        for name, (lo, hi) in _RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ConfigError(
                    f"AugmentConfig.{name} must be a number in [{lo}, {hi}], received {value!r}; "
                    f"fix: use a value in that range (0 switches it off)."
                )
        for name in ("to_gray", "hflip", "vflip"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"AugmentConfig.{name} must be True or False, received {getattr(self, name)!r}.")
        if 0 < self.clahe_clip < 1:
            raise ConfigError(
                f"AugmentConfig.clahe_clip must be 0 (off) or >= 1, received {self.clahe_clip!r}; fix: use 2-4."
            )
        k = self.blur_kernel
        if not isinstance(k, int) or isinstance(k, bool) or (k != 0 and (k < 3 or k % 2 == 0)):
            raise ConfigError(
                f"AugmentConfig.blur_kernel must be 0 (off) or an odd int >= 3, received {k!r}; fix: use 3 or 5."
            )
        if not isinstance(self.jpeg_quality_min, int) or isinstance(self.jpeg_quality_min, bool):
            raise ConfigError(
                f"AugmentConfig.jpeg_quality_min must be an int in [1, 100], received {self.jpeg_quality_min!r}."
            )

    @property
    def is_identity(self) -> bool:
        """True when no transform is enabled (or ``p`` is 0)."""
        return self.p == 0 or all(getattr(self, f.name) == getattr(_IDENTITY, f.name) for f in _STRENGTH_FIELDS)


# allowed ranges of the numeric fields (inclusive)
_RANGES: dict[str, tuple[float, float]] = {
    "rotate_deg": (0.0, 45.0),
    "shift_frac": (0.0, 0.3),
    "scale_frac": (0.0, 0.5),
    "perspective": (0.0, 0.2),
    "crop_pad_frac": (0.0, 0.3),
    "brightness": (0.0, 1.0),
    "contrast": (0.0, 1.0),
    "gamma": (0.0, 0.9),
    "clahe_clip": (0.0, 16.0),
    "noise_std": (0.0, 0.5),
    "blur_kernel": (0, 31),
    "jpeg_quality_min": (1, 100),
    "shadow": (0.0, 1.0),
    "p": (0.0, 1.0),
}

_IDENTITY = AugmentConfig()
_STRENGTH_FIELDS = tuple(f for f in fields(AugmentConfig) if f.name != "p")

PRESETS: Mapping[str, AugmentConfig] = MappingProxyType({
    "none": AugmentConfig(),
    "light": AugmentConfig(
        rotate_deg=2.0, shift_frac=0.02, scale_frac=0.03, brightness=0.1, contrast=0.1, gamma=0.1, noise_std=0.02,
    ),
    "moderate": AugmentConfig(
        rotate_deg=4.0, shift_frac=0.04, scale_frac=0.06, perspective=0.02, crop_pad_frac=0.03, brightness=0.2,
        contrast=0.2, gamma=0.2, clahe_clip=2.0, noise_std=0.04, blur_kernel=3, jpeg_quality_min=60,
    ),
    "strong": AugmentConfig(
        rotate_deg=8.0, shift_frac=0.06, scale_frac=0.1, perspective=0.05, crop_pad_frac=0.06, brightness=0.3,
        contrast=0.3, gamma=0.3, clahe_clip=3.0, noise_std=0.06, blur_kernel=5, jpeg_quality_min=40, shadow=0.5,
        to_gray=True, p=0.6,
    ),
    "scan_photo": AugmentConfig(
        rotate_deg=3.0, shift_frac=0.03, scale_frac=0.05, perspective=0.06, crop_pad_frac=0.04, brightness=0.25,
        contrast=0.25, gamma=0.25, noise_std=0.04, blur_kernel=5, jpeg_quality_min=30, shadow=0.6, to_gray=True,
    ),
})

# Why an option can break what the image means; the predicate says when the risk applies to a config.
SEMANTIC_RISKS: Mapping[str, tuple[Callable[[AugmentConfig], bool], str]] = MappingProxyType({
    "hflip": (
        lambda c: c.hflip,
        "horizontal flip reverses time: P-QRS-T order, intervals and the lead columns (I, aVR, V1, V4 ...) are "
        "mirrored into waveforms no heart produces; keep it off.",
    ),
    "vflip": (
        lambda c: c.vflip,
        "vertical flip inverts polarity (ST elevation becomes depression, upright T waves inverted) and swaps the "
        "lead rows; keep it off.",
    ),
    "rotate_deg": (
        lambda c: c.rotate_deg > 10,
        "rotations beyond ~10 degrees tilt the baseline so ST segments look elevated/depressed and lead rows "
        "overlap; real scans are skewed by a few degrees at most.",
    ),
    "crop_pad_frac": (
        lambda c: c.crop_pad_frac > 0.1,
        "crops beyond ~10 % cut off outer lead columns, the rhythm strip or the calibration pulse.",
    ),
    "perspective": (
        lambda c: c.perspective > 0.1,
        "strong keystone squeezes one side of the report, changing apparent amplitudes and intervals.",
    ),
})


def semantic_risks(cfg: AugmentConfig) -> dict[str, str]:
    """Option name -> reason, for every enabled option of ``cfg`` that can change the ECG's meaning."""
    return {name: reason for name, (applies, reason) in SEMANTIC_RISKS.items() if applies(cfg)}


# ------------------------------------------------------------------------------------------- pipelines


def build_pipeline(cfg: AugmentConfig, *, seed: int | None = None, grayscale: bool = False) -> A.Compose:
    """The albumentations pipeline of ``cfg``.

    Order: flips, geometry (affine, perspective, crop/pad), photometry (brightness/contrast, gamma, CLAHE),
    artifacts (shadow, black-and-white), noise/blur, JPEG last (a photo is compressed when it is saved).
    ``grayscale=True`` leaves out the transforms that need 3 channels (ToGray). Warns (``UserWarning``) once per
    semantics-breaking option that is enabled.
    """
    if not isinstance(cfg, AugmentConfig):
        raise ConfigError(f"cfg must be an AugmentConfig, received {type(cfg).__name__}; fix: use PRESETS[name].")
    for name, reason in semantic_risks(cfg).items():
        warnings.warn(f"augmentation option {name!r} is enabled: {reason}", UserWarning, stacklevel=2)
    p = cfg.p
    t: list[A.BasicTransform] = []
    if cfg.hflip:
        t.append(A.HorizontalFlip(p=p))
    if cfg.vflip:
        t.append(A.VerticalFlip(p=p))
    if cfg.rotate_deg or cfg.shift_frac or cfg.scale_frac:
        t.append(
            A.Affine(
                rotate=(-cfg.rotate_deg, cfg.rotate_deg),
                translate_percent=(-cfg.shift_frac, cfg.shift_frac),
                scale=(1.0 - cfg.scale_frac, 1.0 + cfg.scale_frac),
                border_mode=cv2.BORDER_CONSTANT,
                fill=_PAPER_WHITE,
                p=p,
            )
        )
    if cfg.perspective:
        t.append(
            A.Perspective(
                scale=(min(0.01, cfg.perspective), cfg.perspective),
                border_mode=cv2.BORDER_CONSTANT,
                fill=_PAPER_WHITE,
                p=p,
            )
        )
    if cfg.crop_pad_frac:
        t.append(A.CropAndPad(percent=(-cfg.crop_pad_frac, cfg.crop_pad_frac), keep_size=True, fill=_PAPER_WHITE, p=p))
    if cfg.brightness or cfg.contrast:
        t.append(A.RandomBrightnessContrast(brightness_limit=cfg.brightness, contrast_limit=cfg.contrast, p=p))
    if cfg.gamma:
        t.append(A.RandomGamma(gamma_limit=(100 * (1 - cfg.gamma), 100 * (1 + cfg.gamma)), p=p))
    if cfg.clahe_clip:
        t.append(A.CLAHE(clip_limit=(1.0, cfg.clahe_clip), p=p))
    if cfg.shadow:
        t.append(
            A.RandomShadow(
                shadow_roi=(0.0, 0.0, 1.0, 1.0),
                num_shadows_limit=(1, 2),
                shadow_intensity_range=(min(0.1, cfg.shadow), cfg.shadow),
                p=p,
            )
        )
    if cfg.to_gray and not grayscale:
        t.append(A.ToGray(num_output_channels=3, p=p))
    if cfg.noise_std:
        t.append(A.GaussNoise(std_range=(cfg.noise_std / 2, cfg.noise_std), p=p))
    if cfg.blur_kernel:
        k = cfg.blur_kernel
        t.append(
            A.OneOf(
                [A.GaussianBlur(blur_limit=(3, k), p=1.0), A.MotionBlur(blur_limit=(3, k), allow_shifted=False, p=1.0)],
                p=p,
            )
        )
    if cfg.jpeg_quality_min < 100:
        t.append(A.ImageCompression(quality_range=(cfg.jpeg_quality_min, max(cfg.jpeg_quality_min, 95)), p=p))
    pipe = A.Compose(t)
    if seed is not None:
        seed_pipeline(pipe, _check_seed(seed))
    return pipe


def seed_pipeline(pipe: A.BaseCompose | A.BasicTransform, seed: int) -> None:
    """Seed ``pipe`` so that each transform gets its OWN random stream derived from ``seed``.

    ``A.Compose(..., seed=s)`` / ``set_random_seed(s)`` in albumentations 2.0.8 give every transform an identical
    generator, so their draws are perfectly correlated: transforms with equal ``p`` all fire or all skip together,
    and their magnitudes sit at the same quantile. Here child ``i`` gets ``derive_seed(seed, i + 1)``, recursively.
    """
    pipe.set_random_seed(seed)
    for i, child in enumerate(getattr(pipe, "transforms", ())):
        seed_pipeline(child, derive_seed(seed, i + 1))


def derive_seed(*parts: int) -> int:
    """A stable 31-bit seed from integers, e.g. ``derive_seed(base_seed, row, copy, epoch)``.

    Same parts -> same seed in every process (NumPy ``SeedSequence``, not Python's salted ``hash``).
    """
    try:
        ints = [int(p) for p in parts]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"derive_seed parts must be ints, received {parts!r}.") from e
    if any(v < 0 for v in ints):
        raise ConfigError(f"derive_seed parts must be >= 0, received {ints}; fix: use row numbers and counters.")
    return int(np.random.SeedSequence(ints).generate_state(1)[0] & 0x7FFFFFFF)


def _check_image(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        got = f"{type(image).__name__} of dtype {getattr(image, 'dtype', None)}"
        raise ConfigError(
            f"image must be a uint8 NumPy array, received {got}; fix: np.clip(x, 0, 255).astype(np.uint8)."
        )
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ConfigError(
            f"image must have shape (H, W) or (H, W, 3), received {image.shape}; fix: squeeze a single channel or "
            "convert RGBA to RGB."
        )
    if min(image.shape[:2]) < 8:
        raise ConfigError(f"image must be at least 8x8 px, received {image.shape[:2]}.")
    return image


def _check_seed(seed: object, name: str = "seed") -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"{name} must be an int >= 0, received {seed!r}; fix: pass e.g. seed=0.")
    return int(seed)


class Augmenter:
    """Pipelines of one config, built once, applied per image with a per-call seed.

    ``Augmenter(cfg)(image, seed=s)`` depends only on ``(image, cfg, s)``, never on earlier calls: the pipeline is
    re-seeded on every call. Not thread-safe (albumentations keeps the RNG in the pipeline): use one per worker.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warn once below, not once per pipeline
            self._rgb = build_pipeline(cfg)
            self._gray = build_pipeline(cfg, grayscale=True)
        for name, reason in semantic_risks(cfg).items():
            warnings.warn(f"augmentation option {name!r} is enabled: {reason}", UserWarning, stacklevel=2)
        self.cfg = cfg

    def __call__(self, image: np.ndarray, *, seed: int) -> np.ndarray:
        """Augmented copy of ``image`` (uint8, (H, W) or (H, W, 3)); same shape and dtype."""
        image = _check_image(image)
        seed = _check_seed(seed)
        if self.cfg.is_identity:
            return image.copy()
        pipe = self._gray if image.ndim == 2 else self._rgb
        seed_pipeline(pipe, seed)
        out = pipe(image=image)["image"]
        if out.ndim == 3 and image.ndim == 2:  # defensive: some transforms add a channel axis
            out = out[..., 0]
        return np.ascontiguousarray(out, dtype=np.uint8)


def augment(image: np.ndarray, cfg: AugmentConfig, *, seed: int) -> np.ndarray:
    """One augmented copy of ``image`` (uint8, (H, W) or (H, W, 3)); deterministic for ``seed``.

    For many images build one :class:`Augmenter` instead (same results, the pipeline is built once).
    """
    return Augmenter(cfg)(image, seed=seed)


def preview_grid(image: np.ndarray, cfg: AugmentConfig, *, n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """``n`` augmented variants of ``image`` (uint8, (H, W) or (H, W, 3)).

    Variant ``i`` equals ``augment(image, cfg, seed=derive_seed(seed, i))``.
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 64:
        raise ConfigError(f"n must be an int in [1, 64], received {n!r}.")
    seed = _check_seed(seed)
    aug = Augmenter(cfg)
    return [aug(image, seed=derive_seed(seed, i)) for i in range(n)]


# ------------------------------------------------------------------------------------------- class balancing


@dataclass(frozen=True)
class BalancingPlan:
    """Integer oversampling of the training split.

    ``multipliers[c]`` copies of every training image of class ``c`` (copy 0 = the original);
    ``counts_after[c] == counts_before[c] * multipliers[c]``; ``total`` = sum of ``counts_after``;
    ``target`` the per-class count aimed at.
    """

    multipliers: dict[Any, int]
    counts_before: dict[Any, int]
    counts_after: dict[Any, int]
    total: int
    target: int

    def __post_init__(self) -> None:
        if set(self.multipliers) != set(self.counts_before) or set(self.counts_after) != set(self.counts_before):
            raise ConfigError("BalancingPlan: multipliers, counts_before and counts_after must have the same classes.")
        for c, m in self.multipliers.items():
            if not isinstance(m, int) or m < 1:
                raise ConfigError(f"BalancingPlan: multiplier of class {c!r} must be an int >= 1, received {m!r}.")
            if self.counts_after[c] != self.counts_before[c] * m:
                raise ConfigError(f"BalancingPlan: counts_after[{c!r}] must equal counts_before * multiplier.")
        if self.total != sum(self.counts_after.values()):
            raise ConfigError("BalancingPlan: total must equal the sum of counts_after.")

    @property
    def imbalance_before(self) -> float:
        """Largest / smallest class count before balancing."""
        return max(self.counts_before.values()) / min(self.counts_before.values())

    @property
    def imbalance_after(self) -> float:
        """Largest / smallest class count after balancing (1.0 = perfectly balanced)."""
        return max(self.counts_after.values()) / min(self.counts_after.values())


_TARGETS: dict[str, Callable[[list[int]], float]] = {
    "max": lambda counts: float(max(counts)),
    "median": lambda counts: float(np.median(counts)),
    "mean": lambda counts: float(np.mean(counts)),
}


def balancing_plan(
    train_counts: Mapping[Any, int] | pd.Series,
    *,
    target: str | int = "max",
    max_multiplier: int = 12,
) -> BalancingPlan:
    """Per-class multipliers that bring the TRAINING split's classes near ``target`` images each.

    ``multiplier = clip(round(target / count), 1, max_multiplier)``; classes above the target keep multiplier 1
    (nothing is dropped). ``target`` is ``'max'`` | ``'median'`` | ``'mean'`` of the counts, or an int.
    Compute it from the training split only: copies of validation/test images would leak into training.
    Warns when ``max_multiplier`` leaves a class more than 1.5x below the target.
    """
    if isinstance(train_counts, pd.Series):
        counts = {k: v for k, v in train_counts.items()}
    elif isinstance(train_counts, Mapping):
        counts = dict(train_counts)
    else:
        raise ConfigError(
            f"train_counts must be a dict or pandas Series of class -> count, received {type(train_counts).__name__}; "
            "fix: index[index.split == 'train'].label.value_counts()."
        )
    if not counts:
        raise ConfigError("train_counts is empty; fix: pass the training split's class counts.")
    for c, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(
                f"train_counts[{c!r}] must be an int >= 1, received {n!r}; fix: every class needs training images."
            )
    counts = {c: int(n) for c, n in counts.items()}
    if not isinstance(max_multiplier, int) or isinstance(max_multiplier, bool) or max_multiplier < 1:
        raise ConfigError(f"max_multiplier must be an int >= 1, received {max_multiplier!r}; fix: e.g. 12.")
    if isinstance(target, str):
        if target not in _TARGETS:
            raise ConfigError(
                f"target must be one of {sorted(_TARGETS)} or an int >= 1, received {target!r}; "
                "fix: 'max' balances every class up to the largest."
            )
        goal = _TARGETS[target](list(counts.values()))
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool) and target >= 1:
        goal = float(target)
    else:
        raise ConfigError(f"target must be one of {sorted(_TARGETS)} or an int >= 1, received {target!r}.")

    multipliers = {c: min(max(1, math.floor(goal / n + 0.5)), max_multiplier) for c, n in counts.items()}
    short = {c: counts[c] * m for c, m in multipliers.items() if counts[c] * m * 1.5 < goal}
    if short:
        warnings.warn(
            f"max_multiplier={max_multiplier} leaves classes {sorted(map(str, short))} well below the target of "
            f"{goal:.0f} images; fix: raise max_multiplier or add class weights.",
            UserWarning,
            stacklevel=2,
        )
    after = {c: counts[c] * m for c, m in multipliers.items()}
    return BalancingPlan(multipliers, counts, after, sum(after.values()), int(round(goal)))


def expand_with_plan(
    index_df: pd.DataFrame,
    plan: BalancingPlan,
    *,
    split_col: str = "split",
    label_col: str = "label",
    seed: int = 0,
) -> pd.DataFrame:
    """Repeat every TRAINING row ``plan.multipliers[label]`` times; validation/test rows pass through unchanged.

    Added columns: ``source_row`` (position of the row in ``index_df``), ``aug_copy`` (0..m-1; 0 = the original)
    and ``aug_seed`` (``derive_seed(seed, source_row, aug_copy)`` for copies >= 1, -1 for originals and every
    validation/test row = do not augment). Row order is kept; copies follow their original. Combine ``aug_seed``
    with the epoch (``derive_seed(aug_seed, epoch)``) for fresh variants each epoch.

    Raises :class:`ConfigError` when training rows cannot be told apart (no ``split_col``, no ``'train'`` rows), a
    training label is missing from the plan, or the plan's counts are not the training split's counts (e.g. a plan
    computed from all rows, which would expand validation/test images too).
    """
    if not isinstance(plan, BalancingPlan):
        raise ConfigError(f"plan must be a BalancingPlan, received {type(plan).__name__}; fix: balancing_plan(...).")
    for col in (split_col, label_col):
        if col not in index_df.columns:
            raise ConfigError(
                f"index_df has no column {col!r} (columns: {list(index_df.columns)}); only training rows may be "
                "expanded, so the split must be known; fix: split the dataset first or pass split_col/label_col."
            )
    seed = _check_seed(seed)
    is_train = (index_df[split_col] == "train").to_numpy()
    if not is_train.any():
        raise ConfigError(
            f"index_df has no rows with {split_col} == 'train' "
            f"(values: {sorted(map(str, index_df[split_col].unique()))}); "
            "only training rows may be expanded; fix: assign a training split first."
        )
    train_counts = index_df.loc[is_train, label_col].value_counts().to_dict()
    missing = sorted(map(str, set(train_counts) - set(plan.multipliers)))
    if missing:
        raise ConfigError(
            f"training labels {missing} are not in the plan (plan classes: {sorted(map(str, plan.multipliers))}); "
            "fix: compute the plan from this index's training split."
        )
    if {c: int(n) for c, n in train_counts.items()} != plan.counts_before:
        raise ConfigError(
            f"the plan was computed from counts {plan.counts_before}, but the training split has {train_counts}; "
            "expanding with it would oversample non-training rows or the wrong amounts; fix: "
            f"balancing_plan(index_df[index_df.{split_col} == 'train'].{label_col}.value_counts())."
        )
    labels = index_df[label_col].to_numpy()
    reps = np.where(is_train, [plan.multipliers.get(lbl, 1) for lbl in labels], 1).astype(np.int64)
    positions = np.repeat(np.arange(len(index_df)), reps)
    out = index_df.iloc[positions].reset_index(drop=True)
    copy = (np.arange(len(positions)) - np.repeat(np.cumsum(reps) - reps, reps)).astype(np.int64)
    out["source_row"] = positions.astype(np.int64)
    out["aug_copy"] = copy
    out["aug_seed"] = np.array(
        [derive_seed(seed, r, k) if k > 0 else -1 for r, k in zip(positions, copy, strict=True)], dtype=np.int64
    )
    return out
