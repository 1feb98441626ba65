"""Where the page lies in the picture: its rotation (deskew) and, for a page photographed on a desk, the
perspective that straightens it.

* :func:`estimate_skew` — the rotation (within +-10 degrees) that makes the horizontal profile of the page's
  darkness sharpest (grid lines, baselines and text run along the paper); used by the digitiser on every page.
* :func:`find_page_warp` — a photographed page: when the picture's border differs from the paper at its centre
  (:func:`border_contrast`, ~0.1 ms: a desk around the page, not a scan's margin), on a ~360 px copy, a watershed
  from the picture's border (the desk) and its centre (the paper) over the colour gradient finds the page's
  outline, its convex hull is simplified to a
  quadrilateral, and :func:`cv2.getPerspectiveTransform` maps it to an upright rectangle of the page's own size
  (scaled up to :data:`MIN_PAGE_WIDTH` px wide when smaller: on a low-resolution photo the supersampled page,
  area-averaged by the trace analysis's working copy, loses fewer faint traces).
  The warp is used **only when it is clearly there** (:data:`WARP_RULES`): the quadrilateral covers 20-96 % of the
  picture and the page outline fills it, the band just outside it does not look like the paper just inside it (a
  desk, not a scan's margin), and the page is visibly tilted or seen in perspective (an edge off the axes by at
  least :data:`MIN_TILT_DEG`). A flat scan that fills its picture never takes this path.

:class:`PageWarp` carries the 3 x 3 homography from picture pixels to page pixels and maps points and boxes both
ways, so that everything found on the straightened page is reported in the picture's own pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

MIN_TILT_DEG = 2.0
MIN_BORDER_CONTRAST = 25.0  # border vs centre paper (Lab, 0-255): Mendeley scans <= 3.3, rendered photos >= 100
QUAD_WIDTH = 360  # px: the copy the page outline is looked for on
MIN_PAGE_WIDTH = 1800  # px: the straightened page is at least this wide (see find_page_warp)
WARP_RULES = {"min_area": 0.20, "max_area": 0.96, "min_fill": 0.93, "max_fill": 1.07, "min_contrast": 18.0}


# ------------------------------------------------------------------------------------------------ deskew
def estimate_skew(rgb: np.ndarray, *, max_deg: float = 10.0) -> float:
    """The page's rotation in degrees (counter-clockwise positive, cv2's convention): the angle whose rotation
    back makes the row profile of the darkness sharpest; coarse (0.5 degree, on a 400 px wide copy) then fine
    (0.05 degree, 800 px) search."""
    from ecg_core.reports.reading.calibration import darkness

    if max_deg <= 0:
        return 0.0

    def scorer(width: float):
        h, w = rgb.shape[:2]
        s = min(1.0, width / w)
        small = cv2.resize(rgb, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA) \
            if s < 1 else rgb
        d = darkness(small, 9 if width >= 800 else 5)
        sh, sw = d.shape

        def score(angle: float) -> float:
            m = cv2.getRotationMatrix2D((sw / 2.0, sh / 2.0), -angle, 1.0)
            r = cv2.warpAffine(d, m, (sw, sh), flags=cv2.INTER_LINEAR, borderValue=0.0)
            prof = r[:, sw // 8 : -sw // 8].mean(axis=1)
            return float(np.sum(np.diff(prof) ** 2))

        return score

    coarse = np.arange(-max_deg, max_deg + 1e-9, 0.5)
    score = scorer(400.0)
    best = float(coarse[int(np.argmax([score(a) for a in coarse]))])
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.05)
    score = scorer(800.0)
    return float(fine[int(np.argmax([score(a) for a in fine]))])


# ------------------------------------------------------------------------------------------------ perspective
@dataclass(frozen=True)
class PageWarp:
    """A photographed page: ``quad`` its 4 corners in picture pixels (top-left, top-right, bottom-right,
    bottom-left), ``homography`` picture px -> page px (3 x 3), ``page_size`` (width, height) of the straightened
    page, ``tilt_deg`` the largest angle of an edge off its axis, ``message`` what was found."""

    quad: np.ndarray
    homography: np.ndarray
    page_size: tuple[int, int]
    tilt_deg: float
    message: str

    def rectify(self, rgb: np.ndarray) -> np.ndarray:
        """The straightened page (uint8, ``page_size``), edges replicated."""
        return cv2.warpPerspective(rgb, self.homography, self.page_size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)

    def turned(self, deg: float) -> PageWarp:
        """The same warp followed by a rotation of the page by ``deg`` about its centre (the trace analysis
        drops perfectly horizontal flat baselines as ruled lines; a straightened photo is turned slightly for
        it)."""
        if not deg:
            return self
        w, h = self.page_size
        rot = np.vstack([cv2.getRotationMatrix2D((w / 2.0, h / 2.0), float(deg), 1.0), [0.0, 0.0, 1.0]])
        return PageWarp(self.quad, rot @ self.homography, self.page_size, self.tilt_deg, self.message)

    def to_picture(self, xy: np.ndarray) -> np.ndarray:
        """Points (n, 2) on the page -> picture pixels."""
        pts = np.asarray(xy, np.float64).reshape(-1, 1, 2)
        if pts.size == 0:
            return np.zeros((0, 2))
        return cv2.perspectiveTransform(pts, np.linalg.inv(self.homography)).reshape(-1, 2)

    def box_to_picture(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """The axis-aligned picture box holding a page box (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = (float(v) for v in box)
        pts = self.to_picture(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def _order(quad: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left."""
    s = quad.sum(axis=1)
    d = quad[:, 0] - quad[:, 1]
    return np.array([quad[np.argmin(s)], quad[np.argmax(d)], quad[np.argmax(s)], quad[np.argmin(d)]], np.float64)


def _tilt(q: np.ndarray) -> float:
    """Largest angle (degrees) of an edge of the ordered quad off its axis (horizontal for top/bottom)."""
    out = 0.0
    for i in range(4):
        dx, dy = q[(i + 1) % 4] - q[i]
        a = abs(np.degrees(np.arctan2(dy, dx))) % 180.0
        off = min(a, 180.0 - a) if i % 2 == 0 else abs(90.0 - a)
        out = max(out, float(off))
    return out


def _ring_contrast(small: np.ndarray, quad: np.ndarray) -> float:
    """Median colour distance (0-255 scale, Lab) between the band just outside the quad and the paper just inside
    it (its brightest half: the paper, not the grid lines)."""
    h, w = small.shape[:2]
    band = max(2, int(0.02 * w))
    inner, outer = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    poly = quad.astype(np.int32).reshape(-1, 1, 2)
    cv2.fillConvexPoly(inner, poly, 1)
    grown = cv2.dilate(inner, np.ones((2 * band + 1, 2 * band + 1), np.uint8))
    shrunk = cv2.erode(inner, np.ones((2 * band + 1, 2 * band + 1), np.uint8))
    outer = (grown > 0) & (inner == 0)
    near_in = (inner > 0) & (shrunk == 0)
    if outer.sum() < 20 or near_in.sum() < 20:
        return 0.0
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    ins = lab[near_in]
    ins = ins[ins[:, 0] >= np.median(ins[:, 0])]
    return float(np.linalg.norm(np.median(lab[outer], axis=0) - np.median(ins, axis=0)))


def border_contrast(rgb: np.ndarray) -> float:
    """Colour distance (Lab, 0-255 scale) between the picture's outer border and the paper at its centre, on a
    ~48 px thumbnail (~0.1 ms): a page photographed on a desk shows the desk all around, a scan its own paper. The
    cheap gate before :func:`find_page_warp` where every report pays for it."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    h, w = rgb.shape[:2]
    step = max(1, w // 48)
    thumb = np.ascontiguousarray(rgb[::step, ::step, :3])
    th, tw = thumb.shape[:2]
    if th < 8 or tw < 8:
        return 0.0
    lab = cv2.cvtColor(thumb, cv2.COLOR_RGB2LAB).reshape(th, tw, 3).astype(np.float32)
    ring = np.concatenate([lab[:2].reshape(-1, 3), lab[-2:].reshape(-1, 3), lab[:, :2].reshape(-1, 3),
                           lab[:, -2:].reshape(-1, 3)])
    centre = lab[th // 4 : 3 * th // 4, tw // 4 : 3 * tw // 4].reshape(-1, 3)
    centre = centre[centre[:, 0] >= np.median(centre[:, 0])]
    return float(np.linalg.norm(np.median(ring, axis=0) - np.median(centre, axis=0)))


def _line_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Intersection of two lines (vx, vy, x0, y0) of :func:`cv2.fitLine`; None when (nearly) parallel."""
    d = a[0] * b[1] - a[1] * b[0]
    if abs(d) < 1e-6:
        return None
    t = ((b[2] - a[2]) * b[1] - (b[3] - a[3]) * b[0]) / d
    return np.array([a[2] + t * a[0], a[3] + t * a[1]])


def refine_quad(rgb: np.ndarray, quad: np.ndarray, reach: float) -> np.ndarray:
    """The page corners ``quad`` (picture px, found on the ~360 px copy: a corner is off by 1-5 mm of paper, which
    shifts a lead's time by up to 0.2 s) refined on the full picture: along each edge, 48 profiles across it
    (+-``reach`` px) of the Lab colour find the strongest step (desk to paper), a line is fitted through those
    points (Huber) and the corners are the lines' intersections. A corner that would move more than
    1.5 ``reach`` keeps its coarse position."""
    h, w = rgb.shape[:2]
    lab = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2LAB).astype(np.float32)
    r = max(2, int(round(reach)))
    offs = np.arange(-r, r + 1, dtype=np.float32)
    lines = []
    for i in range(4):
        p0, p1 = quad[i], quad[(i + 1) % 4]
        d = p1 - p0
        length = float(np.hypot(*d))
        if length < 8:
            return quad
        u = d / length
        n = np.array([-u[1], u[0]])
        ts = np.linspace(0.1, 0.9, 48)
        pts = p0[None, :] + ts[:, None] * d[None, :]
        mx = (pts[:, 0:1] + offs[None, :] * n[0]).astype(np.float32)
        my = (pts[:, 1:2] + offs[None, :] * n[1]).astype(np.float32)
        prof = cv2.remap(lab, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # (48, 2r+1, 3)
        prof = cv2.GaussianBlur(prof, (0, 0), sigmaX=1.0, sigmaY=0.01)
        step = np.linalg.norm(np.diff(prof, axis=1), axis=2)  # (48, 2r)
        k = step.argmax(axis=1)
        strong = step.max(axis=1) > 0.5 * np.median(step.max(axis=1))
        edge = pts + (offs[k] + 0.5)[:, None] * n[None, :]
        if strong.sum() < 12:
            return quad
        lines.append(cv2.fitLine(edge[strong].astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel())
    out = quad.copy()
    for i in range(4):  # corner i lies on edge i-1 (ending there) and edge i (starting there)
        c = _line_intersection(lines[i - 1], lines[i])
        if c is not None and float(np.hypot(*(c - quad[i]))) <= 1.5 * reach and 0 <= c[0] <= w and 0 <= c[1] <= h:
            out[i] = c
    return out


def find_page_warp(rgb: np.ndarray) -> tuple[PageWarp | None, str]:
    """(:class:`PageWarp`, what was found) of a photographed page, or (``None``, why not) when no page outline is
    clearly there (see the module docstring). ~5-15 ms; never raises for an unusual image."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    h, w = rgb.shape[:2]
    if min(h, w) < 32:
        return None, "picture too small"
    border = border_contrast(rgb)
    if border < MIN_BORDER_CONTRAST:
        return None, f"the picture's border is the page's own paper (contrast {border:.0f}): not a photo on a desk"
    s = QUAD_WIDTH / w
    step = max(1, w // (2 * QUAD_WIDTH))  # a strided view first: area interpolation of a large picture is slow
    small = cv2.resize(np.ascontiguousarray(rgb[::step, ::step, :3]), (QUAD_WIDTH, max(16, int(round(h * s)))),
                       interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    grad = np.zeros((sh, sw), np.float32)
    for c in range(3):
        ch = cv2.GaussianBlur(lab[..., c], (0, 0), 1.0)
        grad = np.maximum(grad, cv2.magnitude(cv2.Sobel(ch, cv2.CV_32F, 1, 0), cv2.Sobel(ch, cv2.CV_32F, 0, 1)))
    markers = np.zeros((sh, sw), np.int32)
    markers[1:3, :] = markers[-3:-1, :] = 1  # the desk (watershed sets the outermost pixels to -1)
    markers[:, 1:3] = markers[:, -3:-1] = 1
    cy, cx = sh // 2, sw // 2
    markers[int(cy - 0.1 * sh) : int(cy + 0.1 * sh), int(cx - 0.1 * sw) : int(cx + 0.1 * sw)] = 2  # the paper
    g8 = cv2.convertScaleAbs(grad, alpha=255.0 / max(1.0, float(np.percentile(grad, 99.5))))
    ws = cv2.watershed(cv2.cvtColor(g8, cv2.COLOR_GRAY2BGR), markers)
    page = (ws == 2).astype(np.uint8)
    cnts, _ = cv2.findContours(page, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not cnts:
        return None, "no page outline"
    hull = cv2.convexHull(max(cnts, key=cv2.contourArea))
    peri = cv2.arcLength(hull, True)
    quad = None
    for eps in (0.01, 0.02, 0.03, 0.05, 0.08):
        approx = cv2.approxPolyDP(hull, eps * peri, True)
        if len(approx) == 4:
            quad = _order(approx.reshape(4, 2).astype(np.float64))
            break
    if quad is None:
        return None, "the page outline is not a quadrilateral"
    r = WARP_RULES
    area = float(cv2.contourArea(quad.astype(np.float32))) / (sh * sw)
    fill = float(page.sum()) / max(1.0, area * sh * sw)
    if not (r["min_area"] <= area <= r["max_area"] and r["min_fill"] <= fill <= r["max_fill"]):
        return None, f"no page outline inside the picture (area {area:.2f}, fill {fill:.2f})"
    tilt = _tilt(quad)
    if tilt < MIN_TILT_DEG:
        return None, f"the page is straight (edges within {tilt:.1f} degrees)"
    contrast = _ring_contrast(small, quad)
    if contrast < r["min_contrast"]:
        return None, f"the outline does not separate paper from a background (contrast {contrast:.0f})"
    q = refine_quad(rgb, quad / s, 4.0 / s)
    top, bottom = np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[2] - q[3])
    left, right = np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[2] - q[1])
    # a small page in a low-resolution photo (1-3 px/mm) is straightened onto at least MIN_PAGE_WIDTH px: the
    # working copy then area-averages it back, a supersampled (anti-aliased) trace instead of one of jagged pixels
    k = max(1.0, MIN_PAGE_WIDTH / max(1.0, 0.5 * (top + bottom)))
    pw = max(16, int(round(0.5 * k * (top + bottom))))
    ph = max(16, int(round(0.5 * k * (left + right))))
    dst = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    hom = cv2.getPerspectiveTransform(q.astype(np.float32), dst)
    msg = (f"photographed page straightened (outline tilted up to {tilt:.1f} degrees, {area:.0%} of the picture; "
           f"perspective undone)")
    return PageWarp(q, hom.astype(np.float64), (pw, ph), round(tilt, 2), msg), msg
