"""The package is layered: a module imports only from its own layer or below (no import runs back
up), no two modules import each other however indirectly (no import circle), and no source file
grows past the size the house keeps (a few named exceptions)."""

import ast
import graphlib
from pathlib import Path

import ganlearn

SRC = Path(ganlearn.__file__).parent

# Bottom to top. A module's layer is that of its longest matching prefix.
LAYERS = [
    [
        "ganlearn.errors",
        "ganlearn.io",
        "ganlearn.plots",
        "ganlearn.rng",
        "ganlearn.metrics",
        "ganlearn.provenance",
        "ganlearn.discriminators",
    ],
    ["ganlearn.config", "ganlearn.sgda", "ganlearn.gauss_newton", "ganlearn.rundir"],
    ["ganlearn.fsr", "ganlearn.onelayer", "ganlearn.overparam", "ganlearn.images"],
    ["ganlearn.sweep", "ganlearn.problems"],
    ["ganlearn.experiments"],
    ["ganlearn.cli", "ganlearn.__init__", "ganlearn.__main__"],
]
MAX_LINES = 550  # in ruff format's layout (a call longer than 120 characters gets one argument per line)
OVER_LIMIT = {}  # path relative to the package -> why it may be longer


def _layer(mod: str) -> int:
    best = None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (mod == n or mod.startswith(n + ".")) and (best is None or len(n) > len(best[1])):
                best = (i, n)
    assert best is not None, f"{mod} is in no layer of tests/test_layers.py"
    return best[0]


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        yield path, ".".join(rel.parts)


MODULES = {mod.removesuffix(".__init__") for _, mod in _modules()}


def _imports(path: Path, mod: str):
    """Every module ``path`` imports, at the top or inside a function (``from pkg import sub``
    counts as importing the module ``pkg.sub`` when that is a module of ganlearn)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = ".".join(mod.split(".")[: -node.level] + [node.module]) if node.level else node.module
            for a in node.names:
                yield f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base


def test_no_import_runs_up_the_layers():
    bad = []
    for path, mod in _modules():
        own = _layer(mod)
        for imp in _imports(path, mod):
            if imp.startswith("ganlearn.") and imp != "ganlearn" and _layer(imp) > own:
                bad.append(f"{mod} (layer {own}) imports {imp} (layer {_layer(imp)})")
    assert not bad, "\n".join(bad)


def _graph() -> dict[str, set[str]]:
    """module -> the ganlearn modules it imports (a package is its ``__init__``)."""
    graph = {}
    for path, mod in _modules():
        name = mod.removesuffix(".__init__")
        graph[name] = {i for i in _imports(path, mod) if i in MODULES and i != name}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        return e.args[1]
    return None


def test_no_import_circle():
    # Modules import one way: the import graph of src/ganlearn has a topological order.
    graph = _graph()
    assert _circle(graph) is None, f"import circle: {' -> '.join(_circle(graph))}"
    order = list(graphlib.TopologicalSorter(graph).static_order())
    print(
        f"{len(order)} modules, {sum(map(len, graph.values()))} imports, no circle; sweep in import order: "
        + " < ".join(m for m in order if m.startswith("ganlearn.sweep"))
    )


def test_layers_are_checked_for_real():
    # The checkers themselves: a made-up import from the bottom layer to the top is caught, and so
    # is a made-up circle through the sweep package and an experiment.
    assert _layer("ganlearn.metrics.recovery") == 0 and _layer("ganlearn.cli") == 5
    assert _layer("ganlearn.fsr.train") == 2 and _layer("ganlearn.sweep.runner") == 3
    assert _layer("ganlearn.experiments.fsr_shapes") == 4
    graph = _graph()
    graph["ganlearn.sweep.spec"] = graph["ganlearn.sweep.spec"] | {"ganlearn.experiments"}
    assert _circle(graph) is not None
    assert "ganlearn.sweep.spec" in _imports(SRC / "sweep" / "units.py", "ganlearn.sweep.units")


def test_no_file_is_too_long():
    long = {
        str(p.relative_to(SRC)): n
        for p, _ in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES and str(p.relative_to(SRC)) not in OVER_LIMIT
    }
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_randomness_comes_from_named_streams_only():
    # Every generator is made by ganlearn.rng (named streams of the run seed): no seeding elsewhere,
    # in particular no global torch.manual_seed in library code.
    bad = [
        f"{path.relative_to(SRC)}:{i}: {line.strip()}"
        for path, _ in _modules()
        if path.name != "rng.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if "manual_seed" in line or "torch.Generator(" in line
    ]
    assert not bad, "\n".join(bad)


def test_library_modules_declare_their_public_names():
    # Every library module (not the CLI, package markers or experiment plug-ins) says what it
    # exports, and every exported name exists.
    import importlib

    missing = []
    for path, mod in _modules():
        if path.name in ("__init__.py", "__main__.py", "cli.py") or ".experiments." in mod:
            continue
        m = importlib.import_module(mod)
        if not hasattr(m, "__all__"):
            missing.append(f"{mod}: no __all__")
        else:
            missing += [f"{mod}.{n} listed but undefined" for n in m.__all__ if not hasattr(m, n)]
    assert not missing, "\n".join(missing)
