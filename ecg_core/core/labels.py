"""Class presets: names, order, folder-name mapping and short clinical descriptions.

Two presets exist:

* ``cardiac-4`` — the four classes of the Mendeley "ECG Images dataset of Cardiac Patients" in the seeds' order
  (0 Myocardial Infarction, 1 Abnormal Heartbeat, 2 Normal, 3 History of MI).
* ``arrhythmia-6`` — beat/rhythm classes of the spectral-image pipeline (N, L, R, A, V, VF).

A folder name such as ``"ECG Images of Myocardial Infarction Patients (240x12=2880)"`` or a plain name such as
``"MI"`` / ``"history_of_mi"`` resolves to a class id with :func:`LabelPreset.class_of`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ecg_core.core.errors import ConfigError


@dataclass(frozen=True)
class ClassInfo:
    """One class of a preset.

    ``key`` is a filesystem-safe slug (used as folder name by generators), ``name`` the display name,
    ``short`` an abbreviation, ``patterns`` regular expressions (matched against a normalised folder name:
    lower case, non-alphanumerics collapsed to single spaces) that identify the class.
    """

    id: int
    key: str
    name: str
    short: str
    description: str
    look_for: str
    patterns: tuple[str, ...]


# what a model of a preset takes as input; runs carry it (``run.json`` -> ``input_kind``) so that pages list only the
# models that fit what the user gives them
INPUT_REPORT_IMAGE = "report_image"
INPUT_SPECTRAL_BEAT = "spectral_beat"
INPUT_KIND_TITLES = {
    INPUT_REPORT_IMAGE: "12-lead report image",
    INPUT_SPECTRAL_BEAT: "spectral image of an ECG signal window",
}


@dataclass(frozen=True)
class LabelPreset:
    """An ordered set of classes; the order is the model's output order. ``input_kind`` is what its models read."""

    name: str
    title: str
    classes: tuple[ClassInfo, ...]
    input_kind: str = INPUT_REPORT_IMAGE

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.classes]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def info(self, class_id_or_name: int | str) -> ClassInfo:
        """Return the :class:`ClassInfo` for an id, key, display name or folder name."""
        if isinstance(class_id_or_name, int):
            if not 0 <= class_id_or_name < len(self.classes):
                raise ConfigError(
                    f"class id {class_id_or_name} is out of range for preset {self.name!r} "
                    f"(expected 0..{len(self.classes) - 1})"
                )
            return self.classes[class_id_or_name]
        cid = self.class_of(class_id_or_name)
        if cid is None:
            raise ConfigError(
                f"{class_id_or_name!r} is not a class of preset {self.name!r}; known: {', '.join(self.class_names)}"
            )
        return self.classes[cid]

    def class_of(self, folder_name: str) -> int | None:
        """Map a folder or plain class name to a class id, or ``None`` when nothing matches."""
        norm = normalise_name(folder_name)
        if not norm:
            return None
        for c in self.classes:  # exact key / name / short first
            if norm in (normalise_name(c.key), normalise_name(c.name), normalise_name(c.short)):
                return c.id
        for c in self.classes:  # then patterns, in preset order (specific patterns come first in each preset)
            if any(re.search(p, norm) for p in c.patterns):
                return c.id
        return None


def normalise_name(name: str) -> str:
    """Lower-case, replace every run of non-alphanumerics by one space, strip."""
    return re.sub(r"[^a-z0-9]+", " ", str(name).lower()).strip()


_CARDIAC_4 = LabelPreset(
    name="cardiac-4",
    title="12-lead ECG reports: 4 cardiac classes (Mendeley ECG Images dataset of Cardiac Patients)",
    classes=(
        ClassInfo(
            0,
            "myocardial_infarction",
            "Myocardial Infarction",
            "MI",
            "Acute myocardial infarction: a coronary artery is blocked now and heart muscle is dying.",
            "ST-segment elevation of at least 1 mm (0.1 mV) in two or more contiguous leads of one territory "
            "(inferior II/III/aVF, anterior V1-V4, lateral I/aVL/V5/V6), tall 'hyperacute' T waves and "
            "reciprocal ST depression in the opposite leads.",
            (r"^(?!.*history).*myocardial infarction", r"^mi$", r"^mi \d+$", r"^acute mi"),
        ),
        ClassInfo(
            1,
            "abnormal_heartbeat",
            "Abnormal Heartbeat",
            "HB",
            "Abnormal heartbeat (arrhythmia): the rhythm or rate is abnormal, e.g. atrial fibrillation, "
            "premature ventricular beats, marked bradycardia or tachycardia.",
            "Irregular R-R intervals without P waves (atrial fibrillation), early wide QRS complexes followed by a "
            "compensatory pause (premature ventricular beats), or a rate below 50 / above 100 beats per minute.",
            (r"abnormal", r"arrhythm", r"^hb$", r"^hb \d+$"),
        ),
        ClassInfo(
            2,
            "normal",
            "Normal",
            "N",
            "Normal ECG: sinus rhythm 60-100 bpm with normal intervals and wave shapes.",
            "A P wave before every QRS, PR 120-200 ms, narrow QRS (< 110 ms), upright T waves in I, II and V3-V6, "
            "inverted T in aVR, flat ST segments.",
            (r"^(?!.*abnormal).*\bnormal\b", r"^n$", r"^normal \d+$"),
        ),
        ClassInfo(
            3,
            "history_of_mi",
            "History of MI",
            "PMI",
            "Previous (old) myocardial infarction: scarred heart muscle from an earlier infarction.",
            "Pathological Q waves (at least 40 ms wide or deeper than 25 % of the R wave) in the leads of one "
            "territory, sometimes with inverted T waves, but without acute ST elevation.",
            (r"history", r"^pmi$", r"^pmi \d+$", r"previous mi", r"old mi", r"prior mi"),
        ),
    ),
)

_ARRHYTHMIA_6 = LabelPreset(
    name="arrhythmia-6",
    input_kind=INPUT_SPECTRAL_BEAT,
    title="Beats and rhythms from ECG signals: 6 arrhythmia classes (MIT-BIH conventions)",
    classes=(
        ClassInfo(
            0,
            "N",
            "Normal beat",
            "N",
            "Normal sinus beat conducted through the normal pathway.",
            "A P wave, a narrow QRS (< 120 ms) and a T wave in the usual order and timing.",
            (r"^normal( beat)?$",),
        ),
        ClassInfo(
            1,
            "L",
            "Left bundle branch block",
            "L",
            "Left bundle branch block beat: the left ventricle is activated late, through the muscle.",
            "Wide QRS (>= 120 ms) with broad, notched R waves in I, aVL, V5-V6 and deep S in V1; discordant T waves.",
            (r"left bundle", r"^lbbb$"),
        ),
        ClassInfo(
            2,
            "R",
            "Right bundle branch block",
            "R",
            "Right bundle branch block beat: the right ventricle is activated late.",
            "Wide QRS (>= 120 ms) with an rSR' ('M' shape) in V1-V2 and a broad slurred S wave in I and V6.",
            (r"right bundle", r"^rbbb$"),
        ),
        ClassInfo(
            3,
            "A",
            "Atrial premature beat",
            "A",
            "Premature atrial contraction (PAC): an early beat started by an ectopic focus in the atria.",
            "An early, differently shaped P wave followed by a normal narrow QRS; a short, non-compensatory pause.",
            (r"atrial premature", r"^pac$", r"premature atrial"),
        ),
        ClassInfo(
            4,
            "V",
            "Premature ventricular contraction",
            "V",
            "Premature ventricular contraction (PVC): an early beat started in the ventricles.",
            "An early, wide (>= 120 ms), bizarre QRS without a preceding P wave, T wave opposite to the QRS, and a "
            "full compensatory pause.",
            (r"premature ventricular", r"^pvc$", r"ventricular premature"),
        ),
        ClassInfo(
            5,
            "VF",
            "Ventricular fibrillation",
            "VF",
            "Ventricular fibrillation (and flutter): chaotic ventricular activity, cardiac arrest rhythm.",
            "No identifiable P, QRS or T waves; a chaotic undulating baseline of varying amplitude at 150-500 "
            "per minute (flutter: regular sine-like waves ~250-300/min).",
            (r"fibrillation", r"flutter", r"^vfl?$", r"^vfib$"),
        ),
    ),
)

PRESETS: dict[str, LabelPreset] = {p.name: p for p in (_CARDIAC_4, _ARRHYTHMIA_6)}

# Clinical territories of the 12 leads (used by synthetic ground truth and per-lead attribution).
LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
TERRITORIES: dict[str, tuple[str, ...]] = {
    "inferior": ("II", "III", "aVF"),
    "lateral": ("I", "aVL", "V5", "V6"),
    "septal": ("V1", "V2"),
    "anterior": ("V3", "V4"),
}


def get_preset(name: str) -> LabelPreset:
    """Return the preset called ``name`` (``'cardiac-4'`` or ``'arrhythmia-6'``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown label preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
