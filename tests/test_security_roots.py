"""Issue 18.2: typed folder paths are accepted only inside the data roots (``ecg_core.core.roots``), in the library
(table below) and on the pages that take a typed folder: the sidebar's "Other folder..." and the Batch predict page's
folder. A refused path shows a message naming the allowed roots, and nothing is listed or scanned."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import report_like, write_image
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300


@dataclass(frozen=True)
class Case:
    label: str
    typed: str  # {root}, {out}, {tmp} are filled in; a leading "rel:" is typed relative to the root (base)
    accepted: bool
    resolves_to: str = ""  # for an accepted case: the expected resolved path (same placeholders)


CASES = [
    Case("a folder inside the root", "{root}/data", True, "{root}/data"),
    Case("the root itself", "{root}", True, "{root}"),
    Case("a root typed with a trailing slash and '.'", "{root}/./data/", True, "{root}/data"),
    Case("'..' climbing out of the root", "{root}/data/../../outside", False),
    Case("'..' that stays inside", "{root}/data/../data", True, "{root}/data"),
    Case("an absolute path outside", "{out}", False),
    Case("a system folder", "/etc", False),
    Case("the file-system root", "/", False),
    Case("a sibling whose name starts like the root", "{root}-evil", False),
    Case("a symlink inside the root pointing out", "{root}/link-out", False),
    Case("a folder below a symlink pointing out", "{root}/link-out/sub", False),
    Case("a symlink inside the root pointing inside", "{root}/link-in", True, "{root}/data"),
    Case("a symlink outside pointing into the root", "{out}/link-back", True, "{root}/data"),
    Case("~ (home outside the roots)", "~", False),
    Case("~/ with a '..' into the root", "~/../root/data", True, "{root}/data"),
    Case("a relative path inside", "rel:data", True, "{root}/data"),
    Case("a relative path out", "rel:../outside", False),
    Case("a nonexistent folder inside (the caller says it is missing)", "{root}/nope/deeper", True,
         "{root}/nope/deeper"),
    Case("a nonexistent folder outside", "{tmp}/nope", False),
    Case("an empty path", "", False),
    Case("a NUL byte", "{root}/da\x00ta", False),
]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """tmp/root (the only root) with data/, link-out -> tmp/outside, link-in -> root/data; tmp/outside with
    link-back -> root/data; HOME = tmp/home (outside the root)."""
    root, out = tmp_path / "root", tmp_path / "outside"
    (root / "data").mkdir(parents=True)
    (out / "sub").mkdir(parents=True)
    (tmp_path / "root-evil").mkdir()
    (tmp_path / "home").mkdir()
    (root / "link-out").symlink_to(out)
    (root / "link-in").symlink_to(root / "data")
    (out / "link-back").symlink_to(root / "data")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def _fill(text: str, tmp: Path) -> str:
    return text.format(root=tmp / "root", out=tmp / "outside", tmp=tmp)


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_resolve_inside_roots(case, tree):
    from ecg_core.core.errors import EcgCoreError
    from ecg_core.core.roots import OutsideRootsError, resolve_inside_roots

    roots = [tree / "root"]
    typed = case.typed[4:] if case.typed.startswith("rel:") else _fill(case.typed, tree)
    if case.accepted:
        got = resolve_inside_roots(typed, roots, base=tree / "root")
        assert got == Path(_fill(case.resolves_to, tree)).resolve()
        assert got.is_absolute()
    else:
        with pytest.raises(OutsideRootsError) as err:
            resolve_inside_roots(typed, roots, base=tree / "root")
        assert isinstance(err.value, EcgCoreError)  # the pages' guards show it as a message
        assert str(tree / "root") in str(err.value) and "ECG_INSIGHT_DATA_ROOTS" in str(err.value)


PRIVATE_CASES = [  # (typed below the root, accepted): uploads = root/uploads, this session's = root/uploads/s-me
    ("uploads", False), ("uploads/s-other/zip-1", False), ("", False), ("uploads/s-me/zip-1", True),
    ("uploads/s-me", True), ("data", True), ("uploads/s-me/../s-other", False), ("link-to-other", False),
]


@pytest.mark.parametrize("rel,accepted", PRIVATE_CASES, ids=[f"{r or 'the root'}" for r, _ in PRIVATE_CASES])
def test_other_sessions_uploads_are_private(rel, accepted, tree):
    """The uploads folder is inside the app home (a root) but holds every session's files: only this session's
    folder may be typed, not the others, nor a folder above them (a recursive scan would list them)."""
    from ecg_core.core.roots import OutsideRootsError, resolve_inside_roots

    root = tree / "root"
    (root / "uploads" / "s-other" / "zip-1").mkdir(parents=True)
    (root / "uploads" / "s-me" / "zip-1").mkdir(parents=True)
    (root / "link-to-other").symlink_to(root / "uploads" / "s-other")
    kw = {"private": root / "uploads", "own": root / "uploads" / "s-me"}
    typed = str(root / rel) if rel else str(root)
    if accepted:
        assert resolve_inside_roots(typed, [root], **kw) == Path(typed).resolve()
    else:
        with pytest.raises(OutsideRootsError, match="other sessions' uploads"):
            resolve_inside_roots(typed, [root], **kw)


def test_a_symlinked_root_is_compared_resolved(tree):
    """A root given through a symlink: a path typed through the link, or to its target, is inside."""
    from ecg_core.core.roots import resolve_inside_roots

    (tree / "root-link").symlink_to(tree / "root")
    assert resolve_inside_roots(str(tree / "root" / "data"), [tree / "root-link"]) == (tree / "root" / "data")
    assert resolve_inside_roots(str(tree / "root-link" / "data"), [tree / "root"]) == (tree / "root" / "data")


def test_allowed_roots_defaults_and_env(tmp_path):
    from ecg_core.core.roots import allowed_roots

    repo = tmp_path / "repo"
    home, models, demo = repo / ".home", repo / "models", repo / ".home" / "demo"
    repo.mkdir()
    # ../shared/data absent: not a root
    assert allowed_roots({}, home, models, demo, repo) == (home.resolve(), demo.resolve(), models.resolve())
    (tmp_path / "shared" / "data").mkdir(parents=True)
    roots = allowed_roots({}, home, models, demo, repo)
    assert roots[-1] == (tmp_path / "shared" / "data").resolve() and len(roots) == 4
    extra = tmp_path / "class-data"
    env = {"ECG_INSIGHT_DATA_ROOTS": os.pathsep.join([str(extra), "", "relative/part", str(extra)])}
    roots = allowed_roots(env, home, models, demo, repo)
    assert roots[4:] == (extra.resolve(), (repo / "relative" / "part").resolve())  # no duplicates, no empty entry
    assert allowed_roots({}, home, home, home, repo) == (home.resolve(), (tmp_path / "shared" / "data").resolve())


def test_env_root_admits_its_folders(tmp_path, monkeypatch):
    """ECG_INSIGHT_DATA_ROOTS adds roots: a folder refused by default is accepted once its parent is listed."""
    from app_ui import common
    from ecg_core.core.roots import OutsideRootsError

    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    target = tmp_path / "class" / "reports"
    target.mkdir(parents=True)
    monkeypatch.delenv("ECG_INSIGHT_DATA_ROOTS", raising=False)
    with pytest.raises(OutsideRootsError):
        common.inside_roots(str(target))
    monkeypatch.setenv("ECG_INSIGHT_DATA_ROOTS", str(tmp_path / "class"))
    assert common.inside_roots(str(target)) == target.resolve()
    roots = common.data_roots()
    assert (tmp_path / "home").resolve() in roots and (tmp_path / "class").resolve() in roots


# ------------------------------------------------------------------------------------------------ on the pages
@pytest.fixture
def outside_dataset(tmp_path, monkeypatch):
    """A readable dataset (2 classes x 2 images) outside every root, a symlink to it from inside the app home, and
    a counter of every dataset scan and folder listing the pages make."""
    from app_ui import cache
    from ecg_core.ml import dataset

    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(tmp_path / "models"))
    monkeypatch.delenv("ECG_INSIGHT_DATA_ROOTS", raising=False)
    data = tmp_path / "secret"
    for i, cls in enumerate(("MI", "Normal", "MI", "Normal")):
        write_image(data / cls / f"{i}.png", report_like(i, size=(160, 120)))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "sneaky").symlink_to(data)
    calls: list[str] = []
    real_scan, real_sig = dataset.scan, cache.folder_signature
    monkeypatch.setattr(dataset, "scan", lambda root, *a, **k: calls.append(f"scan {root}") or real_scan(root, *a, **k))
    monkeypatch.setattr(cache, "folder_signature",
                        lambda root, **k: calls.append(f"list {root}") or real_sig(root, **k))
    cache.st.cache_data.clear()
    return data, calls


def _sidebar_then_data_page() -> None:
    """What streamlit_app.py runs: the shared sidebar, then a page (here the Data page)."""
    import runpy

    from app_ui import common

    common.dataset_sidebar()
    runpy.run_path(str(common.paths.REPO_ROOT / "pages" / "data.py"))


def _sidebar_app() -> AppTest:
    at = AppTest.from_function(_sidebar_then_data_page, default_timeout=TIMEOUT)
    at.session_state["app_dataset_pick"] = "Other folder..."
    return at


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "tilde"])
def test_sidebar_refuses_a_folder_outside_the_roots(how, outside_dataset, tmp_path, monkeypatch):
    data, calls = outside_dataset
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    typed = {"absolute": str(data), "dotdot": str(tmp_path / "home" / ".." / "secret"),
             "symlink": str(tmp_path / "home" / "sneaky"), "tilde": "~/../secret"}[how]
    at = _sidebar_app()
    at.session_state["app_dataset_path"] = typed  # typed before the first run: no demo dataset is made meanwhile
    at.run()
    assert not at.exception, at.exception
    refused = [e.value for e in at.sidebar.error]
    assert len(refused) == 1 and "outside the folders this app may read" in refused[0], refused
    assert str((tmp_path / "home").resolve()) in refused[0]  # the message names the allowed roots
    assert any("outside the folders" in e.value for e in at.main.error)  # the page says it too
    assert at.session_state["app_dataset_root"] == ""
    assert not at.metric and not at.dataframe and not calls, calls  # nothing listed, nothing scanned
    assert str(data) not in " ".join(c.value for c in at.caption)


def test_sidebar_accepts_a_folder_inside_the_roots(outside_dataset, tmp_path, monkeypatch):
    """The same folder once the administrator lists it in ECG_INSIGHT_DATA_ROOTS: scanned and shown."""
    data, calls = outside_dataset
    monkeypatch.setenv("ECG_INSIGHT_DATA_ROOTS", str(data))
    at = _sidebar_app()
    at.session_state["app_dataset_path"] = str(data)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert {m.label: m.value for m in at.metric}["files"] == "4"
    assert any(c.startswith("scan ") for c in calls)


@pytest.fixture
def batch_page(monkeypatch):
    """The Batch predict page with a stand-in model (no TensorFlow) and a record of the predictions asked for."""
    from types import SimpleNamespace

    from app_ui import cache, widgets

    asked: list[str] = []
    monkeypatch.setattr(widgets, "pick_report_model", lambda *a, **k: SimpleNamespace(
        key="m", explainer=None, cfg=None, run_id="m",
        run=SimpleNamespace(is_measurement=False, meta={}, input_kind="report_image")))
    monkeypatch.setattr(cache, "batch_predictions", lambda key, folder, *a, **k: asked.append(folder) or _table())
    monkeypatch.setattr(cache, "ood_profile", lambda run: (None, ""), raising=False)
    return asked


def _table():
    import pandas as pd

    return pd.DataFrame({"path": ["a.png"], "predicted": ["Normal"], "reason": [""], "ecg_score": [0.9],
                         "in_distribution": ["true"], "ood_reason": [""], "prob_Normal": [0.9]})


@pytest.mark.parametrize("how", ["absolute", "symlink"])
def test_batch_folder_outside_the_roots_is_refused(how, batch_page, outside_dataset, tmp_path):
    data, calls = outside_dataset
    typed = str(data) if how == "absolute" else str(tmp_path / "home" / "sneaky")
    at = AppTest.from_file(str(REPO / "pages" / "explain_batch.py"), default_timeout=TIMEOUT).run()
    at.text_input(key="explain_batch_dir").set_value(typed).run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "outside the folders this app may read" in errors[0], errors
    assert str((tmp_path / "home").resolve()) in errors[0]
    assert not [b for b in at.button if b.key == "explain_batch_run"]  # the page stops before the Predict button
    assert not batch_page and not calls and not at.dataframe


def test_batch_folder_inside_the_roots_is_predicted(batch_page, outside_dataset, monkeypatch):
    data, _ = outside_dataset
    monkeypatch.setenv("ECG_INSIGHT_DATA_ROOTS", str(data))
    at = AppTest.from_file(str(REPO / "pages" / "explain_batch.py"), default_timeout=TIMEOUT).run()
    at.text_input(key="explain_batch_dir").set_value(str(data)).run()
    at.button(key="explain_batch_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert batch_page == [str(data.resolve())] and at.dataframe
