"""Phone-photo artifacts for synthetic reports: the page photographed on a desk.

:func:`photograph` takes a rendered page and returns what a phone camera makes of it, with the 3 x 3 homography
that maps page pixels to photo pixels (so the sidecar's lead boxes follow the page). Every parameter is drawn from
the ``rng`` passed in, bounded by :class:`PhotoOptions`:

* **geometry** — the page is scaled to 72-94 % of the frame, rotated by up to ``max_rotation_deg`` (15 degrees by
  default) and seen in perspective (each corner moved by up to ``max_perspective`` of the page size) on a desk
  (dark wood, grey, light table) that fills the rest of the frame;
* **creases** — 0-2 fold lines across the page (a thin dark line with a shaded side), drawn before the warp;
* **light** — uneven illumination (a smooth gain field) and a warm/cool colour cast; 0-1 soft shadow (a phone or a
  hand: a blurred polygon 25-50 % darker);
* **moire** — a faint sinusoidal interference pattern (a photo of a screen), in some photos;
* **optics** — Gaussian blur, sensor noise, a lower resolution (down to ``min_scale`` of the page size) and a JPEG
  round trip with quality in [``min_jpeg_quality``, 92].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ecg_core.core.config import FrozenConfig
from ecg_core.core.errors import ConfigError

_DESKS = ((92, 64, 44), (128, 128, 124), (205, 200, 190), (60, 62, 70), (150, 110, 80))


@dataclass(frozen=True)
class PhotoOptions(FrozenConfig):
    """Bounds of the photo artifacts (see the module docstring)."""

    max_rotation_deg: float = 15.0
    max_perspective: float = 0.06
    min_page_fraction: float = 0.72
    max_shadow: float = 0.5
    max_shading: float = 0.35
    max_blur_px: float = 1.2
    max_noise: float = 5.0
    min_scale: float = 0.5
    min_jpeg_quality: int = 40
    moire_probability: float = 0.25
    max_creases: int = 2

    def __post_init__(self) -> None:
        for name, lo, hi in (("max_rotation_deg", 0, 30), ("max_perspective", 0, 0.15), ("min_page_fraction", 0.5, 1),
                             ("max_shadow", 0, 0.8), ("max_shading", 0, 0.6), ("max_blur_px", 0, 4),
                             ("max_noise", 0, 20), ("min_scale", 0.25, 1), ("moire_probability", 0, 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= float(v) <= hi:
                raise ConfigError(f"PhotoOptions.{name} must be a number in [{lo:g}, {hi:g}]; received {v!r}")
        for name, lo, hi in (("min_jpeg_quality", 10, 95), ("max_creases", 0, 5)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"PhotoOptions.{name} must be an int in [{lo}, {hi}]; received {v!r}")


def _page_quad(w: int, h: int, o: PhotoOptions, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
    """Where the page's 4 corners land in the frame (float32 (4, 2)), fitted inside it."""
    frac = float(rng.uniform(o.min_page_fraction, 0.94))
    angle = float(rng.uniform(-o.max_rotation_deg, o.max_rotation_deg))
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) - [w / 2.0, h / 2.0]
    jitter = rng.uniform(-o.max_perspective, o.max_perspective, (4, 2)) * [w, h]
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    quad = (corners + jitter) @ rot.T
    span = quad.max(axis=0) - quad.min(axis=0)
    quad *= min(frac * w / span[0], frac * h / span[1], frac)  # the whole page stays in the frame
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    room = np.array([w, h]) - (hi - lo)
    offset = -lo + rng.uniform(0.1, 0.9, 2) * room
    return (quad + offset).astype(np.float32), {"rotation_deg": round(angle, 3), "page_fraction": round(frac, 3)}


def _crease(page: np.ndarray, rng: np.random.Generator) -> None:
    """A fold line across the page, in place: a dark hairline and a slightly shaded side."""
    h, w = page.shape[:2]
    if rng.random() < 0.5:
        p0, p1 = (int(rng.uniform(0.2, 0.8) * w), 0), (int(rng.uniform(0.2, 0.8) * w), h)
    else:
        p0, p1 = (0, int(rng.uniform(0.2, 0.8) * h)), (w, int(rng.uniform(0.2, 0.8) * h))
    shade = np.zeros((h, w), np.float32)
    cv2.line(shade, p0, p1, 1.0, max(2, w // 60), cv2.LINE_AA)
    shade = cv2.GaussianBlur(shade, (0, 0), max(2.0, w / 200))
    line = np.zeros((h, w), np.float32)
    cv2.line(line, p0, p1, 1.0, 1, cv2.LINE_AA)
    gain = 1.0 - 0.10 * shade / max(float(shade.max()), 1e-6) - 0.25 * line
    page[:] = np.clip(page * gain[..., None], 0, 255)


def _light_field(w: int, h: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth illumination gain in [1 - strength, 1] (float32 (h, w))."""
    gh, gw = max(2, h // 16), max(2, w // 16)
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    yy, xx = yy / (gh - 1), xx / (gw - 1)
    gx, gy = rng.uniform(-1, 1, 2)
    cx, cy = rng.uniform(0.0, 1.0, 2)
    f = gx * (xx - 0.5) + gy * (yy - 0.5) + 1.5 * ((xx - cx) ** 2 + ((yy - cy) * h / w) ** 2)
    f = (f - f.min()) / max(float(f.max() - f.min()), 1e-6)
    return cv2.resize((1.0 - strength * f).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def _shadow(w: int, h: int, rng: np.random.Generator, depth: float) -> np.ndarray:
    """Gain (float32 (h, w)) of a soft shadow: a blurred polygon entering from one edge."""
    mask = np.zeros((h, w), np.float32)
    edge = int(rng.integers(4))
    n = int(rng.integers(3, 6))
    depth_px = rng.uniform(0.15, 0.5) * (w if edge in (0, 1) else h)
    pts = []
    for _ in range(n):
        if edge in (0, 1):  # from the left / right
            x = rng.uniform(0, depth_px)
            pts.append((x if edge == 0 else w - x, rng.uniform(0, h)))
        else:
            y = rng.uniform(0, depth_px)
            pts.append((rng.uniform(0, w), y if edge == 2 else h - y))
    if edge in (0, 1):
        pts += [(0 if edge == 0 else w, h), (0 if edge == 0 else w, 0)]
    else:
        pts += [(w, 0 if edge == 2 else h), (0, 0 if edge == 2 else h)]
    hull = cv2.convexHull(np.array(pts, np.float32)).astype(np.int32)
    cv2.fillConvexPoly(mask, hull, 1.0, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), max(3.0, w / 40))
    return 1.0 - depth * mask


def photograph(page: np.ndarray, rng: np.random.Generator, options: PhotoOptions | None = None
               ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(photo uint8 RGB, 3 x 3 homography page px -> photo px, parameters) of a rendered ``page``."""
    o = options if options is not None else PhotoOptions()
    h, w = page.shape[:2]
    img = page.astype(np.float32)
    n_creases = int(rng.integers(0, o.max_creases + 1))
    for _ in range(n_creases):
        _crease(img, rng)
    quad, params = _page_quad(w, h, o, rng)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    hom = cv2.getPerspectiveTransform(src, quad)
    desk = np.array(_DESKS[int(rng.integers(len(_DESKS)))], np.float32) * rng.uniform(0.85, 1.1)
    back = np.empty_like(img)
    back[:] = desk
    texture = cv2.resize(rng.normal(0, 10, (max(2, h // 8), max(2, w // 8))).astype(np.float32), (w, h))
    back += texture[..., None]
    warped = cv2.warpPerspective(img, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=(0, 0, 0))
    cover = cv2.warpPerspective(np.ones((h, w), np.float32), hom, (w, h), flags=cv2.INTER_LINEAR)
    out = warped + back * (1.0 - cover[..., None])
    shading = float(rng.uniform(0.05, o.max_shading))
    gain = _light_field(w, h, rng, shading)
    shadow = float(rng.uniform(0.2, o.max_shadow)) if rng.random() < 0.6 else 0.0
    if shadow > 0:
        gain = gain * _shadow(w, h, rng, shadow)
    tint = np.array([1.0, 1.0, 1.0], np.float32) + rng.uniform(-0.06, 0.06) * np.array([1, 0, -1], np.float32)
    out *= gain[..., None]
    out *= tint
    moire = rng.random() < o.moire_probability
    if moire:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        period, theta = float(rng.uniform(3.0, 9.0)), float(rng.uniform(0, np.pi))
        wave = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)
        out += float(rng.uniform(4, 12)) * wave[..., None]
    sigma = float(rng.uniform(0.0, o.max_blur_px))
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    scale = float(rng.uniform(o.min_scale, 1.0))
    if scale < 0.97:
        out = cv2.resize(out, (max(8, int(round(w * scale))), max(8, int(round(h * scale)))),
                         interpolation=cv2.INTER_AREA)
        s = np.diag([out.shape[1] / w, out.shape[0] / h, 1.0])
        hom = s @ hom
    else:
        scale = 1.0
    noise = float(rng.uniform(0.0, o.max_noise))
    if noise > 0.2:
        out = out + rng.standard_normal(out.shape[:2] + (1,), dtype=np.float32) * noise
    img8 = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    quality = int(rng.integers(o.min_jpeg_quality, 93))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - cv2 failure
        raise RuntimeError("OpenCV could not encode JPEG")
    img8 = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    params.update(creases=n_creases, shading=round(shading, 3), shadow=round(shadow, 3), moire=bool(moire),
                  blur_sigma_px=round(sigma, 3), scale=round(scale, 3), noise_sd=round(noise, 3),
                  jpeg_quality=quality, desk_rgb=[int(round(float(c))) for c in np.clip(desk, 0, 255)])
    return img8, hom, params


def transform_box(box: Sequence[float], hom: np.ndarray | None, w: int, h: int) -> list[int]:
    """The axis-aligned box (ints, clipped to the w x h image) holding ``box`` (x0, y0, x1, y1) mapped by the
    3 x 3 homography ``hom`` (``None``: unchanged)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if hom is not None:
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
        pts = cv2.perspectiveTransform(pts.reshape(-1, 1, 2), np.asarray(hom, np.float64)).reshape(-1, 2)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
    return [int(min(max(np.floor(x0), 0), w)), int(min(max(np.floor(y0), 0), h)),
            int(min(max(np.ceil(x1), 0), w)), int(min(max(np.ceil(y1), 0), h))]
