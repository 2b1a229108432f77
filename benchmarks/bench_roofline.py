"""Achieved FLOP/s and memory traffic of ganlearn's largest steps against the device's measured
peaks.

Peaks are measured here, not read off a datasheet: a large float32 and float64 matrix product
(TF32 off, as PyTorch's default for float32 products) and a large device-to-device copy (bytes read
plus bytes written). Workloads, each timed as a median over --repeats of --steps steps:

* ``fsr``: the default preset's GAN_ForwardSuperResolution step at level 3 (64 patches, batch
  1024 real pairs per player; float32), set up as ``bench_plain.fsr_setup`` does;
* ``overparam``: one GDA step of R = --R overparameterized replicas batched (m = 10, k = 50,
  n = 200; float64): the difference of two ``train_batched`` runs of --steps and 2 x --steps steps,
  so the set-up and the spectra are not charged to the steps.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products only: the
elementwise work is a rounding error beside them here); bytes by a dispatch mode that adds up the
sizes of every non-view operator's tensor inputs and outputs, i.e. the traffic of an unfused eager
step that reads each operand from and writes each result to device memory (an upper bound on what
fused kernels would move; caches can make the real traffic smaller).

    python benchmarks/bench_roofline.py [--device cuda] [--steps 20] [--repeats 5] [--R 256]

Writes benchmarks/results/bench_roofline[_DEVICE].json and .md.
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
from _results import finish, out_stem  # noqa: E402 (benchmarks/ is sys.path[0])
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


class ByteCounter(TorchDispatchMode):
    """Sum of the bytes of every non-view operator's tensor inputs and outputs."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not getattr(func, "is_view", False):
            flat = torch.utils._pytree.tree_leaves((args, kwargs or {}, out))
            self.bytes += sum(t.numel() * t.element_size() for t in flat if isinstance(t, torch.Tensor))
        return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def wall(fn, device: str) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def peaks(device: str, repeats: int) -> dict:
    """Measured ceilings: float32 / float64 matrix products (TFLOP/s), device copy (GB/s)."""
    big = device.startswith("cuda")
    out = {}
    for dtype, n in ((torch.float32, 8192 if big else 2048), (torch.float64, 8192 if big else 1024)):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b
        t = statistics.median(wall(lambda: a @ b, device) for _ in range(repeats))
        out[f"matmul_{str(dtype)[6:]}_tflops"] = 2 * n**3 / t / 1e12
        a = b = None  # free both before the next, larger pair
    n = (1 << 28) if big else (1 << 25)  # float32 elements: 1 GiB on a GPU, 128 MiB on a CPU
    x = torch.randn(n, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    t = statistics.median(wall(lambda: y.copy_(x), device) for _ in range(repeats))
    out["copy_gbs"] = 2 * x.numel() * x.element_size() / t / 1e9
    return out


def counted(fn) -> tuple[float, float]:
    """(FLOPs, bytes) of fn()."""
    bc = ByteCounter()
    with FlopCounterMode(display=False) as fc, bc:
        fn()
    return float(fc.get_total_flops()), float(bc.bytes)


def fsr_workload(a) -> dict:
    import dataclasses

    from bench_plain import fsr_setup

    from ganlearn.fsr.stages import make_runner

    target, learner, spec = fsr_setup(a.device)
    g = torch.Generator().manual_seed(0)
    runner = make_runner(dataclasses.replace(spec, steps=10**6), learner, target.images, g)
    step = [0]

    def steps(n):
        for _ in range(n):
            runner.step(step[0], g)
            step[0] += 1

    steps(3)  # warm-up: lazy initialisation, allocator growth
    t = statistics.median(wall(lambda: steps(a.steps), a.device) for _ in range(a.repeats)) / a.steps
    flops, nbytes = counted(lambda: steps(1))
    return {
        "what": f"FSR super_resolution level 3, default preset, batch {spec.batch}, float32",
        "dtype": "float32",
        "s_per_step": t,
        "flops_per_step": flops,
        "bytes_per_step": nbytes,
    }


def overparam_workload(a) -> dict:
    from ganlearn.overparam.batched import train_batched
    from ganlearn.overparam.config import OverparamConfig

    def cfgs(steps):
        return [OverparamConfig(m=10, k=50, steps=steps, seed=s, stop_below=0.0, eta=0.5) for s in range(a.R)]

    short, long = cfgs(a.steps * 10), cfgs(a.steps * 20)
    train_batched(short, a.device)  # warm-up
    t_short = statistics.median(wall(lambda: train_batched(short, a.device), a.device) for _ in range(a.repeats))
    t_long = statistics.median(wall(lambda: train_batched(long, a.device), a.device) for _ in range(a.repeats))
    f_short, b_short = counted(lambda: train_batched(short, a.device))
    f_long, b_long = counted(lambda: train_batched(long, a.device))
    n = a.steps * 10
    return {
        "what": f"overparameterized GDA, R = {a.R} replicas batched (m 10, k 50, n 200), float64",
        "dtype": "float64",
        "s_per_step": (t_long - t_short) / n,
        "flops_per_step": (f_long - f_short) / n,
        "bytes_per_step": (b_long - b_short) / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--R", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    name = "bench_roofline" + ("" if a.device == "cpu" else f"_{a.device.split(':')[0]}")
    peak = peaks(a.device, a.repeats)
    rows = {"fsr": fsr_workload(a), "overparam": overparam_workload(a)}
    for r in rows.values():
        r["tflops"] = r["flops_per_step"] / r["s_per_step"] / 1e12
        r["gbs"] = r["bytes_per_step"] / r["s_per_step"] / 1e9
        r["share_of_peak_flops"] = r["tflops"] / peak[f"matmul_{r['dtype']}_tflops"]
        r["share_of_peak_bandwidth"] = r["gbs"] / peak["copy_gbs"]
    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else (platform.processor() or platform.machine())
    meta = {
        "device": a.device,
        "device_name": dev,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": a.steps,
        "repeats": a.repeats,
        "R": a.R,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = out_stem(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "peaks": peak, "rows": rows}, indent=1) + "\n")
    tmp.replace(out.with_suffix(".json"))
    md = [
        f"# Achieved FLOP/s and memory traffic against measured peaks ({meta['date']})",
        "",
        f"{dev} ({a.device}), torch {meta['torch']}, {meta['threads']} CPU thread(s); medians of {a.repeats}.",
        "",
        f"Measured peaks: float32 product {peak['matmul_float32_tflops']:.2f} TFLOP/s, float64 product "
        f"{peak['matmul_float64_tflops']:.2f} TFLOP/s, device copy {peak['copy_gbs']:.0f} GB/s "
        f"(read + write).",
        "",
        "| workload | ms per step | GFLOP per step | MB moved per step (unfused) | TFLOP/s | % of peak | GB/s "
        "| % of peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        md.append(
            f"| {r['what']} | {1e3 * r['s_per_step']:.3f} | {r['flops_per_step'] / 1e9:.3f} | "
            f"{r['bytes_per_step'] / 1e6:.1f} | {r['tflops']:.4f} | {100 * r['share_of_peak_flops']:.2f} | "
            f"{r['gbs']:.1f} | {100 * r['share_of_peak_bandwidth']:.2f} |"
        )
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    finish(out)
    print("\n".join(md), flush=True)


if __name__ == "__main__":
    main()
