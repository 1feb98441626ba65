"""The near-copy thresholds the README quotes, measured on the real development set (issue 20).

On ``../shared/data/mendeley-dev`` (skipped cleanly where it is absent) the fingerprint of
:func:`ecg_core.ml.dataset.fingerprint` must separate distinct reports from copies with a margin on both sides of
``DEFAULT_NEAR_THRESHOLD`` (0.95): distinct reports (one file per duplicate group) correlate at most 0.921, and
half-size JPEG-50, half-size JPEG-30 and 1.7x upscaled copies of every report correlate with it at least 0.971.

(The README said 0.914 for distinct reports; measured again here it is 0.9206, Normal(145) vs Normal(208): the
README now says 0.921.) A change to the fingerprint (crop, thumbnail size, centring, norm) or to the loader that
moves either side across these numbers fails this test.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import SHARED_DATA

from ecg_core.imaging.loader import load_image
from ecg_core.ml import dataset

MENDELEY_DEV = SHARED_DATA / "mendeley-dev"
DISTINCT_MAX = 0.921  # README: "distinct reports of this set correlate at most 0.921"
COPY_MIN = 0.971  # README: "half-size JPEG-50, JPEG-30 and 1.7x upscaled copies ... at least 0.971"


@pytest.fixture(scope="module")
def reports():
    if not MENDELEY_DEV.is_dir():
        pytest.skip(f"real dataset not present at {MENDELEY_DEV} (only in the developers' and CI's checkouts)")
    idx = dataset.scan(MENDELEY_DEV)
    reps = idx[idx["error"] == ""].sort_values("rel_path").drop_duplicates("group")
    assert len(reps) == 343  # the README's audit numbers
    return reps["rel_path"].tolist(), [load_image(p).rgb for p in reps["path"]]


def _jpeg(rgb: np.ndarray, quality: int, scale: float) -> np.ndarray:
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def test_distinct_reports_stay_below_the_threshold(reports):
    names, images = reports
    f = np.stack([dataset.fingerprint(im) for im in images])
    assert np.allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-4)
    sim = f @ f.T
    np.fill_diagonal(sim, -1.0)
    i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
    worst = float(sim[i, j])
    assert worst <= DISTINCT_MAX, f"{names[i]} and {names[j]} correlate {worst:.4f} > {DISTINCT_MAX}"
    assert worst > 0.85  # the set's reports share one layout: a fingerprint that ignores it would be suspicious
    assert DISTINCT_MAX < dataset.DEFAULT_NEAR_THRESHOLD < COPY_MIN


@pytest.mark.parametrize(("kind", "make"), [
    ("half-size JPEG-50", lambda im: _jpeg(im, 50, 0.5)),
    ("half-size JPEG-30", lambda im: _jpeg(im, 30, 0.5)),
    ("1.7x upscaled", lambda im: cv2.resize(im, None, fx=1.7, fy=1.7, interpolation=cv2.INTER_CUBIC)),
])
def test_copies_stay_above_the_threshold(reports, kind, make):
    names, images = reports
    sims = [float(dataset.fingerprint(make(im)) @ dataset.fingerprint(im)) for im in images]
    k = int(np.argmin(sims))
    assert sims[k] >= COPY_MIN, f"{kind} copy of {names[k]} correlates {sims[k]:.4f} < {COPY_MIN}"
