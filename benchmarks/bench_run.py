"""Wall time of the default run (what `make run` trains) on this machine.

Runs `ganlearn run --preset default` in a fresh run directory and writes
benchmarks/results/bench_run.json with the wall time of each part and the headline metrics.
Usage: python benchmarks/bench_run.py [--device cpu|cuda] [--set KEY=VALUE ...]
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from ganlearn.config import resolve
from ganlearn.training.loop import train

p = argparse.ArgumentParser()
p.add_argument("--device", default="cpu")
p.add_argument("--set", action="append", default=[])
args = p.parse_args()
cfg = resolve("default", overrides=args.set + [f'device="{args.device}"'])
with tempfile.TemporaryDirectory() as d:
    t0 = time.time()
    summary = train(cfg, Path(d) / "run", progress=False)
    total = time.time() - t0
result = {
    "what": "ganlearn run --preset default (staged + baseline), excluding environment set-up",
    "device": args.device, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
    "machine": platform.machine(), "python": sys.version.split()[0], "torch": torch.__version__,
    "total_wall_seconds": total,
    "staged_train_wall_seconds": summary["wall_seconds"],
    "baseline_train_wall_seconds": summary.get("baseline", {}).get("wall_seconds"),
    "staged": {k: summary[k] for k in ("coupled_rel_error", "feature_cosine_min", "feature_cosine_mean",
                                       "sliced_w2_top", "sliced_w2_floor_top", "samples_seen")},
    "baseline": {k: summary["baseline"][k] for k in ("coupled_rel_error", "feature_cosine_min",
                                                      "sliced_w2_top", "samples_seen")} if "baseline" in summary else None,
}
out = Path(__file__).parent / "results" / "bench_run.json"
out.parent.mkdir(exist_ok=True)
out.write_text(json.dumps(result, indent=2))
print(json.dumps(result, indent=2))
