"""The layering of pipeline/, enforced from the imports (#18): it cannot silently come back.

Every module's imports are read with ``ast`` (imports inside functions and under ``TYPE_CHECKING``
included: an import dodged into a function is still an arrow). A *unit* is what sits at the top of
pipeline/: a module (``config.py``) or a package (``serving/``). Asserted:

- no two units import each other, directly or round a longer circle;
- scoring never imports tasks (a task declares its scorer; scoring holds task-agnostic parsers and metrics);
- the store and serving never import the eval core (pipeline.evaluation);
- pipeline/ has at most 20 units;
- nothing imports a ``_``-prefixed name of a package it is not inside (a package's private names are its own).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO_ROOT

PIPELINE = REPO_ROOT / "pipeline"
ROOTS = ("pipeline", "tests", "bench", "scripts")  # whose imports of private names are checked


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted (for ``from X import name``: X, or X.name when a module)
    names: tuple[str, ...]  # the names taken from ``target`` (empty for ``import X``)
    line: int


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[Import]:
    module = _dotted(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = tuple(alias.name for alias in node.names)
            yield Import(module, target, names, node.lineno)
            for name in names:  # `from pipeline.serving import launch`: an arrow to the module too
                if (REPO_ROOT / Path(*target.split("."), name)).with_suffix(".py").is_file() or (
                    REPO_ROOT / Path(*target.split("."), name) / "__init__.py"
                ).is_file():
                    yield Import(module, f"{target}.{name}", (), node.lineno)


def _all_imports(*roots: str) -> list[Import]:
    out: list[Import] = []
    for root in roots:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            out.extend(_imports(path))
    return out


def _unit(module: str) -> str | None:
    """The top-level unit of pipeline/ that ``module`` belongs to (None: outside pipeline/ or the root)."""
    parts = module.split(".")
    if parts[0] != "pipeline" or len(parts) < 2:
        return None
    return parts[1]


def _units() -> list[str]:
    found = []
    for entry in PIPELINE.iterdir():
        if entry.name.startswith(("_", ".")) or entry.name == "py.typed":
            continue
        if entry.is_dir() and (entry / "__init__.py").is_file():
            found.append(entry.name)
        elif entry.suffix == ".py":
            found.append(entry.stem)
    return sorted(found)


def _unit_graph() -> dict[str, dict[str, list[str]]]:
    """unit -> unit it imports -> where (``module:line``), over every import of pipeline/."""
    graph: dict[str, dict[str, list[str]]] = {}
    for imp in _all_imports("pipeline"):
        src, dst = _unit(imp.module), _unit(imp.target)
        if src is None or dst is None or src == dst:
            continue
        graph.setdefault(src, {}).setdefault(dst, []).append(f"{imp.module}:{imp.line}")
    return graph


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _arrows_between(graph: dict[str, dict[str, list[str]]], units: list[str]) -> list[str]:
    return [
        f"{a} -> {b} ({', '.join(where[:3])})"
        for a in units
        for b, where in graph.get(a, {}).items()
        if b in units
    ]


def test_no_circle_between_top_level_units() -> None:
    graph = _unit_graph()
    circles = _cycles(graph)
    assert circles == [], "import circles between units of pipeline/:\n" + "\n".join(
        f"{circle}:\n  " + "\n  ".join(_arrows_between(graph, circle)) for circle in circles
    )


def test_scoring_never_imports_tasks() -> None:
    where = _unit_graph().get("scoring", {}).get("tasks", [])
    assert where == [], f"pipeline.scoring imports pipeline.tasks at {where}"


def test_store_and_serving_never_import_the_eval_core() -> None:
    graph = _unit_graph()
    where = {unit: graph.get(unit, {}).get("evaluation", []) for unit in ("store", "serving")}
    assert where == {"store": [], "serving": []}, f"imports of pipeline.evaluation: {where}"


def test_pipeline_has_at_most_20_top_level_units() -> None:
    units = _units()
    assert len(units) <= 20, f"{len(units)} top-level units in pipeline/: {units}"


def test_nothing_imports_a_private_name_from_outside_its_package() -> None:
    wrong = []
    for imp in _all_imports(*ROOTS):
        if not imp.target.startswith("pipeline"):
            continue
        owner = imp.target if _is_package(imp.target) else imp.target.rpartition(".")[0]
        inside = imp.module == owner or imp.module.startswith(owner + ".")
        private = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
        private_module = [p for p in imp.target.split(".") if p.startswith("_") and not p.startswith("__")]
        if (private or private_module) and not inside:
            wrong.append(f"{imp.module}:{imp.line} imports {private or private_module} from {imp.target}")
    assert wrong == [], "private names imported from outside their package:\n" + "\n".join(wrong)


def _is_package(dotted: str) -> bool:
    return (REPO_ROOT / Path(*dotted.split(".")) / "__init__.py").is_file()
