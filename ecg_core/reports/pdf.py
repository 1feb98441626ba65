"""PDF report of one explained prediction (fpdf2): image, heatmap overlay, probabilities, lead ranking, model card,
limitations and the disclaimer "Research and education use only — not a diagnosis".

:func:`build_report` returns the PDF as bytes (``b"%PDF..."``), ready for a download button or a file. A Unicode
TrueType font (DejaVu Sans) is embedded when the system has one; otherwise the PDF core font Helvetica is used and
text is reduced to Latin-1 (the em dash becomes a hyphen).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecg_core.core.errors import ConfigError
from ecg_core.core.formatting import fmt_value_ci
from ecg_core.reports.layout import RHYTHM_KEY
from ecg_core.reports.messages import DISCLAIMER

_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
              Path("/usr/local/share/fonts"), Path("/Library/Fonts"), Path("C:/Windows/Fonts"))

LIMITATIONS: tuple[str, ...] = (
    "The model classifies report images into a fixed set of classes; anything else (other diagnoses, other "
    "layouts, photos with perspective) is forced into one of them.",
    "Heatmaps show which pixels changed the model's score, not where the disease is; they can highlight text, "
    "grid or artefacts.",
    "Test metrics come from a held-out split of the training data; performance on other hospitals, devices or "
    "populations is unknown.",
)


@dataclass(frozen=True)
class ReportContent:
    """Everything the PDF shows (images uint8 RGB; ``lead_table`` from
    :func:`ecg_core.reports.leads.lead_attention`)."""

    image: np.ndarray
    overlay: np.ndarray
    probs: Sequence[float]
    class_names: Sequence[str]
    run_meta: Mapping[str, Any]
    method_title: str
    explained_class: str
    image_name: str = ""
    lead_table: pd.DataFrame | None = None
    layout_message: str = ""
    ecg_check_message: str = ""
    #: :attr:`ecg_core.reports.ood.OodVerdict.message` (empty when the report resembles the training reports)
    ood_message: str = ""
    notes: Sequence[str] = ()
    #: :class:`ecg_core.xai.faithfulness.FaithVerdict` per test, when the faithfulness checks were run
    faithfulness: Sequence[Any] = ()
    #: the Reading view's tables (:func:`ecg_core.reports.reading.measure.global_table` and ``lead_table``) and the
    #: criteria that fired, when the traces were read
    measurement_tables: tuple[pd.DataFrame, pd.DataFrame] | None = None
    criteria: Sequence[str] = ()


# an absolute path (POSIX, or a Windows drive path) of at least two parts; only its last part is kept
_ABS_PATH = re.compile(r"(?<![\w.~])(?:[A-Za-z]:[\\/]|/)(?:[^\s/\\'\"`,;()\[\]]+[\\/])+([^\s/\\'\"`,;()\[\]]+)")


def strip_paths(text: str) -> str:
    """``text`` with every absolute path replaced by its last part (a folder's or a file's name): a report leaves
    the machine it was made on, and the server's folders are none of its reader's business."""
    return _ABS_PATH.sub(lambda m: m.group(1), str(text))


def _find_font() -> tuple[Path, Path] | None:
    for d in _FONT_DIRS:
        regular, bold = d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


def _jpeg(rgb: np.ndarray, max_width: int = 1400) -> io.BytesIO:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(rgb))
    if im.width > max_width:
        im = im.resize((max_width, max(1, round(im.height * max_width / im.width))), Image.LANCZOS)
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="JPEG", quality=85)
    buf.seek(0)
    return buf


def model_card_lines(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the model card summary from a run's ``run.json``."""
    m = meta.get("metrics") or {}
    split = (meta.get("split") or {}).get("counts") or {}
    train = meta.get("train") or {}
    counts = ", ".join(f"{k} {v.get('distinct', v.get('files', '?'))}" for k, v in split.items()
                       if isinstance(v, Mapping))
    rows = [
        ("run", str(meta.get("run_id", "?"))),
        ("architecture", f"{meta.get('arch', '?')} ({meta.get('n_params', '?'):,} parameters)"
         if isinstance(meta.get("n_params"), int) else str(meta.get("arch", "?"))),
        ("input", "x".join(str(v) for v in meta.get("input_shape", [])) or "?"),
        ("classes", ", ".join(meta.get("class_names", [])) or "?"),
        ("training data", f"{meta.get('data_source', '?')} images from {_folder_name(meta.get('data_dir'))}"),
        ("split (distinct images)", counts or "?"),
        ("epochs", f"{(meta.get('training') or {}).get('epochs_run', '?')} of {train.get('epochs', '?')}"),
        ("test accuracy", fmt_value_ci(m.get("accuracy"), m.get("accuracy_ci"))),
        ("test macro-F1", fmt_value_ci(m.get("macro_f1"), m.get("macro_f1_ci"))),
        ("test images", f"{m.get('n', '?')} files, {m.get('n_distinct', '?')} distinct" if m else "no test split"),
        ("created", str(meta.get("created", "?"))),
    ]
    if m.get("split") == "oof":  # figures of a repeated group CV (an ensemble), not of a test split
        rows[-4:-1] = [("cross-validated macro-F1", fmt_value_ci(m.get("macro_f1"), m.get("macro_f1_ci"))),
                       ("cross-validated acute-MI recall", fmt_value_ci(m.get("mi_recall"), None)),
                       ("out-of-fold rows", str(m.get("n", "?")))]
    if meta.get("members"):
        rows.insert(2, ("members", ", ".join(f"{x.get('run_id')} (weight {x.get('weight')})"
                                             for x in meta["members"])))
    return rows


def _folder_name(path: Any) -> str:
    """The last part of a folder path (``'/srv/data/mendeley-dev/'`` -> ``'mendeley-dev'``); ``'?'`` when none."""
    if not path:
        return "?"
    name = Path(str(path).replace("\\", "/").rstrip("/")).name
    return name or "?"


def run_limitations(meta: Mapping[str, Any]) -> list[str]:
    """The fixed limitations plus those that follow from this run's metadata."""
    out = list(LIMITATIONS)
    if meta.get("data_source") == "synthetic":
        out.insert(0, "This model was trained on synthetic reports generated by the app; it has not been "
                      "validated on real patients.")
    m = meta.get("metrics") or {}
    if isinstance(m.get("n_distinct"), int) and m["n_distinct"] < 100:
        out.append(f"The test split holds only {m['n_distinct']} distinct images: the confidence intervals are "
                   "wide.")
    return out


class _Pdf:
    def __init__(self) -> None:
        from fpdf import FPDF

        self.pdf = FPDF(orientation="P", unit="mm", format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.set_margins(15, 15, 15)
        font = _find_font()
        if font is not None:
            self.pdf.add_font("DejaVu", "", str(font[0]))
            self.pdf.add_font("DejaVu", "B", str(font[1]))
            self.family, self.unicode = "DejaVu", True
        else:
            self.family, self.unicode = "Helvetica", False
        self.pdf.set_title("ECG Insight report")
        self.pdf.set_creator("ECG Insight")
        self.pdf.add_page()

    def t(self, text: str) -> str:
        text = strip_paths(text)
        if self.unicode:
            return text
        return (text.replace("—", "-").replace("–", "-").replace("“", '"').replace("”", '"').replace("’", "'")
                .encode("latin-1", "replace").decode("latin-1"))

    def font(self, size: float, bold: bool = False) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)

    def para(self, text: str, size: float = 9.5, bold: bool = False, h: float = 4.8) -> None:
        self.font(size, bold)
        self.pdf.multi_cell(0, h, self.t(text), new_x="LMARGIN", new_y="NEXT")

    def heading(self, text: str) -> None:
        self.pdf.ln(2)
        self.para(text, 12, True, 6.5)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float]) -> None:
        self.font(8.5, True)
        for h, w in zip(header, widths):
            self.pdf.cell(w, 5.5, self.t(h), border="B")
        self.pdf.ln()
        self.font(8.5)
        for r in rows:
            for v, w in zip(r, widths):
                self.pdf.cell(w, 5, self.t(str(v)))
            self.pdf.ln()

    def image(self, rgb: np.ndarray, caption: str, width: float) -> None:
        h_mm = width * rgb.shape[0] / rgb.shape[1]
        if self.pdf.get_y() + h_mm + 8 > self.pdf.h - 15:
            self.pdf.add_page()
        self.pdf.image(_jpeg(rgb), w=width)
        self.para(caption, 8)


def build_report(content: ReportContent) -> bytes:
    """Render :class:`ReportContent` as a PDF and return its bytes (starting with ``%PDF``)."""
    c = content
    p = np.asarray(c.probs, dtype=float)
    if p.shape != (len(c.class_names),):
        raise ConfigError(f"probs must hold one value per class ({len(c.class_names)}); received shape {p.shape}")
    for name, img in (("image", c.image), ("overlay", c.overlay)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ConfigError(f"{name} must be a uint8 RGB array (H, W, 3); received "
                              f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")
    doc = _Pdf()
    pdf = doc.pdf
    doc.para("ECG Insight — explained model output", 16, True, 8)
    pdf.set_text_color(180, 0, 0)
    doc.para(DISCLAIMER, 11, True, 6)
    pdf.set_text_color(0, 0, 0)
    doc.para("This document shows what a machine-learning model computed for an image. It is not a medical "
             "report and must not guide the care of a patient.", 8.5)
    if c.image_name:
        doc.para(f"Image: {c.image_name}", 9)
    if c.ecg_check_message:
        doc.para(f"Input check: {c.ecg_check_message}", 9)
    if c.ood_message:
        pdf.set_text_color(160, 90, 0)
        doc.para(f"Training data: {c.ood_message}", 9, True)
        pdf.set_text_color(0, 0, 0)

    doc.heading("Model output (class probabilities)")
    top = int(np.argmax(p))
    doc.table(["class", "probability", ""], [[n, f"{v:.1%}", "top class" if i == top else ""]
                                             for i, (n, v) in enumerate(zip(c.class_names, p))], [80, 30, 40])
    doc.para(f"Explanation: {c.method_title} for the class “{c.explained_class}”.", 9)

    width = pdf.w - pdf.l_margin - pdf.r_margin
    doc.image(c.image, "Input image", width)
    doc.image(c.overlay, f"{c.method_title} heatmap over the report (warm colours = regions that raised the score of "
                         f"“{c.explained_class}”)", width)
    for note in c.notes:
        doc.para(f"Note: {note}", 8.5)

    if c.lead_table is not None and not c.lead_table.empty:
        doc.heading("Attention per lead")
        if c.layout_message:
            doc.para(c.layout_message, 8.5)
        rows = [[str(r["rank"]), "rhythm strip" if r["lead"] == RHYTHM_KEY else r["lead"], r["territory"],
                 f"{r['mass']:.1%}", f"{r['mean_intensity']:.2f}", f"{r['enrichment']:.2f}x"]
                for _, r in c.lead_table.sort_values("rank").iterrows()]
        doc.table(["rank", "lead", "territory", "share of attention", "mean intensity", "vs uniform"], rows,
                  [14, 30, 32, 36, 30, 28])
        outside = c.lead_table.attrs.get("outside_mass")
        if isinstance(outside, float):
            doc.para(f"Attention outside every lead box (header, margins): {outside:.1%}.", 8.5)

    if c.faithfulness:
        doc.heading("Is the map faithful to the model?")
        colours = {"pass": (0, 120, 0), "fail": (180, 0, 0)}
        for v in c.faithfulness:
            pdf.set_text_color(*colours.get(v.status, (170, 110, 0)))
            doc.para(f"{v.test}: {v.status.upper()}", 9.5, True)
            pdf.set_text_color(0, 0, 0)
            doc.para(f"{v.measured}. Rule: {v.rule}.", 8.5)

    if c.measurement_tables is not None:
        g, lt = c.measurement_tables
        doc.heading("Measurements read off the traces")
        doc.para("Digitised from the image and measured with neurokit2; 'could not measure' where a value failed "
                 "its plausibility check. Not a diagnosis.", 8.5)
        doc.table(["measurement", "value", "normal", "flag"],
                  [[r.measurement, r.value, r.normal, r.flag] for r in g.itertuples(index=False)], [42, 60, 42, 20])

        def fmt(v: Any, d: int) -> str:
            return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{d}f}"

        doc.table(["lead", "ST (mm)", "R (mV)", "Q (mV)", "Q (ms)", "T", "flags"],
                  [[r.lead, fmt(r.st_mm, 1), fmt(r.r_mv, 2), fmt(r.q_mv, 2), fmt(r.q_ms, 0), r.t, r.flags]
                   for r in lt.itertuples(index=False)], [14, 18, 18, 18, 16, 10, 70])
        for text in c.criteria or ("none of the classic criteria fire",):
            doc.para(f"• {text}" if doc.unicode else f"- {text}", 9)

    doc.heading("Model card")
    for label, value in model_card_lines(c.run_meta):
        doc.font(9, True)
        pdf.cell(45, 5, doc.t(label))
        doc.font(9)
        pdf.multi_cell(0, 5, doc.t(value), new_x="LMARGIN", new_y="NEXT")
    doc.heading("Limitations")
    for line in run_limitations(c.run_meta):
        doc.para(f"• {line}" if doc.unicode else f"- {line}", 9)
    pdf.ln(3)
    pdf.set_text_color(180, 0, 0)
    doc.para(DISCLAIMER, 10, True)
    out = pdf.output()
    return bytes(out)
