"""Image-GAN training: one readable SGDA loop (Adam by default) with EMA, sample grids, metrics,
checkpoints and exact resume, on one process or many (PyTorch DDP under ``torchrun``).

Per step: ``n_dis`` discriminator ascent steps (real batch and fake batch in two separate D calls),
then one generator descent step; the generator's EMA is updated; every ``eval_every`` steps the EMA
generator is scored (``metrics.jsonl``), every ``grid_every`` steps it draws the fixed-latent grid
(``grid-{step:07d}.png``), every ``ckpt_every`` steps a safetensors checkpoint is written.

Randomness is counter-based: the batch indices and latents of step t on rank r come from the named
stream ``images.train.step{t}.rank{r}.*`` of the seed, so a resumed run draws exactly what the
uninterrupted run would have drawn and no RNG state needs saving.

DDP (``torchrun --nproc_per_node N -m ganlearn.images.train OUT KEY=VALUE ...``): G and D are wrapped with
``broadcast_buffers=False``. D is called twice per step, and with "bn" its running statistics are
buffers; re-broadcasting them before the second forward is the in-place autograd error reported in
pytorch#22095 and rosinality/stylegan2-pytorch#236 (on torch 2.13, CPU/gloo, our 2-process check of
the default did not raise, but nothing is lost by not broadcasting: only eval mode reads running
statistics, and rank 0's are the ones saved). ``replica_divergence`` checks at the end that the
parameters of all ranks are identical;
the D step makes the fake batch with the unwrapped G under no_grad and the G step calls the unwrapped
D, so each wrapper's reducer sees exactly one backward per forward. Each rank takes batch / world
images; gradients are averaged over ranks, so the global batch is ``batch``. Only rank 0 writes.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TypedDict, cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from ganlearn.config import ConfigError, parse_value
from ganlearn.errors import UserError, check_finite_and_bounded
from ganlearn.images import data as datamod
from ganlearn.images import metrics as M
from ganlearn.images.config import DEFAULT_RESOLUTION, ImageGANConfig, make_config  # noqa: F401 (re-exported)
from ganlearn.images.distributed import ddp_wrap, init_distributed, rank_device, replica_divergence, world_rank
from ganlearn.images.model import build
from ganlearn.images.probe import code_sparsity
from ganlearn.io import (
    RunLock,
    append_jsonl,
    atomic_write_text,
    flatten_optimizer,
    load_checkpoint,
    load_flat_optimizer,
    load_latest_checkpoint,
    save_checkpoint,
    write_json,
)
from ganlearn.plots import save_png, tile
from ganlearn.provenance import provenance
from ganlearn.rng import default_init_rng, make_generator, to_device
from ganlearn.rundir import write_simple_report

__all__ = [
    "DEFAULT_RESOLUTION",
    "ImageGANConfig",
    "make_config",
    "step_generator",
    "load_generator",
    "d_loss_fn",
    "g_loss_fn",
    "sgda_step",
    "ema_update",
    "sample",
    "evaluate",
    "real_baseline",
    "Result",
    "train",
    "write_report",
    "main_ddp",
]


def step_generator(seed: int, step: int, rank: int, stream: str) -> torch.Generator:
    """The RNG of (step, rank, stream), a named stream of the run seed: counter-based, so resume
    needs no RNG state. CPU generator: the batch indices and latents are drawn on the CPU (the
    data live there) and moved, so a step draws the same numbers whatever the training device."""
    return make_generator(seed, f"images.train.step{step}.rank{rank}.{stream}")


# ---- checkpoint helpers ------------------------------------------------------------------------


def _module_tensors(prefix: str, m: torch.nn.Module) -> dict:
    return {f"{prefix}.{k}": v for k, v in m.state_dict().items()}


def _param_norm(m: torch.nn.Module) -> float:
    return float(torch.sqrt(cast(torch.Tensor, sum(p.detach().double().pow(2).sum() for p in m.parameters()))))


def _load_module(prefix: str, m: torch.nn.Module, tensors: dict) -> None:
    m.load_state_dict({k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")})


def load_generator(run_dir_or_ckpt: str | Path, *, ema: bool = True, device: str = "cpu"):
    """(generator, config) from a run directory (newest checkpoint) or a checkpoint file."""
    p = Path(run_dir_or_ckpt)
    found = load_latest_checkpoint(p, device) if p.is_dir() else (load_checkpoint(p, device) if p.exists() else None)
    if found is None:
        raise FileNotFoundError(f"no checkpoint in {p} (want RUN_DIR or RUN_DIR/checkpoints/state-*.safetensors)")
    tensors, meta = found[-2:]  # (step, tensors, meta) from a run directory, (tensors, meta) from a file
    cfg = make_config(meta["config"])
    x_shape = meta["data_shape"]
    g, d = build(
        cfg.arch,
        resolution=x_shape[-1],
        channels=x_shape[1],
        width=cfg.width,
        d_width=cfg.d_width or None,
        z_dim=cfg.z_dim,
        d_norm=cfg.d_norm,
        g_norm=cfg.g_norm,
    )
    _load_module("G_ema" if ema else "G", g, tensors)
    _load_module("D", d, tensors)
    return g.to(device).eval(), d.to(device).eval(), cfg, meta


# ---- the loop ----------------------------------------------------------------------------------


def d_loss_fn(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_loss_fn(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean() if kind == "ns" else -fake_logits.mean()


def sgda_step(
    G,
    D,
    opt_g,
    opt_d,
    cfg: ImageGANConfig,
    real_batch,
    latents,
    step: int,
    *,
    G_train=None,
    D_train=None,
    d_losses=d_loss_fn,
    g_losses=g_loss_fn,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGDA step: ``cfg.n_dis`` discriminator steps (the logistic loss, loss="ns", or the hinge
    loss), then one generator step through the unwrapped D (-log D(G(z)) or -D(G(z))); returns the
    last D loss and the G loss. ``G_train`` / ``D_train``: the DDP wrappers, if any. ``d_losses`` /
    ``g_losses`` may return one loss per replica (``images.batched``): their sum is differentiated,
    so each replica gets its own gradient."""
    G_train, D_train = G_train or G, D_train or D
    for k in range(cfg.n_dis):
        with torch.no_grad():
            fake = G(latents(step, k))
        d_loss = d_losses(cfg.loss, D_train(real_batch(step, k)), D_train([f.detach() for f in fake]))
        opt_d.zero_grad(set_to_none=True)
        d_loss.sum().backward()
        opt_d.step()
    D.requires_grad_(False)
    g_loss = g_losses(cfg.loss, D(G_train(latents(step, cfg.n_dis))))
    opt_g.zero_grad(set_to_none=True)
    g_loss.sum().backward()
    opt_g.step()
    D.requires_grad_(True)
    return d_loss, g_loss


@torch.no_grad()
def ema_update(G_ema, G, cfg: ImageGANConfig, step: int) -> float:
    """G_ema <- the EMA of G after step ``step`` (parameters averaged, buffers copied), its half-life
    ``ema_halflife_images`` ramped up as in StyleGAN2-ADA; returns the decay beta used."""
    seen = (step + 1) * cfg.batch
    half = min(cfg.ema_halflife_images, seen * cfg.ema_rampup)
    beta = 0.5 ** (cfg.batch / max(half, 1e-8))
    for pe, p in zip(G_ema.parameters(), G.parameters()):
        pe.lerp_(p, 1 - beta)
    for be, b in zip(G_ema.buffers(), G.buffers()):
        be.copy_(b)
    return beta


@torch.no_grad()
def sample(
    g: torch.nn.Module,
    n: int,
    z_dim: int,
    *,
    seed: int,
    stream: str = "images.sample",
    device: str = "cpu",
    batch: int = 500,
) -> torch.Tensor:
    """n images from generator ``g`` (last level), latents from the named stream of ``seed``
    (drawn on the CPU, so the same latents on every device)."""
    z = torch.randn(n, z_dim, generator=make_generator(seed, stream))
    return torch.cat([g(z[i : i + batch].to(device))[-1].cpu() for i in range(0, n, batch)])


def evaluate(
    g_ema: torch.nn.Module,
    real: torch.Tensor,
    cfg: ImageGANConfig,
    step: int,
    images_seen: int,
    baseline: dict | None = None,
    *,
    device: str = "cpu",
) -> dict:
    """SWD (multi-scale) and Frechet/PRDC in randconv128-v1 of the EMA generator vs real images.

    ``baseline`` (from ``real_baseline``) is copied in with a ``_real`` suffix: the same metrics between
    two disjoint real sets of the same size, the floor a perfect generator would reach."""
    n = min(cfg.eval_n, len(real))
    idx = torch.randperm(len(real), generator=make_generator(cfg.seed, "images.eval.real"))[:n]
    fake = sample(g_ema, n, cfg.z_dim, seed=cfg.seed, stream="images.eval.fake", device=device)
    rec = {"step": step, "images_seen": images_seen, **_scores(real[idx], fake, cfg)}
    # the hidden codes' sparsity measures (followed over training time, not only at the end)
    rec["codes"] = code_sparsity(g_ema, cfg.z_dim, seed=cfg.seed, device=device)
    for k, v in (baseline or {}).items():
        if k != "meta":
            rec[f"{k}_real"] = v
    return rec


def _scores(a: torch.Tensor, b: torch.Tensor, cfg: ImageGANConfig) -> dict:
    rec = M.swd(a, b, seed=cfg.seed, patches_per_image=cfg.eval_patches)
    swd_meta = rec.pop("meta")
    fm = M.feature_metrics(a, b, seed=cfg.seed)
    rec.update({k: v for k, v in fm.items() if k != "meta"})
    rec["meta"] = {"swd": swd_meta, "features": fm["meta"], "generator": "ema"}
    return rec


def real_baseline(real: torch.Tensor, cfg: ImageGANConfig) -> dict:
    """The metrics between two disjoint random halves of the data, each of min(eval_n, n/2) images."""
    n = min(cfg.eval_n, len(real) // 2)
    idx = torch.randperm(len(real), generator=make_generator(cfg.seed, "images.eval.baseline"))
    return _scores(real[idx[:n]], real[idx[n : 2 * n]], cfg)


class Result(TypedDict, total=False):
    """What an image run returns (and writes to ``summary.json``): the last evaluation of the EMA
    generator (SWD, Frechet distance and PRDC in the run's feature space, ...) and the wall time."""

    step: int
    images_seen: int
    swd_avg: float
    frechet: float
    precision: float
    recall: float
    density: float
    coverage: float
    wall_seconds: float
    world: int
    replica_max_abs_diff: float


def train(cfg: ImageGANConfig, run_dir: str | Path, *, progress: bool = True, device: str | None = None) -> Result:
    """Train (or resume) in ``run_dir``; return the last evaluation record plus wall time.

    ``device``: where this process trains (default ``cfg.device``); under ``torchrun`` the caller
    passes this rank's GPU (the CLI uses ``cuda:$LOCAL_RANK``)."""
    cfg.validate()
    device = device or cfg.device
    rank, world = init_distributed(device)
    if cfg.batch % world:
        raise ConfigError(
            f"batch={cfg.batch} is not allowed with {world} processes: must be divisible by the world size"
        )
    run_dir = Path(run_dir)
    if rank != 0:  # rank 0 holds the run directory's lock for all ranks
        return _train(cfg, run_dir, progress, device, rank, world)
    fresh = not run_dir.exists()
    try:
        with RunLock(run_dir):
            return _train(cfg, run_dir, progress, device, rank, world)
    except UserError:  # e.g. unusable data: leave no empty run directory behind
        if fresh and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise


def _networks(cfg: ImageGANConfig, real: torch.Tensor, device: str) -> tuple:
    """G, D, the EMA generator and the two optimizers (every rank builds identical networks from
    the seed: PyTorch's layer initializers under a named stream, the global RNG untouched)."""
    with default_init_rng(cfg.seed, "images.init"):
        G, D = build(
            cfg.arch,
            resolution=real.shape[-1],
            channels=real.shape[1],
            width=cfg.width,
            d_width=cfg.d_width or None,
            z_dim=cfg.z_dim,
            d_norm=cfg.d_norm,
            g_norm=cfg.g_norm,
        )
    G, D = G.to(device), D.to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    if cfg.optimizer == "adam":
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    else:
        opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=cfg.lr_g), torch.optim.SGD(D.parameters(), lr=cfg.lr_d)
    return G, D, G_ema, opt_g, opt_d


def _resume(run_dir: Path, cfg: ImageGANConfig, device: str, G, D, G_ema, opt_g, opt_d) -> dict | None:
    """Load the latest good checkpoint of ``run_dir`` (a corrupt newest one: the one before it) into
    the networks and optimizers and return its metadata; None if there is none. A checkpoint of
    another configuration is refused (``steps``, ``device`` and ``divergence_factor`` may change)."""
    found = load_latest_checkpoint(run_dir, device)
    if found is None:
        return None
    _, tensors, saved = found
    free = ("steps", "device", "divergence_factor")
    same = {k: v for k, v in saved["config"].items() if k not in free}
    if same != {k: v for k, v in asdict(cfg).items() if k not in free}:
        diff = sorted(k for k in same if same[k] != getattr(cfg, k))
        raise ConfigError(f"{run_dir} holds a run with a different config (keys {diff}); use another --out")
    for name, mod in (("G", G), ("D", D), ("G_ema", G_ema)):
        _load_module(name, mod, tensors)
    load_flat_optimizer("opt_g", opt_g, tensors, saved["opt_g_groups"])
    load_flat_optimizer("opt_d", opt_d, tensors, saved["opt_d_groups"])
    return saved


def _check_health(d_loss: float, g_loss: float, g_norm: float, norm0: float, factor: float | None, where: str) -> None:
    """The divergence policy of an image run: the losses finite, G's parameter norm within
    ``factor`` x its start (:func:`~ganlearn.errors.check_finite_and_bounded`)."""
    check_finite_and_bounded("the discriminator loss", d_loss, 0.0, None, where)
    check_finite_and_bounded("the generator loss", g_loss, 0.0, None, where)
    check_finite_and_bounded("G's parameter norm", g_norm, norm0, factor, where)


def _train(cfg: ImageGANConfig, run_dir: Path, progress: bool, device: str, rank: int, world: int) -> Result:
    """The image GAN's training loop on one rank: set-up (data, networks, resume), the SGDA steps
    with logging, health checks, snapshots and checkpoints, then the final evaluation. Kept as one
    function so the loop reads top to bottom (its parts are the helpers above)."""
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)

    real = datamod.load(cfg.data, resolution=cfg.res, channels=cfg.channels or None, limit=cfg.limit or None)
    G, D, G_ema, opt_g, opt_d = _networks(cfg, real, device)
    levels = 1 if cfg.arch == "dcgan" else int(math.log2(real.shape[-1] / 4)) + 1
    meta = {"config": asdict(cfg), "data_shape": list(real.shape), "levels": levels, "world": world}
    saved = _resume(run_dir, cfg, device, G, D, G_ema, opt_g, opt_d)
    start, wall_before = (saved["step"], saved["wall_seconds"]) if saved is not None else (0, 0.0)
    if saved is None and rank == 0:
        atomic_write_text(run_dir / "config.json", json.dumps({**meta, "ganlearn": provenance()}, indent=2))
    G_train, D_train = (ddp_wrap(G, device), ddp_wrap(D, device)) if world > 1 else (G, D)

    per_rank = cfg.batch // world
    grid_z = torch.randn(64, cfg.z_dim, generator=make_generator(cfg.seed, "images.grid")).to(device)
    stats_path, metrics_path = run_dir / "stats.jsonl", run_dir / "metrics.jsonl"
    last_eval: dict = {}
    baseline = real_baseline(real, cfg) if rank == 0 else None
    t0 = time.time()
    norm0 = _param_norm(G) if saved is None else saved.get("g_norm0", _param_norm(G))

    def real_batch(step: int, k: int) -> list[torch.Tensor]:
        gen = step_generator(cfg.seed, step, rank, f"real{k}")
        x = to_device(real[torch.randint(0, len(real), (per_rank,), generator=gen)], device)
        return datamod.pyramid(x, levels)

    def latents(step: int, k: int) -> torch.Tensor:
        z = torch.randn(per_rank, cfg.z_dim, generator=step_generator(cfg.seed, step, rank, f"latent{k}"))
        return to_device(z, device)

    def checkpoint(step: int) -> None:
        if rank != 0:
            return
        tensors = {**_module_tensors("G", G), **_module_tensors("D", D), **_module_tensors("G_ema", G_ema)}
        save_checkpoint(
            run_dir,
            step,
            {**tensors, **flatten_optimizer("opt_g", opt_g), **flatten_optimizer("opt_d", opt_d)},
            {
                **meta,
                "step": step,
                "wall_seconds": wall_before + time.time() - t0,
                "opt_g_groups": opt_g.state_dict()["param_groups"],
                "opt_d_groups": opt_d.state_dict()["param_groups"],
                "g_norm0": norm0,
            },
        )

    def grid(step: int) -> None:
        if rank == 0:
            with torch.no_grad():
                save_png(run_dir / f"grid-{step:07d}.png", tile(G_ema(grid_z)[-1], 8))

    bar = tqdm(
        range(start, cfg.steps),
        initial=start,
        total=cfg.steps,
        disable=not progress or rank != 0,
        desc=f"{cfg.arch}-k{cfg.width}",
        unit="step",
    )
    for step in bar:
        G_train.train()
        D_train.train()
        d_loss, g_loss = sgda_step(G, D, opt_g, opt_d, cfg, real_batch, latents, step, G_train=G_train, D_train=D_train)
        beta = ema_update(G_ema, G, cfg, step)
        done = step + 1
        log_now = bool(cfg.log_every) and (done % cfg.log_every == 0 or done == cfg.steps)
        ckpt_now = (cfg.ckpt_every and done % cfg.ckpt_every == 0) or done == cfg.steps
        if log_now or ckpt_now:
            # Read the losses only when something is written: float() is a host-device sync on a GPU.
            # A NaN is therefore caught at the next log or checkpoint step, before anything is saved.
            d_loss, g_loss = d_loss.detach(), g_loss.detach()
            _check_health(
                float(d_loss),
                float(g_loss),
                _param_norm(G),
                norm0,
                cfg.divergence_factor,
                f"step {done} (the last checkpoint in {run_dir} is kept)",
            )
        if rank == 0 and log_now:
            append_jsonl(
                stats_path,
                {
                    "step": done,
                    "d_loss": float(d_loss),
                    "g_loss": float(g_loss),
                    "ema_beta": beta,
                    "wall_seconds": wall_before + time.time() - t0,
                },
            )
            bar.set_postfix(d=f"{float(d_loss):.3f}", g=f"{float(g_loss):.3f}")
        if cfg.grid_every and (done % cfg.grid_every == 0):
            grid(done)
        if rank == 0 and ((cfg.eval_every and done % cfg.eval_every == 0) or done == cfg.steps):
            last_eval = evaluate(G_ema, real, cfg, done, done * cfg.batch, baseline, device=device)
            append_jsonl(metrics_path, last_eval)
        if ckpt_now:
            checkpoint(done)
    sync = replica_divergence(G, D) if world > 1 else 0.0
    if rank == 0:
        if not (run_dir / f"grid-{cfg.steps:07d}.png").exists():
            grid(cfg.steps)
        if not last_eval and metrics_path.exists():
            last_eval = json.loads(metrics_path.read_text().splitlines()[-1])
    out = {**last_eval, "wall_seconds": wall_before + time.time() - t0, "world": world, "replica_max_abs_diff": sync}
    if rank == 0:
        write_json(run_dir / "summary.json", out)
    return cast(Result, out)


def write_report(run_dir: str | Path) -> Path:
    """report.md of an image run: its final scores and their curves over training."""
    return write_simple_report(run_dir, "Image GAN", "step", ["swd_avg", "frechet", "precision", "recall"], logy=False)


def main_ddp() -> None:  # pragma: no cover - used through torchrun
    """``torchrun ... -m ganlearn.images.train OUT KEY=VALUE ...``: a thin entry point for DDP runs."""
    out, *pairs = sys.argv[1:]
    cfg = make_config({k: parse_value(v) for k, v in (p.split("=", 1) for p in pairs)})
    res = train(cfg, out, progress=False, device=rank_device(cfg.device))
    if world_rank()[0] == 0:
        print(json.dumps({k: v for k, v in res.items() if k != "meta"}))
    if dist.is_initialized():
        # Every rank past its last collective before any tears gloo down: without it a rank that
        # destroyed the group first sometimes took the other down with it ("terminate called without
        # an active exception", SIGABRT: tests/images/test_train.py's DDP test, seen twice).
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    main_ddp()
