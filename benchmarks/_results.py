"""Where a benchmark writes: one folder per benchmark (and device) under benchmarks/results/,
holding result.json, result.md and the meta.json of ganlearn.provenance (command, version, commit,
machine, wall time). Imported by the benchmark scripts, which run as ``python benchmarks/NAME.py``."""

import time
from pathlib import Path

from ganlearn.io import write_meta

RESULTS = Path(__file__).parent / "results"
T0 = time.time()  # the script's start: the wall time in meta.json is measured from here


def out_stem(name: str) -> Path:
    """``benchmarks/results/NAME/result`` (folder created): add .json / .md for the files."""
    folder = RESULTS / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "result"


def finish(stem: Path, **extra) -> None:
    """Write the folder's meta.json; call after the result files are written."""
    write_meta(Path(stem).parent, wall_seconds=time.time() - T0, extra=extra or None)
