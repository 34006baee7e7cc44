"""The package's imports point down only and form no cycle (read from the source with ast).

Layers, lowest first; a module may import its own layer or any layer below it. Lazy
imports inside functions and imports under ``TYPE_CHECKING`` count like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("retriever.core",)),
    ("indexes", ("indexes",)),
    ("engine", ("retriever.engine", "retriever.fusion")),
    ("rerank / generate", ("retriever.rerank", "retriever.generate")),
    ("agent", ("retriever.agent",)),
    ("api", ("retriever.api", "retriever")),
    ("serve / distributed", ("retriever.serve", "retriever.distributed")),
    ("train", ("retriever.train",)),
    ("eval", ("eval",)),
    ("cli", ("cli", "retriever.commands")),
]


def layer_of(module: str) -> int | None:
    """Index in LAYERS of the longest prefix naming ``module``; None for third-party modules."""
    best, length = None, -1
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = rank, len(prefix)
    return best


def project_modules() -> dict[str, Path]:
    files = [ROOT / "cli.py", *sorted((ROOT / "retriever").rglob("*.py")), *sorted((ROOT / "indexes").rglob("*.py")),
             *sorted((ROOT / "eval").rglob("*.py"))]
    out = {}
    for path in files:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``module`` imports anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(name for name in names if layer_of(name) is not None)
    return found - {module}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {module: imports(module, path, set(modules)) for module, path in modules.items()}


def test_every_project_module_has_a_layer():
    assert [m for m in project_modules() if layer_of(m) is None] == []


def test_imports_only_point_down():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for module, targets in import_graph().items() for target in sorted(targets)
              if layer_of(target) > layer_of(module)]
    assert upward == []


def test_no_import_cycles():
    graph = import_graph()
    assert strongly_connected(graph) == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Components of more than one module (Tarjan); each is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_checks_catch_an_upward_import_and_a_cycle():
    assert layer_of("retriever.core.corpus") < layer_of("indexes.bm25") < layer_of("retriever.engine.reader")
    assert layer_of("retriever.train.sparse.train") > layer_of("retriever.agent.loop")
    assert layer_of("numpy") is None
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
