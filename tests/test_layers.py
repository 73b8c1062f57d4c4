"""The layer table: every module of rlnas and envs, and imports that only ever point down.

Each module's imports are read with ``ast`` (imports inside functions, the lazy ones, included), so
the table cannot drift from the code: a new module must be placed in a layer here, an import of a
higher layer fails, and so does an import cycle among modules of one layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "ground",
        (
            "rlnas.errors",
            "rlnas.text",
            "rlnas.quiet",
            "rlnas.resources",
            "rlnas.devices",
            "rlnas.stats",
            "rlnas.data",
            "rlnas.space",
        ),
    ),
    ("children", ("rlnas.models",)),
    ("records", ("rlnas.run", "rlnas.tables")),
    ("policy", ("rlnas.policy",)),
    ("settings", ("rlnas.settings", "rlnas.config", "rlnas.resolve")),
    ("strategies", ("rlnas.strategies",)),
    ("execution", ("rlnas.exec",)),
    ("environment", ("envs",)),
    ("top", ("rlnas.search", "rlnas.bench", "rlnas.report", "rlnas.tuner", "rlnas.optuna", "rlnas.tune")),
    ("faces", ("rlnas.cli", "rlnas")),
)
"""Lowest first. A module may import its own layer and those below; within a layer, no cycle. ``rlnas``
itself (the package's public face) is the top, so no module may import names from it."""


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("rlnas", "envs"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def layer_of(module: str) -> int:
    """The index of the most specific layer entry naming ``module`` or a package above it."""
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            below = module.startswith(p + ".") and p != "rlnas"  # "rlnas" names the package face only
            if (module == p or below) and p.count(".") > depth:
                best, depth = i, p.count(".")
    if best is None:
        raise AssertionError(f"{module} is in no layer: place it in tests/test_layers.py's LAYERS")
    return best


def _target(name: str) -> str | None:
    """The project module an imported name resolves to (``rlnas.x.y`` -> the longest existing module)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in MODULES:
            return ".".join(parts)
        parts.pop()
    return None


def imports(module: str) -> set[str]:
    """Project modules ``module`` imports anywhere in its body (``from a import b`` counts b if a module)."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out.update(t for n in names if (t := _target(n)) is not None and t != module)
    return out


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_imports_only_point_down() -> None:
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
        for m in MODULES
        for t in sorted(imports(m))
        if layer_of(t) > layer_of(m)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    graph = {m: imports(m) for m in MODULES}
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join([*path[path.index(t) :], t]))
            elif t not in state:
                visit(t, [*path, t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_top_level_is_a_short_list_of_rooms() -> None:
    """Modules live in the package of their layer; ``rlnas/`` itself keeps only the ground, the settings
    and a few faces, so that a newcomer finds a room from the folder names."""
    top = sorted(p.stem for p in (ROOT / "rlnas").glob("*.py"))
    assert len(top) <= 15, f"{len(top)} modules at rlnas/ top level: {top}"
