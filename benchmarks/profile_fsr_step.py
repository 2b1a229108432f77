"""Where the time of one FSR GAN_ForwardSuperResolution step goes: the default preset's
level-3 step (as ``bench_plain.fsr_setup`` sets it up) under ``torch.profiler``: wall time per
step, the device's busy time per step (the sum of its kernels' times), the number of operator
calls and kernel launches per step, and the operators that cost the most host time.

A step whose device time is far below its wall time is bound by the host (Python and per-operator
dispatch and launch cost): that is what a captured graph or replica batching removes, while a
faster kernel would not help.

    python benchmarks/profile_fsr_step.py [--device cuda] [--steps 10]

Writes benchmarks/results/profile_fsr_step[_DEVICE].md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
from _results import finish, out_stem  # noqa: E402 (benchmarks/ is sys.path[0])
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from bench_plain import fsr_setup

    from ganlearn.fsr.stages import make_runner

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    cuda = a.device.startswith("cuda")
    target, learner, spec = fsr_setup(a.device)
    g = torch.Generator().manual_seed(0)
    runner = make_runner(dataclasses.replace(spec, steps=10**6), learner, target.images, g)
    for t in range(3):  # warm-up
        runner.step(t, g)
    if cuda:
        torch.cuda.synchronize()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        t0 = time.perf_counter()
        for t in range(3, 3 + a.steps):
            runner.step(t, g)
        if cuda:
            torch.cuda.synchronize()
        wall = (time.perf_counter() - t0) / a.steps
    events = prof.key_averages()
    n_ops = sum(e.count for e in events if e.key.startswith("aten::")) / a.steps
    lines = [
        f"# One FSR super-resolution step (default preset, level 3, batch {spec.batch}) under the profiler",
        "",
        f"{torch.cuda.get_device_name() if cuda else 'CPU'} ({a.device}), torch {torch.__version__}, "
        f"{a.steps} steps after 3 warm-up steps, {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        f"- wall time per step (profiled): {1e3 * wall:.2f} ms",
        f"- aten operator calls per step: {n_ops:.0f}",
    ]
    if cuda:
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.time_range.elapsed_us() for e in kernels) / a.steps / 1e3
        lines += [
            f"- device kernels per step: {len(kernels) / a.steps:.0f}",
            f"- device busy time per step (sum of kernel times): {busy:.2f} ms "
            f"({100 * busy / (1e3 * wall):.0f}% of the wall time)",
        ]
    lines += [
        "",
        "Operators by host (self CPU) time:",
        "",
        "```",
        events.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=40),
        "```",
    ]
    out = out_stem("profile_fsr_step" + ("" if a.device == "cpu" else "_" + a.device.split(":")[0]))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    finish(out)
    print("\n".join(lines[:9]), flush=True)


if __name__ == "__main__":
    main()
