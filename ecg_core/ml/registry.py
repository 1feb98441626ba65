"""Run registry: one folder per training run under the models directory.

``models/<run_id>/`` holds

* ``run.json`` — architecture, parameter count, class names and label preset, data source and fingerprint,
  input size, :class:`~ecg_core.imaging.preprocess.PreprocessConfig`, split and seed, library versions, whether ImageNet
  weights were used, status (``running``, ``completed``, ``stopped``, ``failed``) and a summary of test metrics;
* ``model.keras`` — the trained model (written only when training ended with a usable model);
* ``history.csv``, ``progress.jsonl``, ``log.txt``, ``split.csv``, ``predictions.csv``, ``eval.json``.

Every file is written atomically (temporary file in the same folder, then ``os.replace``), so a killed job never
leaves a half-written ``model.keras`` or ``run.json``; a write that fails (full disk, read-only folder) raises
:class:`~ecg_core.core.errors.ConfigError` and leaves the previous file untouched. A run whose status says ``running``
but whose process is gone is reported as ``interrupted``; only ``completed`` and ``stopped`` runs with an intact
model file are usable. Models are loaded with Keras ``safe_mode=True``: a model file with a Lambda layer or unknown
custom objects is refused, and so is one whose class count or input size disagrees with its ``run.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecg_core.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_to_path  # noqa: F401 (run files)
from ecg_core.core.errors import ConfigError, ModelLoadError

RUN_JSON = "run.json"
MODEL_FILE = "model.keras"
USABLE_STATUSES = ("completed", "stopped")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}$")


def save_model_atomic(model: Any, path: str | Path) -> None:
    """``model.save`` into a temporary ``.keras`` file beside ``path``, then rename (:mod:`ecg_core.core.atomic`)."""
    atomic_write_to_path(path, lambda tmp: model.save(str(tmp)), suffix=".keras")


# ---------------------------------------------------------------------------------------------------- runs
def new_run_id(arch: str) -> str:
    """A sortable unique id: ``20261122-063012-custom_cnn-3fa1``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", arch)[:40]
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    if not _RUN_ID_RE.match(run_id or ""):
        raise ConfigError(
            f"run id {run_id!r} is invalid: use letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return run_id


@dataclass(frozen=True)
class RunInfo:
    """What the registry knows about a run folder (``meta`` is the parsed ``run.json``, possibly empty)."""

    run_id: str
    path: Path
    status: str
    meta: dict[str, Any] = field(default_factory=dict)
    problem: str = ""

    @property
    def usable(self) -> bool:
        return self.status in USABLE_STATUSES and not self.problem and has_model_file(self.path, self.meta)

    @property
    def is_measurement(self) -> bool:
        """Whether the run is a measurement model (features read off the report; no Keras model, no Grad-CAM)."""
        return is_measurement_meta(self.meta)

    @property
    def label(self) -> str:
        arch = self.meta.get("arch", "?")
        f1 = (self.meta.get("metrics") or {}).get("macro_f1")
        # a measurement model has no test split: its figure is the repeated group cross-validation's
        where = "CV" if self.is_measurement or self.meta.get("model_kind") == ENSEMBLE_KIND else "test"
        extra = f" · {where} macro-F1 {f1:.2f}" if isinstance(f1, (int, float)) else ""
        return f"{self.run_id} ({arch}, {self.status}{extra})"

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names", []))

    @property
    def input_kind(self) -> str:
        """What the model reads (``labels.INPUT_*``): ``run.json``'s ``input_kind``; for runs written before it was
        stored, a spectral beat image when the run has a spectral config, else its preset's input kind."""
        from ecg_core.core import labels

        kind = self.meta.get("input_kind")
        if isinstance(kind, str) and kind:
            return kind
        if isinstance(self.meta.get("spectral"), dict):
            return labels.INPUT_SPECTRAL_BEAT
        preset = labels.PRESETS.get(str(self.meta.get("preset", "")))
        return preset.input_kind if preset is not None else "unknown"

    @property
    def data_source(self) -> str:
        """``real``, ``synthetic`` or ``unknown``: what the model was trained on."""
        return str(self.meta.get("data_source") or "unknown")


MEASUREMENT_KIND = "measurement"


#: An ensemble run (:mod:`ecg_core.reports.ensemble`): no model file, ``members`` name runs beside it.
ENSEMBLE_KIND = "ensemble"


def ensemble_problem(path: Path, meta: dict[str, Any]) -> str:
    """Why an ensemble run folder is unusable (``''`` when every member listed in ``members`` has a run.json)."""
    spec = meta.get("members")
    if not isinstance(spec, list) or len(spec) < 2 or not all(isinstance(m, dict) and "run_id" in m for m in spec):
        return "run.json does not list its members (members)"
    missing = [str(m["run_id"]) for m in spec if not (Path(path).parent / str(m["run_id"]) / RUN_JSON).is_file()]
    return f"member run(s) {', '.join(missing)} missing" if missing else ""


def is_measurement_meta(meta: dict[str, Any]) -> bool:
    """``run.json`` says the run is a measurement model (:mod:`ecg_core.ml.measure_model`)."""
    return str(meta.get("model_kind", "")) == MEASUREMENT_KIND


#: Run kinds whose model is a set of LightGBM **text** files named in ``run.json`` ``model_files`` (no Keras model, no
#: pickle): ``lightgbm_beat_vf`` is the arrhythmia model of :mod:`ecg_core.signals.arrhythmia_gbm`.
TEXT_MODEL_KINDS = frozenset({"lightgbm_beat_vf"})


def is_text_model_meta(meta: dict[str, Any]) -> bool:
    """``run.json`` says the model is LightGBM text files (``model_kind`` in :data:`TEXT_MODEL_KINDS`)."""
    return str(meta.get("model_kind", "")) in TEXT_MODEL_KINDS


def text_model_problem(path: Path, meta: dict[str, Any]) -> str:
    """Why a text-model run folder is unusable (``''`` when every file of ``model_files`` is there)."""
    files = meta.get("model_files")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and "/" not in f for f in files):
        return "run.json does not list its model files (model_files)"
    missing = [f for f in files if not (Path(path) / f).is_file()]
    return f"{', '.join(missing)} missing" if missing else ""


def load_text_boosters(info: RunInfo) -> dict[str, Any]:
    """The LightGBM boosters of a text-model run, read from their text files (``{file name: Booster}``)."""
    import lightgbm as lgb

    out = {}
    for name in info.meta.get("model_files", []):
        try:
            out[name] = lgb.Booster(model_str=(info.path / name).read_text())
        except Exception as e:  # LightGBMError / OSError / UnicodeDecodeError on a damaged file
            raise ModelLoadError(f"run {info.run_id!r}: {name} is not a readable LightGBM text model ({e}).") from e
    return out


def has_model_file(path: Path, meta: dict[str, Any]) -> bool:
    """The run folder holds its model: ``model.keras``, or a measurement model's description and text/JSON file."""
    if is_text_model_meta(meta):
        return not text_model_problem(path, meta)
    if str(meta.get("model_kind", "")) == ENSEMBLE_KIND:
        return not ensemble_problem(path, meta)
    if is_measurement_meta(meta):
        from ecg_core.ml.measure_model import model_file_problem

        return not model_file_problem(path)
    return (path / MODEL_FILE).is_file()


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, ValueError):
        return False
    # a zombie child still answers kill(0); look at /proc where available
    stat = Path(f"/proc/{int(pid)}/stat")
    if stat.exists():
        try:
            return stat.read_text().split(")")[-1].split()[0] != "Z"
        except OSError:
            return True
    return True


def read_run(path: str | Path) -> RunInfo:
    """Read one run folder; never raises for a damaged run (it is returned with ``problem`` set)."""
    p = Path(path)
    meta_file = p / RUN_JSON
    try:
        meta = json.loads(meta_file.read_text())
        if not isinstance(meta, dict):
            raise ValueError("run.json is not an object")
    except FileNotFoundError:
        return RunInfo(p.name, p, "unusable", {}, "run.json is missing")
    except (OSError, ValueError) as e:
        return RunInfo(p.name, p, "unusable", {}, f"run.json is unreadable ({e})")
    status = str(meta.get("status", "unknown"))
    problem = ""
    if status == "running" and not _pid_alive(meta.get("pid")):
        status = "interrupted"
        problem = "the training process ended without finishing the run (killed or crashed)"
    elif status in USABLE_STATUSES and is_text_model_meta(meta):
        problem = text_model_problem(p, meta)
    elif status in USABLE_STATUSES and str(meta.get("model_kind", "")) == ENSEMBLE_KIND:
        problem = ensemble_problem(p, meta)
    elif status in USABLE_STATUSES and is_measurement_meta(meta):
        from ecg_core.ml.measure_model import model_file_problem

        problem = model_file_problem(p)
    elif status in USABLE_STATUSES and not (p / MODEL_FILE).is_file():
        problem = "model.keras is missing"
    elif status in USABLE_STATUSES:
        problem = _model_file_problem(p / MODEL_FILE)
    return RunInfo(str(meta.get("run_id", p.name)), p, status, meta, problem)


_MODEL_CHECKS: dict[tuple[str, int, int], str] = {}


def _model_file_problem(path: Path) -> str:
    """What is wrong with a model file, or "" when it looks like a Keras archive (a zip with config and weights).

    Cheap (reads the zip directory only; cached by size and modification time), so that the model pickers can list
    a damaged file as unusable instead of failing when it is chosen.
    """
    try:
        st = path.stat()
    except OSError as e:
        return f"model.keras cannot be read ({e.strerror or e})"
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _MODEL_CHECKS:
        try:
            with zipfile.ZipFile(path) as zf:
                missing = sorted({"config.json", "model.weights.h5"} - set(zf.namelist()))
            problem = f"model.keras is damaged and cannot be loaded (no {', '.join(missing)} inside)" if missing else ""
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            problem = f"model.keras is damaged and cannot be loaded (not a Keras archive: {e})"
        if len(_MODEL_CHECKS) > 1024:
            _MODEL_CHECKS.clear()
        _MODEL_CHECKS[key] = problem
    return _MODEL_CHECKS[key]


def list_runs(models_dir: str | Path, *, input_kind: str | None = None) -> list[RunInfo]:
    """All run folders (newest first), including unusable ones, which carry a ``problem``; with ``input_kind``
    only the runs whose model reads that kind of input (``labels.INPUT_*``; unreadable runs are kept, so that
    pages can say why they cannot be used)."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    runs = [read_run(d) for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))]
    if input_kind is not None:
        runs = [r for r in runs if r.input_kind in (input_kind, "unknown")]
    return sorted(runs, key=lambda r: (r.meta.get("created", ""), r.run_id), reverse=True)


# issue 15, by repeated group CV on mendeley-dev (models/<id>/MODEL_CARD.md): the ensemble of the measurement model
# and the per-lead CNN (macro-F1 0.904, MI recall 0.873) beat each member (0.853 / 0.714 and 0.863 / 0.810) and the
# whole-page CNN; where it is absent or not offered (a page that runs only some kinds), the measurement model, then
# the CNN run is the default
DEFAULT_RUN_ID = "cardiac4-mendeley-ensemble"
FALLBACK_RUN_IDS: tuple[str, ...] = ("cardiac4-mendeley-measure-lgbm", "cardiac4-mendeley-custom_cnn")
#: the run name that means "the default run" on the command line (``python -m ecg_core predict default DIR``)
DEFAULT_ALIAS = "default"


def default_run(models_dir: str | Path, *, preferred: str = DEFAULT_RUN_ID) -> RunInfo | None:
    """The usable run the app opens by default: ``preferred`` when it is usable, else (for the shipped default)
    the first usable run of :data:`FALLBACK_RUN_IDS`, else the first usable run in :func:`list_runs` order (newest
    first); ``None`` when no run is usable. Reads ``run.json`` files only."""
    return choose_default(list_runs(models_dir), preferred=preferred)


def choose_default(runs: list[RunInfo], *, preferred: str = DEFAULT_RUN_ID) -> RunInfo | None:
    """:func:`default_run` among runs already listed."""
    usable = {r.run_id: r for r in runs if r.usable}
    order = (preferred, *FALLBACK_RUN_IDS) if preferred == DEFAULT_RUN_ID else (preferred,)
    for run_id in order:
        if run_id in usable:
            return usable[run_id]
    return next(iter(usable.values()), None)


def shipped_run_ids() -> set[str]:
    """Runs that ship with the app: :data:`DEFAULT_RUN_ID` and every run folder in the repository's ``models/``."""
    from ecg_core.core.paths import REPO_ROOT

    shipped = REPO_ROOT / "models"
    names = {d.name for d in shipped.iterdir() if d.is_dir() and (d / RUN_JSON).is_file()} if shipped.is_dir() \
        else set()
    return names | {DEFAULT_RUN_ID, *FALLBACK_RUN_IDS}


def is_shipped(run_id: str) -> bool:
    """Whether ``run_id`` names a run shipped with the app (deleting one needs a second confirmation)."""
    return run_id in shipped_run_ids()


TRASH_DIR = ".trash"


def delete_run(models_dir: str | Path, run_id: str, *, allow_shipped: bool = False) -> None:
    """Delete the run folder ``models_dir/run_id`` safely.

    The folder is first renamed into the hidden ``models_dir/.trash/`` (one atomic ``os.rename``: the run vanishes
    from :func:`list_runs` at once, never half-deleted), then removed there; the job's log and pid file go too.
    Refuses (``ConfigError``) a run whose training process is still alive, a shipped run (:func:`is_shipped`)
    unless ``allow_shipped``, and a run id that is not a folder of ``models_dir``.
    """
    import shutil

    check_run_id(run_id)
    root = Path(models_dir)
    path = root / run_id
    if not path.is_dir() or path.is_symlink():
        raise ConfigError(f"run {run_id!r} is not a run folder in {str(root)!r}")
    info = read_run(path)
    if info.status == "running":
        raise ConfigError(f"run {run_id!r} is still training: stop it first, then delete it")
    if is_shipped(run_id) and not allow_shipped:
        raise ConfigError(f"run {run_id!r} ships with the app; confirm a second time to delete it")
    trash = root / TRASH_DIR
    try:
        trash.mkdir(exist_ok=True)
        target = trash / f"{run_id}-{secrets.token_hex(4)}"
        os.rename(path, target)
    except OSError as e:
        raise ConfigError(f"cannot delete run {run_id!r}: {e.strerror or e}") from e
    shutil.rmtree(target, ignore_errors=True)
    for name in (f"{run_id}.log", f"{run_id}.pid"):
        with contextlib.suppress(OSError):
            (root / ".jobs" / name).unlink()


def create_run(models_dir: str | Path, run_id: str, meta: dict[str, Any]) -> Path:
    """Create ``models_dir/run_id`` with a ``run.json`` in status ``running`` (refuses to reuse a folder)."""
    check_run_id(run_id)
    root = Path(models_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:  # not "a run ... already exists"
        raise ConfigError(f"cannot create a run in {root}: the models folder or one of its parents is a file; "
                          "set ECG_INSIGHT_MODELS to a folder") from e
    except PermissionError as e:
        raise ConfigError(f"cannot create a run in {root}: the folder is not writable ({e.strerror})") from e
    except OSError as e:
        raise ConfigError(f"cannot create a run in {root}: {e.strerror or e}") from e
    try:
        path = root / run_id
        path.mkdir(exist_ok=False)
    except FileExistsError:
        raise ConfigError(f"a run called {run_id!r} already exists in {root}; choose another run id") from None
    except PermissionError as e:
        raise ConfigError(f"cannot create a run in {root}: the folder is not writable ({e.strerror})") from e
    except OSError as e:
        raise ConfigError(f"cannot create a run in {root}: {e.strerror or e}") from e
    full = {
        "run_id": run_id,
        "status": "running",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "pid": os.getpid(),
        **meta,
    }
    try:
        atomic_write_json(path / RUN_JSON, full)
    except BaseException:
        with contextlib.suppress(OSError):
            path.rmdir()  # no run folder without a run.json (e.g. the disk is full)
        raise
    return path


def update_run(path: str | Path, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into ``run.json`` atomically and return the new content."""
    p = Path(path) / RUN_JSON
    meta = json.loads(p.read_text())
    meta.update(changes)
    atomic_write_json(p, meta)
    return meta


# ----------------------------------------------------------------------------------------------- model loading
def load_model(run: RunInfo | str | Path) -> Any:
    """Load a run's model safely and check it against its ``run.json``.

    Raises :class:`ModelLoadError` when the run is not usable, the file cannot be read, it needs unsafe
    deserialisation (Lambda layers, unknown custom objects), or its output/input shapes disagree with run.json.
    """
    info = run if isinstance(run, RunInfo) else read_run(run)
    if not info.usable:
        why = info.problem or f"its status is {info.status!r}"
        raise ModelLoadError(f"run {info.run_id!r} has no usable model: {why}.")
    if info.is_measurement:  # LightGBM text / JSON coefficients, never Keras or pickle
        from ecg_core.ml.measure_model import MeasureModel

        m = MeasureModel.load(info.path)
        if info.class_names and m.class_names != info.class_names:
            raise ModelLoadError(f"run {info.run_id!r}: the model's classes disagree with run.json; refused.")
        return m
    if str(info.meta.get("model_kind", "")) == ENSEMBLE_KIND:  # its members' models (ecg_core.reports.ensemble)
        return [load_model(info.path.parent / str(m["run_id"])) for m in info.meta["members"]]
    if is_text_model_meta(info.meta):  # LightGBM text files only: the caller wraps the boosters
        return load_text_boosters(info)
    for key, what in (("class_names", "the class names"), ("input_shape", "the input size")):
        if not info.meta.get(key):  # without them the checks below cannot be made
            raise ModelLoadError(f"run {info.run_id!r}: run.json does not give {what} ({key!r}); refused.")
    import keras

    import ecg_core.ml.zoo  # noqa: F401  (registers the project's serialisable layers, if any)

    path = info.path / MODEL_FILE
    try:
        model = keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as e:  # Keras raises ValueError/TypeError/OSError/zipfile errors for bad files
        raise _load_error(info.run_id, e) from e
    if isinstance(model.output_shape, list) or isinstance(model.input_shape, list):
        raise ModelLoadError(
            f"run {info.run_id!r}: the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "a classifier with one image input and one output is expected; refused."
        )
    n_classes = len(info.class_names)
    out_units = model.output_shape[-1]
    if n_classes and out_units != n_classes:
        raise ModelLoadError(
            f"run {info.run_id!r}: the model has {out_units} outputs but run.json lists {n_classes} classes; refused."
        )
    expected = info.meta.get("input_shape")
    got = list(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if expected and got != list(expected):
        raise ModelLoadError(
            f"run {info.run_id!r}: the model expects input {got} but run.json says {list(expected)}; refused."
        )
    return model


def _load_error(run_id: str, e: Exception) -> ModelLoadError:
    """Turn a Keras loading failure into a message that says what was refused and why."""
    full = str(e) or type(e).__name__
    low = full.lower()
    if "lambda" in low and ("safe_mode" in low or "arbitrary code" in low):
        return ModelLoadError(
            f"run {run_id!r}: the model contains code (a Lambda layer) and is refused in safe mode."
        )
    found = re.search(r"Could not locate (class|function) '([^']+)'", full)
    if found:
        return ModelLoadError(
            f"run {run_id!r}: the model needs the custom {found[1]} {found[2]!r}, which this app does not "
            "provide; it is refused (only Keras layers and the app's own layers are loaded)."
        )
    # Keras nests the real cause: "... could not be deserialized properly ... Exception encountered: <cause>"
    cause = full.rsplit("Exception encountered:", 1)[-1].strip().splitlines()[0][:300] if full.strip() else full
    if "non-modeling" in low or "disallowed" in low:
        return ModelLoadError(f"run {run_id!r}: the model's configuration is refused in safe mode ({cause}).")
    return ModelLoadError(f"run {run_id!r}: model.keras cannot be loaded ({cause}).")


def preprocess_config_of(run: RunInfo):
    """The :class:`PreprocessConfig` stored with a run."""
    from ecg_core.imaging.preprocess import PreprocessConfig

    try:
        return PreprocessConfig.from_dict(run.meta["preprocess"])
    except KeyError:
        raise ModelLoadError(f"run {run.run_id!r}: run.json has no preprocessing config") from None


def library_versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("tensorflow", "keras", "numpy", "opencv-python-headless", "albumentations", "tf-keras-vis"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class RunNotFoundError(ModelLoadError, ConfigError):
    """No run matches a run id or folder (a :class:`ModelLoadError` for model users, a :class:`ConfigError` for the
    comparison and evaluation commands, which always caught that)."""


def resolve_run(run: str | os.PathLike[str] | RunInfo, *, models_dir: str | os.PathLike[str] | None = None,
                usable: bool = False) -> RunInfo:
    """A run given as :class:`RunInfo`, a run folder path (holding ``run.json``), a run id in ``models_dir``
    (default :func:`ecg_core.core.paths.models_dir`), or ``'default'`` (:data:`DEFAULT_ALIAS`: the app's default,
    :func:`default_run`, unless a run is named so).

    Raises :class:`RunNotFoundError` naming the known runs (with ``usable``: the available ones, with a usable model)
    when nothing matches; with ``usable``, :class:`ModelLoadError` when the run has no usable model.
    """
    if isinstance(run, RunInfo):
        info = run
    else:
        from ecg_core.core import paths

        text = str(run)
        p = Path(text).expanduser()
        root = Path(models_dir) if models_dir is not None else paths.models_dir()
        if p.is_dir() and (p / RUN_JSON).is_file():
            info = read_run(p)
        elif text and "/" not in text and os.sep not in text and (root / text).is_dir():
            info = read_run(root / text)
        elif text == DEFAULT_ALIAS and (chosen := default_run(root)) is not None:
            info = chosen  # the app's default model (the CLI's `predict default DIR`)
        else:
            known = [r.run_id for r in list_runs(root) if r.usable or not usable]
            listed = f"{', '.join(known[:10])}{' ...' if len(known) > 10 else ''}" if known else \
                "none (train a model first)"
            raise RunNotFoundError(
                f"run {text!r} not found: expected a run folder holding {RUN_JSON} or a run id in {str(root)!r}; "
                f"{'available' if usable else 'known runs'}: {listed}"
            )
    if usable and not info.usable:
        raise ModelLoadError(f"run {info.run_id!r} has no usable model: {info.problem or 'status ' + info.status}")
    return info
