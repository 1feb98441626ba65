"""Tests of ecg_core.imaging.augment: deterministic presets, semantics warnings, balancing plans and expansion."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from ecg_core.imaging import augment as aug
from ecg_core.core.errors import ConfigError


def _report(gray: bool = False, seed: int = 0) -> np.ndarray:
    """A 96x128 report-like uint8 image: white paper, pink grid, three black traces."""
    rng = np.random.default_rng(seed)
    img = np.full((96, 128, 3), 255, np.uint8)
    img[:, ::8] = (230, 170, 170)
    img[::8, :] = (230, 170, 170)
    for row in range(3):
        ys = (20 + 30 * row + 6 * np.sin(np.arange(128) / 4) + rng.normal(0, 1, 128)).astype(int)
        img[np.clip(ys, 0, 95), np.arange(128)] = 0
    return img.mean(axis=2).astype(np.uint8) if gray else img


@pytest.fixture(params=["rgb", "gray"])
def image(request: pytest.FixtureRequest) -> np.ndarray:
    return _report(gray=request.param == "gray")


# --------------------------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize("preset", sorted(aug.PRESETS))
def test_every_preset_keeps_shape_and_dtype(preset: str, image: np.ndarray) -> None:
    cfg = aug.PRESETS[preset]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # presets are semantics-safe: no warning at all (also none from albumentations)
        out = aug.augment(image, cfg, seed=1)
    assert out.shape == image.shape and out.dtype == np.uint8
    if preset == "none":
        np.testing.assert_array_equal(out, image)


def test_presets_exist_and_hflip_is_off_everywhere() -> None:
    assert {"none", "light", "moderate", "strong", "scan_photo"} <= set(aug.PRESETS)
    assert aug.AugmentConfig().hflip is False and aug.AugmentConfig().vflip is False
    assert all(not cfg.hflip and not cfg.vflip for cfg in aug.PRESETS.values())
    assert all(aug.semantic_risks(cfg) == {} for cfg in aug.PRESETS.values())
    assert aug.PRESETS["none"].is_identity and not aug.PRESETS["strong"].is_identity


@pytest.mark.parametrize("preset", ["moderate", "strong", "scan_photo"])
def test_same_seed_same_image_other_seed_other_image(preset: str, image: np.ndarray) -> None:
    cfg = aug.PRESETS[preset]
    a = aug.augment(image, cfg, seed=5)
    np.testing.assert_array_equal(a, aug.augment(image, cfg, seed=5))
    assert any(not np.array_equal(a, aug.augment(image, cfg, seed=s)) for s in (6, 7, 8))
    # the Augmenter does not depend on call history
    augmenter = aug.Augmenter(cfg)
    augmenter(image, seed=99)
    np.testing.assert_array_equal(a, augmenter(image, seed=5))


def test_transforms_draw_independently_for_one_seed() -> None:
    # albumentations' own Compose(seed=...) gives all transforms the same generator (all fire or none)
    cfg = aug.AugmentConfig(rotate_deg=3, brightness=0.2, gamma=0.2, noise_std=0.05, blur_kernel=3)
    pipe = aug.build_pipeline(cfg, seed=4)
    first_draws = [t.py_random.random() for t in pipe.transforms]
    assert len(set(first_draws)) == len(first_draws)
    # over 40 seeds with p=0.5 the set of transforms that fire varies, not only "all" or "none"
    fired = []
    for s in range(40):
        aug.seed_pipeline(pipe, s)
        fired.append(tuple(t.py_random.random() < t.p for t in pipe.transforms))
    assert len(set(fired)) > 2


def test_preview_grid_is_deterministic_and_matches_augment() -> None:
    img = _report()
    cfg = aug.PRESETS["strong"]
    grid = aug.preview_grid(img, cfg, n=4, seed=3)
    assert len(grid) == 4 and all(g.shape == img.shape for g in grid)
    np.testing.assert_array_equal(grid[2], aug.augment(img, cfg, seed=aug.derive_seed(3, 2)))
    again = aug.preview_grid(img, cfg, n=4, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(grid, again, strict=True))


def test_hflip_is_warned_with_its_reason() -> None:
    cfg = aug.AugmentConfig(hflip=True, p=1.0)
    assert "reverses time" in aug.semantic_risks(cfg)["hflip"]
    with pytest.warns(UserWarning, match="'hflip' is enabled: horizontal flip reverses time"):
        aug.build_pipeline(cfg)
    with pytest.warns(UserWarning, match="hflip"):
        out = aug.augment(_report(), cfg, seed=0)
    np.testing.assert_array_equal(out, _report()[:, ::-1])
    assert set(aug.semantic_risks(aug.AugmentConfig(vflip=True, rotate_deg=20))) == {"vflip", "rotate_deg"}


def test_geometric_borders_are_white_paper() -> None:
    img = np.full((64, 64), 255, np.uint8)
    out = aug.augment(img, aug.AugmentConfig(rotate_deg=9, shift_frac=0.1, p=1.0), seed=0)
    assert out.min() > 200  # black corners would teach the model a scanner artefact


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rotate_deg": -1}, r"rotate_deg must be a number in \[0.0, 45.0\], received -1"),
        ({"blur_kernel": 4}, "blur_kernel must be 0 .* odd int"),
        ({"clahe_clip": 0.5}, "clahe_clip must be 0"),
        ({"p": 1.5}, r"p must be a number in \[0.0, 1.0\]"),
        ({"hflip": 1}, "hflip must be True or False"),
        ({"jpeg_quality_min": 0}, "jpeg_quality_min must be a number in"),
    ],
)
def test_invalid_config_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        aug.AugmentConfig(**kwargs)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((32, 32), np.float32), "uint8"),
        (np.zeros((32, 32, 4), np.uint8), r"\(H, W\) or \(H, W, 3\)"),
        (np.zeros((4, 32), np.uint8), "at least 8x8"),
    ],
)
def test_invalid_image_raises(image: np.ndarray, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        aug.augment(image, aug.PRESETS["light"], seed=0)


def test_derive_seed_is_stable_and_distinct() -> None:
    assert aug.derive_seed(0, 1, 2) == aug.derive_seed(0, 1, 2)
    assert len({aug.derive_seed(0, r, k) for r in range(50) for k in range(5)}) == 250
    assert 0 <= aug.derive_seed(123, 4) < 2**31


# --------------------------------------------------------------------------------------------- balancing


def test_plan_balances_hand_computed_counts() -> None:
    plan = aug.balancing_plan({"A": 10, "B": 20, "C": 40})
    assert plan.multipliers == {"A": 4, "B": 2, "C": 1}
    assert plan.counts_after == {"A": 40, "B": 40, "C": 40}
    assert plan.total == 120 and plan.target == 40
    assert plan.imbalance_before == 4.0 and plan.imbalance_after == 1.0


def test_plan_like_the_seed_multipliers() -> None:
    # the seed's x5/x10/x10/x12 came from train counts like these (target ~ 1200 images per class)
    counts = pd.Series({"Normal": 240, "Abnormal": 120, "MI": 125, "History of MI": 100})
    plan = aug.balancing_plan(counts, target=1200)
    assert plan.multipliers == {"Normal": 5, "Abnormal": 10, "MI": 10, "History of MI": 12}
    assert plan.counts_after == {"Normal": 1200, "Abnormal": 1200, "MI": 1250, "History of MI": 1200}


def test_plan_rounds_caps_and_warns() -> None:
    # 45/7 = 6.43 -> 6; 45/30 = 1.5 -> 2 (round half up); 45/45 -> 1
    plan = aug.balancing_plan({"a": 7, "b": 30, "c": 45})
    assert plan.multipliers == {"a": 6, "b": 2, "c": 1}
    with pytest.warns(UserWarning, match="max_multiplier=3 leaves classes \\['a'\\]"):
        capped = aug.balancing_plan({"a": 7, "b": 30, "c": 45}, max_multiplier=3)
    assert capped.multipliers == {"a": 3, "b": 2, "c": 1}
    # classes above an int target are never dropped
    assert aug.balancing_plan({"a": 10, "b": 100}, target=50).multipliers == {"a": 5, "b": 1}
    assert aug.balancing_plan({"a": 10, "b": 20, "c": 40}, target="median").multipliers == {"a": 2, "b": 1, "c": 1}


@pytest.mark.parametrize(
    ("counts", "kwargs", "match"),
    [
        ({}, {}, "empty"),
        ({"a": 0, "b": 3}, {}, r"train_counts\['a'\] must be an int >= 1"),
        ({"a": 1}, {"target": "biggest"}, r"target must be one of \['max', 'mean', 'median'\]"),
        ({"a": 1}, {"max_multiplier": 0}, "max_multiplier must be an int >= 1"),
    ],
)
def test_invalid_plan_arguments_raise(counts: dict, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        aug.balancing_plan(counts, **kwargs)


def _index() -> pd.DataFrame:
    rows = [("A", "train")] * 10 + [("B", "train")] * 20 + [("C", "train")] * 40
    rows += [("A", "val")] * 3 + [("C", "val")] * 5 + [("B", "test")] * 4
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))
    return pd.DataFrame(
        {"path": [f"img{i}.png" for i in range(len(rows))], "label": [rows[i][0] for i in order],
         "split": [rows[i][1] for i in order]}
    )


def test_expand_repeats_only_training_rows() -> None:
    df = _index()
    train = df[df.split == "train"]
    plan = aug.balancing_plan(train.label.value_counts())
    out = aug.expand_with_plan(df, plan, seed=1)

    assert out[out.split == "train"].label.value_counts().to_dict() == plan.counts_after
    assert len(out[out.split == "train"]) == plan.total == 120
    held_out = out[out.split != "train"]
    pd.testing.assert_frame_equal(
        held_out[df.columns].reset_index(drop=True), df[df.split != "train"].reset_index(drop=True)
    )
    assert (held_out.aug_copy == 0).all() and (held_out.aug_seed == -1).all()
    # copy 0 is the original (not augmented), copies 1..m-1 carry distinct seeds
    assert (out[out.aug_copy == 0].aug_seed == -1).all()
    copies = out[out.aug_copy > 0]
    assert (copies.aug_seed >= 0).all() and copies.aug_seed.is_unique
    assert out.groupby("source_row").aug_copy.max().max() == 3  # class A: x4 -> copies 0..3
    # copies follow their original and point back to it
    for _, row in copies.head(5).iterrows():
        assert df.iloc[row.source_row].path == row.path
    np.testing.assert_array_equal(out.aug_seed, aug.expand_with_plan(df, plan, seed=1).aug_seed)


def test_expand_refuses_plans_from_non_training_rows() -> None:
    df = _index()
    leaky = aug.balancing_plan(df.label.value_counts())  # counts over train + val + test
    with pytest.raises(ConfigError, match="training split has"):
        aug.expand_with_plan(df, leaky)
    plan = aug.balancing_plan(df[df.split == "train"].label.value_counts())
    with pytest.raises(ConfigError, match="no column 'split'"):
        aug.expand_with_plan(df.drop(columns="split"), plan)
    with pytest.raises(ConfigError, match="no rows with split == 'train'"):
        aug.expand_with_plan(df.assign(split="test"), plan)
    with pytest.raises(ConfigError, match=r"training labels \['D'\] are not in the plan"):
        aug.expand_with_plan(pd.concat([df, pd.DataFrame({"path": ["x"], "label": ["D"], "split": ["train"]})]), plan)
