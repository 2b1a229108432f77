"""Replica batching: R runs as one batched computation against the same R runs one
after another, side by side in one process, one torch thread (as a sweep worker runs), medians of
``--repeats``. ``--problem onelayer``: the one-layer SGDA (``onelayer.batched.train_batched`` vs
``onelayer.train.train``); ``--problem overparam``: GDA on the overparameterized GAN
(``overparam.batched.train_batched`` vs ``overparam.train.train``; m = 10, k = 50, seeds 0..R-1).

Throughput is replica-steps per second. The sequential side runs min(R, --seq-max) runs and is
charged per run (its cost is linear in R: the runs are independent and identical in size).

    python benchmarks/bench_replicas.py [--problem onelayer] [--sizes 4x256 8x512 16x1024] [--steps 200]
                                        [--R 1 8 64 256] [--repeats 3]

``--sizes DxBATCH ...`` (one-layer only): the problem sizes, each a table row group; the
sample-complexity sweep uses batch max(256, 4 d^2), so 4x256 and 8x256 are its small cells.

Writes benchmarks/results/bench_replicas[_overparam].json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _results import finish, out_stem  # noqa: E402 (benchmarks/ is sys.path[0])

from ganlearn.onelayer import OneLayerConfig  # noqa: E402
from ganlearn.onelayer import batched as onelayer_batched  # noqa: E402
from ganlearn.onelayer import train as onelayer_train
from ganlearn.overparam import batched as overparam_batched  # noqa: E402
from ganlearn.overparam.config import OverparamConfig  # noqa: E402
from ganlearn.overparam.train import train as overparam_train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problem", choices=["onelayer", "overparam"], default="onelayer")
    ap.add_argument("--sizes", nargs="+", default=["4x256", "8x512", "16x1024"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--R", type=int, nargs="+", default=[1, 8, 64, 256])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seq-max", type=int, default=8)
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--device",
        default="cpu",
        help="overparam only: where both sides train (on a device, "
        "the sequential side is the batched trainer at R = 1, run after run: the single-run trainer is "
        "CPU only)",
    )
    a = ap.parse_args()
    if a.device != "cpu" and a.problem != "overparam":
        ap.error(f"--device {a.device}: only --problem overparam runs on a device")
    torch.set_num_threads(1)
    name = (
        "bench_replicas"
        + ("" if a.problem == "onelayer" else "_" + a.problem)
        + ("" if a.device == "cpu" else "_" + a.device.split(":")[0])
    )
    a.out = a.out or str(out_stem(name))

    sizes = [tuple(int(v) for v in sz.split("x")) for sz in a.sizes] if a.problem == "onelayer" else [(10, 200)]
    if a.problem == "onelayer":
        train, train_batched = onelayer_train, onelayer_batched.train_batched

        def cfgs(R, d, batch):
            return [OneLayerConfig(d=d, batch=batch, steps=a.steps, seed=s, eval_every=a.steps) for s in range(R)]
    else:
        train, train_batched = overparam_train, overparam_batched.train_batched
        if a.device != "cpu":

            def train(c):
                return overparam_batched.train_batched([c], a.device)

            def train_batched(cs):
                return overparam_batched.train_batched(cs, a.device)

        def cfgs(R, d, batch):  # stop_below=0: every run takes all its steps, so the sides do equal work
            return [OverparamConfig(m=10, k=50, steps=a.steps, seed=s, stop_below=0.0) for s in range(R)]

    # untimed warm-up of both sides: the process's one-time costs (imports, kernel loading, allocator)
    train(cfgs(1, *sizes[0])[0])
    train_batched(cfgs(2, *sizes[0]))
    rows = []
    for d, batch in sizes:
        for R in a.R:
            seq_n = min(R, a.seq_max)
            seq, bat = [], []
            for _ in range(a.repeats):
                t = time.perf_counter()
                for c in cfgs(seq_n, d, batch):
                    train(c)
                seq.append((time.perf_counter() - t) / seq_n)  # seconds per run
                t = time.perf_counter()
                train_batched(cfgs(R, d, batch))
                bat.append(time.perf_counter() - t)  # seconds for all R
            s_run, b_all = statistics.median(seq), statistics.median(bat)
            rows.append(
                {
                    "d": d,
                    "batch": batch,
                    "R": R,
                    "sequential_s_per_run": s_run,
                    "batched_s_total": b_all,
                    "sequential_replica_steps_per_s": a.steps / s_run,
                    "batched_replica_steps_per_s": R * a.steps / b_all,
                    "speedup": (R * s_run) / b_all,
                    "sequential_runs_timed": seq_n,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    meta = {
        "problem": a.problem,
        "sizes": a.sizes if a.problem == "onelayer" else None,
        "steps": a.steps,
        "repeats": a.repeats,
        "threads": 1,
        "device": a.device,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    what = (
        f"One-layer SGDA, {a.steps} steps, truncated-statistics D (ReLU), curvature-unit step"
        if a.problem == "onelayer"
        else f"Overparameterized GDA: m = 10, k = 50, n = 200, {a.steps} steps, linear D, LTV step"
    )
    md = [
        f"# {a.problem}: R replicas batched vs one after another ({meta['date']})",
        "",
        f"{what}, device {a.device}, 1 torch thread, median of {a.repeats}; torch {meta['torch']}.",
        "",
        "| d | batch | R | sequential s / run | batched s (all R) | replica-steps/s sequential | batched | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['d'] if a.problem == 'onelayer' else '-'} | {r['batch'] if a.problem == 'onelayer' else '-'} "
        f"| {r['R']} | "
        f"{r['sequential_s_per_run']:.3f} | {r['batched_s_total']:.3f} | "
        f"{r['sequential_replica_steps_per_s']:.0f} | {r['batched_replica_steps_per_s']:.0f} | {r['speedup']:.1f}x |"
        for r in rows
    ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    finish(out)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
