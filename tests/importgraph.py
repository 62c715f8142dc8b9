"""
The import graph of a package, read from its source (nothing is imported), and its cycles.

Every import statement counts: at module level, under C{if TYPE_CHECKING:} and inside a
function alike, since each is a dependency of one module on another (a cycle hidden in a
function is still a cycle).  Used by L{tests.test_import_cycles}; runnable on its own:
C{python -m tests.importgraph tm20} prints the cycles.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path


def moduleFiles(root: Path, package: str) -> dict[str, Path]:
    """Every module of C{package} (found under C{root}), by dotted name."""
    modules: dict[str, Path] = {}
    base = root / package.replace(".", "/")
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest known module that C{name} is or lies in."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imported(module: str, path: Path, modules: Mapping[str, Path]) -> Iterator[str]:
    isPackage = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name, modules)
                if target is not None:
                    yield target
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module if isPackage else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            for alias in node.names:
                # "from pkg import submodule" depends on the submodule, else on pkg itself
                target = _resolve(f"{base}.{alias.name}", modules) or _resolve(base, modules)
                if target is not None:
                    yield target


def importGraph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (itself excluded)."""
    modules = moduleFiles(root, package)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        graph[module] = {t for t in _imported(module, path, modules) if t != module}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """
    The strongly connected components of more than one module (Tarjan's algorithm), each
    sorted, the list sorted: every module of one component can reach every other.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    onStack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        # iterative depth-first search: (node, iterator over its successors)
        work: list[tuple[str, Iterator[str]]] = []
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        onStack.add(start)
        work.append((start, iter(sorted(graph.get(start, ())))))
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    onStack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    advanced = True
                    break
                if succ in onStack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    onStack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def shortestCycleThrough(graph: Mapping[str, set[str]], start: str) -> list[str]:
    """A shortest path C{start -> ... -> start} (for a readable message)."""
    previous: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph.get(node, ())):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if succ not in seen:
                    seen.add(succ)
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    return []


def main(argv: list[str]) -> int:
    package = argv[1] if len(argv) > 1 else "tm20"
    graph = importGraph(Path.cwd(), package)
    found = cycles(graph)
    for component in found:
        print(
            f"{len(component)} modules: " + " -> ".join(shortestCycleThrough(graph, component[0]))
        )
        print("   " + ", ".join(component))
    print(f"{len(found)} import cycle(s) in {package} ({len(graph)} modules)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
