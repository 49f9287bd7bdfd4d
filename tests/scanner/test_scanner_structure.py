"""The scanner package's structure (issue #12): settings named once, no cycles, clean edges."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from scanner import settings
from scanner.settings import ALL, Setting
from tests.paths import ROOT

SCANNER = ROOT / "scanner"


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_every_setting_is_named_once_with_its_why() -> None:
    keys = [s.key for s in ALL]
    assert len(keys) == len(set(keys))
    declared = [v for v in vars(settings).values() if isinstance(v, Setting)]
    assert set(map(id, declared)) == set(map(id, ALL))  # none left out of ALL
    for s in ALL:
        assert s.why and "\n" not in s.why
        assert s.accept(None) == s.default


def test_a_mistyped_stored_value_reads_as_the_default() -> None:
    assert settings.SOUND.accept("off") is True  # not a bool: the default
    assert settings.CLOCK_OFFSET.accept(True) is None  # JSON true is no offset
    assert settings.CLOCK_OFFSET.accept(-250) == -250
    assert settings.VERDICT_CLEAR_S.accept(3) == 3
    assert settings.RELAY_PIN.accept("GPIO17") == "GPIO17"


def test_no_config_key_is_spelled_outside_the_settings_module() -> None:
    """Only the store's own typed API touches raw config keys: scanner code reads and writes
    settings as `store.setting(X)` / `store.set_setting(X, v)`."""
    offenders = []
    for path in _modules("scanner"):
        if path.name == "store.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"config", "set_config"}
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


# -- imports -------------------------------------------------------------------------------

RUNTIME = ("scanner", "hub", "protocol", "manifests", "hardware")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list[tuple[str, bool]]:
    """Every module `path` imports, anywhere in it (top level, functions, TYPE_CHECKING),
    with whether the import is for type checking only."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else ""
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            typing_only |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1]])
                base = f"{base}.{node.module}" if node.module else base
            # `from scanner import gate_log` imports the submodule
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        found += [(n, id(node) in typing_only) for n in names]
    return found


def _graph() -> dict[str, set[str]]:
    """scanner's own import graph; the screens may name the app for type checking only
    (Textual's screen/app pattern: the app pushes its screens, a screen's `app` is typed)."""
    modules = {_module_name(p): p for p in _modules("scanner")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for target, typing_only in _imports(path):
            textual_pattern = (
                typing_only and target == "scanner.app" and name.startswith("scanner.screens")
            )
            if target in modules and target != name and not textual_pattern:
                edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scanner_package_has_no_import_cycle() -> None:
    """Counting every import, function-level and TYPE_CHECKING ones too: a cycle held
    together by an import hidden in a function is still a cycle."""
    assert _cycles(_graph()) == []


def test_the_cycle_check_sees_a_hidden_cycle() -> None:
    graph = _graph()
    graph["scanner.settings"] = {*graph["scanner.settings"], "scanner.sync"}
    assert any("scanner.sync" in c and "scanner.settings" in c for c in _cycles(graph))


def test_every_scanner_module_imports_alone_in_a_fresh_interpreter() -> None:
    """A cycle at run time shows as an ImportError (partially initialised module) only when
    a module is the first one imported: so each one first, in its own interpreter."""
    names = sorted(_module_name(p) for p in _modules("scanner") if p.name != "__main__.py")
    procs = {
        n: subprocess.Popen(
            [sys.executable, "-c", f"import {n}"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in names
    }
    failed = {n: p.communicate(timeout=120)[1][-500:] for n, p in procs.items()}
    assert {n: err for n, err in failed.items() if procs[n].returncode != 0} == {}


def _importers_of(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    offenders = []
    for package in packages:
        for path in _modules(package):
            for target, _ in _imports(path):
                if target.split(".")[0] in forbidden:
                    offenders.append(f"{path.relative_to(ROOT)} imports {target}")
    return sorted(set(offenders))


def test_nothing_outside_the_hub_imports_the_hub() -> None:
    assert _importers_of(("scanner", "hardware", "manifests", "protocol"), ("hub",)) == []


def test_no_runtime_module_imports_demo_or_test_support() -> None:
    """Demo data (demo/frames.py, demo/sample.py) and test helpers are not shipped: the
    installed packages must run without them."""
    assert _importers_of(RUNTIME, ("demo", "tests", "bench")) == []


def test_the_installed_packages_are_the_runtime_ones() -> None:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        found = tomllib.load(fh)["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(p.rstrip("*") for p in found) == sorted(RUNTIME)
