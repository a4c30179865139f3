"""Import-graph guardrails for a package: no cycles, no hidden imports, layers respected.

Run ``python tools/check_imports.py`` (CI does, through ``tests/test_architecture.py``).
It reads the source with :mod:`ast` -- it imports nothing -- and builds the graph of
module-to-module imports inside the package, counting imports inside functions too,
since a function-local import hides a cycle without removing it. Imports under
``if TYPE_CHECKING:`` are left out: they never run.

It fails when:

* the graph has a cycle (each one is printed as ``a -> b -> a``);
* a function-local import of a package module carries no ``# lazy: <why>`` comment on its
  line or the line above (the only good reasons are start-up time and optional
  dependencies; say which);
* a module imports from a layer above its own (see :data:`LAYERS`), or from a sibling
  package it must stay independent of (see :data:`INDEPENDENT`).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["INDEPENDENT", "LAYERS", "Graph", "check", "load_graph", "main"]

#: The package's layers, lowest first. A module may import modules of its own layer and
#: of layers below; never above. The first matching prefix decides a module's layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "zmartd.clientip",
            "zmartd.sdnotify",
            "zmartd.concurrency",
            "zmartd.runtime",
            "zmartd.config",
            "zmartd.bus",
            "zmartd.observability",
            "zmartd.services",
            "zmartd.supervisor",
            "zmartd.context",
            "zmartd.__init__",
            "zmartd",
        ),
    ),
    ("chain", ("zmartd.chain",)),
    ("storage", ("zmartd.storage",)),
    ("model", ("zmartd.model",)),
    (
        "actors",
        (
            "zmartd.devchain",
            "zmartd.indexer",
            "zmartd.api",
            "zmartd.ws",
            "zmartd.sender",
            "zmartd.aggregator",
            "zmartd.snapshotter",
            "zmartd.monitor",
        ),
    ),
    ("app", ("zmartd.tree", "zmartd.app", "zmartd.cli", "zmartd.__main__")),
)

#: Groups of packages of one layer that must not import each other (actors talk over the
#: bus and services, and share types through the model layer, never reach into each
#: other). The write side is one group: the aggregator and the monitor build on the
#: sender's keys and intents.
INDEPENDENT: tuple[tuple[str, ...], ...] = (
    ("zmartd.devchain",),
    ("zmartd.indexer",),
    ("zmartd.api",),
    ("zmartd.ws",),
    ("zmartd.sender", "zmartd.aggregator", "zmartd.monitor"),
    ("zmartd.snapshotter",),
)

LAZY_MARK = "# lazy:"


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    line: int
    local: bool  # inside a function


@dataclass
class Graph:
    package: str
    modules: set[str] = field(default_factory=set)
    edges: list[Edge] = field(default_factory=list)
    unmarked: list[str] = field(default_factory=list)

    def adjacency(self) -> dict[str, set[str]]:
        adj: dict[str, set[str]] = {m: set() for m in self.modules}
        for e in self.edges:
            if e.target != e.source:
                adj[e.source].add(e.target)
        return adj


def _module_name(root: Path, path: Path, package: str) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [package, *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _closest(name: str, modules: set[str]) -> str | None:
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self, graph: Graph, module: str, is_package: bool, lines: Sequence[str]):
        self.graph = graph
        self.module = module
        self.is_package = is_package
        self.lines = lines
        self.depth = 0
        self.found: list[tuple[str, int, bool]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = (
            test.id
            if isinstance(test, ast.Name)
            else (test.attr if isinstance(test, ast.Attribute) else "")
        )
        if name == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _add(self, target: str, line: int) -> None:
        self.found.append((target, line, self.depth > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(self.module, self.is_package, node)
        for alias in node.names:
            self._add(f"{base}.{alias.name}" if base else alias.name, node.lineno)

    def marked(self, line: int) -> bool:
        """A ``# lazy: <why>`` comment on the import's line, or heading the run of import
        lines (blank lines allowed) that the import belongs to."""
        if LAZY_MARK in self.lines[line - 1]:
            return True
        i = line - 2
        while i >= 0:
            text = self.lines[i].strip()
            if text.startswith(LAZY_MARK):
                return True
            if not (text == "" or text.startswith(("import ", "from ", ")")) or text.endswith(",")):
                return False
            i -= 1
        return False


def load_graph(root: Path, package: str | None = None) -> Graph:
    """The import graph of the package whose ``__init__.py`` is in ``root``."""
    package = package or root.name
    graph = Graph(package)
    files = sorted(root.rglob("*.py"))
    names = {p: _module_name(root, p, package) for p in files}
    graph.modules = set(names.values())
    for path in files:
        module = names[path]
        source = path.read_text()
        visitor = _Visitor(graph, module, path.name == "__init__.py", source.splitlines())
        visitor.visit(ast.parse(source, str(path)))
        for target, line, local in visitor.found:
            if not (target == package or target.startswith(package + ".")):
                continue
            resolved = _closest(target, graph.modules)
            if resolved is None:
                continue
            graph.edges.append(Edge(module, resolved, line, local))
            if local and not visitor.marked(line):
                graph.unmarked.append(
                    f"{path}:{line}: function-local import of {resolved} "
                    f"without a '{LAZY_MARK} <why>' comment"
                )
    return graph


def cycles(adj: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One representative cycle per strongly connected component with more than one
    module (Tarjan), as a path that returns to its start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def strong(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(adj.get(v, ())):
            if w not in index:
                strong(w)
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
                components.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(adj):
        if v not in index:
            strong(v)
    result = []
    for comp in components:
        members = set(comp)
        start = comp[0]
        # shortest path back to start inside the component (BFS)
        prev: dict[str, str] = {}
        frontier = [start]
        seen = {start}
        found = None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(adj.get(v, ())):
                    if w == start:
                        found = v
                        break
                    if w in members and w not in seen:
                        seen.add(w)
                        prev[w] = v
                        nxt.append(w)
                if found:
                    break
            frontier = nxt
        path = [start]
        node = found
        tail = []
        while node is not None and node != start:
            tail.append(node)
            node = prev.get(node)
        path.extend(reversed(tail))
        path.append(start)
        result.append(path)
    return result


def _layer(module: str, layers: Sequence[tuple[str, tuple[str, ...]]]) -> int | None:
    for rank, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return rank
    return None


def _owner(module: str, independent: Sequence[Sequence[str]]) -> str | None:
    """The group (named by its first package) that ``module`` belongs to, if any."""
    for group in independent:
        if any(module == p or module.startswith(p + ".") for p in group):
            return group[0]
    return None


def check(
    graph: Graph,
    layers: Sequence[tuple[str, tuple[str, ...]]] = (),
    independent: Sequence[Sequence[str]] = (),
) -> list[str]:
    """Every problem found, one line each (empty: all good)."""
    problems = [" -> ".join(c) + "  (import cycle)" for c in cycles(graph.adjacency())]
    problems += graph.unmarked
    for e in graph.edges:
        a, b = _layer(e.source, layers), _layer(e.target, layers)
        if a is not None and b is not None and b > a:
            problems.append(
                f"{e.source}:{e.line}: imports {e.target}, a layer above "
                f"({layers[a][0]} -> {layers[b][0]})"
            )
        mine, theirs = _owner(e.source, independent), _owner(e.target, independent)
        if mine and theirs and mine != theirs:
            problems.append(
                f"{e.source}:{e.line}: imports {e.target}: {mine} and {theirs} "
                "are independent (share types through a neutral module)"
            )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "zmartd"
    ours = root.name == "zmartd"
    problems = check(load_graph(root), LAYERS if ours else (), INDEPENDENT if ours else ())
    for line in problems:
        print(line)
    print(f"check_imports: {len(problems)} problem(s) in {root}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
