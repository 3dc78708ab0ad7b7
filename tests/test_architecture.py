"""The shape of the code (PRODUCT.md): imports flow one way, and the core has no cycle.

Read from the source with `ast`, nothing imported: every import counts, at module level,
under `if TYPE_CHECKING:` and inside functions, since a cycle hidden behind a lazy import
is still a cycle in the design.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: str) -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ROOT / package).rglob("*.py"))}


def imported(path: Path) -> set[str]:
    """Every module name `path` imports, anywhere in the file, absolute or relative; for
    `from a import b`, both `a` and `a.b` (`b` may be a module)."""
    names: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def roots(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of `package` it imports (a package's own parent, run first by
    Python when a submodule is imported, is not an edge: only what the code names is)."""
    known = modules(package)
    return {
        name: {target for target in imported(path) if target in known and target != name}
        for name, path in known.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One chain (a -> ... -> a) for each strongly connected group of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graph is a few dozen modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [chain(edges, group) for group in groups]


def chain(edges: dict[str, set[str]], group: set[str]) -> list[str]:
    """The shortest path from the group's first module back to itself, within the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(edges[node] & group):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{group} is not a cycle")  # pragma: no cover


def test_the_finder_sees_a_cycle_and_a_clear_graph() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_core_has_no_import_cycle() -> None:
    edges = graph("newsagg")
    found = [
        f"{' -> '.join(c)}  (all entangled: {', '.join(sorted(group_of(edges, c[0])))})"
        for c in cycles(edges)
    ]
    assert not found, "import cycles in newsagg/:\n" + "\n".join(found)


def group_of(edges: dict[str, set[str]], start: str) -> set[str]:
    """The modules both reachable from `start` and reaching it: its cycle, all of it."""

    def reach(node: str, step: dict[str, set[str]]) -> set[str]:
        seen, todo = {node}, [node]
        while todo:
            for target in step[todo.pop()] - seen:
                seen.add(target)
                todo.append(target)
        return seen

    back = {node: {n for n, targets in edges.items() if node in targets} for node in edges}
    return reach(start, edges) & reach(start, back)


FORBIDDEN = {
    "providers": {"newsagg", "edge", "handlers", "simulator"},
    # Demo mode's simulator is wired at the edge (edge.demo), never in the core.
    "newsagg": {"edge", "handlers", "simulator", "connexion", "starlette"},
    # The simulator models the upstreams from their documentation, not from the clients
    # it checks.
    "simulator": {"newsagg", "edge", "handlers", "providers"},
    # The edge reaches the upstreams only through the core; only its demo wiring starts
    # the simulator.
    "edge": {"providers"},
    "handlers": {"providers", "simulator"},
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_flow_one_way(package: str) -> None:
    wrong = {
        f"{name} imports {', '.join(sorted(roots(imported(path)) & FORBIDDEN[package]))}"
        for name, path in modules(package).items()
        if roots(imported(path)) & FORBIDDEN[package]
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_every_package_is_installed() -> None:
    """A package missing from pyproject's list works in the editable checkout and is
    missing from a real install."""
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("newsagg", "edge", "handlers", "providers", "simulator")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found == listed


# A room that grows past these holds more than one job (the house issue): split it by job.
LONGEST_CORE_MODULE = 450
LONGEST_FEED = 250
LONGER_BY_NATURE = {"newsagg.settings"}  # one declaration per setting, nothing else


def test_no_room_of_the_core_holds_several_jobs() -> None:
    lengths = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in modules("newsagg").items()
    }
    too_long = {
        name: length
        for name, length in lengths.items()
        if length > LONGEST_CORE_MODULE and name not in LONGER_BY_NATURE
    }
    assert not too_long, f"modules over {LONGEST_CORE_MODULE} lines: {too_long}"
    assert lengths["newsagg.feed"] <= LONGEST_FEED, "the feed keeps orchestration only"
