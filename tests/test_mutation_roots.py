"""Behaviour tests for the path/root checks (ecg_core.core.roots), written from the mutants that survived
`make mutate` (issue 20, docs/MUTATION.md). Skipped while the module does not exist.

Under mutmut (this file's copy in ``mutants/tests/``) the unit tests of ``tests/test_security_roots.py`` are
collected here too, so that `make mutate` measures them without listing that file (whose AppTest cases take
minutes) in ``pytest_add_cli_args_test_selection``; in a normal pytest run they are collected once, from their own
file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

roots = pytest.importorskip("ecg_core.core.roots", reason="ecg_core/core/roots.py is not there yet")

if Path(__file__).resolve().parent.parent.name == "mutants":  # pragma: no cover - only under mutmut
    from test_security_roots import (  # noqa: F401  (collected by pytest from this module's namespace)
        test_a_symlinked_root_is_compared_resolved,
        test_allowed_roots_defaults_and_env,
        test_other_sessions_uploads_are_private,
        test_resolve_inside_roots,
        tree,
    )


def test_a_relative_root_is_taken_from_the_current_folder(tmp_path, monkeypatch):
    """Planted bug: a relative root joined to ``base`` = None (a crash) instead of resolved from the current
    folder; an absolute typed path is not joined to ``base`` either."""
    (tmp_path / "root" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    got = roots.resolve_inside_roots(str(tmp_path / "root" / "data"), ["root"], base=tmp_path / "elsewhere")
    assert got == (tmp_path / "root" / "data").resolve()
    assert roots.allowed_roots({}, "home", "models", "demo", tmp_path / "repo")[0] == (tmp_path / "home").resolve()


def test_allowed_roots_uses_the_shared_data_folder_it_is_given(tmp_path):
    """Planted bug: the ``shared_data`` argument ignored (always ``<repo>/../shared/data``)."""
    shared = tmp_path / "elsewhere" / "data"
    shared.mkdir(parents=True)
    got = roots.allowed_roots({}, tmp_path / "h", tmp_path / "m", tmp_path / "d", tmp_path / "repo", shared_data=shared)
    assert got[-1] == shared.resolve() and len(got) == 4


def test_refusals_name_the_allowed_folders(tmp_path):
    """The message lists the roots as `a`, `b` (or "(none)"). Planted bugs: another separator or placeholder."""
    a, b = tmp_path / "a", tmp_path / "b"
    with pytest.raises(roots.OutsideRootsError, match=r"Allowed folders: `[^`]+/a`, `[^`]+/b` \(the administrator"):
        roots.resolve_inside_roots(str(tmp_path / "c"), [a, b])
    with pytest.raises(roots.OutsideRootsError, match=r"Allowed folders: \(none\) \(the administrator adds more with "
                                                      r"ECG_INSIGHT_DATA_ROOTS\)\.$"):
        roots.resolve_inside_roots(str(tmp_path / "c"), [])


def test_a_nul_byte_is_refused_like_an_empty_path(tmp_path):
    """Planted bug: the NUL check lost, so the path reached the resolver (another message)."""
    with pytest.raises(roots.OutsideRootsError, match=r"^Type a folder path\. Allowed folders: "):
        roots.resolve_inside_roots(str(tmp_path) + "/da\x00ta", [tmp_path])


def test_a_symlink_loop_is_refused_with_the_reason(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    typed = str(tmp_path / "a" / "x")
    with pytest.raises(roots.OutsideRootsError, match=r"^The folder '.+' cannot be resolved \(Symlink loop .+\)\. "
                                                      r"Allowed folders: "):
        roots.resolve_inside_roots(typed, [tmp_path])


def test_without_an_own_folder_nothing_of_the_private_folder_is_accepted(tmp_path, monkeypatch):
    """Planted bug: a missing ``own`` folder read as the path "None" (relative to the current folder), which
    opened a folder of that name inside the private uploads. The message names the private folder."""
    priv = tmp_path / "uploads"
    (priv / "None" / "zip-1").mkdir(parents=True)
    monkeypatch.chdir(priv)
    with pytest.raises(roots.OutsideRootsError) as err:
        roots.resolve_inside_roots(str(priv / "None" / "zip-1"), [tmp_path], private=priv)
    assert f"inside the data roots but not {str(priv.resolve())!r} or a folder above it." in str(err.value)
