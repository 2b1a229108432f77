"""Single-loop SGDA for a one-layer generator phi(W x) against a discriminator on truncated
statistics (Kontonis, Liu & Tzamos; update rule in ``onelayer.md`` section 6), with fresh samples
every step. Records the target samples consumed until the Gaussian TV upper bound first reaches
each target epsilon.

One step (linear discriminators D_A(y) = <A, T(y)>, value L = E_real D - E_fake D - ridge/2 |A|^2):

    ascent   A <- A + lr_d * ((T(real batch) - T(fake batch)) - ridge * A)          (SGD)
    descent  W <- W - lr_t * grad_W( -<A, T(phi(W x'))> )  with a *fresh* fake batch x'
    lr_t = lr_g / (1 + t / decay_t0) ** decay_power

Design choices (the paper's text gives the rule, not the constants), each measured (ReLU,
kappa 2; the numbers are in the bullets below):
* Exact inner max: plain SGD on A with lr_d * ridge = 1 sets A to the current moment gap (the
  fast time scale taken to its limit). The G step is then SGD on 1/2 |E T(fake) - E T(real)|^2.
* The generator's gradient uses a fake batch independent of the one in A. Re-using it biases the
  fixed point by O(1/B) (E[(M_hat - M) dM_hat] != 0); that bias held the TV bound at 0.13 for every
  sample budget at d = 8, B = 256, against 0.043 -> 0.029 (1M -> 4M samples) with the fresh batch.
* Plain SGD for W with its step size in curvature units (``step_scale="curvature"``, lr_g 1.0,
  polynomial decay power 0.6; ``onelayer.step_size``): eta_t = lr_g decay(t) / (c lambda_t), c the
  activation's curvature-to-moment ratio measured once at init, lambda_t the larger top eigenvalue
  of the step's real and fake statistics. A fixed step (``step_scale="none"``, lr_g 0.3)
  suits ReLU at kappa 2 but is past the stability limit for leaky ReLU and sigmoid
  at kappa 10, whose curvature is 4 lambda_max(Sigma*) (up to 17.7 at d = 32): those runs diverge.
  Adam is available (g_optimizer="adam") but breaks the statistical scaling: its normalised step
  is ~lr whatever the gradient noise, so the samples needed follow the lr schedule and hardly
  depend on the batch or on d.
* Iterate averaging in Sigma: the output is Sigma_bar, a polynomial-decay average of Sigma_t = W_t W_t^T
  (Sigma_bar <- (1 - w) Sigma_bar + w Sigma_t, w = 2 / (t + 2); Shamir & Zhang 2013), reported as the
  generator W_bar = eigen-sqrt(Sigma_bar), which has the same law. Averaging Sigma (not W) is invariant
  under W -> W Q, which moves freely along its orbit. Without averaging the last iterate sits at a
  noise floor set by the step size.
* Latents are drawn in float32 and used in float64 (``onelayer.model.latents``): float64 normals
  cost 5.7x as much to draw on a CPU and were about a quarter of a run; the rounding (6e-8) and the tail
  cut at 5.77 sd are far below any batch's sampling error (float64 draws give the same law,
  other numbers for each seed).
* Samples consumed N counts target (real) samples only, one batch per step: the generator's
  samples are free. (The MLP comparison draws two real batches a step.)
* The MLP comparison (``discriminator="mlp"``) is a non-saturating GAN trained by :class:`SGDA`:
  the discriminator with Adam at ``lr_d`` (default 1e-3), the generator with ``g_optimizer``
  (default Adam) at ``lr_g``, both step sizes under the same decay. ``lr_d`` and ``g_optimizer``
  left at None take the default of the discriminator in use (truncated/quadratic: 1.0 and SGD).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypedDict, cast

import torch

from ganlearn.discriminators import MLPDiscriminator
from ganlearn.errors import DivergenceError, check_finite_and_bounded
from ganlearn.onelayer.config import OneLayerConfig
from ganlearn.onelayer.discriminators import quadratic_stats, truncated_stats
from ganlearn.onelayer.metrics import gaussian_tv, gaussian_tv_draws, gaussian_tv_upper, sigma_rel_error
from ganlearn.onelayer.model import OneLayerGenerator, activation, conditioned_matrix
from ganlearn.onelayer.step_size import moment_scale, power_ratio
from ganlearn.rng import make_generator
from ganlearn.rundir import run_in_dir, scalars, write_simple_report
from ganlearn.sgda import SGDA, SGDAConfig

__all__ = ["Result", "train", "run", "write_report", "average_sigma", "evaluation", "result"]


def curvature_scaled(cfg: OneLayerConfig) -> bool:
    """Whether the G step is in curvature units (linear discriminator, SGD on W, step_scale curvature)."""
    return cfg.discriminator != "mlp" and (cfg.g_optimizer or "sgd") == "sgd" and cfg.step_scale == "curvature"


def resolved_lr_g(cfg: OneLayerConfig) -> float:
    if cfg.lr_g is not None:
        return float(cfg.lr_g)
    return 1.0 if curvature_scaled(cfg) else 0.3


def stats_fn(cfg: OneLayerConfig):
    """The linear discriminator's statistic E_batch T(y) for this config (truncated or quadratic)."""
    act = activation(cfg.activation)
    return (lambda y: truncated_stats(y, act)) if cfg.discriminator == "truncated" else quadratic_stats


def curvature_probe(cfg: OneLayerConfig, shape: torch.Size, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe batch x and the power iteration's start v of ``onelayer.step_size``, from the
    run's own stream ``onelayer.step_size`` (so the training batches are the same with and without
    it); shared with the batched trainer, which runs the probes of a chunk of replicas as one
    batched computation."""
    g = make_generator(cfg.seed, "onelayer.step_size")
    x = torch.randn(max(cfg.batch, 4096), cfg.d, generator=g, dtype=dtype)
    return x, torch.randn(shape, generator=g, dtype=dtype)


def step_curvature_ratio(cfg: OneLayerConfig, w0: torch.Tensor) -> float:
    """c of ``onelayer.step_size`` at the learner's init."""

    x, v = curvature_probe(cfg, w0.shape, w0.dtype)
    return float(power_ratio(cfg.discriminator, activation(cfg.activation), w0.detach(), x, v))


class Result(TypedDict):
    """What a one-layer run returns: the final error of the reported Sigma, the samples needed per
    epsilon (None: not reached), the curve [(real samples, sigma_rel_error, tv_upper, tv_gauss)]."""

    config: dict
    resolved: dict
    sigma_rel_error: float
    tv_upper: float
    tv_gauss: float | None
    samples: int
    steps: int
    kappa: float
    samples_to_eps: dict
    samples_to_eps_gauss: dict
    curve: list
    learner_W: torch.Tensor
    target_W: torch.Tensor


def train(cfg: OneLayerConfig, *, log=None) -> Result:
    """Run SGDA; returns final metrics, the real samples needed per epsilon (None if never reached)
    and the curve [(real samples, sigma_rel_error, tv_upper, tv_gauss)] of the reported (averaged)
    Sigma (tv_gauss: the Monte-Carlo Gaussian TV, None with tv_mc_samples=0); ``samples_to_eps``
    counts by the certificate tv_upper, ``samples_to_eps_gauss`` by tv_gauss."""
    cfg.validate()
    target = OneLayerGenerator(
        conditioned_matrix(cfg.d, cfg.condition, generator=make_generator(cfg.seed, "onelayer.target")), cfg.activation
    )
    target.requires_grad_(False)
    g = make_generator(cfg.seed, "onelayer.train")  # learner init, discriminator init, every batch
    learner = OneLayerGenerator(
        torch.randn(cfg.d, cfg.d, generator=g, dtype=torch.float64) / cfg.d**0.5, cfg.activation
    )
    sigma_star = target.sigma()
    mlp = cfg.discriminator == "mlp"
    g_optimizer = cfg.g_optimizer or ("adam" if mlp else "sgd")
    lr_d = cfg.lr_d if cfg.lr_d is not None else (1e-3 if mlp else 1.0)
    lr_g, curv = resolved_lr_g(cfg), curvature_scaled(cfg)

    def decay(t: int) -> float:
        return 1.0 / (1 + t / cfg.decay_t0) ** cfg.decay_power

    if mlp:  # non-saturating GAN loss; D with Adam, G with g_optimizer, both decayed
        disc = MLPDiscriminator(cfg.d, cfg.mlp_hidden).double()
        with torch.no_grad():  # explicit, seeded init (PyTorch's default bounds), not the global RNG
            for prm in disc.parameters():
                bound = 1.0 / math.sqrt(prm.shape[-1]) if prm.dim() > 1 else 0.01
                prm.copy_((torch.rand(prm.shape, generator=g, dtype=torch.float64) * 2 - 1) * bound)
        sgda = SGDA(
            [learner.W],
            list(disc.parameters()),
            SGDAConfig(lr_g=lr_g, lr_d=lr_d, optimizer=g_optimizer, d_optimizer="adam", beta1=0.5, beta2=0.999),
            schedule=decay,
        )
        sp = torch.nn.functional.softplus

        def mlp_losses(gen):
            real, fake = target.sample(cfg.batch, generator=gen), learner.sample(cfg.batch, generator=gen)
            return sp(-disc(real)).mean() + sp(disc(fake.detach())).mean(), sp(-disc(fake)).mean()
    else:
        stats = stats_fn(cfg)
        A = torch.zeros(cfg.d, cfg.d, dtype=torch.float64)
        g_opt = (
            torch.optim.SGD([learner.W], lr=lr_g)
            if g_optimizer == "sgd"
            else torch.optim.Adam([learner.W], lr=lr_g, betas=(0.5, 0.999))
        )
        c_curv = step_curvature_ratio(cfg, learner.W) if curv else 1.0  # used only when curv

    reached = new_reached(cfg)
    tv_draws = gaussian_tv_draws(cfg.tv_mc_samples, cfg.d, cfg.seed) if cfg.tv_mc_samples else None
    curve: list[list] = []
    samples, sigma_bar = 0, None
    err0 = sigma_rel_error(learner.sigma().detach(), sigma_star)  # of the initial learner
    for t in range(cfg.steps):
        if mlp:
            sgda.step(mlp_losses, g)
            samples += 2 * cfg.batch  # SGDA draws a real batch for each player's loss
        else:
            with torch.no_grad():  # ascent on A (SGD)
                m_real, m_fake = (
                    stats(target.sample(cfg.batch, generator=g)),
                    stats(learner.sample(cfg.batch, generator=g)),
                )
                A += lr_d * ((m_real - m_fake) - cfg.ridge * A)
                # a tensor, not a float: no host synchronisation inside the step
                scale = c_curv * torch.maximum(moment_scale(m_real), moment_scale(m_fake)) if curv else 1.0
            samples += cfg.batch
            loss = -(A * stats(learner.sample(cfg.batch, generator=g))).sum()  # descent on L, fresh fakes
            g_opt.zero_grad()
            loss.backward()
            if curv:  # SGD with the curvature-scaled step
                with torch.no_grad():
                    grad = learner.W.grad
                    assert grad is not None  # set by loss.backward() above
                    learner.W.sub_((lr_g * decay(t) / scale) * grad)
            else:
                g_opt.param_groups[0]["lr"] = lr_g * decay(t)
                g_opt.step()
        with torch.no_grad():
            sigma_bar = average_sigma(sigma_bar, learner.sigma(), t, cfg.average)
        if (t + 1) % cfg.eval_every == 0 or t + 1 == cfg.steps:
            err, tv = evaluation(cfg, sigma_bar, sigma_star, err0, t + 1, samples, curve, reached, tv_draws)
            if log is not None:
                log(t + 1, samples, err, tv)
            if cfg.stop_at_eps and reached["upper"][min(cfg.eps)] is not None:
                break
    resolved: dict[str, Any] = {
        "g_optimizer": g_optimizer,
        "lr_d": lr_d,
        "d_optimizer": "adam" if mlp else "sgd (exact ascent on A)",
        "lr_g": lr_g,
        "step_scale": "curvature" if curv else "none",
    }
    if curv:
        resolved["curvature_ratio"] = c_curv
    assert sigma_bar is not None  # set at the first step (cfg.steps >= 1)
    return cast(Result, result(cfg, resolved, sigma_bar, target.W.detach(), curve, reached, samples, t + 1))


def average_sigma(sigma_bar: torch.Tensor | None, sig: torch.Tensor, t: int, average: bool) -> torch.Tensor:
    """The reported Sigma after step t: the polynomial-decay average (w = 2 / (t + 2)) of Sigma_t, or
    Sigma_t itself without averaging. Works on a leading replica dimension too (the batched trainer)."""
    if not average or sigma_bar is None:
        return sig.clone()
    w = 2.0 / (t + 2)
    return sigma_bar.mul_(1 - w).add_(sig, alpha=w)


def new_reached(cfg: OneLayerConfig) -> dict:
    """Samples at which each eps was first reached, by the certificate and by the Gaussian TV."""
    return {"upper": {e: None for e in cfg.eps}, "gauss": {e: None for e in (cfg.eps_gauss or cfg.eps)}}


def evaluation(
    cfg: OneLayerConfig,
    sigma_bar: torch.Tensor,
    sigma_star: torch.Tensor,
    err0: float,
    step: int,
    samples: int,
    curve: list,
    reached: dict,
    tv_draws=None,
) -> tuple[float, float]:
    """One evaluation of the reported Sigma: raises DivergenceError (NaN/inf, or the error beyond
    ``divergence_factor`` x the initial learner's), else appends (samples, error, TV bound) to
    ``curve``, records the eps reached (``reached["upper"]`` by the certificate, ``reached["gauss"]``
    by the Monte-Carlo Gaussian TV), and returns (error, TV bound). Shared with the batched trainer.
    ``tv_draws``: the run's :func:`~ganlearn.onelayer.metrics.gaussian_tv_draws` (drawn here if None)."""
    where = f"one-layer SGDA ({cfg.activation}, d={cfg.d}, seed {cfg.seed}) step {step}"
    if not torch.isfinite(sigma_bar).all():
        raise DivergenceError(f"{where}: the learner's Sigma has NaN/inf entries; training stopped")
    err, tv = sigma_rel_error(sigma_bar, sigma_star), gaussian_tv_upper(sigma_bar, sigma_star)
    check_finite_and_bounded("Sigma's relative error", err, err0, cfg.divergence_factor, where)
    tv_g = (
        gaussian_tv(sigma_bar, sigma_star, n=cfg.tv_mc_samples, seed=cfg.seed, draws=tv_draws)
        if cfg.tv_mc_samples
        else None
    )
    curve.append((samples, err, tv, tv_g))
    for e in cfg.eps:
        if reached["upper"][e] is None and tv <= e:
            reached["upper"][e] = samples
    for e in reached["gauss"]:
        if tv_g is not None and reached["gauss"][e] is None and tv_g <= e:
            reached["gauss"][e] = samples
    return err, tv


def result(
    cfg: OneLayerConfig,
    resolved: dict,
    sigma_bar: torch.Tensor,
    target_w: torch.Tensor,
    curve: list,
    reached: dict,
    samples: int,
    steps: int,
) -> dict:
    """The run's result dict; the generator reported is W_bar = eigen-sqrt(Sigma_bar) (the same law)."""
    evals, evecs = torch.linalg.eigh(sigma_bar)
    w_bar = evecs @ torch.diag(evals.clamp_min(0).sqrt())  # w_bar w_bar^T = Sigma_bar
    return {
        "config": asdict(cfg),
        "resolved": resolved,
        "sigma_rel_error": curve[-1][1],
        "tv_upper": curve[-1][2],
        "samples": samples,
        "steps": steps,
        "kappa": float(torch.linalg.cond(target_w)),
        "tv_gauss": curve[-1][3],
        "samples_to_eps": {str(e): n for e, n in reached["upper"].items()},
        "samples_to_eps_gauss": {str(e): n for e, n in reached["gauss"].items()},
        "curve": curve,
        "learner_W": w_bar,
        "target_W": target_w,
    }


def run(cfg: OneLayerConfig, run_dir: str | Path, *, progress: bool = False) -> dict:
    """One run into ``run_dir`` (``ganlearn run onelayer``; files: :mod:`ganlearn.rundir`): the
    curve of the reported Sigma in ``metrics.jsonl``, the final metrics and the samples needed per
    epsilon in ``summary.json``."""

    def go():
        out = train(cfg)
        records = [{"samples": s, "sigma_rel_error": e, "tv_upper": tv, "tv_gauss": g} for s, e, tv, g in out["curve"]]
        summary = {
            **scalars(out),
            **{f"samples_to_eps={e}": n for e, n in out["samples_to_eps"].items()},
            **{f"samples_to_eps_gauss={e}": n for e, n in out["samples_to_eps_gauss"].items()},
            "resolved": out["resolved"],
        }
        return summary, records

    return run_in_dir(run_dir, "onelayer", cfg, go)


def write_report(run_dir: str | Path) -> Path:
    return write_simple_report(
        run_dir,
        "One-layer generator phi(W* x), SGDA against truncated statistics",
        "samples",
        ["sigma_rel_error", "tv_upper", "tv_gauss"],
        logx=True,
    )
