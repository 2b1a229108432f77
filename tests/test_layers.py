"""The package is layered: a module imports only from its own layer or below (no import runs back
up), and no source file grows past the size the house keeps (a few named exceptions)."""
import ast
from pathlib import Path

import ganlearn

SRC = Path(ganlearn.__file__).parent

# Bottom to top. A module's layer is that of its longest matching prefix.
LAYERS = [
    ["ganlearn.errors", "ganlearn.io", "ganlearn.plots", "ganlearn.rng", "ganlearn.metrics", "ganlearn.provenance"],
    ["ganlearn.config", "ganlearn.sgda", "ganlearn.gauss_newton"],
    ["ganlearn.fsr", "ganlearn.onelayer", "ganlearn.overparam", "ganlearn.images"],
    ["ganlearn.sweep", "ganlearn.sweep_results", "ganlearn.sweep_ray", "ganlearn.sweep_units", "ganlearn.experiments"],
    ["ganlearn.cli", "ganlearn.__init__", "ganlearn.__main__"],
]
MAX_LINES = 400
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


def _imports(path: Path, mod: str):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative import
                base = mod.split(".")[: -node.level]
                yield ".".join(base + [node.module])
            elif node.module == "ganlearn":
                yield from (f"ganlearn.{a.name}" for a in node.names)
            else:
                yield node.module


def test_no_import_runs_up_the_layers():
    bad = []
    for path, mod in _modules():
        own = _layer(mod)
        for imp in _imports(path, mod):
            if imp.startswith("ganlearn.") and imp != "ganlearn" and _layer(imp) > own:
                bad.append(f"{mod} (layer {own}) imports {imp} (layer {_layer(imp)})")
    assert not bad, "\n".join(bad)


def test_layers_are_checked_for_real():
    # The checker itself: a made-up import from the bottom layer to the top is caught.
    assert _layer("ganlearn.metrics.recovery") == 0 and _layer("ganlearn.cli") == 4
    assert _layer("ganlearn.fsr.loop") == 2 and _layer("ganlearn.experiments.fsr_shapes") == 3


def test_no_file_is_too_long():
    long = {str(p.relative_to(SRC)): n for p, _ in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES and str(p.relative_to(SRC)) not in OVER_LIMIT}
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_randomness_comes_from_named_streams_only():
    # Every generator is made by ganlearn.rng (named streams of the run seed): no seeding elsewhere,
    # in particular no global torch.manual_seed in library code.
    bad = [f"{path.relative_to(SRC)}:{i}: {line.strip()}" for path, _ in _modules() if path.name != "rng.py"
           for i, line in enumerate(path.read_text().splitlines(), 1)
           if "manual_seed" in line or "torch.Generator(" in line]
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
