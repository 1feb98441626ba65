"""Shared helpers of the Streamlit pages: the disclaimer, the error guards, the dataset picker, and two patches of
Streamlit applied when a page imports this module (deep links after a restart, no Keras reset after every run).

Pages stay thin: widgets -> a cached call (:mod:`app_ui.cache`) or ``ecg_core`` -> a figure; shared widgets are in
:mod:`app_ui.widgets`, static files in :mod:`app_ui.assets`. Session state holds only user choices (keys prefixed by
page, or ``app_`` for the shared ones).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import streamlit as st

from app_ui import auth, cache
from ecg_core.core import paths
from ecg_core.core.errors import EcgCoreError
from ecg_core.core.hashing import file_hash

DISCLAIMER = (
    "**Research and education use only.** ECG Insight is not a medical device: its predictions and heatmaps "
    "are not a diagnosis and must not guide the care of a patient."
)

DATASET_KEY = "app_dataset_root"
DEMO_PER_CLASS = 25
DEMO_SEED = 2026


@contextlib.contextmanager
def guard(action: str = "This step") -> Iterator[None]:
    """Show library errors as a clear message (never a traceback) and stop the page."""
    try:
        yield
    except EcgCoreError as e:
        st.error(f"{action} failed: {e}")
        st.stop()
    except (OSError, ValueError) as e:
        st.error(f"{action} failed: {type(e).__name__}: {e}")
        st.stop()


@contextlib.contextmanager
def safe(action: str) -> Iterator[None]:
    """Like :func:`guard`, for model code too: any failure becomes a message, never a traceback."""
    with guard(action):
        try:
            yield
        except (EcgCoreError, OSError, ValueError):
            raise  # guard shows these
        except Exception as e:  # TensorFlow/Keras raise their own types; the UI shows a message only
            first = str(e).splitlines()[0][:300] if str(e) else ""
            st.error(f"{action} failed: {type(e).__name__}: {first}")
            st.stop()


# ------------------------------------------------------------------------------------------------ dataset choice
def demo_dataset_ready() -> bool:
    root = paths.demo_data_dir()
    return (root / "synth_manifest.json").exists()


def ensure_demo_dataset() -> Path | None:
    """Generate the embedded synthetic demo dataset on first use; ``None`` while the generator is unavailable."""
    root = paths.demo_data_dir()
    if demo_dataset_ready():
        return root
    try:
        from ecg_core.reports import synth
    except ImportError:
        return None
    with st.spinner("Creating the demo dataset (synthetic 12-lead reports, first run only)..."):
        synth.generate_dataset(root, per_class=DEMO_PER_CLASS, seed=DEMO_SEED, image_format="jpg", overwrite=True)
    return root


def dataset_choices() -> dict[str, str]:
    """Label -> folder of the datasets the sidebar offers."""
    choices: dict[str, str] = {"Demo: synthetic reports": str(paths.demo_data_dir())}
    shared = paths.shared_data_dir()
    for name, label in (("mendeley-dev", "Mendeley dev (real reports)"),
                        ("mendeley-fullres-samples", "Mendeley full-res samples")):
        if (shared / name).is_dir():
            choices[label] = str(shared / name)
    return choices


def current_dataset() -> str:
    """The folder chosen in the sidebar, or the demo dataset (generated here, on the first page that reads it:
    the landing page and the model pages never wait for it)."""
    root = st.session_state.get(DATASET_KEY)
    if root and Path(str(root)) != paths.demo_data_dir():
        return str(root)
    if st.session_state.get(REFUSED_KEY):  # a typed folder outside the data roots: no dataset, not the demo
        return ""
    demo = ensure_demo_dataset()
    return str(demo) if demo else ""


def dataset_sidebar() -> None:
    """Sidebar widgets: pick a known dataset, type a folder path, or upload a zip of class folders."""
    choices = dataset_choices()
    options = list(choices) + ["Other folder...", "Upload a zip..."]
    with st.sidebar:
        st.subheader("Dataset")
        pick = st.selectbox("Dataset", options, key="app_dataset_pick", label_visibility="collapsed")
        st.session_state.pop(REFUSED_KEY, None)
        if pick == "Other folder...":
            typed = st.text_input("Folder with one sub-folder per class", key="app_dataset_path")
            st.session_state[DATASET_KEY] = ""
            if typed.strip():  # checked before anything lists or scans it
                try:
                    st.session_state[DATASET_KEY] = str(inside_roots(typed))
                except EcgCoreError as e:
                    st.session_state[REFUSED_KEY] = str(e)
                    st.error(str(e))
        elif pick == "Upload a zip...":
            up = (st.file_uploader("Zip of class folders", type=["zip"], key="app_dataset_zip")
                  if auth.require_role(auth.EDITOR, "Importing a dataset") else None)
            if up is not None:
                st.session_state[DATASET_KEY] = import_zip(up.getvalue(), up.name)
        else:
            st.session_state[DATASET_KEY] = choices[pick]  # the demo dataset is made by current_dataset()
        root = st.session_state.get(DATASET_KEY, "")
        if root:
            st.caption(f"`{root}`")


def import_zip(data: bytes, name: str, dest_root: Path | None = None) -> str:
    """Extract an uploaded zip of class folders (:func:`extract_upload_zip`); returns the folder, or "" with a
    message in the sidebar when it is refused (also to a session without the editor role)."""
    if not auth.can_edit():  # checked on the server, whatever the browser sent
        st.sidebar.error(f"Importing a dataset {auth.NEEDS_EDITOR}.")
        return ""
    try:
        root, skipped = extract_upload_zip(data, "zip", dest_root)
    except EcgCoreError as e:
        st.sidebar.error(f"{name}: {e}")
        return ""
    if skipped:
        st.sidebar.warning(
            f"{name}: {len(skipped)} entries were not imported, e.g. "
            + "; ".join(f"{n} ({why})" for n, why in skipped[:3])
        )
    return str(root)


def extract_upload_zip(data: bytes, prefix: str, dest_root: Path | None = None) -> tuple[Path, list[tuple[str, str]]]:
    """Extract an uploaded zip into ``<this session's uploads folder>/<prefix>-<content hash>`` (``dest_root``
    overrides the folder; the same archive again reuses it) after checking the uploads quota against the size its
    entries declare (nothing is written when it is over; the extraction itself stops at the quota too). Returns
    the folder and the refused entries; raises :class:`EcgCoreError` (quota, unreadable or unsafe archive)."""
    from ecg_core.ml.zip_import import ZipLimits, declared_size, extract_zip

    dest = (dest_root or session_uploads_dir()) / f"{prefix}-{file_hash(data)[:16]}"
    if dest.exists() and any(dest.iterdir()):
        return dest, []
    size, zip_limits = declared_size(data), ZipLimits()
    if size <= zip_limits.max_total_bytes:  # (a larger one is refused by extract_zip as a zip bomb, unwritten)
        free = check_upload_quota(size)  # before anything is written
        zip_limits = ZipLimits(max_total_bytes=max(1, min(zip_limits.max_total_bytes, free + size)))
    try:
        res = extract_zip(data, dest, limits=zip_limits)
    except EcgCoreError:
        if dest.is_dir() and any(dest.iterdir()):  # the same archive, imported by another run meanwhile
            return dest, []
        raise
    return Path(res.root), list(res.skipped)


def require_dataset() -> pd.DataFrame:
    """The scanned index of the current dataset, or a clear message and stop."""
    root = current_dataset()
    if not root and st.session_state.get(REFUSED_KEY):
        st.error(st.session_state[REFUSED_KEY])
        st.stop()
    if not root:
        st.info("Choose a dataset folder in the sidebar (one sub-folder per class).")
        st.stop()
    with guard("Reading the dataset"):
        index = cache.scan_dataset(root)
    if index.empty:
        st.warning(
            f"No images were found in `{root}`. A dataset is a folder with one sub-folder per class "
            "(e.g. `Normal/`, `MI/`) holding JPEG, PNG, BMP or TIFF images."
        )
        skipped = index.attrs.get("skipped", [])
        if skipped:
            st.caption(f"{len(skipped)} other files were ignored, e.g. {skipped[0][0]} ({skipped[0][1]}).")
        st.stop()
    return index


# ------------------------------------------------------------------------- data roots, per-session uploads, quotas
REFUSED_KEY = "app_dataset_refused"  # the message of a typed dataset folder outside the data roots


def data_roots() -> tuple[Path, ...]:
    """The folders a typed path may point into (:func:`ecg_core.core.roots.allowed_roots`)."""
    import os

    from ecg_core.core import roots

    return roots.allowed_roots(os.environ, paths.app_home(), paths.models_dir(), paths.demo_data_dir(),
                               paths.REPO_ROOT, shared_data=paths.shared_data_dir())


def inside_roots(typed: str) -> Path:
    """The resolved folder of a typed path, or :class:`~ecg_core.core.roots.OutsideRootsError` naming the roots
    (also for the uploads of other sessions, or a folder above them)."""
    from ecg_core.core import roots

    return roots.resolve_inside_roots(typed, data_roots(), base=paths.REPO_ROOT, private=paths.uploads_dir(),
                                      own=session_uploads_dir(clean=False))


def limits():  # -> ecg_core.core.quota.Limits
    """The server's limits (:func:`ecg_core.core.quota.limits_from_env`); the defaults, with a warning, when an
    environment variable is not valid."""
    import os

    from ecg_core.core import quota

    try:
        return quota.limits_from_env(os.environ)
    except EcgCoreError as e:
        st.warning(f"{e} The default limits are used.")
        return quota.Limits()


SESSION_KEY = "app_upload_session"  # a random id per browser session: the name of its uploads folder


def _session_id() -> str:
    import uuid

    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
    except ImportError:  # pragma: no cover - a Streamlit without this internal
        ctx = None
    if ctx is None:  # no script run (a thread of a test): one shared folder
        return "local"
    sid = st.session_state.get(SESSION_KEY)
    if not isinstance(sid, str) or not sid.isalnum():
        sid = st.session_state[SESSION_KEY] = uuid.uuid4().hex
    return sid


def session_uploads_dir(*, clean: bool = True) -> Path:
    """This browser session's uploads folder (``<uploads>/s-<session id>``); with ``clean``, session folders not
    touched for ``ECG_INSIGHT_UPLOAD_MAX_AGE_H`` hours (other than this one) are removed first."""
    import time

    from ecg_core.core import quota

    mine = paths.uploads_dir() / f"s-{_session_id()}"
    now = time.time()
    if clean and now - _LAST_CLEAN.get(str(paths.uploads_dir()), 0.0) >= CLEAN_EVERY_S:
        _LAST_CLEAN[str(paths.uploads_dir())] = now
        quota.clean_old(paths.uploads_dir(), limits().upload_max_age_s, now, keep=[mine])
    return mine


CLEAN_EVERY_S = 60.0  # the uploads folder is swept for stale session folders at most once a minute per server
_LAST_CLEAN: dict[str, float] = {}


def check_upload_quota(nbytes: int) -> int:
    """Raise :class:`~ecg_core.core.quota.QuotaError` when storing ``nbytes`` more would take the uploads folder
    (all sessions) over ``ECG_INSIGHT_UPLOAD_QUOTA_MB``; returns the bytes left after it."""
    from ecg_core.core import quota

    return quota.check_quota(paths.uploads_dir(), nbytes, limits().upload_quota_bytes, what="uploads",
                             env_name=quota.UPLOAD_QUOTA_ENV,
                             hint="Try again later (uploads are removed after "
                                  f"{limits().upload_max_age_s / 3600:g} h) or use a smaller file.")


def check_models_quota() -> None:
    """Raise :class:`~ecg_core.core.quota.QuotaError` when the trained runs are at ``ECG_INSIGHT_MODELS_QUOTA_MB``."""
    from ecg_core.core import quota

    quota.check_quota(paths.models_dir(), 0, limits().models_quota_bytes, what="trained runs",
                      env_name=quota.MODELS_QUOTA_ENV, hint="Delete runs you no longer need (Runs, below).")


# ------------------------------------------------------------------------------- the Preprocess page's settings
PREPROCESS_KEY = "app_preprocess"  # a plain session-state value (not a widget's): it survives page changes


def preprocess_settings_store() -> dict:
    """The Preprocess page's settings of this session (PreprocessConfig fields, defaults until changed): the one
    source of truth its widgets show and the Train page can train with."""
    from ecg_core.imaging.preprocess import PreprocessConfig

    store = st.session_state.get(PREPROCESS_KEY)
    if not isinstance(store, dict):
        store = st.session_state[PREPROCESS_KEY] = PreprocessConfig().to_dict()
    return store


def preprocess_settings():  # -> PreprocessConfig | None
    """The Preprocess page's settings as a config, or None when they are not valid (the page says why)."""
    from ecg_core.imaging.preprocess import PreprocessConfig

    try:
        return PreprocessConfig.from_dict(preprocess_settings_store())
    except EcgCoreError:
        return None


# ------------------------------------------------------------------------------------ deep links after a restart
def _leave_pages_folder_mode() -> None:
    """Make a deep link work on a freshly started server.

    Streamlit (1.67) treats an app with a ``pages/`` folder beside the entry script as a "multipage v1" app until
    ``st.navigation`` has run once in the process. So when the first visit after a start is a deep link
    (``/data``, a bookmark, a reload), the page script runs alone, without the entry script: the sidebar lists the
    raw file names and has no dataset picker and no disclaimer. Every page imports this module, so the first such
    run switches the process to ``st.navigation`` mode and reruns, which then goes through ``streamlit_app.py``.
    (Renaming ``pages/`` would avoid the fallback altogether.)
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:  # a Streamlit without these internals: nothing to work around
        return
    if getattr(PagesManager, "uses_pages_directory", False) and get_script_run_ctx() is not None:
        PagesManager.uses_pages_directory = False
        st.rerun()



# ------------------------------------------------------------------------- no Keras session reset after every run
def _keep_keras_session() -> None:
    """Stop Streamlit from resetting Keras after every script run.

    Streamlit (1.67) ends every run, fragment runs included, with ``keras.backend.clear_session()`` as soon as
    Keras is imported: a full ``gc.collect()`` and TensorFlow's kernel cache cleared, about a second each time with
    TensorFlow loaded. The app keeps its models in ``st.cache_resource`` and builds none in the server process, so
    this only costs time; and while the start-up warm-up loads the default model in its thread, the home page's
    status poll (a fragment run twice a second) made the load several times slower (110 s instead of about 8 s here).
    Matplotlib figures are still closed as Streamlit does.
    """
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:  # a Streamlit without this internal: nothing to change
        return
    current = getattr(script_runner, "_clean_problem_modules", None)
    if current is None or getattr(current, "ecg_insight", False):
        return

    def clean_problem_modules_but_keras() -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            with contextlib.suppress(Exception):
                plt.close("all")

    clean_problem_modules_but_keras.ecg_insight = True  # type: ignore[attr-defined]
    script_runner._clean_problem_modules = clean_problem_modules_but_keras


_keep_keras_session()
_leave_pages_folder_mode()
