"""Images that are *not* ECG reports, generated in code (numpy + OpenCV): the negatives of the ECG input check.

:func:`non_ecg_image` ``(kind, seed)`` draws one image of a kind of :data:`KINDS`; :func:`non_ecg_set` a list of
(kind, seed, image). Kinds:

* ``noise`` (uniform / Gaussian / salt-and-pepper), ``blank`` (white or tinted paper, a little noise);
* ``photo`` — smooth sky gradients, soft blobs, sensor noise (photo-like scenes); ``texture`` — wood grain,
  fabric, brick, marble-like noise;
* ``document`` — text lines (cv2.putText) with headings, paragraphs, a table with rules; ``screenshot`` — UI blocks
  (title bar, side bar, buttons, panels of text, a small chart);
* ``line_chart`` — **the hard negatives**: 1-4 series (random walks, sines, noisy sines, steps, exponentials,
  sawtooth) on grid paper, including ECG-like pink / red / green / grey 1 mm / 5 mm grids, with axes, ticks and
  titles; ``bar_chart``; ``drawing`` — lines, circles, polygons, a sketch of curves;
* ``photo_of`` — a document, chart or drawing photographed on a desk (:func:`ecg_core.reports.synth_photo.photograph`).

Seeds are independent: a calibration set and a fresh held-out set are two seed ranges.
"""

from __future__ import annotations

import cv2
import numpy as np

from ecg_core.core.errors import ConfigError

KINDS: tuple[str, ...] = ("noise", "blank", "photo", "texture", "document", "screenshot", "line_chart",
                          "bar_chart", "drawing", "photo_of")
_WORDS = ("the patient report result value total revenue quarter summary analysis method data table figure "
          "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt").split()
_GRIDS = (((255, 247, 247), (246, 196, 196), (232, 128, 136)), ((255, 252, 250), (250, 190, 180), (228, 80, 72)),
          ((248, 255, 248), (196, 232, 200), (100, 178, 112)), ((252, 252, 252), (214, 214, 214), (150, 150, 150)),
          ((255, 255, 255), (225, 225, 225), (225, 225, 225)), ((248, 251, 255), (198, 214, 245), (110, 140, 220)),
          ((250, 243, 222), (238, 214, 178), (214, 160, 112)))


def _size(rng: np.random.Generator) -> tuple[int, int]:
    w = int(rng.integers(560, 1400))
    return w, int(w * rng.uniform(0.55, 1.4))


def _noise(rng: np.random.Generator) -> np.ndarray:
    w, h = _size(rng)
    k = int(rng.integers(3))
    if k == 0:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if k == 1:
        return np.clip(rng.normal(rng.uniform(120, 220), rng.uniform(10, 50), (h, w, 3)), 0, 255).astype(np.uint8)
    img = np.full((h, w, 3), 245, np.uint8)
    m = rng.random((h, w)) < rng.uniform(0.005, 0.05)
    img[m] = 0
    return img


def _blank(rng: np.random.Generator) -> np.ndarray:
    w, h = _size(rng)
    base = rng.uniform(215, 255, 3)
    return np.clip(base + rng.normal(0, rng.uniform(0, 3), (h, w, 1)), 0, 255).astype(np.uint8)


def _photo(rng: np.random.Generator) -> np.ndarray:
    w, h = _size(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (yy / h)[..., None]
    img = rng.uniform(0, 255, 3) * (1 - t) + rng.uniform(0, 255, 3) * t
    for _ in range(int(rng.integers(5, 20))):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 250)
        m = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        img = img * (1 - m) + rng.uniform(0, 255, 3) * m
    if rng.random() < 0.5:  # a horizon / some edges
        y0 = int(rng.uniform(0.3, 0.7) * h)
        img[y0:] = img[y0:] * rng.uniform(0.4, 0.9)
    img = cv2.GaussianBlur((img + rng.normal(0, 6, img.shape)).astype(np.float32), (0, 0), 1.0)
    return np.clip(img, 0, 255).astype(np.uint8)


def _texture(rng: np.random.Generator) -> np.ndarray:
    w, h = _size(rng)
    k = int(rng.integers(4))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 230, 3).astype(np.float32)
    if k == 0:  # wood grain
        n = cv2.resize(rng.normal(0, 1, (h // 16 + 2, 4)).astype(np.float32), (w, h))
        f = np.sin(yy / rng.uniform(3, 12) + 6 * n)
    elif k == 1:  # fabric
        p = rng.uniform(3, 10)
        f = np.sin(xx / p) * np.sin(yy / p)
    elif k == 2:  # brick
        bh = int(rng.integers(15, 40))
        bw = 2 * bh
        row = (yy // bh).astype(int)
        f = ((((xx + (row % 2) * bw / 2) % bw) < 3) | ((yy % bh) < 3)).astype(np.float32) * -2 + 1
    else:  # marble-ish noise
        n = cv2.resize(rng.normal(0, 1, (h // 24 + 2, w // 24 + 2)).astype(np.float32), (w, h))
        f = np.sin(xx / rng.uniform(20, 60) + 5 * n)
    img = base + f[..., None] * rng.uniform(15, 60) + rng.normal(0, 4, (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _text_lines(img: np.ndarray, rng: np.random.Generator, x0: int, y0: int, x1: int, y1: int,
                colour: tuple[int, int, int] = (20, 20, 20)) -> None:
    scale = float(rng.uniform(0.35, 0.9))
    step = int(max(10, 32 * scale))
    font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX]))
    for y in range(y0 + step, y1, step):
        n = int(rng.integers(3, 16))
        line = " ".join(rng.choice(_WORDS, n))
        cv2.putText(img, line, (x0, y), font, scale, colour, 1 + int(rng.integers(2)), cv2.LINE_AA)
        if rng.random() < 0.08:
            y += step


def _document(rng: np.random.Generator) -> np.ndarray:
    w, h = _size(rng)
    img = np.full((h, w, 3), rng.uniform(235, 255, 3), np.uint8)
    cv2.putText(img, "REPORT " + str(int(rng.integers(100, 999))), (40, 50), cv2.FONT_HERSHEY_DUPLEX, 1.2,
                (10, 10, 10), 2, cv2.LINE_AA)
    split = int(rng.uniform(0.4, 0.8) * h)
    _text_lines(img, rng, 40, 70, w - 40, split)
    if rng.random() < 0.7:  # a table with rules
        rows, cols = int(rng.integers(3, 10)), int(rng.integers(2, 6))
        ys = np.linspace(split + 10, h - 30, rows + 1).astype(int)
        xs = np.linspace(40, w - 40, cols + 1).astype(int)
        for y in ys:
            cv2.line(img, (40, int(y)), (w - 40, int(y)), (60, 60, 60), 1)
        for x in xs:
            cv2.line(img, (int(x), int(ys[0])), (int(x), int(ys[-1])), (60, 60, 60), 1)
        for i in range(rows):
            for j in range(cols):
                cv2.putText(img, str(rng.choice(_WORDS)), (int(xs[j]) + 5, int(ys[i + 1]) - 6),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    else:
        _text_lines(img, rng, 40, split, w - 40, h - 20)
    return img


def _screenshot(rng: np.random.Generator) -> np.ndarray:
    w, h = _size(rng)
    img = np.full((h, w, 3), rng.uniform(230, 250, 3), np.uint8)
    bar = tuple(int(c) for c in rng.uniform(20, 200, 3))
    cv2.rectangle(img, (0, 0), (w, 36), bar, -1)
    cv2.putText(img, "App - Dashboard", (12, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    side = int(rng.uniform(0.12, 0.25) * w)
    cv2.rectangle(img, (0, 36), (side, h), tuple(int(c) for c in rng.uniform(200, 240, 3)), -1)
    for k in range(int(rng.integers(4, 12))):
        y = 60 + 34 * k
        cv2.putText(img, str(rng.choice(_WORDS)).title(), (14, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 40, 40), 1,
                    cv2.LINE_AA)
    for _ in range(int(rng.integers(2, 6))):  # panels with text, buttons
        x0, y0 = int(rng.uniform(side + 10, w - 200)), int(rng.uniform(50, h - 150))
        x1, y1 = min(w - 10, x0 + int(rng.uniform(150, 500))), min(h - 10, y0 + int(rng.uniform(80, 300)))
        cv2.rectangle(img, (x0, y0), (x1, y1), (255, 255, 255), -1)
        cv2.rectangle(img, (x0, y0), (x1, y1), (180, 180, 180), 1)
        _text_lines(img, rng, x0 + 8, y0, x1 - 8, y1 - 8)
        bx = x0 + 8
        cv2.rectangle(img, (bx, y1 - 30), (bx + 80, y1 - 8), bar, -1)
    if rng.random() < 0.5:
        _chart_into(img, rng, side + 20, int(0.55 * h), w - 20, h - 20, grid=False)
    return img


def _series(rng: np.random.Generator, n: int) -> np.ndarray:
    """One chart series of n points in [0, 1]."""
    k = int(rng.integers(7))
    t = np.linspace(0, 1, n)
    if k == 0:
        y = np.cumsum(rng.normal(0, 1, n))
    elif k == 1:
        y = np.sin(2 * np.pi * t * rng.uniform(1, 12) + rng.uniform(0, 6))
    elif k == 2:
        y = np.sin(2 * np.pi * t * rng.uniform(2, 20)) + rng.normal(0, rng.uniform(0.05, 0.5), n)
    elif k == 3:
        y = np.repeat(rng.normal(0, 1, n // 20 + 1), 20)[:n]
    elif k == 4:
        y = np.exp(t * rng.uniform(1, 4)) + rng.normal(0, 0.1, n)
    elif k == 5:
        y = (t * rng.uniform(3, 15)) % 1.0
    else:  # stock-like
        y = np.cumsum(rng.normal(0, 1, n)) + rng.normal(0, 2, n)
    y = (y - y.min()) / max(float(y.max() - y.min()), 1e-9)
    return y


def _chart_into(img: np.ndarray, rng: np.random.Generator, x0: int, y0: int, x1: int, y1: int, *,
                grid: bool = True, minor: bool = False) -> None:
    """Axes, an optional grid and 1-4 series inside the rectangle."""
    if grid:
        paper, light, dark = _GRIDS[int(rng.integers(len(_GRIDS)))]
        img[y0:y1, x0:x1] = paper
        step = int(rng.integers(4, 9)) if minor else int(rng.integers(20, 70))
        for i, x in enumerate(range(x0, x1, step)):
            cv2.line(img, (x, y0), (x, y1), dark if minor and i % 5 == 0 else light, 1)
        for i, y in enumerate(range(y0, y1, step)):
            cv2.line(img, (x0, y), (x1, y), dark if minor and i % 5 == 0 else light, 1)
    cv2.line(img, (x0, y1), (x1, y1), (0, 0, 0), 2)
    cv2.line(img, (x0, y0), (x0, y1), (0, 0, 0), 2)
    n = max(8, (x1 - x0) // int(rng.integers(1, 4)))
    xs = np.linspace(x0 + 2, x1 - 2, n)
    for _ in range(int(rng.integers(1, 5))):
        lo, hi = sorted(rng.uniform(0.05, 0.95, 2))
        ys = y1 - (lo + (hi - lo + 0.05) * _series(rng, n)) * (y1 - y0) * 0.95
        colour = (0, 0, 0) if rng.random() < 0.4 else tuple(int(c) for c in rng.uniform(0, 200, 3))
        pts = np.stack([xs, ys], 1).astype(np.int32)
        cv2.polylines(img, [pts], False, colour, int(rng.integers(1, 4)), cv2.LINE_AA)


def _line_chart(rng: np.random.Generator) -> np.ndarray:
    w, h = _size(rng)
    img = np.full((h, w, 3), 255, np.uint8)
    panels = int(rng.choice([1, 1, 2, 3, 4]))  # several stacked charts, like a report of trend lines
    minor = rng.random() < 0.5
    top = 50
    ph = (h - top - 20) // panels
    for p in range(panels):
        _chart_into(img, rng, 60, top + p * ph + 10, w - 20, top + (p + 1) * ph - 10, grid=True, minor=minor)
    cv2.putText(img, "Trend " + str(int(rng.integers(2000, 2030))), (w // 3, 35), cv2.FONT_HERSHEY_SIMPLEX, 0.9,
                (0, 0, 0), 2, cv2.LINE_AA)
    return img


def _bar_chart(rng: np.random.Generator) -> np.ndarray:
    w, h = _size(rng)
    img = np.full((h, w, 3), 255, np.uint8)
    n = int(rng.integers(4, 30))
    xs = np.linspace(60, w - 30, n + 1).astype(int)
    for i in range(n):
        top = int(h - 60 - rng.uniform(0.05, 0.9) * (h - 120))
        cv2.rectangle(img, (int(xs[i]) + 3, top), (int(xs[i + 1]) - 3, h - 60),
                      tuple(int(c) for c in rng.uniform(0, 220, 3)), -1)
    cv2.line(img, (60, h - 60), (w - 30, h - 60), (0, 0, 0), 2)
    cv2.line(img, (60, 40), (60, h - 60), (0, 0, 0), 2)
    return img


def _drawing(rng: np.random.Generator) -> np.ndarray:
    w, h = _size(rng)
    img = np.full((h, w, 3), rng.uniform(225, 255, 3), np.uint8)
    for _ in range(int(rng.integers(5, 40))):
        colour = tuple(int(c) for c in rng.uniform(0, 160, 3))
        k = int(rng.integers(4))
        p = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        if k == 0:
            cv2.line(img, p, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), colour, int(rng.integers(1, 4)))
        elif k == 1:
            cv2.circle(img, p, int(rng.uniform(5, 150)), colour, int(rng.integers(1, 4)), cv2.LINE_AA)
        elif k == 2:
            pts = rng.uniform(0, 1, (int(rng.integers(3, 8)), 2)) * [w, h]
            cv2.polylines(img, [pts.astype(np.int32)], True, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
        else:  # a hand-drawn curve
            n = 200
            t = np.linspace(0, 1, n)
            xs = p[0] + np.cumsum(rng.normal(2, 1.5, n))
            ys = p[1] + 40 * np.sin(t * rng.uniform(2, 20)) + np.cumsum(rng.normal(0, 1, n))
            cv2.polylines(img, [np.stack([xs, ys], 1).astype(np.int32)], False, colour, 2, cv2.LINE_AA)
    return img


_MAKERS = {"noise": _noise, "blank": _blank, "photo": _photo, "texture": _texture, "document": _document,
           "screenshot": _screenshot, "line_chart": _line_chart, "bar_chart": _bar_chart, "drawing": _drawing}


def non_ecg_image(kind: str, seed: int) -> np.ndarray:
    """One non-ECG image (uint8 RGB) of ``kind`` (:data:`KINDS`), drawn from ``seed``."""
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}; received {kind!r}")
    rng = np.random.default_rng([int(seed), 0x0EC6, KINDS.index(kind)])
    if kind != "photo_of":
        return _MAKERS[kind](rng)
    from ecg_core.reports.synth_photo import photograph

    inner = ("document", "line_chart", "line_chart", "drawing", "screenshot")[int(rng.integers(5))]
    page = _MAKERS[inner](rng)
    return photograph(page, rng)[0]


def non_ecg_set(seeds: range | list[int], kinds: tuple[str, ...] = KINDS) -> list[tuple[str, int, np.ndarray]]:
    """(kind, seed, image) for every kind and seed; line charts (the hard negatives) twice as often."""
    out = []
    for s in seeds:
        for k in kinds:
            out.append((k, int(s), non_ecg_image(k, int(s))))
            if k == "line_chart":
                out.append((k, int(s) + 100_000, non_ecg_image(k, int(s) + 100_000)))
    return out
