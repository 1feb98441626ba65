"""Shared fixtures: tiny synthetic report-like images and dataset folders built in tmp_path."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SHARED_DATA = REPO.parent / "shared" / "data"

# Tests never write into the user's app folder: the demo dataset, caches and uploads go to a temporary home.
if "ECG_INSIGHT_HOME" not in os.environ or not os.environ.get("ECG_INSIGHT_TESTS_KEEP_HOME"):
    os.environ["ECG_INSIGHT_HOME"] = tempfile.mkdtemp(prefix="ecg-insight-test-home-")

# No background warm-up of the default model (TensorFlow in every AppTest process); a test that needs it opts in
# with monkeypatch.setenv("ECG_INSIGHT_WARMUP", "1") or Warmup(..., enabled=True).
os.environ["ECG_INSIGHT_WARMUP"] = "0"


def report_like(seed: int, *, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A small RGB image that looks like an ECG printout: pink grid, header text band, random traces."""
    w, h = size
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 255, np.uint8)
    for x in range(0, w, 8):
        img[int(0.18 * h):, x] = (230, 170, 170) if x % 40 else (215, 120, 120)
    for y in range(int(0.18 * h), h, 8):
        img[y, :] = (230, 170, 170) if y % 40 else (215, 120, 120)
    cv2.putText(img, f"ID {seed}", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    for row in range(3):
        y0 = int(h * (0.3 + 0.22 * row))
        xs = np.arange(10, w - 10)
        ys = y0 + (rng.normal(0, 1, xs.size).cumsum() * 0.8 + 12 * np.sin(xs / rng.uniform(5, 15))).astype(int)
        pts = np.stack([xs, np.clip(ys, 0, h - 1)], axis=1).astype(np.int32)
        cv2.polylines(img, [pts], False, (0, 0, 0), 2)
    return img


def write_image(path: Path, rgb: np.ndarray, *, quality: int = 92) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    return path


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """4 classes (Mendeley folder names), 6 distinct images each, plus exact and near copies.

    Exact copies: class MI has 3 byte-identical copies of its image 0. Near copy: Normal image 1 saved again at
    half size and JPEG quality 60.
    """
    root = tmp_path / "ds"
    folders = [
        "ECG Images of Myocardial Infarction Patients (240x12=2880)",
        "ECG Images of Patient that have abnormal heartbeat (233x12=2796)",
        "Normal Person ECG Images (284x12=3408)",
        "ECG Images of Patient that have History of MI (172x12=2064)",
    ]
    seed = 0
    for ci, folder in enumerate(folders):
        for i in range(6):
            seed += 1
            write_image(root / folder / f"img{i}.png", report_like(seed, size=(480, 360)))
    mi = root / folders[0]
    data = (mi / "img0.png").read_bytes()
    for k in range(3):
        (mi / f"copy{k}.png").write_bytes(data)
    normal_img1 = cv2.cvtColor(cv2.imread(str(root / folders[2] / "img1.png")), cv2.COLOR_BGR2RGB)
    small = cv2.resize(normal_img1, (240, 180), interpolation=cv2.INTER_AREA)
    write_image(root / folders[2] / "img1_small.jpg", small, quality=60)
    return root
