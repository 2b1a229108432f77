"""Would replica batching pay for the small image GANs? Batching R runs into one computation can
only remove the part of a training step that does not grow with the batch (per-operation cost:
kernel launches, Python, small-tensor overhead);
the arithmetic of R runs stays R times one run's. This times the image trainer's SGDA step (n_dis = 1
D step on a real and a fake batch, one G step, Adam, the EMA update: what ``images.train`` does per
step, with random images in place of the data) at several batch sizes per width and fits

    step time = a + c * batch,

so a / (step time at the default batch) bounds what batching could save: R replicas batched cost at
least R * c * batch, at best a speed-up of 1 / (1 - a / step).

    python benchmarks/bench_image_overhead.py [--device cpu] [--widths 4 8 16 32] [--batches 16 64 256]
                                              [--resolution 16] [--arch dcgan] [--steps 20] [--repeats 3]
                                              [--R 3 8]

``--R``: also time R replicas as one grouped network (``images.batched``) at the default batch,
the speed-up batching gives (replica-steps per second, batched over one run after another).

Writes benchmarks/results/bench_image_overhead[_DEVICE].json and .md.
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

from ganlearn.images.batched import group  # noqa: E402
from ganlearn.images.model import build  # noqa: E402
from ganlearn.images.train import d_loss_fn, g_loss_fn  # noqa: E402
from ganlearn.rng import default_init_rng, make_generator  # noqa: E402


def step_time(a, width: int, batch: int, R: int = 0) -> float:
    """Median seconds per SGDA step (after 2 untimed ones) of a fresh width-``width`` GAN; R >= 1:
    of R such GANs as one grouped network (``images.batched``, images (n, R * C, H, W))."""
    nets = []
    for r in range(max(R, 1)):
        with default_init_rng(r, "bench.images.init"):
            nets.append(build(a.arch, resolution=a.resolution, channels=a.channels, width=width, z_dim=64))
    G, D = nets[0] if not R else (group([g for g, _ in nets]), group([d for _, d in nets]))
    G, D = G.to(a.device), D.to(a.device)
    channels, z_dim = a.channels * max(R, 1), 64 * max(R, 1)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g = make_generator(0, "bench.images.data")
    real = torch.rand(batch, channels, a.resolution, a.resolution, generator=g).mul(2).sub(1).to(a.device)
    levels = [real] if a.arch == "dcgan" else None
    if levels is None:  # the FSR architecture's D reads every resolution: average-pooled copies
        levels = [
            torch.nn.functional.avg_pool2d(real, 2**k)
            for k in reversed(range(len(G(torch.zeros(1, 64, device=a.device)))))
        ]

    def one() -> None:
        z = torch.randn(batch, z_dim, generator=g).to(a.device)
        with torch.no_grad():
            fake = G(z)
        d_loss = d_loss_fn("ns", D(levels), D([f.detach() for f in fake])) * max(R, 1)  # sum over replicas
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        D.requires_grad_(False)
        g_loss = g_loss_fn("ns", D(G(torch.randn(batch, z_dim, generator=g).to(a.device)))) * max(R, 1)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        D.requires_grad_(True)
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 0.01)

    def sync() -> None:
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    one(), one()
    times = []
    for _ in range(a.repeats):
        sync()
        t = time.perf_counter()
        for _ in range(a.steps):
            one()
        sync()
        times.append((time.perf_counter() - t) / a.steps)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", default="dcgan", choices=["dcgan", "fsr"])
    ap.add_argument("--widths", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--default-batch", type=int, default=64)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--R", type=int, nargs="*", default=[3, 8], help="replicas of the grouped network (dcgan)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for width in a.widths:
        per = {b: step_time(a, width, b) for b in sorted(set(a.batches) | {a.default_batch})}
        b0, b1 = min(per), max(per)
        c = (per[b1] - per[b0]) / (b1 - b0)
        fixed = per[b0] - c * b0
        share = fixed / per[a.default_batch]
        grouped, single = {}, {}
        for R in a.R if a.arch == "dcgan" else []:  # side by side: one repeat of each, alternating
            one = argparse.Namespace(**{**vars(a), "repeats": 1})
            pairs = [
                (step_time(one, width, a.default_batch), step_time(one, width, a.default_batch, R))
                for _ in range(a.repeats)
            ]
            single[R] = statistics.median(p[0] for p in pairs)
            grouped[R] = statistics.median(p[1] for p in pairs)
        rows.append(
            {
                "width": width,
                "s_per_step": {str(b): s for b, s in per.items()},
                "fixed_s": fixed,
                "s_per_image": c,
                "fixed_share_at_default_batch": share,
                "max_batching_speedup": 1 / max(1 - share, 1e-9),
                "grouped_s_per_step": {str(R): t for R, t in grouped.items()},
                "single_s_per_step_alongside": {str(R): t for R, t in single.items()},
                "replica_speedup": {str(R): R * single[R] / t for R, t in grouped.items()},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    meta = {
        "arch": a.arch,
        "resolution": a.resolution,
        "channels": a.channels,
        "default_batch": a.default_batch,
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
    out = out_stem("bench_image_overhead" + ("" if a.device == "cpu" else "_" + a.device.split(":")[0]))
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    bs = sorted(set(a.batches) | {a.default_batch})
    md = [
        f"# Image GANs: how much of a training step batching could remove ({meta['date']})",
        "",
        f"{a.arch}, {a.resolution}x{a.resolution}x{a.channels}, Adam, n_dis = 1, EMA; "
        f"device {a.device} ({meta['machine']}), "
        f"{a.threads} torch thread(s), {a.steps} steps, median of {a.repeats}; torch {meta['torch']}. Step time fitted "
        f"as a + c * batch over batches {bs[0]} .. {bs[-1]}; a is what replica batching could remove, so R replicas "
        f"batched run at most 1 / (1 - a / step) times faster than one after another.",
        "",
        "| width | " + " | ".join(f"ms/step at batch {b}" for b in bs) + " | a (ms) | c (us/image) | a / step at batch "
        f"{a.default_batch} | batching speed-up at most |",
        "|---|" + "---|" * len(bs) + "---|---|---|---|",
    ]
    md += [
        f"| {r['width']} | "
        + " | ".join(f"{1e3 * r['s_per_step'][str(b)]:.2f}" for b in bs)
        + f" | {1e3 * r['fixed_s']:.2f} | {1e6 * r['s_per_image']:.1f} "
        f"| {100 * r['fixed_share_at_default_batch']:.0f}% | "
        f"{r['max_batching_speedup']:.2f}x |"
        for r in rows
    ]
    if a.R and a.arch == "dcgan":
        md += [
            "",
            f"Measured: R replicas as one grouped network (`ganlearn.images.batched`: grouped convolutions, "
            f"per-replica batch and spectral norm) against R single steps, batch {a.default_batch}, replica-steps "
            f"per second batched over sequential (single and grouped timed alternately, median of {a.repeats} "
            f"pairs):",
            "",
            "| width | " + " | ".join(f"R = {R}: ms/step (all R) | speed-up" for R in a.R) + " |",
            "|---|" + "---|---|" * len(a.R),
        ]
        md += [
            f"| {r['width']} | "
            + " | ".join(
                f"{1e3 * r['grouped_s_per_step'][str(R)]:.2f} | {r['replica_speedup'][str(R)]:.2f}x" for R in a.R
            )
            + " |"
            for r in rows
        ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    finish(out)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
