"""Replica batching of the staged FSR training (``ganlearn.fsr.batched``): steps of R
replicas as one batched computation against the same R runs' steps one after another, per SGDA
stage of the default preset (GAN_FirstHidden, and GAN_ForwardSuperResolution at the top level,
the two that make up the training time), side by side in one process, medians of ``--repeats``.

Both sides start from one learner after the warm start (R copies: the step's cost does not depend
on the seed) and build their stage runner untimed (a once-per-stage cost on both sides); each side
takes one untimed step, then ``--steps`` timed ones. The sequential side runs min(R, --seq-max)
runners and is charged per run. Throughput is replica-steps per second.

    python benchmarks/bench_replicas_fsr.py [--device cpu] [--R 1 4 16] [--steps 5] [--repeats 3]
                                            [--preset default] [--set KEY=VALUE ...]

Writes benchmarks/results/bench_replicas_fsr[_DEVICE].json and .md.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _results import finish, out_stem  # noqa: E402 (benchmarks/ is sys.path[0])

from ganlearn.fsr.batched import _images  # noqa: E402
from ganlearn.fsr.config import resolve  # noqa: E402
from ganlearn.fsr.model import FSRNet  # noqa: E402
from ganlearn.fsr.stages import make_runner, stage_name  # noqa: E402
from ganlearn.fsr.train import build  # noqa: E402
from ganlearn.rng import Generators, make_generator  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time_steps(runner, gen, steps: int, device: str) -> float:
    """Seconds per step, after one untimed step."""
    runner.step(0, gen)
    _sync(device)
    t = time.perf_counter()
    for s in range(1, steps + 1):
        runner.step(s, gen)
    _sync(device)
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--R", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seq-max", type=int, default=4)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    name = (
        "bench_replicas_fsr"
        + ("" if a.preset == "default" else "_" + a.preset)
        + ("" if a.device == "cpu" else "_" + a.device.split(":")[0])
    )
    out = Path(a.out) if a.out else out_stem(name)
    cfg = resolve(a.preset, None, ["baseline.enabled=false", f"device={a.device.split(':')[0]}"] + a.set)
    target, learner = build(cfg)
    g = make_generator(0, "bench.fsr.batched")
    warm = cfg.stages[0]
    assert warm.kind == "warm_start", "the preset's first stage must be the warm start"
    make_runner(warm, learner, target.images, g).step(0, g)
    stages = [st for st in cfg.stages if st.kind == "first_hidden"] + [
        st for st in cfg.stages if st.kind == "super_resolution"
    ][-1:]
    rows = []
    for spec in stages:
        for R in a.R:
            seq_n = min(R, a.seq_max)
            seq, bat = [], []
            for rep in range(a.repeats):
                per_run = []
                for r in range(seq_n):
                    gr = make_generator(r, f"bench.fsr.seq.{rep}")
                    runner = make_runner(spec, copy.deepcopy(learner), target.images, gr)
                    per_run.append(_time_steps(runner, gr, a.steps, a.device))
                seq.append(statistics.fmean(per_run))
                gens = Generators([make_generator(r, f"bench.fsr.bat.{rep}") for r in range(R)])
                stacked = FSRNet.stack([learner] * R)
                tnet = FSRNet.stack([target.net] * R).requires_grad_(False)
                runner = make_runner(spec, stacked, _images(tnet), gens)
                bat.append(_time_steps(runner, gens, a.steps, a.device))
                del runner, stacked, tnet
            s_step, b_step = statistics.median(seq), statistics.median(bat)
            rows.append(
                {
                    "stage": stage_name(spec),
                    "R": R,
                    "sequential_s_per_step": s_step,
                    "batched_s_per_step": b_step,
                    "sequential_replica_steps_per_s": 1 / s_step,
                    "batched_replica_steps_per_s": R / b_step,
                    "speedup": R * s_step / b_step,
                    "sequential_runs_timed": seq_n,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    meta = {
        "preset": a.preset,
        "set": a.set,
        "steps": a.steps,
        "repeats": a.repeats,
        "threads": a.threads,
        "device": a.device,
        "torch": torch.__version__,
        "machine": (
            torch.cuda.get_device_name() if a.device.startswith("cuda") else platform.processor() or platform.machine()
        ),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    md = [
        f"# FSR: R replicas batched vs one after another ({meta['date']})",
        "",
        f"Preset {a.preset} {' '.join(a.set)}, per-step time of each SGDA stage after the warm start, device "
        f"{a.device} ({meta['machine']}), {a.threads} torch thread(s), {a.steps} timed steps, median of {a.repeats}; "
        f"torch {meta['torch']}.",
        "",
        "| stage | R | sequential s / step | batched s / step (all R) | replica-steps/s sequential | batched "
        "| speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['stage']} | {r['R']} | {r['sequential_s_per_step']:.4f} | {r['batched_s_per_step']:.4f} | "
        f"{r['sequential_replica_steps_per_s']:.1f} | {r['batched_replica_steps_per_s']:.1f} | {r['speedup']:.2f}x |"
        for r in rows
    ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    finish(out)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
