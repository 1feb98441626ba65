"""Is a map faithful to the model? Deletion/insertion curves against a random order, and the model-randomisation
sanity check.

:func:`deletion_insertion` removes (or restores) the most attended patches first and follows the class probability
(Petsiuk et al., "RISE", BMVC 2018); :func:`randomisation_check` randomises the top layers of a clone of the model
and measures how much the map changes (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecg_core.core.errors import ConfigError
from ecg_core.xai.explainer import Explainer, as_batch, predict_proba


def paper_fill(x: np.ndarray) -> np.ndarray:
    """The paper colour of a model input (h, w, c): the per-channel median — most of a report is paper — so
    removed regions look like blank paper, not like black ink."""
    arr = np.asarray(x, dtype=np.float32)
    return np.median(arr.reshape(-1, arr.shape[-1]), axis=0)


@dataclass(frozen=True)
class FaithfulnessResult:
    """Deletion and insertion curves (Petsiuk et al., "RISE", BMVC 2018) against a random-order baseline.

    ``fractions``: share of patches removed (deletion) or restored (insertion) at each step, 0..1;
    ``deletion`` / ``insertion``: probability of the explained class along the way; ``*_random``: the same with
    patches in random order (mean over ``n_random`` orders). AUCs are areas under these curves (trapezoid rule).
    A faithful map makes the probability fall faster than random on deletion (lower AUC) and rise faster on
    insertion (higher AUC).
    """

    class_index: int
    patch: int
    fill: tuple[float, ...]
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_random: np.ndarray
    insertion_random: np.ndarray
    deletion_auc: float
    insertion_auc: float
    deletion_auc_random: float
    insertion_auc_random: float

    @property
    def summary(self) -> str:
        d = "faster" if self.deletion_auc < self.deletion_auc_random else "not faster"
        i = "faster" if self.insertion_auc > self.insertion_auc_random else "not faster"
        return (f"deleting the most attended regions first lowers the probability {d} than a random order "
                f"(AUC {self.deletion_auc:.3f} vs {self.deletion_auc_random:.3f}, lower is better); inserting them "
                f"first raises it {i} (AUC {self.insertion_auc:.3f} vs {self.insertion_auc_random:.3f}, higher is "
                "better)")


def _patch_scores(heatmap: np.ndarray, patch: int) -> tuple[np.ndarray, int, int]:
    h, w = heatmap.shape
    gh, gw = -(-h // patch), -(-w // patch)
    padded = np.zeros((gh * patch, gw * patch), dtype=np.float64)
    padded[:h, :w] = heatmap
    counts = np.zeros_like(padded)
    counts[:h, :w] = 1.0
    s = padded.reshape(gh, patch, gw, patch).sum(axis=(1, 3))
    c = counts.reshape(gh, patch, gw, patch).sum(axis=(1, 3))
    return (s / np.maximum(c, 1)).ravel(), gh, gw



def deletion_insertion(model: Any, x: np.ndarray, heatmap: np.ndarray, *, class_index: int, patch: int | None = None,
                       steps: int = 16, n_random: int = 3, seed: int = 0, fill: Sequence[float] | None = None,
                       batch_size: int = 32) -> FaithfulnessResult:
    """Deletion/insertion curves of a heatmap (see :class:`FaithfulnessResult`).

    ``x``: the model input (h, w, c); ``heatmap``: (h, w) in model-input coordinates; ``patch``: square patch
    side in px (default: 1/12 of the shorter side, at least 4); patches are ranked by their mean heat; ``steps``:
    points per curve after the start; ``fill``: the replacement colour (default :func:`paper_fill`).
    """
    m = model.model if isinstance(model, Explainer) else model
    shape = tuple(int(v) for v in m.input_shape[1:])
    xb = as_batch(x, shape)[0]
    hm = np.asarray(heatmap, dtype=np.float64)
    if hm.shape != xb.shape[:2]:
        raise ConfigError(f"heatmap must be in model-input coordinates {xb.shape[:2]}; received {hm.shape}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= 200:
        raise ConfigError(f"steps must be an int in 2..200; received {steps!r}")
    if isinstance(n_random, bool) or not isinstance(n_random, int) or not 1 <= n_random <= 50:
        raise ConfigError(f"n_random must be an int in 1..50; received {n_random!r}")
    h, w = xb.shape[:2]
    patch = int(patch) if patch is not None else max(4, min(h, w) // 12)
    if not 1 <= patch <= min(h, w):
        raise ConfigError(f"patch must be in 1..{min(h, w)} px; received {patch!r}")
    fill_v = np.asarray(fill if fill is not None else paper_fill(xb), dtype=np.float32).reshape(-1)
    if fill_v.size not in (1, xb.shape[2]):
        raise ConfigError(f"fill must have 1 or {xb.shape[2]} values; received {fill_v.size}")
    scores, gh, gw = _patch_scores(hm, patch)
    n_p = scores.size
    order = np.argsort(-scores, kind="stable")
    rng = np.random.default_rng(seed)
    orders = [order] + [rng.permutation(n_p) for _ in range(n_random)]
    ks = np.rint(np.linspace(0, n_p, steps + 1)).astype(int)
    blank = np.broadcast_to(fill_v, xb.shape).astype(np.float32)

    def masks_for(o: np.ndarray) -> np.ndarray:  # (steps+1, h, w) bool: True = patch selected so far
        rank = np.empty(n_p, dtype=np.int64)
        rank[o] = np.arange(n_p)
        grid = rank.reshape(gh, gw)
        full = np.kron(grid, np.ones((patch, patch), dtype=np.int64))[:h, :w]
        return full[None] < ks[:, None, None]

    images = []
    for o in orders:
        sel = masks_for(o)[..., None]
        images.append(np.where(sel, blank, xb))  # deletion: selected patches become paper
        images.append(np.where(sel, xb, blank))  # insertion: selected patches come back
    batch = np.concatenate(images, axis=0)
    probs = predict_proba(m, batch, batch_size=batch_size)[:, int(class_index)].reshape(len(orders), 2, steps + 1)
    fr = ks / float(n_p)
    dele, ins = probs[0, 0], probs[0, 1]
    dr, ir = probs[1:, 0].mean(axis=0), probs[1:, 1].mean(axis=0)
    return FaithfulnessResult(
        class_index=int(class_index), patch=patch, fill=tuple(float(v) for v in fill_v), fractions=fr,
        deletion=dele, insertion=ins, deletion_random=dr, insertion_random=ir,
        deletion_auc=float(np.trapezoid(dele, fr)), insertion_auc=float(np.trapezoid(ins, fr)),
        deletion_auc_random=float(np.mean([np.trapezoid(probs[k, 0], fr) for k in range(1, len(orders))])),
        insertion_auc_random=float(np.mean([np.trapezoid(probs[k, 1], fr) for k in range(1, len(orders))])),
    )


@dataclass(frozen=True)
class RandomisationCheck:
    """Model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

    The top ``layers`` of a clone of the model get random weights; a map that barely changes (high Spearman rank
    correlation with the original map) does not depend on what the model learned. ``passed`` when
    ``spearman < threshold``.
    """

    method: str
    layers: tuple[str, ...]
    spearman: float
    threshold: float
    passed: bool
    heatmap_random: np.ndarray

    @property
    def message(self) -> str:
        top = ", ".join(self.layers)
        if self.passed:
            return (f"sanity check passed: after randomising the top layers ({top}) the map changed "
                    f"(rank correlation {self.spearman:.2f} < {self.threshold:.2f}), so it depends on the learned "
                    "weights")
        return (f"sanity check FAILED: after randomising the top layers ({top}) the map stayed similar (rank "
                f"correlation {self.spearman:.2f} >= {self.threshold:.2f}); it may show image structure (edges, "
                "traces) rather than what the model learned")


PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
#: deletion / insertion AUC must beat the random order by at least this much (probability x fraction) to pass
AUC_MARGIN = 0.02
#: below this change of the class probability between "nothing removed" and "everything removed" the curves cannot
#: tell a faithful map from any other (the model does not react to the removal at all)
MIN_CURVE_CHANGE = 0.05


@dataclass(frozen=True)
class FaithVerdict:
    """The verdict of one faithfulness test: ``status`` ``'pass'``, ``'fail'`` or ``'inconclusive'``, the ``rule``
    that decided it and what was ``measured`` (plain sentences, shown as they are by the page and the PDF)."""

    test: str
    status: str
    rule: str
    measured: str

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def text(self) -> str:
        return f"{self.test}: {self.status.upper()} — {self.measured}. Rule: {self.rule}."


def _curve_verdict(test: str, auc: float, auc_random: float, full: float, blank: float, *, lower_is_better: bool,
                   margin: float, min_change: float) -> FaithVerdict:
    word = "lower" if lower_is_better else "higher"
    rule = (f"the AUC must be at least {margin:.2f} {word} than the random order's to pass; no {word} at all "
            f"fails; inconclusive when it is only slightly {word}, or when the class probability on the full image "
            f"is not at least {min_change:.2f} above its probability on blank paper")
    gain = (auc_random - auc) if lower_is_better else (auc - auc_random)
    measured = f"AUC {auc:.3f} vs random {auc_random:.3f} ({gain:+.3f} in the map's favour)"
    if not all(np.isfinite(v) for v in (auc, auc_random, full, blank)):
        return FaithVerdict(test, INCONCLUSIVE, rule, measured + "; the curve holds non-finite values")
    if full - blank < min_change:
        return FaithVerdict(test, INCONCLUSIVE, rule,
                            measured + f"; but the class probability is {full:.2f} on the full image and {blank:.2f} "
                            "on blank paper, so removing regions cannot show what raised it")
    if gain >= margin:
        return FaithVerdict(test, PASS, rule, measured)
    if gain <= 0:
        return FaithVerdict(test, FAIL, rule, measured + ": no better than removing regions at random")
    return FaithVerdict(test, INCONCLUSIVE, rule, measured + f": better than random, but by less than {margin:.2f}")


def faithfulness_verdicts(result: FaithfulnessResult | None, check: RandomisationCheck | None = None, *,
                          margin: float = AUC_MARGIN, min_change: float = MIN_CURVE_CHANGE
                          ) -> tuple[FaithVerdict, ...]:
    """One :class:`FaithVerdict` per test that was run: deletion vs random, insertion vs random (from ``result``)
    and the model-randomisation sanity check (from ``check``), in that order.

    Deletion passes when its AUC is at least ``margin`` below the random order's and fails when it is not below at
    all (insertion: above); in between, or when the class probability on the full image is not at least
    ``min_change`` above its probability on blank paper (the model ignores the removal, or gives the class to blank
    paper: the curves cannot show what raised it), the test is inconclusive. The randomisation check passes when the
    rank correlation is below its threshold, fails otherwise, and is inconclusive when it is not a number.
    """
    out: list[FaithVerdict] = []
    if result is not None:
        out.append(_curve_verdict("Deletion vs random", result.deletion_auc, result.deletion_auc_random,
                                  float(result.deletion[0]), float(result.deletion[-1]), lower_is_better=True,
                                  margin=margin, min_change=min_change))
        out.append(_curve_verdict("Insertion vs random", result.insertion_auc, result.insertion_auc_random,
                                  float(result.insertion[-1]), float(result.insertion[0]), lower_is_better=False,
                                  margin=margin, min_change=min_change))
    if check is not None:
        rule = (f"after randomising the top layers ({', '.join(check.layers)}) the map's rank correlation with the "
                f"original must be below {check.threshold:.2f}")
        measured = f"rank correlation {check.spearman:.2f}"
        if not np.isfinite(check.spearman):
            status = INCONCLUSIVE
        else:
            status = PASS if check.passed else FAIL
            measured += (": the map depends on the learned weights" if check.passed else
                         ": the map may show image structure (edges, traces) rather than what the model learned")
        out.append(FaithVerdict("Model-randomisation sanity check", status, rule, measured))
    return tuple(out)


def verdict_summary(verdicts: Sequence[FaithVerdict]) -> str:
    """One line over all verdicts, e.g. ``'1 of 3 faithfulness tests passed (deletion vs random: fail, ...)'``."""
    n = sum(v.passed for v in verdicts)
    parts = ", ".join(f"{v.test.lower()}: {v.status}" for v in verdicts)
    return f"{n} of {len(verdicts)} faithfulness tests passed ({parts})"


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps (:func:`scipy.stats.spearmanr`, average ranks for ties). A constant
    map, where spearmanr gives NaN (and warns), counts as 0 (1 when both maps are the same constant); NaN in a map
    gives NaN."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    sa, sb = np.std(a), np.std(b)
    if sa == 0 and sb == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    if sa == 0 or sb == 0:
        return 0.0
    from scipy.stats import spearmanr  # lazy: scipy.stats costs ~1 s to import

    return float(spearmanr(a, b).statistic)


def randomised_clone(model: Any, *, n_layers: int = 2, seed: int = 0) -> tuple[Any, tuple[str, ...]]:
    """A clone of ``model`` whose top ``n_layers`` layers with a kernel (Dense, Conv, recurrent; BatchNorm is
    skipped) get random normal weights of the same standard deviation as the trained ones (biases zero)."""
    import keras

    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ConfigError(f"n_layers must be an int >= 1; received {n_layers!r}")
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for layer in reversed(clone.layers):
        if len(chosen) >= n_layers:
            break
        if isinstance(layer, keras.layers.BatchNormalization) or not layer.get_weights():
            continue
        if not any("kernel" in v.path for v in layer.weights):
            continue
        new = []
        for v, arr in zip(layer.weights, layer.get_weights()):
            if "bias" in v.path:
                new.append(np.zeros_like(arr))
            else:
                sd = float(np.std(arr)) or 0.05
                new.append(rng.normal(0.0, sd, arr.shape).astype(arr.dtype))
        layer.set_weights(new)
        chosen.append(layer.name)
    if not chosen:
        raise ConfigError(f"model {model.name!r} has no layer with a kernel to randomise")
    return clone, tuple(chosen)


def randomisation_check(explainer: Explainer, x: np.ndarray, *, method: str = "gradcam",
                        class_index: int | None = None, n_layers: int = 2, seed: int = 0,
                        threshold: float = 0.5, heatmap: np.ndarray | None = None) -> RandomisationCheck:
    """Run the model-randomisation sanity check for one image (see :class:`RandomisationCheck`). ``heatmap``: the
    original map when already computed."""
    if class_index is None:
        class_index = int(np.argmax(explainer.predict_proba(x)))
    base = heatmap if heatmap is not None else explainer.explain(x, method=method, class_index=class_index)
    clone, layers = randomised_clone(explainer.model, n_layers=n_layers, seed=seed)
    rnd = Explainer(clone, layer=explainer.layer, class_names=explainer.class_names, options=explainer.options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hr = rnd.explain(x, method=method, class_index=class_index)
    rho = _spearman(base, hr)
    return RandomisationCheck(method, layers, rho, float(threshold), bool(rho < threshold), hr)
