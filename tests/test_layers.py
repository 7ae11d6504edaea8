"""Imports point down the floors, never in a cycle; pure logic stays pure.

Floors, lowest first: config <- state <- flows <- connectors <- stockguard (the command
line, the demo, the live job, the simulator). A module may import its own floor and the
ones below, and no chain of imports (at module level or inside functions) may lead back
to where it started. docs/architecture.md draws the same picture.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {"config": 0, "state": 1, "flows": 2, "connectors": 3}
TOP = 4
# Pure logic: no engine, no I/O clients, no wall clock readers.
IMPURE = (
    "bytewax",
    "confluent_kafka",
    "redis",
    "prometheus_client",
    "http",
    "urllib.request",
    "urllib.error",
    "socket",
    "threading",
    "subprocess",
    "asyncio",
    "httpx",
    "aiohttp",
)
GENERIC = {"config", "state", "flows", "connectors"}


def modules() -> dict[str, Path]:
    """Map every module of the package to its file, through the linked subpackages."""
    found = {}
    for folder, _dirs, files in os.walk(ROOT / "stockguard", followlinks=True):
        for file in files:
            if file.endswith(".py"):
                parts = (Path(folder) / file).relative_to(ROOT).with_suffix("").parts
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = Path(folder) / file
    return found


def imports(path: Path, name: str) -> Iterator[tuple[str, int]]:
    """Yield (imported module, line) for every import in the file, nested ones too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target, node.lineno
            # `from stockguard.state import snapshots` imports the module stockguard.state.snapshots.
            for alias in node.names:
                yield f"{target}.{alias.name}", node.lineno


def floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS.get(parts[1], TOP) if len(parts) > 1 else TOP


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for target, _line in imports(path, name):
            if target in mods and target != name:
                edges[name].add(target)
    return edges


def test_every_import_points_down_the_floors() -> None:
    mods = modules()
    assert len(mods) > 40 and "stockguard.state.decision" in mods
    upward = []
    for name, path in mods.items():
        for target, line in imports(path, name):
            if target.startswith("stockguard.") and target in mods and floor(target) > floor(name):
                upward.append(f"{path.relative_to(ROOT)}:{line} ({name}) imports {target}")
    assert upward == []


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Return the import cycles: Tarjan's strongly connected components of two or more."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_cycles_and_only_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_pure_floors_import_no_engine_no_io_and_read_no_clock() -> None:
    found = []
    for name, path in modules().items():
        if floor(name) > FLOORS["state"]:
            continue
        for target, line in imports(path, name):
            if any(target == m or target.startswith(m + ".") for m in IMPURE):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
        text = path.read_text()
        clocks = ("time.time(", "time.time_ns(", "time.monotonic(", "time.perf_counter(", "datetime.now(")
        for clock in (*clocks, "datetime.utcnow(", "date.today(", "from time import", "import random", "uuid."):
            if clock in text:
                found.append(f"{path.relative_to(ROOT)} reads the wall clock or chance ({clock})")
    assert found == []


def test_nothing_imports_the_folders_as_generic_top_level_packages() -> None:
    # The folders also sit at the repo root: `import state` would load a second copy of
    # every class there (and `type(x) is Trigger` would fail between the two).
    found = []
    for folder in ("stockguard", "tests", "bench", "scripts"):
        for dirpath, _dirs, files in os.walk(ROOT / folder, followlinks=True):
            for file in files:
                if not file.endswith(".py") or "fixtures" in Path(dirpath).parts:
                    continue
                path = Path(dirpath) / file
                for target, line in imports(path, "x.y"):
                    if target.split(".")[0] in GENERIC:
                        found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert found == []
