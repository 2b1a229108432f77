"""Wall time of a small sweep end to end, where start-up and the report matter more than the cells.

The 25-cell sweep `ganlearn sweep width-sweep --set 'm=[10]' --set 'width_factor=[2,5,10,30,100]'
--set 'step_rule=["ltv"]' --seeds 5` (2 workers), run as a fresh process each time, so the time
includes Python's start and every import. Side by side: the local backend's worker processes forked
from the sweep process (what it does on Linux) and spawned (what it does where fork is unsafe: each
worker imports torch and the problem packages again). Each variant runs --repeats times; the medians
of the total wall, the cells' part (history.jsonl's wall_seconds: from the lock to the last cell) and
the rest (start-up, imports and the report), and the import time alone, go to
benchmarks/results/bench_sweep_small/result.json and .md.
Usage: python benchmarks/bench_sweep_small.py [--repeats 5]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import finish, out_stem  # noqa: E402 (benchmarks/ is sys.path[0])

ARGS = [
    "sweep",
    "width-sweep",
    "--set",
    "m=[10]",
    "--set",
    "width_factor=[2,5,10,30,100]",
    "--set",
    'step_rule=["ltv"]',
    "--seeds",
    "5",
    "--workers",
    "2",
    "--no-progress",
]
# The same CLI call, with the local backend's start method chosen (the benchmark's only patch).
DRIVER = (
    "import sys, ganlearn.sweep.backends as b; b._start_method = lambda: {method!r}; "
    "from ganlearn.cli import main; sys.exit(main(sys.argv[1:]))"
)


def once(method: str, out: Path) -> dict:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", DRIVER.format(method=method), *ARGS, "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    total = time.perf_counter() - t0
    cells = json.loads((out / "history.jsonl").read_text().splitlines()[-1])["wall_seconds"]
    return {"total": total, "cells": cells, "rest": total - cells}


def import_seconds() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import ganlearn.cli, ganlearn.experiments"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    runs: dict[str, list[dict]] = {"fork": [], "spawn": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):  # interleaved, so that machine noise falls on both alike
            for method in runs:
                runs[method].append(once(method, Path(tmp) / f"{method}-{i}"))
    imports = [import_seconds() for _ in range(args.repeats)]
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("total", "cells", "rest")} for m, rs in runs.items()}
    result = {
        "what": "the 25-cell width-sweep end to end (a fresh process: start-up, imports, cells, report), "
        "2 workers forked vs spawned; medians",
        "command": "ganlearn " + " ".join(ARGS),
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "median_seconds": med,
        "import_seconds_median": statistics.median(imports),
        "spawn_over_fork_total": med["spawn"]["total"] / med["fork"]["total"],
        "runs": runs,
    }
    stem = out_stem("bench_sweep_small")
    md = ["| workers | total wall (s) | cells (s) | start-up, imports, report (s) |", "|---|---|---|---|"]
    md += [f"| {m} | {v['total']:.2f} | {v['cells']:.2f} | {v['rest']:.2f} |" for m, v in med.items()]
    md += [
        "",
        f"Medians of {args.repeats} runs; importing ganlearn's CLI and experiments alone: "
        f"{result['import_seconds_median']:.2f} s.",
    ]
    for path, text in (
        (stem.with_suffix(".json"), json.dumps(result, indent=2)),
        (stem.with_suffix(".md"), "\n".join(md) + "\n"),
    ):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    finish(stem)
    print("\n".join(md))


if __name__ == "__main__":
    main()
