"""Data roots: the folders under which the app accepts a typed folder path (dataset, batch folder, model folder).

A path typed into the app is resolved (``~``, ``..``, relative parts and symbolic links, with
``Path.resolve(strict=False)``) and accepted only when the resolved path lies inside one of the resolved roots, so
that a browser user cannot list or read a folder elsewhere on the server. The roots are the app home, the demo
data, the model registry, ``../shared/data`` when present, and the folders listed in ``ECG_INSIGHT_DATA_ROOTS``
(separated by ``os.pathsep``). The command line is the local user's own shell and is not restricted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ecg_core.core.errors import EcgCoreError

__all__ = ["DATA_ROOTS_ENV", "OutsideRootsError", "allowed_roots", "resolve_inside_roots"]

DATA_ROOTS_ENV = "ECG_INSIGHT_DATA_ROOTS"


class OutsideRootsError(EcgCoreError, ValueError):
    """A typed folder path lies outside the allowed data roots (or cannot be resolved)."""


def _resolve(p: str | Path, base: Path | None = None) -> Path:
    path = Path(os.path.expanduser(str(p)))
    if not path.is_absolute() and base is not None:
        path = base / path
    return path.resolve(strict=False)


def allowed_roots(env: Mapping[str, str], app_home: str | Path, models_dir: str | Path, demo_dir: str | Path,
                  repo: str | Path, *, shared_data: str | Path | None = None) -> tuple[Path, ...]:
    """The resolved data roots, without duplicates, in order: the app home, the demo data, the models folder,
    ``shared_data`` (default ``<repo>/../shared/data``) when it is a folder, then each entry of
    ``env[ECG_INSIGHT_DATA_ROOTS]`` (``os.pathsep``-separated; relative entries are taken from ``repo``; empty
    entries are ignored)."""
    repo = Path(repo)
    shared = Path(shared_data) if shared_data is not None else repo.parent / "shared" / "data"
    found: list[Path] = [_resolve(app_home), _resolve(demo_dir), _resolve(models_dir)]
    if shared.is_dir():
        found.append(_resolve(shared))
    for entry in str(env.get(DATA_ROOTS_ENV, "") or "").split(os.pathsep):
        if entry.strip():
            found.append(_resolve(entry.strip(), repo))
    return tuple(dict.fromkeys(found))


def describe_roots(roots: Iterable[Path]) -> str:
    return ", ".join(f"`{r}`" for r in roots) or "(none)"


def resolve_inside_roots(typed: str, roots: Iterable[str | Path], *, base: str | Path | None = None,
                         private: str | Path | None = None, own: str | Path | None = None) -> Path:
    """The resolved folder of ``typed`` when it lies inside one of ``roots`` (the root itself included).

    ``~`` is expanded, a relative path is taken from ``base`` (default: the current folder), and ``..`` and
    symbolic links are resolved before the check, so neither a ``..`` nor a link that points out of a root gets
    past it. The path need not exist (the caller says so); raises :class:`OutsideRootsError`, whose message names
    the allowed roots, for an empty path or one outside them. ``private`` (the uploads of every session) is refused
    too, inside it and above it (a folder read recursively would list it), except inside ``own`` (this session's
    uploads).
    """
    resolved_roots = tuple(_resolve(r) for r in roots)
    allowed = (f"Allowed folders: {describe_roots(resolved_roots)} (the administrator adds more with "
               f"{DATA_ROOTS_ENV}).")
    text = str(typed or "").strip()
    if not text or "\x00" in text:
        raise OutsideRootsError(f"Type a folder path. {allowed}")
    try:
        path = _resolve(text, Path(base) if base is not None else Path.cwd())
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a name too long for the file system
        raise OutsideRootsError(f"The folder {text!r} cannot be resolved ({e}). {allowed}") from e
    if any(path.is_relative_to(r) for r in resolved_roots):
        if private is not None:
            priv = _resolve(private)
            mine = _resolve(own) if own is not None else None
            if (path.is_relative_to(priv) or priv.is_relative_to(path)) and not (
                    mine is not None and path.is_relative_to(mine)):
                raise OutsideRootsError(
                    f"The folder {text!r} holds other sessions' uploads: choose a folder of your own data, inside "
                    f"the data roots but not {str(priv)!r} or a folder above it. {allowed}")
        return path
    raise OutsideRootsError(f"The folder {text!r} is outside the folders this app may read. {allowed}")
