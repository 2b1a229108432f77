"""ganlearn against a plain eager PyTorch GDA loop written the way GAN libraries write it (one
generator module and one optimizer per player and run, a Python loop over runs), on the
overparameterized problem of the width sweep (m = 10, k = 50, n = 200, linear D, 300 steps):
the plain loop, ganlearn's single-run trainer (``overparam.gda.train``, which also records the
curve and the spectra) and its replica-batched trainer at R runs (``overparam.batched``). Side by
side in one process, one torch thread, medians of --repeats; throughput in run-steps per second.

    python benchmarks/bench_plain.py [--R 64] [--steps 300] [--repeats 3]

Writes benchmarks/results/bench_plain.json and .md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ganlearn.overparam.batched import train_batched  # noqa: E402
from ganlearn.overparam.gda import train  # noqa: E402
from ganlearn.overparam.model import OverparamConfig, Problem  # noqa: E402


def plain_run(cfg: OverparamConfig, eta: float) -> float:
    """The textbook loop: G and d as modules with torch.optim.SGD, one step = both gradients at
    the same point (simultaneous GDA), the loss read back every step as a logging loop does."""
    p = Problem(cfg)
    d = torch.zeros_like(p.target, requires_grad=True)
    opt_g, opt_d = torch.optim.SGD(p.params, lr=eta), torch.optim.SGD([d], lr=cfg.mu)
    last = 0.0
    for _ in range(cfg.steps):
        r = p.psi(p.G(p.z)).mean(0) - p.target
        h = (d * -r).sum() - 0.5 * (d ** 2).sum()
        opt_g.zero_grad(), opt_d.zero_grad()
        (-h).backward()  # D ascends h: its gradient is -dh/dd; G descends h ...
        for q in p.params:
            q.grad.neg_()  # ... so G's gradient is +dh/dtheta
        opt_g.step(), opt_d.step()
        last = float(r.norm())
    return last


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--R", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seq", type=int, default=4, help="runs timed for the per-run loops (cost is linear in R)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfgs = [OverparamConfig(m=10, k=50, steps=a.steps, seed=s, stop_below=0.0, eta=0.5) for s in range(a.R)]
    times = {"plain": [], "ganlearn": [], "ganlearn_batched": []}
    for _ in range(a.repeats):
        t = time.perf_counter()
        for c in cfgs[:a.seq]:
            plain_run(c, 0.5)
        times["plain"].append((time.perf_counter() - t) / a.seq)
        t = time.perf_counter()
        for c in cfgs[:a.seq]:
            train(c)
        times["ganlearn"].append((time.perf_counter() - t) / a.seq)
        t = time.perf_counter()
        train_batched(cfgs)
        times["ganlearn_batched"].append((time.perf_counter() - t) / a.R)
    rows = {k: {"s_per_run": statistics.median(v), "run_steps_per_s": a.steps / statistics.median(v)}
            for k, v in times.items()}
    base = rows["plain"]["run_steps_per_s"]
    for r in rows.values():
        r["vs_plain"] = r["run_steps_per_s"] / base
    meta = {"R": a.R, "steps": a.steps, "repeats": a.repeats, "threads": 1, "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M")}
    out = Path(__file__).parent / "results" / "bench_plain"
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    md = [f"# Overparameterized GDA: ganlearn vs a plain eager loop ({meta['date']})", "",
          f"m = 10, k = 50, n = 200, {a.steps} steps, fixed eta 0.5, 1 torch thread, median of {a.repeats}; "
          f"batched: R = {a.R}; torch {meta['torch']}.", "",
          "| loop | s per run | run-steps / s | vs plain |", "|---|---|---|---|"]
    md += [f"| {k} | {r['s_per_run']:.3f} | {r['run_steps_per_s']:.0f} | {r['vs_plain']:.2f}x |" for k, r in rows.items()]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
