"""Render synthetic 12-lead recordings as ECG printouts (numpy + OpenCV, no matplotlib) with ground-truth boxes.

Page (280 x 199 mm, the aspect of the Mendeley reports: 2213 x 1572 px at ~8 px/mm): header text, a 1 mm / 5 mm
grid, the standard 3 x 4 layout at 25 mm/s and 10 mm/mV — row 1 I aVR V1 V4, row 2 II aVL V2 V5, row 3 III aVF V3
V6, column k showing t in [2.5 k, 2.5 k + 2.5) s — a 10 s lead-II rhythm strip, a 1 mV calibration pulse at the
start of every row and footer text. Optional scan artifacts (rotation, blur, uneven shading, sensor noise,
JPEG) are drawn from the render seed; lead boxes follow the rotation (axis-aligned box of the rotated box).
Variants: the other layouts of :mod:`ecg_core.reports.synth_layouts` (3x4+3, 6x2, 12x1, 2x6), more papers
(cream, bw), grid off, fonts and header variants, and phone photos (:mod:`ecg_core.reports.synth_photo`), whose
boxes follow the perspective warp; the default options draw exactly the page described above.

Images are RGB ``uint8`` arrays of shape (H, W, 3); boxes are ``[x0, y0, x1, y1]`` pixel coordinates (x1, y1
exclusive): the lead's cell (62.5 mm = 2.5 s wide, 40 mm = +-2 mV high) padded by half the line width + 1 px, so a
box holds its whole trace (neighbouring boxes overlap by a few pixels). The lead order, time windows and cells
come from :mod:`ecg_core.reports.layout`; the signal model lives in :mod:`ecg_core.reports.synth_model`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ecg_core.core.config import FrozenConfig
from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import LEADS, get_preset
from ecg_core.reports.layout import COLUMN_S
from ecg_core.reports.synth_layouts import DEFAULT_LAYOUT, LAYOUTS, PageLayout, page_layout
from ecg_core.reports.synth_photo import photograph, transform_box
from ecg_core.reports.synth_spec import Signals12

RENDER_VERSION = "1.0"

# Paper speed and gain of the printout (the lead layout is ecg_core.reports.layout's) ----------------------------
PAPER_SPEED_MM_S = 25.0
GAIN_MM_MV = 10.0

# Page geometry in mm ---------------------------------------------------------------------------------------------
PAGE_W_MM, PAGE_H_MM = 280.0, 199.0
GRID_X0, GRID_X1, GRID_Y0, GRID_Y1 = 7.0, 272.0, 24.0, 189.0
TRACE_X0 = 20.0  # start of column 0 (after the calibration pulse)
CAL_X0 = 12.0
ROW_H_MM = 40.0  # height of each row band (+-2 mV)
ROW_TOP0 = GRID_Y0 + 2.5
COL_W_MM = COLUMN_S * PAPER_SPEED_MM_S  # 62.5 mm

# Grid styles (RGB): paper background, 1 mm lines, 5 mm lines. One table serves dispatch and error messages.
GRID_STYLES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]] = {
    "pink": ((255, 247, 247), (246, 196, 196), (232, 128, 136)),
    "red": ((255, 252, 250), (250, 190, 180), (228, 80, 72)),
    "orange": ((255, 250, 242), (250, 214, 170), (236, 150, 80)),
    "blue": ((248, 251, 255), (198, 214, 245), (110, 140, 220)),
    "green": ((248, 255, 248), (196, 232, 200), (100, 178, 112)),
    "gray": ((252, 252, 252), (214, 214, 214), (150, 150, 150)),
    "cream": ((250, 243, 222), (238, 214, 178), (214, 160, 112)),
    "bw": ((255, 255, 255), (200, 200, 200), (96, 96, 96)),
}
#: label and header fonts (OpenCV Hershey fonts); header variants
FONTS: dict[str, int] = {"simplex": cv2.FONT_HERSHEY_SIMPLEX, "duplex": cv2.FONT_HERSHEY_DUPLEX,
                         "complex": cv2.FONT_HERSHEY_COMPLEX, "triplex": cv2.FONT_HERSHEY_TRIPLEX,
                         "plain": cv2.FONT_HERSHEY_PLAIN}
HEADERS: tuple[str, ...] = ("full", "short", "none")
_TEXT_RGB = (25, 25, 30)

_FIRST = ("ALEX", "SAM", "JORDAN", "ROBIN", "KIM", "LEE", "NOOR", "ARI", "MIKA", "TONI", "JULES", "RENE", "CHRIS")
_LAST = ("SYNTHE", "EXAMPLE", "SAMPLE", "DEMOLA", "TESTARD", "PLACEBO", "MOCKLEY", "FICTOR", "NULLMAN", "VOIDSON")
_DEVICES = ("CardioSim 1200", "ECG-Synth 12L", "SimuTrace MAC", "DemoGraph 3x4")


def _num(name: str, value: object, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number in [{lo:g}, {hi:g}]; received {value!r}")
    if not lo <= float(value) <= hi:
        raise ConfigError(f"{name} must be in [{lo:g}, {hi:g}]; received {value!r}")
    return float(value)


@dataclass(frozen=True)
class RenderOptions(FrozenConfig):
    """How to print a report.

    ``px_per_mm``: resolution (4 -> 1120 x 796 px; 8 ~ the real reports' full resolution). ``grid``: one of
    :data:`GRID_STYLES`; ``black_and_white``: grey paper print (grid in greys, image still 3-channel).
    ``trace_rgb``: trace colour; ``trace_width_mm``: line width. ``artifacts``: apply scan/photo artifacts drawn from
    the render seed, bounded by ``max_rotation_deg`` (degrees), ``max_blur_px`` (Gaussian sigma in px at 4 px/mm,
    scaled with resolution), ``min_jpeg_quality`` (JPEG round trip with quality in [min, 95]) and ``max_shading``
    (fraction of brightness lost at the darkest corner) and ``max_sensor_noise`` (grey-level standard deviation).
    ``draw_grid``, ``draw_text``, ``draw_traces`` switch parts off (useful for tests and masks).
    ``layout``: one of :data:`ecg_core.reports.synth_layouts.LAYOUTS` (``"3x4+1"``, the default, ``"3x4+3"``,
    ``"6x2"``, ``"12x1"``, ``"2x6"``); ``font``: one of :data:`FONTS`; ``header``: one of :data:`HEADERS`
    (``"full"``: two header lines and a footer, ``"short"``: one line, ``"none"``); ``photo``: a phone photo of the
    page (:func:`ecg_core.reports.synth_photo.photograph`: perspective, rotation up to 15 degrees, desk, creases,
    shadow, uneven light, moire, blur, low resolution, JPEG) instead of the scan ``artifacts``.
    """

    px_per_mm: float = 4.0
    grid: str = "pink"
    black_and_white: bool = False
    trace_rgb: tuple[int, int, int] = (0, 0, 0)
    trace_width_mm: float = 0.3
    artifacts: bool = False
    max_rotation_deg: float = 1.5
    max_blur_px: float = 1.0
    min_jpeg_quality: int = 55
    max_shading: float = 0.25
    max_sensor_noise: float = 3.0
    draw_grid: bool = True
    draw_text: bool = True
    draw_traces: bool = True
    layout: str = DEFAULT_LAYOUT
    font: str = "simplex"
    header: str = "full"
    photo: bool = False

    def __post_init__(self) -> None:
        _num("px_per_mm", self.px_per_mm, 1.0, 20.0)
        for name, allowed in (("layout", LAYOUTS), ("font", tuple(FONTS)), ("header", HEADERS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(map(repr, allowed))}; received "
                                  f"{getattr(self, name)!r}")
        if self.grid not in GRID_STYLES:
            raise ConfigError(f"grid must be one of {', '.join(map(repr, GRID_STYLES))}; received {self.grid!r}")
        if (
            not isinstance(self.trace_rgb, tuple)
            or len(self.trace_rgb) != 3
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in self.trace_rgb)
        ):
            raise ConfigError(f"trace_rgb must be a tuple of 3 ints in [0, 255]; received {self.trace_rgb!r}")
        _num("trace_width_mm", self.trace_width_mm, 0.05, 1.5)
        _num("max_rotation_deg", self.max_rotation_deg, 0.0, 10.0)
        _num("max_blur_px", self.max_blur_px, 0.0, 5.0)
        if isinstance(self.min_jpeg_quality, bool) or not isinstance(self.min_jpeg_quality, int) or not (
            10 <= self.min_jpeg_quality <= 95
        ):
            raise ConfigError(f"min_jpeg_quality must be an int in [10, 95]; received {self.min_jpeg_quality!r}")
        _num("max_shading", self.max_shading, 0.0, 0.6)
        _num("max_sensor_noise", self.max_sensor_noise, 0.0, 20.0)
        for name in ("black_and_white", "artifacts", "draw_grid", "draw_text", "draw_traces", "photo"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False; received {getattr(self, name)!r}")

    def image_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(round(PAGE_W_MM * self.px_per_mm)), int(round(PAGE_H_MM * self.px_per_mm))


def row_baseline_mm(row: int) -> float:
    """Baseline (0 mV) y position in mm of row ``row`` (0-2 leads, 3 rhythm strip)."""
    return ROW_TOP0 + ROW_H_MM * (row + 0.5)


def _boxes_mm(lay: PageLayout) -> dict[str, list[float]]:
    """The cells of the layout on the page, in mm: each panel's time span x its row band."""
    out = {}
    for p in lay.panels:
        top, bottom = lay.band_mm(p.row)
        out[p.key] = [p.x0_mm, top, p.x0_mm + p.width_mm, bottom]
    return out


def _draw_grid(img: np.ndarray, ppm: float, style: str) -> None:
    _, minor, major = GRID_STYLES[style]
    h, w = img.shape[:2]
    y0, y1 = int(round(GRID_Y0 * ppm)), int(round(GRID_Y1 * ppm)) + 1
    x0, x1 = int(round(GRID_X0 * ppm)), int(round(GRID_X1 * ppm)) + 1
    n_x = int(round(GRID_X1 - GRID_X0))
    n_y = int(round(GRID_Y1 - GRID_Y0))
    major_w = 2 if ppm >= 6 else 1
    for is_major in (False, True):
        colour = np.array(major if is_major else minor, dtype=np.uint8)
        lw = major_w if is_major else 1
        xs = [int(round((GRID_X0 + k) * ppm)) for k in range(n_x + 1) if (k % 5 == 0) == is_major]
        ys = [int(round((GRID_Y0 + k) * ppm)) for k in range(n_y + 1) if (k % 5 == 0) == is_major]
        for x in xs:
            img[y0:y1, x : min(x + lw, w)] = colour
        for y in ys:
            img[y : min(y + lw, h), x0:x1] = colour


def _text(img: np.ndarray, text: str, x_mm: float, y_mm: float, ppm: float, height_mm: float = 2.6,
          bold: bool = False, font: str = "simplex") -> None:
    scale = height_mm * ppm / 22.0 * (1.8 if font == "plain" else 1.0)
    thick = max(1, int(round(ppm * (0.28 if bold else 0.18))))
    cv2.putText(img, text, (int(round(x_mm * ppm)), int(round(y_mm * ppm))), FONTS[font], scale,
                _TEXT_RGB, thick, cv2.LINE_AA)


_SHIFT = 4  # fixed-point bits for cv2 polylines


def _polyline(img: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray, ppm: float, rgb: tuple[int, int, int],
              thickness: int) -> None:
    pts = np.stack([x_mm * ppm, y_mm * ppm], axis=1) * (1 << _SHIFT)
    pts = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(img, [pts], False, rgb, thickness, cv2.LINE_AA, _SHIFT)


def _header_fields(rng: np.random.Generator, hr: float) -> tuple[list[str], str]:
    name = f"{_LAST[int(rng.integers(len(_LAST)))]}, {_FIRST[int(rng.integers(len(_FIRST)))]}"
    pid = f"{int(rng.integers(0, 10**7)):07d}"
    age = int(rng.integers(25, 90))
    sex = "M" if rng.random() < 0.5 else "F"
    year, month, day = int(rng.integers(2015, 2025)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    hh, mm = int(rng.integers(0, 24)), int(rng.integers(0, 60))
    device = _DEVICES[int(rng.integers(len(_DEVICES)))]
    lines = [
        f"Name: {name}    ID: {pid}    Age: {age} y    Sex: {sex}",
        f"Date: {year:04d}-{month:02d}-{day:02d} {hh:02d}:{mm:02d}    Device: {device}    "
        "SYNTHETIC ECG - NOT A PATIENT",
    ]
    lo = (0.05, 0.5)[int(rng.integers(2))]
    hi = (40, 100, 150)[int(rng.integers(3))]
    notch = ("", "  50 Hz notch", "  60 Hz notch")[int(rng.integers(3))]
    footer = f"{lo:g}-{hi} Hz{notch}    {PAPER_SPEED_MM_S:g} mm/s    {GAIN_MM_MV:g} mm/mV    HR {hr:.0f} bpm"
    return lines, footer


def _transform_box(box: Sequence[float], m: np.ndarray | None, w: int, h: int) -> list[int]:
    """The axis-aligned box of ``box`` mapped by the 2 x 3 affine ``m`` (scan artifacts), clipped to w x h."""
    x0, y0, x1, y1 = box
    if m is not None:
        corners = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x1, y1, 1.0], [x0, y1, 1.0]]) @ m.T
        x0, y0 = corners.min(axis=0)
        x1, y1 = corners.max(axis=0)
    return [
        int(min(max(math.floor(x0), 0), w)),
        int(min(max(math.floor(y0), 0), h)),
        int(min(max(math.ceil(x1), 0), w)),
        int(min(max(math.ceil(y1), 0), h)),
    ]


def _apply_artifacts(img: np.ndarray, opts: RenderOptions, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
    """Shading, blur, rotation, sensor noise, JPEG. Returns (image, 2x3 affine matrix or None, parameters)."""
    h, w = img.shape[:2]
    params: dict[str, float] = {}
    # uneven shading: a smooth illumination field (linear gradient + off-centre vignette), computed coarse
    shading = float(rng.uniform(0.0, opts.max_shading))
    gh, gw = max(2, h // 16), max(2, w // 16)
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    yy, xx = yy / (gh - 1), xx / (gw - 1)
    gx, gy = rng.uniform(-1, 1, 2)
    cx, cy = rng.uniform(0.2, 0.8, 2)
    field = gx * (xx - 0.5) + gy * (yy - 0.5) + (xx - cx) ** 2 + ((yy - cy) * h / w) ** 2
    field = (field - field.min()) / max(float(field.max() - field.min()), 1e-6)
    gain = cv2.resize((1.0 - shading * field).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    tint = rng.uniform(0.97, 1.0, 3).astype(np.float32)
    out = img.astype(np.float32)
    out *= gain[..., None]
    out *= tint[None, None, :]
    params["shading"] = round(shading, 4)
    # blur
    sigma = float(rng.uniform(0.0, opts.max_blur_px)) * opts.px_per_mm / 4.0
    if sigma > 0.25:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    params["blur_sigma_px"] = round(sigma, 4)
    # rotation about the centre, paper-white border
    angle = float(rng.uniform(-opts.max_rotation_deg, opts.max_rotation_deg))
    m = None
    if abs(angle) > 1e-3:
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
        border = tuple(float(v) for v in out[2, 2])
        out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=border)
    params["rotation_deg"] = round(angle, 4)
    # sensor noise (grey levels, same on all channels)
    noise_sd = float(rng.uniform(0.0, opts.max_sensor_noise))
    if noise_sd > 0.05:
        out = out + rng.standard_normal((h, w, 1), dtype=np.float32) * noise_sd
    params["sensor_noise_sd"] = round(noise_sd, 4)
    out += 0.5
    np.clip(out, 0.0, 255.0, out=out)
    img8 = out.astype(np.uint8)
    quality = int(rng.integers(opts.min_jpeg_quality, 96))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - cv2 failure
        raise RuntimeError("OpenCV could not encode JPEG")
    img8 = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    params["jpeg_quality"] = quality
    return img8, m, params


def render_report(
    signals: Signals12,
    options: RenderOptions | None = None,
    *,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Print ``signals`` on ECG paper.

    Returns (RGB uint8 image of shape (H, W, 3), sidecar dict ready for ``json.dumps``) — the sidecar holds the class
    (key, id, name, subtype, territory), pathology leads, lead boxes (``boxes[lead] = [x0, y0, x1, y1]`` in pixels,
    also ``'II_rhythm'``), ``px_per_mm``, paper speed (mm/s), gain (mm/mV), heart rate (bpm), seeds, image size
    ``[width, height]`` and the artifact parameters. Header text, style and artifacts are drawn from ``seed``.
    """
    opts = options if options is not None else RenderOptions()
    if not isinstance(opts, RenderOptions):
        raise ConfigError(f"options must be a RenderOptions; received {type(opts).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer; received {seed!r}")
    fs = float(signals.fs)
    n = signals.data.shape[1]
    need = int(round(4 * COLUMN_S * fs))
    if n < need:
        raise ConfigError(
            f"signals must be at least {4 * COLUMN_S:g} s long for a 3x4 + rhythm report; received "
            f"{n / fs:.2f} s (use SynthSpec(duration_s=10) or longer)"
        )
    rng = np.random.default_rng([int(seed), 0x3E4D])
    ppm = float(opts.px_per_mm)
    w, h = opts.image_size()
    lay = page_layout(opts.layout)
    paper = GRID_STYLES[opts.grid][0] if opts.draw_grid or opts.grid == "cream" else (255, 255, 255)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = paper
    if opts.draw_grid:
        _draw_grid(img, ppm, opts.grid)

    hr = signals.heart_rate
    header, footer = _header_fields(rng, hr)
    if opts.draw_text and opts.header != "none":
        _text(img, header[0], 8.0, 9.0, ppm, 3.0, bold=True, font=opts.font)
        if opts.header == "full":
            _text(img, header[1], 8.0, 15.5, ppm, 2.6, font=opts.font)
            _text(img, footer, 8.0, 195.0, ppm, 2.6, font=opts.font)

    thick = max(1, int(round(opts.trace_width_mm * ppm)))
    rgb = tuple(int(c) for c in opts.trace_rgb)
    data = signals.data
    idx = {name: i for i, name in enumerate(LEADS)}
    gain = lay.gain_mm_mv
    extent: dict[str, tuple[float, float]] = {}  # y range (mm) each panel's trace covers
    label_h = min(3.2, 0.24 * lay.row_h_mm)
    for r in range(lay.n_rows):
        base = lay.baseline_mm(r)
        top = lay.band_mm(r)[0]
        if opts.draw_traces:  # calibration pulse: 1 mV x 0.2 s (5 mm)
            cx = np.array([CAL_X0, CAL_X0 + 1, CAL_X0 + 1, CAL_X0 + 6, CAL_X0 + 6, TRACE_X0 - 0.5])
            cy = np.array([base, base, base - gain, base - gain, base, base])
            _polyline(img, cx, cy, ppm, rgb, thick)
        for p in (q for q in lay.panels if q.row == r):
            i0 = int(round(p.t0 * fs))
            i1 = min(n - 1, int(round(p.t1 * fs)))
            if opts.draw_traces:
                v = data[idx[p.lead], i0 : i1 + 1]
                x = p.x0_mm + (np.arange(i0, i0 + len(v)) / fs - p.t0) * PAPER_SPEED_MM_S
                y = base - gain * v
                extent[p.key] = (float(y.min()), float(y.max()))
                _polyline(img, x, y, ppm, rgb, thick)
                if p.col > 0:  # short separator bar where the lead changes
                    xs = p.x0_mm
                    _polyline(img, np.array([xs, xs]), np.array([base - 2.5, base + 2.5]), ppm, rgb, thick)
            if opts.draw_text:
                _text(img, p.lead, p.x0_mm + 1.5, top + min(6.0, 0.45 * lay.row_h_mm), ppm, label_h, bold=True,
                      font=opts.font)

    if opts.black_and_white:
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        img = np.repeat(grey[..., None], 3, axis=2)

    matrix = None
    hom = None
    artifacts: dict[str, Any] | None = None
    if opts.photo:
        img, hom, artifacts = photograph(img, np.random.default_rng([int(seed), 0x9407]))
    elif opts.artifacts:
        img, matrix, artifacts = _apply_artifacts(img, opts, rng)
    out_h, out_w = img.shape[:2]

    pad = thick / 2.0 + 1.0  # px: the line's half width + antialiasing, so a box holds its whole trace
    boxes = {}
    for k, box in _boxes_mm(lay).items():
        if lay.name != DEFAULT_LAYOUT and k in extent:  # tight rows: a tall QRS may leave its band
            box = [box[0], min(box[1], extent[k][0]), box[2], max(box[3], extent[k][1])]
        px = [box[0] * ppm - pad, box[1] * ppm - pad, box[2] * ppm + pad, box[3] * ppm + pad]
        boxes[k] = transform_box(px, hom, out_w, out_h) if hom is not None else _transform_box(px, matrix, w, h)
    spec = signals.spec
    info = get_preset("cardiac-4").info(spec.cls)
    windows = lay.windows()
    sidecar: dict[str, Any] = {
        "generator": "ecg_core.reports.synth",
        "version": RENDER_VERSION,
        "preset": "cardiac-4",
        "class_key": info.key,
        "class_id": info.id,
        "class_name": info.name,
        "subtype": spec.subtype,
        "territory": spec.territory,
        "rhythm": signals.rhythm,
        "severity": float(spec.severity),
        "noise": float(spec.noise),
        "pathology_leads": list(signals.pathology_leads),
        "boxes": boxes,
        "box_format": "xyxy_px (x1, y1 exclusive)",
        "lead_windows_s": {k: list(v) for k, v in windows.items()},
        "layout": lay.rows(),
        "layout_name": lay.name,
        "px_per_mm": ppm,
        "paper_speed_mm_s": PAPER_SPEED_MM_S,
        "gain_mm_mv": gain,
        "heart_rate_bpm": round(float(hr), 1),
        "axis_deg": spec.axis_deg,
        "fs": fs,
        "n_beats": len(signals.r_peaks),
        "n_pvc": sum(1 for b in signals.beat_types if b == "V"),
        "st_deviation_mv": dict(signals.st_deviation_mv),
        "seed": int(spec.seed),
        "render_seed": int(seed),
        "image_size": [out_w, out_h],
        "grid": opts.grid,
        "draw_grid": opts.draw_grid,
        "photo": opts.photo,
        "homography": None if hom is None else [[round(float(v), 6) for v in row] for row in hom],
        "black_and_white": opts.black_and_white,
        "artifacts": artifacts,
    }
    return img, sidecar


def encode_image(image: np.ndarray, fmt: str = "png", *, jpeg_quality: int = 92) -> bytes:
    """Encode an RGB uint8 image as PNG or JPEG bytes (deterministic)."""
    fmt = fmt.lower().lstrip(".")
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    elif fmt in ("jpg", "jpeg"):
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        raise ConfigError(f"fmt must be one of 'png', 'jpg'; received {fmt!r}")
    if not ok:  # pragma: no cover
        raise RuntimeError(f"OpenCV could not encode {fmt}")
    return buf.tobytes()


def highlight_leads(
    image: np.ndarray,
    sidecar: dict[str, Any],
    leads: Sequence[str] | None = None,
    *,
    rgb: tuple[int, int, int] = (0, 110, 255),
    alpha: float = 0.15,
    thickness_px: int | None = None,
) -> np.ndarray:
    """Return a copy of ``image`` with the boxes of ``leads`` (default: the sidecar's pathology leads) outlined and
    lightly filled. Lead names are keys of ``sidecar['boxes']`` (12 leads and ``'II_rhythm'``)."""
    boxes = sidecar.get("boxes", {})
    names = list(sidecar.get("pathology_leads", [])) if leads is None else list(leads)
    unknown = [n for n in names if n not in boxes]
    if unknown:
        raise ConfigError(f"leads must be keys of sidecar['boxes'] ({', '.join(boxes)}); received unknown {unknown}")
    out = image.copy()
    if not names:
        return out
    t = thickness_px if thickness_px is not None else max(2, int(round(sidecar.get("px_per_mm", 4.0) * 0.6)))
    mask = np.zeros(out.shape[:2], dtype=bool)
    for name in names:
        x0, y0, x1, y1 = boxes[name]
        mask[y0:y1, x0:x1] = True
    tinted = out[mask].astype(np.float32) * (1.0 - alpha) + np.array(rgb, np.float32) * alpha
    out[mask] = np.clip(np.round(tinted), 0, 255).astype(np.uint8)
    for name in names:  # outline drawn inside the box
        x0, y0, x1, y1 = boxes[name]
        out[y0 : y0 + t, x0:x1] = rgb
        out[max(y1 - t, y0) : y1, x0:x1] = rgb
        out[y0:y1, x0 : x0 + t] = rgb
        out[y0:y1, max(x1 - t, x0) : x1] = rgb
    return out
