"""The house rules of gateway/ (DESIGN section 8): one package per stage, each opening with its
purpose; a stage imports only stages below it and the shared leaves; no import cycles; small
modules and functions."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.conftest import ROOT

GATEWAY = ROOT / "gateway"
LEAVES = {"errors", "reading", "clock", "units", "status", "fs", "sdnotify", "supervise",
          "jsonsafe", "__init__"}  # fmt: skip
# Lowest first: a stage may import the stages before it (and the leaves), never one after it.
STAGES = ["keys", "config", "piece", "spool", "ingest", "seal", "market", "chain", "deals", "foc",
          "node", "restore", "dataset", "fleet", "daemon", "testing", "cli"]  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "gateway" or name.startswith("gateway.")}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_stage_and_leaf_is_known_and_every_package_states_its_purpose() -> None:
    found = {p.stem if p.is_file() else p.name for p in GATEWAY.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists())}  # fmt: skip
    assert found - LEAVES - set(STAGES) == set(), "a loose module or an unknown stage"
    for init in GATEWAY.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and doc.strip(), f"{init.relative_to(ROOT)} has no one-line purpose"


def test_a_stage_never_imports_a_stage_above_it() -> None:
    rank = {stage: index for index, stage in enumerate(STAGES)}
    wrong = []
    for path in GATEWAY.rglob("*.py"):
        source = _stage(_module_name(path))
        for target in {_stage(m) for m in _imports(path)}:
            if source in rank and target in rank and rank[target] > rank[source]:
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
            if source in LEAVES and target in rank:
                wrong.append(f"leaf {path.relative_to(ROOT)} imports the stage {target}")
    assert wrong == []


def test_no_import_cycles_between_modules() -> None:
    modules = {_module_name(p): p for p in GATEWAY.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target in _imports(path):
            # ``from gateway.x import y`` may name a submodule y or a name in gateway.x
            if target in modules and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append([*trail[trail.index(node) :], node])
            return
        if node in done:
            return
        for target in sorted(graph[node]):
            visit(target, [*trail, node])
        done.add(node)

    for name in sorted(modules):
        visit(name, [])
    assert cycles == []
