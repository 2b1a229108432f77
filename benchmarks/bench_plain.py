"""ganlearn against a plain eager PyTorch SGDA loop written the way GAN libraries write it (one
generator module and one optimizer per player and run, ``zero_grad / backward / step``, the losses
read back with ``.item()`` every step as a logging loop does, a Python loop over runs), for the three
problems. Side by side in one process, medians of --repeats; throughput in run-steps
per second (FSR: steps per second of one run).

* ``--problem overparam``: the width sweep's problem (m = 10, k = 50, n = 200, linear D, 300
  steps, fixed eta 0.5): the plain loop, ganlearn's single-run trainer (``overparam.train.train``,
  which also records the curve and the spectra) and its replica-batched trainer at R runs.
* ``--problem onelayer``: one-layer SGDA (ReLU, kappa 2, d = 8, batch 512, truncated statistics,
  fresh fakes for G): the plain loop (A as a parameter with SGD at lr_d * ridge = 1, G with SGD at
  a fixed step), ``onelayer.train.train`` with one evaluation at the end and with the default
  evaluation every 25 steps (the Gaussian TV's Monte Carlo included), and the batched trainer at R.
* ``--problem fsr``: the default preset's GAN_ForwardSuperResolution stage at level 3 (the largest
  stage: 64 patches, batch 1024), the layers below and the output layers set to the target's, so
  the step does the work of a real run: the plain loop (the same whitened, preconditioned moment
  game as nn.Modules with two Adam optimizers) against ``fsr.stages.SuperResolution.step``. Also
  ganlearn's step time at batch 64 / 256 / 1024: how much of a step is per-operation overhead
  (what replica batching or a captured graph can remove) and how much is arithmetic that grows
  with the batch (which they cannot remove on a CPU); and (``--fsr-R``, by default on a device) R
  replicas of the stage as one batched computation (``fsr.batched``), per replica-step.

    python benchmarks/bench_plain.py [--problem overparam|onelayer|fsr|all] [--R 64] [--repeats 3]
                                     [--threads 1] [--device cpu]

Writes benchmarks/results/bench_plain[_onelayer|_fsr][_DEVICE].json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _results import finish, out_stem  # noqa: E402 (benchmarks/ is sys.path[0])

from ganlearn.overparam.batched import train_batched as overparam_batched  # noqa: E402
from ganlearn.overparam.config import OverparamConfig
from ganlearn.overparam.model import Problem  # noqa: E402
from ganlearn.overparam.train import train as overparam_train  # noqa: E402


def timed(fn, repeats: int, per: int = 1) -> float:
    """Median over ``repeats`` of fn()'s wall time divided by ``per``, after one untimed call (the
    process's first calls pay one-time costs: allocator growth, kernel selection)."""
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) / per)
    return statistics.median(out)


# -- overparameterized GDA ----------------------------------------------------------------------


def plain_overparam(cfg: OverparamConfig, eta: float, device: str = "cpu") -> float:
    """The textbook loop: G and d as modules with torch.optim.SGD, one step = both gradients at
    the same point (simultaneous GDA), the loss read back every step as a logging loop does."""
    p = Problem(cfg)
    p.G.to(device)
    p.z, p.target = p.z.to(device), p.target.to(device)
    p.params = [q for q in p.G.parameters() if q.requires_grad]
    d = torch.zeros_like(p.target, requires_grad=True)
    opt_g, opt_d = torch.optim.SGD(p.params, lr=eta), torch.optim.SGD([d], lr=cfg.mu)
    last = 0.0
    for _ in range(cfg.steps):
        r = p.psi(p.G(p.z)).mean(0) - p.target
        h = (d * -r).sum() - 0.5 * (d**2).sum()
        opt_g.zero_grad(), opt_d.zero_grad()
        (-h).backward()  # D ascends h: its gradient is -dh/dd; G descends h ...
        for q in p.params:
            q.grad.neg_()  # ... so G's gradient is +dh/dtheta
        opt_g.step(), opt_d.step()
        last = float(r.norm())
    return last


def bench_overparam(a) -> tuple[dict, list[str]]:
    steps = a.steps or 300
    cfgs = [OverparamConfig(m=10, k=50, steps=steps, seed=s, stop_below=0.0, eta=0.5) for s in range(a.R)]
    seq = cfgs[: a.seq]
    rows = {"plain": timed(lambda: [plain_overparam(c, 0.5) for c in seq], a.repeats, len(seq))}
    if a.device == "cpu":
        rows["ganlearn"] = timed(lambda: [overparam_train(c) for c in seq], a.repeats, len(seq))
    else:  # the plain loop on the device too; ganlearn's single-run trainer is CPU only
        rows[f"plain ({a.device})"] = timed(
            lambda: [plain_overparam(c, 0.5, a.device) for c in seq], a.repeats, len(seq)
        )
    rows[f"ganlearn_batched (R = {a.R}, {a.device})"] = timed(lambda: overparam_batched(cfgs, a.device), a.repeats, a.R)
    head = (
        "Overparameterized GDA: ganlearn vs a plain eager loop",
        f"m = 10, k = 50, n = 200, {steps} steps, fixed eta 0.5; plain: the CPU unless named",
    )
    return _rows(rows, steps), list(head)


# -- one-layer SGDA ------------------------------------------------------------------------------


def plain_onelayer(d: int, batch: int, steps: int, seed: int) -> float:
    """One-layer SGDA as a GAN library writes it: target and learner as modules, the linear
    discriminator's matrix A as a parameter with its own SGD optimizer (lr_d * ridge = 1, the exact
    inner max), a fresh fake batch for G's loss, G by SGD at a fixed decaying step."""
    from ganlearn.onelayer.discriminators import truncated_stats
    from ganlearn.onelayer.model import OneLayerGenerator, activation, conditioned_matrix

    g = torch.Generator().manual_seed(seed)
    act = activation("relu")
    target = OneLayerGenerator(conditioned_matrix(d, 2.0, generator=g), "relu").requires_grad_(False)
    learner = OneLayerGenerator(torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5, "relu")
    A = nn.Parameter(torch.zeros(d, d, dtype=torch.float64))
    opt_d, opt_g = torch.optim.SGD([A], lr=1.0), torch.optim.SGD(learner.parameters(), lr=0.3)
    last = 0.0
    for t in range(steps):
        real, fake = target.sample(batch, generator=g), learner.sample(batch, generator=g)
        d_loss = -(
            (A * (truncated_stats(real, act) - truncated_stats(fake.detach(), act))).sum() - 0.5 * A.pow(2).sum()
        )
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = -(A.detach() * truncated_stats(learner.sample(batch, generator=g), act)).sum()
        for group in opt_g.param_groups:
            group["lr"] = 0.3 / (1 + t / 200) ** 0.6
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        last = d_loss.item() + g_loss.item()
    return last


def bench_onelayer(a) -> tuple[dict, list[str]]:
    from ganlearn.onelayer import OneLayerConfig, train
    from ganlearn.onelayer.batched import train_batched

    steps, d, batch = a.steps or 1000, 8, 512
    one_eval = [OneLayerConfig(d=d, batch=batch, steps=steps, seed=s, eval_every=steps) for s in range(a.R)]
    default_eval = [dataclasses.replace(c, eval_every=25) for c in one_eval[: a.seq]]
    seq = one_eval[: a.seq]
    rows = {
        "plain": timed(lambda: [plain_onelayer(d, batch, steps, s) for s in range(a.seq)], a.repeats, a.seq),
        "ganlearn (one evaluation)": timed(lambda: [train(c) for c in seq], a.repeats, len(seq)),
        "ganlearn (evaluation every 25 steps)": timed(lambda: [train(c) for c in default_eval], a.repeats, len(seq)),
        f"ganlearn_batched (R = {a.R}, one evaluation)": timed(lambda: train_batched(one_eval), a.repeats, a.R),
    }
    head = (
        "One-layer SGDA: ganlearn vs a plain eager loop",
        f"ReLU, kappa 2, d = {d}, batch {batch}, truncated statistics, {steps} steps (ganlearn: curvature-unit "
        f"step and Sigma averaging; plain: fixed step)",
    )
    return _rows(rows, steps), list(head)


# -- FSR: GAN_ForwardSuperResolution ------------------------------------------------------------


def fsr_setup(device: str, level: int = 3):
    from ganlearn.fsr.config import resolve
    from ganlearn.fsr.train import build

    cfg = dataclasses.replace(resolve("default"), device=device)
    target, learner = build(cfg)
    with torch.no_grad():  # every layer at the truth except the one this stage learns
        learner.load_state_dict(target.net.state_dict())
        g = torch.Generator().manual_seed(1)
        V = learner.V[level - 1]
        V.add_(
            0.3
            * V.std()
            * torch.randn(V.shape, generator=g, dtype=V.dtype).to(device)
            * getattr(learner, f"parent_mask_{level}")[:, None, :, None]
        )
    spec = next(s for s in cfg.stages if s.kind == "super_resolution" and s.level == level)
    return target, learner, spec


class PlainSRGenerator(nn.Module):
    """Level-l super-resolution generator in whitened coordinates: S_l = ReLU(V_w M [1, parents])."""

    def __init__(self, learner, level: int, white: torch.Tensor, v_white: torch.Tensor):
        super().__init__()
        self.learner, self.level = learner, level
        self.register_buffer("white", white)
        self.v_white = nn.Parameter(v_white.clone())

    def forward(self, s_lo: torch.Tensor) -> torch.Tensor:
        from ganlearn.fsr.discriminators import with_bias

        x = torch.einsum("njq,jpq->njp", with_bias(self.learner.parent_inputs(self.level, s_lo)), self.white)
        return torch.relu(torch.einsum("jrq,njq->njr", self.v_white, x))


class PlainMomentD(nn.Module):
    """The linear discriminator on the whitened cross moments, D = <theta, moments / scale>."""

    def __init__(self, white: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("white", white)
        self.register_buffer("scale", scale)
        self.theta = nn.Parameter(torch.zeros_like(scale))

    def forward(self, s_hi: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        from ganlearn.fsr.discriminators import pair_moments

        return (self.theta * pair_moments(s_hi, parents, self.white) / self.scale).sum()


def plain_fsr(target, learner, spec, steps: int, seed: int) -> float:
    """The same moment game as ``SuperResolution`` written as a GAN library loop."""
    from ganlearn.fsr.discriminators import pair_moments, whitening, with_bias

    lv, g = spec.level, torch.Generator().manual_seed(seed)
    L = learner
    with torch.no_grad():
        xs = target.images(spec.init_samples, generator=g, upto=lv)
        x = with_bias(L.parent_inputs(lv, L.encode(lv - 1, xs[-2])))
        white, white_inv = whitening(torch.einsum("njq,njp->jqp", x, x) / x.shape[0], rel_ridge=spec.whiten_ridge)
        full = torch.cat([-L.b[lv - 1][..., None], L.V[lv - 1].flatten(2)], -1)
        s_lo = L.encode(lv - 1, xs[-2])
        scale = pair_moments(L.encode(lv, xs[-1]), L.parent_inputs(lv, s_lo), white).abs().mean()
    G = PlainSRGenerator(L, lv, white, full @ white_inv)
    D = PlainMomentD(white, scale.expand(L.V[lv - 1].shape[:2] + (white.shape[-1],)).clone())
    opt_g = torch.optim.Adam(G.parameters(), lr=spec.sgda.lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=spec.sgda.lr_d, betas=(0.5, 0.999))
    last = 0.0
    for t in range(steps):
        lr = max(spec.lr_floor, 0.5 ** (t / spec.lr_half_life))
        for opt, base in ((opt_g, spec.sgda.lr_g), (opt_d, spec.sgda.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * lr
        losses = []
        for player in ("d", "g"):  # a fresh real batch for each player
            with torch.no_grad():
                xs = target.images(spec.batch, generator=g, upto=lv)
                s_lo, s_hi = L.encode(lv - 1, xs[-2]), L.encode(lv, xs[-1])
                parents = L.parent_inputs(lv, s_lo)
            fake = G(s_lo) if player == "g" else G(s_lo).detach()  # D's step does not backpropagate into G
            value = D(s_hi, parents) - D(fake, parents) - 0.5 * spec.ridge * D.theta.pow(2).sum()
            opt = opt_d if player == "d" else opt_g
            opt.zero_grad()
            (-value if player == "d" else value).backward()
            opt.step()
            losses.append(value.item())
        with torch.no_grad():  # the learner's (V, b) from the whitened parameters, as ganlearn does
            full = G.v_white @ white
            L.b[lv - 1].copy_(-full[..., 0])
            L.V[lv - 1].copy_(full[..., 1:].reshape(L.V[lv - 1].shape))
        last = sum(losses)
    return last


def bench_fsr(a) -> tuple[dict, list[str]]:
    from ganlearn.fsr.stages import make_runner

    steps = a.steps or 40
    target, learner, spec = fsr_setup(a.device)
    state = {k: v.clone() for k, v in learner.state_dict().items()}

    def ganlearn_run(batch: int) -> float:
        learner.load_state_dict(state)
        g = torch.Generator().manual_seed(0)
        runner = make_runner(dataclasses.replace(spec, batch=batch), learner, target.images, g)
        t0 = time.perf_counter()  # the stage's set-up (whitening, scales) excluded
        for t in range(steps):
            out = runner.step(t, g)
        float(out["g_loss"])  # one read at the end (a device run waits for its queue here)
        return (time.perf_counter() - t0) / steps

    def plain_run() -> float:
        learner.load_state_dict(state)
        t0 = time.perf_counter()
        plain_fsr(target, learner, spec, steps, 0)
        return (time.perf_counter() - t0) / steps

    def median_step(fn) -> float:
        fn()  # untimed warm-up (see timed)
        return statistics.median(fn() for _ in range(a.repeats))

    def ganlearn_replicas(R: int) -> float:
        """Seconds per replica-step of R replicas as one batched computation (fsr.batched)."""
        from ganlearn.fsr.batched import _images
        from ganlearn.fsr.model import FSRNet
        from ganlearn.rng import Generators, make_generator

        learner.load_state_dict(state)
        stacked = FSRNet.stack([learner] * R)
        data = _images(FSRNet.stack([target.net] * R).requires_grad_(False))
        gens = Generators([make_generator(r, "bench.plain.fsr") for r in range(R)])
        runner = make_runner(spec, stacked, data, gens)
        n = min(steps, 10)
        t0 = time.perf_counter()
        for t in range(n):
            out = runner.step(t, gens)
        float(out["g_loss"])
        return (time.perf_counter() - t0) / n / R

    per_batch = {batch: median_step(lambda: ganlearn_run(batch)) for batch in (64, 256, spec.batch)}
    rows = {"plain": median_step(plain_run), "ganlearn": per_batch[spec.batch]}
    fsr_R = a.fsr_R if a.fsr_R is not None else (16 if a.device != "cpu" else 0)
    if fsr_R:  # throughput: replica-steps per second (its "s per step" is per replica-step)
        rows[f"ganlearn, R = {fsr_R} replicas batched (per replica-step)"] = median_step(
            lambda: ganlearn_replicas(fsr_R)
        )
    rows |= {f"ganlearn, batch {batch}": s for batch, s in per_batch.items()}
    head = (
        "FSR GAN_ForwardSuperResolution (default preset, level 3): ganlearn vs a plain eager loop",
        f"64 patches, m = 16, cross graph (q = 81), Adam both players, batch {spec.batch} real pairs per player "
        f"(drawn from the target inside the step), {steps} steps per run, the stage's set-up excluded; "
        f"device {a.device}",
    )
    out = _rows(rows, per_step=True)
    b0, b1 = min(per_batch), max(per_batch)
    # the step time as a + c * batch: a is the part that does not grow with the batch (per-op cost)
    c = (per_batch[b1] - per_batch[b0]) / (b1 - b0)
    a0 = per_batch[b0] - c * b0
    out["_fit"] = {
        "fixed_s_per_step": a0,
        "s_per_step_per_sample": c,
        "fixed_share_at_default_batch": a0 / per_batch[b1],
    }
    return out, list(head)


# -- shared -----------------------------------------------------------------------------------------


def _rows(times: dict, steps: float = 1.0, per_step: bool = False) -> dict:
    if per_step:
        rows = {k: {"s_per_step": v, "steps_per_s": 1.0 / v} for k, v in times.items()}
        key = "steps_per_s"
    else:
        rows = {k: {"s_per_run": v, "run_steps_per_s": steps / v} for k, v in times.items()}
        key = "run_steps_per_s"
    base = rows["plain"][key]
    for r in rows.values():
        r["vs_plain"] = r[key] / base
    return rows


def write(problem: str, rows: dict, head: list[str], a) -> None:
    meta = {
        "problem": problem,
        "R": a.R,
        "steps": a.steps,
        "repeats": a.repeats,
        "threads": a.threads,
        "device": a.device,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    name = (
        "bench_plain"
        + ("" if problem == "overparam" else f"_{problem}")
        + ("" if a.device == "cpu" else f"_{a.device}")
    )
    out = out_stem(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    fit = rows.pop("_fit", None)
    per_step = "s_per_step" in next(iter(rows.values()))
    md = [
        f"# {head[0]} ({meta['date']})",
        "",
        f"{head[1]}; {a.threads} torch thread(s), median of {a.repeats}; torch {meta['torch']}.",
        "",
    ]
    if per_step:
        md += ["| loop | s per step | steps / s | vs plain |", "|---|---|---|---|"]
        md += [
            f"| {k} | {r['s_per_step']:.4f} | {r['steps_per_s']:.1f} | {r['vs_plain']:.2f}x |" for k, r in rows.items()
        ]
    else:
        md += ["| loop | s per run | run-steps / s | vs plain |", "|---|---|---|---|"]
        md += [
            f"| {k} | {r['s_per_run']:.3f} | {r['run_steps_per_s']:.0f} | {r['vs_plain']:.2f}x |"
            for k, r in rows.items()
        ]
    if fit is not None:
        md += [
            "",
            f"Step time fitted as a + c * batch over batches 64 .. 1024: a = {1e3 * fit['fixed_s_per_step']:.1f} ms "
            f"(the part that does not grow with the batch: per-operation cost, the stage's small matrices), "
            f"c = {1e6 * fit['s_per_step_per_sample']:.1f} us per real pair; a is "
            f"{100 * fit['fixed_share_at_default_batch']:.0f}% of a step at the default batch.",
        ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    finish(out)
    print(out.with_suffix(".md").read_text(), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", choices=["overparam", "onelayer", "fsr", "all"], default="all")
    ap.add_argument("--R", type=int, default=64, help="replicas of the batched trainers")
    ap.add_argument(
        "--fsr-R",
        type=int,
        default=None,
        help="fsr: replicas of the batched row (default 16 on a "
        "device, 0 = none on the CPU, where bench_replicas_fsr.py measures it)",
    )
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default: 300 / 1000 / 40)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seq", type=int, default=4, help="runs timed for the per-run loops (cost is linear in R)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--device",
        default="cpu",
        help="fsr and overparam (the one-layer trainers run on the CPU: on a device, its problems "
        "are too small to leave the per-replica CPU draws behind)",
    )
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    problems = ["overparam", "onelayer", "fsr"] if a.problem == "all" else [a.problem]
    for problem in problems:
        if a.device != "cpu" and problem == "onelayer":
            continue
        rows, head = {"overparam": bench_overparam, "onelayer": bench_onelayer, "fsr": bench_fsr}[problem](a)
        write(problem, rows, head, a)


if __name__ == "__main__":
    main()
