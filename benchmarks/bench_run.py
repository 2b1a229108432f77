"""Wall time of the default run, exactly what `make run` trains, on this machine.

Runs `ganlearn run --preset default --no-progress --out runs/bench-<time>` as a subprocess (so the
time includes start-up, evaluation and the report) and writes benchmarks/results/bench_run.json with
the total wall time, the staged and baseline training times and the headline metrics. The run
directory is kept, so its report can be read.
Usage: python benchmarks/bench_run.py [--device cpu|cuda] [--set KEY=VALUE ...]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from _results import finish, out_stem  # noqa: E402 (benchmarks/ is sys.path[0])

p = argparse.ArgumentParser()
p.add_argument("--device", default="cpu")
p.add_argument("--set", action="append", default=[])
p.add_argument("--tag", default="", help="suffix of the result file name (bench_run<tag>.json)")
args = p.parse_args()
run_dir = Path("runs") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
cmd = [
    sys.executable,
    "-m",
    "ganlearn.cli",
    "run",
    "--preset",
    "default",
    "--no-progress",
    "--device",
    args.device,
    "--out",
    str(run_dir),
] + [a for s in args.set for a in ("--set", s)]
t0 = time.time()
subprocess.run(cmd, check=True)
total = time.time() - t0
summary = json.loads((run_dir / "summary.json").read_text())
keys = (
    "coupled_rel_error",
    "feature_cosine_min",
    "feature_cosine_mean",
    "sliced_w2_top",
    "sliced_w2_floor_top",
    "samples_seen",
    "wall_seconds",
    "eval_seconds",
)
result = {
    "what": "ganlearn run --preset default (staged + baseline + report), excluding environment set-up",
    "command": " ".join(["python"] + cmd[1:]),
    "run_dir": str(run_dir),  # no machine-specific path
    "device": args.device,
    "torch_threads": torch.get_num_threads(),
    "cpus": os.cpu_count(),
    "machine": platform.machine(),
    "python": sys.version.split()[0],
    "torch": torch.__version__,
    "total_wall_seconds": total,
    "staged": {k: summary["final"].get(k) for k in keys},
    "baseline": {k: summary["baseline"]["final"].get(k) for k in keys} if "baseline" in summary else None,
}
out = out_stem(f"bench_run{args.tag}").with_suffix(".json")
tmp = out.with_suffix(".tmp")
tmp.write_text(json.dumps(result, indent=2))
os.replace(tmp, out)
finish(out)
print(json.dumps(result, indent=2))
