"""What a prediction means, in words: one message per class (from the label preset's clinical descriptions), a note
on whether the report resembles the model's training data, and the disclaimer shown with every output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import get_preset

DISCLAIMER = "Research and education use only — not a diagnosis."


@dataclass(frozen=True)
class ClassMessage:
    """What a class probability means, in words, with the clinical description of the class."""

    class_index: int
    class_name: str
    probability: float
    description: str
    look_for: str
    text: str


@dataclass(frozen=True)
class DomainNote:
    """Whether the report resembles the model's training data by source (real vs synthetic reports).

    ``matches`` is False when a synthetic-data model meets a real (or uploaded) report, or a real-data model a
    synthetic report; ``text`` says so in words to show next to the verdict."""

    matches: bool
    text: str


def training_domain_note(data_source: str, input_synthetic: bool) -> DomainNote:
    """Compare what a model was trained on (``run.json`` ``data_source``: ``real``/``synthetic``) with the input.

    ``input_synthetic`` is True for a report of our synthetic generator (it comes with a ground-truth sidecar);
    an uploaded or real dataset image counts as real."""
    what = "a synthetic report (it has a ground-truth sidecar)" if input_synthetic else "a real or uploaded report"
    if data_source == "synthetic" and not input_synthetic:
        return DomainNote(False, f"This model was trained on synthetic reports only, and this is {what}: real "
                                 "reports look different from anything it saw, so its output here is not validated.")
    if data_source == "real" and input_synthetic:
        return DomainNote(False, f"This model was trained on real reports, and this is {what}: it never saw such "
                                 "images, so its output here says little. For the ground truth, choose a model "
                                 "trained on synthetic reports.")
    if data_source not in ("real", "synthetic"):
        return DomainNote(False, f"The model's training data is not recorded ({data_source!r}); this is {what}.")
    # only the source (real / synthetic) is compared here; layout and paper are the outside-the-training-data check's
    return DomainNote(True, f"Trained on {data_source} reports; this is {what}, the same kind of source.")


def class_messages(probs: Sequence[float], class_names: Sequence[str], *, preset: str = "cardiac-4"
                   ) -> list[ClassMessage]:
    """One message per class (model order): the probability, what the class means and what a reader looks for
    on the ECG (from :mod:`ecg_core.core.labels`), always worded as a model output, not a diagnosis."""
    p = np.asarray(probs, dtype=float)
    if p.shape != (len(class_names),):
        raise ConfigError(f"probs must have one value per class ({len(class_names)}); received shape {p.shape}")
    try:
        pre = get_preset(preset)
    except ConfigError:
        pre = None
    top = int(np.argmax(p)) if p.size else -1
    out = []
    for i, name in enumerate(class_names):
        desc, look = "", ""
        if pre is not None:
            try:
                info = pre.info(name)
                desc, look = info.description, info.look_for
            except ConfigError:
                pass
        lead = "The model's top class" if i == top else "The model"
        text = (f"{lead}: {p[i]:.0%} for “{name}”. "
                + (f"{desc} " if desc else "")
                + (f"A reader would look for: {look} " if look else "")
                + "This is the output of a research model, not a diagnosis.")
        out.append(ClassMessage(i, str(name), float(p[i]), desc, look, text))
    return out
