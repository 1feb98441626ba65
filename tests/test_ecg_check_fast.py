"""The ECG check's faster primitives compute exactly what the straightforward NumPy versions did (the check's
verdicts and scores must not move): median, standard deviation, the spike detector, the running median, the
16-bit labels and the trace mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ecg_core.reports import ecg_check as ec


def _spikes_reference(top, bottom, d, amp):
    n = top.size
    if n < 2 * d + 3:
        return np.zeros(n, bool)
    out = np.zeros(n, bool)
    pt, pb = np.pad(top, d, mode="edge"), np.pad(bottom, d, mode="edge")
    for dd in range(max(2, d // 2), d + 1):
        lt, rt = pt[d - dd : d - dd + n], pt[d + dd : d + dd + n]
        lb, rb = pb[d - dd : d - dd + n], pb[d + dd : d + dd + n]
        out |= (np.minimum(lt, rt) - top >= amp) | (bottom - np.maximum(lb, rb) >= amp)
    return out


def test_median_and_std_are_numpys() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 10, 11, 200, 553):
        a = np.round(rng.normal(20, 5, n) * 2) / 2  # ties, as in pixel rows
        assert ec._median(a) == float(np.median(a))
        assert ec._median(a.astype(np.float32)) == float(np.median(a.astype(np.float32)))
        assert ec._std(a) == float(np.std(a))


def test_spikes_match_the_padded_loop() -> None:
    rng = np.random.default_rng(1)
    for n, d in ((5, 3), (9, 3), (60, 4), (300, 4), (553, 7)):
        top = np.round(rng.normal(10, 3, n)).astype(np.float64)
        bottom = top + np.round(rng.random(n) * 6)
        for amp in (2.0, 3.5, 6.0):
            np.testing.assert_array_equal(ec._spikes(top, bottom, d, amp), _spikes_reference(top, bottom, d, amp))


def test_running_median_of_one_row_is_the_three_row_one() -> None:
    rng = np.random.default_rng(2)
    for n, k in ((40, 33), (300, 33), (553, 35), (20, 11)):
        x = rng.random(n) * 255
        row = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(1, -1)
        three = cv2.medianBlur(np.repeat(row, 3, axis=0), k)[1].astype(np.float32)
        np.testing.assert_array_equal(ec._runmed(x, k), three)


def _report_curves(monkeypatch) -> np.ndarray:
    """The curve mask the check hands to its trace filter for a rendered report."""
    from ecg_core.reports.synth import SynthSpec, make_report

    seen = []
    orig = ec._ecg_traces
    monkeypatch.setattr(ec, "_ecg_traces", lambda c: seen.append(c) or orig(c))
    img, _ = make_report(SynthSpec("normal", seed=3))
    ec.check_ecg(img)
    monkeypatch.undo()
    return seen[0]


def test_traces_mask_is_the_counted_components_and_labels_fit(monkeypatch) -> None:
    curves = _report_curves(monkeypatch)
    tr = ec._ecg_traces(curves)
    assert tr.n_rows >= 3 and tr.trace.shape == curves.shape
    # the trace mask: exactly the pixels of the counted components
    mask = cv2.morphologyEx(curves.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    _, labels = cv2.connectedComponents(mask, connectivity=8)
    counted = np.unique(labels[tr.trace])
    assert 0 not in counted and np.array_equal(np.isin(labels, counted), tr.trace)
    # 16-bit labels would overflow below a picture this large and noisy (> 65535 components): 32-bit then, and
    # the report's part gives the same traces as alone
    h, w = curves.shape
    big = np.zeros((h + 1000, w), bool)
    big[h + 8 :: 2, ::2] = True
    big[:h] = curves
    tr_big = ec._ecg_traces(big)
    np.testing.assert_array_equal(tr_big.trace[:h], tr.trace)
    assert (tr_big.n_traces, tr_big.n_spikes) == (tr.n_traces, tr.n_spikes)


@pytest.mark.parametrize("seed", [0, 1])
def test_check_on_a_rendered_report_is_unchanged_by_the_scan(seed) -> None:
    from ecg_core.reports.synth import SynthSpec, make_report

    img, _ = make_report(SynthSpec("normal", seed=seed))
    a, b = ec.check_ecg(img), ec.check_ecg(img, keep_scan=True)
    assert a.is_ecg and a.score == b.score and a.features == b.features
    assert b.scan.trace.any() and b.scan.trace.shape == b.scan.ink.shape


def _line_masks(rng: np.random.Generator):
    """Random 0/1 masks: noise of every density, and sparse seeds grown into long horizontal / vertical runs (some
    touching the borders)."""
    for it in range(600):
        h, w = int(rng.integers(1, 90)), int(rng.integers(1, 320))
        kind = it % 3
        if kind == 0:
            yield (rng.random((h, w)) < rng.uniform(0.3, 0.995)).astype(np.uint8)
        else:
            seeds = (rng.random((h, w)) < 0.02).astype(np.uint8)
            k = (int(rng.integers(1, 300)), 1) if kind == 1 else (1, int(rng.integers(1, 90)))
            yield cv2.dilate(seeds, np.ones(k[::-1], np.uint8))


def test_open_line_is_opencvs_opening_by_a_line() -> None:
    from ecg_core.reports import traces

    rng = np.random.default_rng(16)
    for m in _line_masks(rng):
        for horizontal in (True, False):
            length = int(rng.integers(1, 2 * max(m.shape) + 3))  # even and odd, longer than the mask too
            k = (length, 1) if horizontal else (1, length)
            want = cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, k))
            got = traces.open_line(m, length, horizontal=horizontal)
            assert got.dtype == np.uint8 and np.array_equal(got, want), (m.shape, length, horizontal)
    view = (rng.random((300, 500)) < 0.9).astype(np.uint8)[10:200, 20:400]  # a non-contiguous view
    for length, horizontal in ((95, True), (94, False)):
        k = (length, 1) if horizontal else (1, length)
        want = cv2.morphologyEx(view, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, k))
        assert np.array_equal(traces.open_line(view, length, horizontal=horizontal), want)


def test_components_are_opencvs_32_bit_labels(monkeypatch) -> None:
    from ecg_core.reports import traces
    from ecg_core.reports.synth import SynthSpec, make_report

    img, _ = make_report(SynthSpec("normal", seed=5))
    _, curves = traces.ink_masks(traces.to_work(img))  # 1100 px wide: 16-bit labels might overflow by the bound
    mask = cv2.morphologyEx(curves.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    noisy = np.zeros((700, 700), np.uint8)
    noisy[::2, ::2] = 1  # 122 500 components: 16-bit labels overflow
    for m in (mask, noisy, mask[:200, :300]):
        want_n, want_labels, want_stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8, ltype=cv2.CV_32S)
        for safe in (True, False):  # OpenCV raises on an overflow / does not (then 32-bit labels whenever they might)
            monkeypatch.setattr(traces, "_label16_safe", lambda s=safe: s)
            n, labels, stats = traces.components(m)
            assert n == want_n and np.array_equal(labels, want_labels) and np.array_equal(stats, want_stats)
    monkeypatch.undo()
    assert isinstance(traces._label16_safe(), bool)


def test_neutral_lookup_is_the_float_comparison_for_every_pixel() -> None:
    from ecg_core.reports import traces

    v = np.repeat(np.arange(256, dtype=np.uint8), 256).reshape(256, 256)  # every (max, min) channel pair
    mn = np.tile(np.arange(256, dtype=np.uint8), 256).reshape(256, 256)
    want = mn.astype(np.float32) > 0.6 * v.astype(np.float32)
    assert np.array_equal(mn >= cv2.LUT(v, traces._NEUTRAL_MIN), want)
