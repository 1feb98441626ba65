"""The import contract of ``ecg_core`` (docs/ARCHITECTURE.md): layered subpackages, lower layers never import higher
ones, ``reports`` and ``signals`` never import each other, no import cycles anywhere (imports inside functions count),
no Streamlit, small modules. Every failure names the offending file, line and import."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "ecg_core"

# layer -> rank; an import may go to the same or a lower rank only. Equal ranks of different layers (reports and
# signals) may not import each other.
LAYERS = {"core": 0, "imaging": 1, "ml": 2, "xai": 3, "reports": 4, "signals": 4, "viz": 5, "cli": 6}
MAX_LINES = 650


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> list[tuple[int, str, str]]:
    """(line, imported ecg_core module, the import as written) for every import in the file, nested ones too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in ("ecg_core", "streamlit", "app_ui", "pages"):
                    out.append((node.lineno, a.name, f"import {a.name}"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] not in ("ecg_core", "streamlit", "app_ui", "pages"):
                continue
            written = f"from {'.' * node.level}{node.module or ''} import {', '.join(a.name for a in node.names)}"
            targets = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
            if len(targets) < len(node.names):
                targets.append(mod)
            out.extend((node.lineno, t, written) for t in targets)
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    mods = _modules()
    known = set(mods)
    graph: dict[str, set[str]] = defaultdict(set)
    violations: list[str] = []
    for name, path in mods.items():
        src_layer = _layer(name)
        for line, target, written in _imports(path, name, known):
            where = f"{path.relative_to(REPO)}:{line}: {written}"
            top = target.split(".")[0]
            if top in ("streamlit", "app_ui", "pages"):
                violations.append(f"{where}  (ecg_core must not import {top})")
                continue
            if target not in known:
                violations.append(f"{where}  ({target} is not a module of ecg_core)")
                continue
            if target != name:
                graph[name].add(target)
            dst_layer = _layer(target)
            if src_layer is None or dst_layer is None or src_layer == dst_layer:
                continue
            if LAYERS[dst_layer] > LAYERS[src_layer]:
                violations.append(f"{where}  ({src_layer} is below {dst_layer}: a lower layer imports a higher one)")
            elif LAYERS[dst_layer] == LAYERS[src_layer]:
                violations.append(f"{where}  ({src_layer} and {dst_layer} must not import each other)")
    return graph, violations


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_layers_are_respected_and_no_streamlit() -> None:
    _, violations = _graph()
    assert not violations, "imports that break the layering:\n" + "\n".join(violations)


def test_no_import_cycles() -> None:
    graph, _ = _graph()
    cycles = _cycles(graph)
    assert not cycles, "import cycles (imports inside functions count):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_the_contract_checker_catches_what_it_should(tmp_path) -> None:
    """The checker itself: a planted upward import and a planted cycle are both reported."""
    graph = {"ecg_core.core.a": {"ecg_core.ml.b"}, "ecg_core.ml.b": {"ecg_core.core.a"}}
    assert _cycles(graph) == [["ecg_core.core.a", "ecg_core.ml.b"]]
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from ecg_core.ml import registry\n")
    assert _imports(f, "ecg_core.core.m", {"ecg_core.ml.registry"}) == [
        (2, "ecg_core.ml.registry", "from ecg_core.ml import registry")]


def test_subpackages_and_module_size() -> None:
    subpackages = sorted(p.parent.name for p in PKG.glob("*/__init__.py"))
    assert len(subpackages) >= 5, subpackages
    assert set(subpackages) <= set(LAYERS), f"a subpackage without a layer: {set(subpackages) - set(LAYERS)}"
    flat = sorted(p.name for p in PKG.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert not flat, f"modules outside the layers: {flat}"
    big = {str(p.relative_to(REPO)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_importing_every_module_does_not_load_streamlit() -> None:
    modules = sorted(m for m in _modules() if not m.endswith("__main__"))
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "assert 'streamlit' not in sys.modules, 'streamlit was imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_public_api_and_old_paths() -> None:
    """Every name of ``ecg_core.__all__`` resolves; the 0.1 module paths still import, as the new modules."""
    import importlib

    import ecg_core

    for name in ecg_core.__all__:
        assert getattr(ecg_core, name) is not None, name
    for old, new in ecg_core._OLD_PATHS.items():
        assert importlib.import_module(f"ecg_core.{old}") is importlib.import_module(new), old
    with pytest.raises(AttributeError):
        _ = ecg_core.no_such_name


def test_installable_with_a_console_script() -> None:
    """``pip install -e .`` gives ``ecg-insight``, the same commands as ``python -m ecg_core``."""
    import tomllib

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["ecg-insight"] == "ecg_core.cli:main"
    assert meta["tool"]["setuptools"]["packages"]["find"]["include"][0] == "ecg_core*"
    out = subprocess.run([sys.executable, "-c", "import sys; from ecg_core.cli import main; sys.exit(main(['--help']))"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "audit" in out.stdout, out.stderr[-1000:]
