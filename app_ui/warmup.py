"""Start-up warm-up: load the default model in a background thread so that the first explanation is quick.

Importing TensorFlow, loading a model and tracing its first prediction and first Grad-CAM take several seconds;
:class:`Warmup` does all of it once per server process in a daemon thread, while the pages render, and puts the
loaded model into the app's shared :class:`~ecg_core.xai.explainer.ExplainerCache`. It never raises into the UI: a
failure is recorded as ``status="failed"`` with its message. ``ECG_INSIGHT_WARMUP=0`` (or ``false``/``no``/``off``)
turns it off (``status="disabled"``); the test suite does so.

No Streamlit here (testable on its own); ``app_ui.cache.start_warmup`` holds the one instance in
``st.cache_resource``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ENV_VAR = "ECG_INSIGHT_WARMUP"
STATUSES = ("warming", "ready", "failed", "disabled")


def warmup_enabled(environ: Any = None) -> bool:
    """False when ``ECG_INSIGHT_WARMUP`` is ``0``, ``false``, ``no`` or ``off`` (any case); True otherwise."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return value.strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class WarmupState:
    """A snapshot of the warm-up.

    ``status``: ``warming`` / ``ready`` / ``failed`` / ``disabled``; ``run_id``: the default run (``None`` until it
    is known, or when no usable run exists); ``seconds``: time since the start (while warming) or total time (when
    done); ``message``: what went wrong (failed), why it is off (disabled), or a summary; ``phases``: seconds per
    step (``find``, ``load``, ``predict``, ``gradcam``) as far as they got.
    """

    status: str
    run_id: str | None = None
    seconds: float = 0.0
    message: str = ""
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status != "warming"


class Warmup:
    """Load the default model of ``models_dir`` into the explainer cache made by ``cache_factory``.

    ``cache_factory()`` returns an object with ``get(run_info)`` -> explainer (``ExplainerCache``); it is called by
    :meth:`start` in the calling thread (only when enabled), so that a Streamlit-cached factory runs in the script
    thread. ``preferred``: the run id to open when usable (see :func:`ecg_core.ml.registry.default_run`).
    """

    def __init__(self, cache_factory: Callable[[], Any], models_dir: str | Path, *, enabled: bool | None = None,
                 preferred: str | None = None) -> None:
        self._cache_factory = cache_factory
        self.models_dir = Path(models_dir)
        self.enabled = warmup_enabled() if enabled is None else bool(enabled)
        self.preferred = preferred
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.perf_counter()
        self._state = WarmupState("warming")

    # -------------------------------------------------------------------------------------------- public API
    def start(self) -> Warmup:
        """Start the background thread (once); returns ``self``. Never raises."""
        with self._lock:
            if self._thread is not None or self._done.is_set():
                return self
            if not self.enabled:
                self._state = WarmupState("disabled", message=f"the start-up warm-up is off ({ENV_VAR}=0)")
                self._done.set()
                return self
            self._t0 = time.perf_counter()
            try:
                cache = self._cache_factory()
                self._thread = threading.Thread(target=self._run, args=(cache,), name="ecg-insight-warmup",
                                                daemon=True)
                self._thread.start()
            except Exception as e:  # noqa: BLE001 - never into the UI
                self._thread = None
                self._state = WarmupState("failed", seconds=self._elapsed(), message=_describe(e))
                self._done.set()
        return self

    def state(self) -> WarmupState:
        """The current snapshot (``seconds`` keeps counting while warming)."""
        with self._lock:
            s = self._state
            return replace(s, seconds=round(self._elapsed(), 2)) if s.status == "warming" else s

    def wait(self, timeout: float | None = None) -> WarmupState:
        """Block until the warm-up is done (or ``timeout`` seconds passed); returns the state."""
        self._done.wait(timeout)
        return self.state()

    # ------------------------------------------------------------------------------------------------ thread
    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def _run(self, cache: Any) -> None:
        phases: dict[str, float] = {}
        t = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal t
            now = time.perf_counter()
            phases[name] = round(now - t, 2)
            t = now
            self._update(phases=dict(phases))

        final: WarmupState | None = None
        prefetch = ""
        try:
            import numpy as np

            from ecg_core.ml import registry

            kwargs = {"preferred": self.preferred} if self.preferred else {}
            run = registry.default_run(self.models_dir, **kwargs)
            lap("find")
            if run is None:
                final = WarmupState("failed", None, round(self._elapsed(), 2),
                                    f"no usable trained model in {self.models_dir}", dict(phases))
                return
            self._update(run_id=run.run_id)
            if run.is_measurement:  # LightGBM text / JSON: no Keras to import, no Grad-CAM to trace
                registry.load_model(run)
                lap("load")
                final = WarmupState("ready", run.run_id, round(self._elapsed(), 2),
                                    f"{run.run_id} loaded (measurement model)", dict(phases))
                return
            if run.meta.get("model_kind") == registry.ENSEMBLE_KIND:  # its members, into the caches the pages use
                from ecg_core.reports.ensemble import member_runs

                members = member_runs(run)[0]
                networks = [m for m in members if not m.is_measurement]
                # the network first: importing TensorFlow is the long part
                explainers = [cache.get(m) for m in networks]
                for m in members:
                    if m.is_measurement:
                        registry.load_model(m)
                lap("load")
                for ex in explainers:
                    x = np.zeros(tuple(ex.input_shape), dtype=np.float32)
                    ex.predict_proba(x)
                lap("predict")
                for ex in explainers:  # what a per-lead member's view runs first: Grad-CAM of the top class
                    ex.explain(np.zeros(tuple(ex.input_shape), dtype=np.float32), method="gradcam")
                lap("gradcam")
                final = WarmupState("ready", run.run_id, round(self._elapsed(), 2),
                                    f"{run.run_id} loaded: {len(members)} members "
                                    f"({', '.join(m.run_id for m in members)}); the network's first prediction and "
                                    "Grad-CAM traced", dict(phases))
                if len(networks) < len(members):  # a measurement member reads the report with neurokit2: import it
                    prefetch = "neurokit2"        # after "ready" (about 3 s here), before the first upload
                return
            panels = run.input_kind == "report_panels"  # a per-lead CNN: Grad-CAM alone on its panel mosaic
            explainer = cache.get(run)  # imports Keras/TensorFlow and loads the model
            lap("load")
            x = np.zeros(tuple(explainer.input_shape), dtype=np.float32)
            explainer.predict_proba(x)
            lap("predict")
            # what the Explain page runs first (ecg_core.reports.pipeline): prediction + Grad-CAM of the top class in
            # one pass
            if panels:
                explainer.explain(x, method="gradcam")
            else:
                explainer.predict_and_explain(x, method="gradcam")
            lap("gradcam")
            final = WarmupState("ready", run.run_id, round(self._elapsed(), 2),
                                f"{run.run_id} loaded, first prediction and Grad-CAM traced", dict(phases))
        except BaseException as e:  # noqa: BLE001 - recorded, never raised into the UI
            with self._lock:
                run_id = self._state.run_id
            final = WarmupState("failed", run_id, round(self._elapsed(), 2), _describe(e), dict(phases))
        finally:
            with self._lock:
                self._state = final or WarmupState("failed", self._state.run_id, round(self._elapsed(), 2),
                                                   "the warm-up stopped unexpectedly", dict(phases))
            self._done.set()
            if prefetch:  # not part of "ready": only makes the first reading of a report quicker; harmless if it fails
                import importlib

                try:
                    importlib.import_module(prefetch)
                except Exception:  # noqa: BLE001 - the page imports it again and says what is wrong
                    pass


def _describe(e: BaseException) -> str:
    """One line: the library's own message for its errors, else the exception type and message."""
    from ecg_core.core.errors import EcgCoreError

    text = str(e).strip().splitlines()[0][:500] if str(e).strip() else ""
    if isinstance(e, EcgCoreError) and text:
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
