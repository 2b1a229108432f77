"""Single-loop SGDA for a one-layer generator phi(W x) against a discriminator on truncated
statistics (Kontonis, Liu & Tzamos; update rule in ``onelayer.md`` section 6), with fresh samples
every step. Records the samples consumed until the Gaussian TV upper bound first reaches each
target epsilon.

Design choices (the paper's text is not available):
* D is linear in T with the -lambda/2 ||A||^2 term; its step lr_d * lambda = 1 would set A to the
  current moment gap, smaller values average the gap over about 1 / (lr_d * lambda) steps -- the
  fast time scale of the two.
* The generator's step decays as lr_g / (1 + t / t0): the gap noise of a batch is O(d / sqrt(B))
  in Frobenius norm, so a constant step leaves a noise floor; a 1/t decay averages it away
  (Robbins-Monro). Status (issue 3, in progress): with the defaults the error still fluctuates
  at a noise floor after 3000 steps (d = 8), so this trainer is not yet the sample-complexity
  instrument the issue asks for.
* Features are divided by the mean magnitude of E T(real) on a first batch, so one set of step
  sizes works for every d and activation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch

from ganlearn.onelayer.discriminators import MLPDiscriminator, quadratic_stats, truncated_stats
from ganlearn.onelayer.metrics import gaussian_tv_upper, sigma_rel_error
from ganlearn.onelayer.model import OneLayerGenerator, activation, conditioned_matrix
from ganlearn.sgda import SGDA, SGDAConfig


@dataclass(frozen=True)
class OneLayerConfig:
    d: int = 8
    activation: Literal["relu", "leaky_relu", "sigmoid"] = "relu"
    condition: float = 2.0  # kappa(W*)
    discriminator: Literal["truncated", "quadratic", "mlp"] = "truncated"
    batch: int = 256  # real samples per D evaluation (as many fake)
    steps: int = 4000
    # Adam for G: plain SGD on this quartic-in-W objective diverged at lr_g 0.05 with decay_t0 2000
    # (d = 8); Adam lr 0.01 reached sigma error 0.028 / TV bound 0.13 after 3000 steps (1.5 M samples).
    # D: plain SGD with lr_d * ridge = 1, i.e. A is the current moment gap (the exact inner max).
    sgda: SGDAConfig = SGDAConfig(lr_g=0.01, lr_d=1.0, n_d=1, optimizer="adam", d_optimizer="sgd")
    ridge: float = 1.0
    decay_t0: float = 200.0  # lr_g / (1 + t / decay_t0)
    mlp_hidden: int = 64
    eps: tuple = (0.4, 0.2, 0.1)  # record samples to reach each TV upper bound
    eval_every: int = 50
    seed: int = 0

    def validate(self) -> None:
        def bad(key, value, allowed):
            raise ValueError(f"{key}={value!r} is not allowed: must be {allowed}")
        if self.d < 1:
            bad("d", self.d, "an integer >= 1")
        activation(self.activation)
        if self.condition < 1:
            bad("condition", self.condition, ">= 1")
        if self.discriminator not in ("truncated", "quadratic", "mlp"):
            bad("discriminator", self.discriminator, "one of truncated, quadratic, mlp")
        for key in ("batch", "steps", "eval_every"):
            if getattr(self, key) < 1:
                bad(key, getattr(self, key), "an integer >= 1")
        if self.ridge <= 0 or self.decay_t0 <= 0:
            bad("ridge/decay_t0", (self.ridge, self.decay_t0), "> 0")


def train(cfg: OneLayerConfig, *, log=None) -> dict:
    """Run SGDA; returns final metrics, the samples needed per epsilon (None if never reached) and
    the curve [(samples, sigma_rel_error, tv_upper)]."""
    cfg.validate()
    g = torch.Generator().manual_seed(cfg.seed)
    act = activation(cfg.activation)
    target = OneLayerGenerator(conditioned_matrix(cfg.d, cfg.condition, generator=g), cfg.activation)
    target.requires_grad_(False)
    learner = OneLayerGenerator(torch.randn(cfg.d, cfg.d, generator=g, dtype=torch.float64) / cfg.d ** 0.5,
                                cfg.activation)
    sigma_star = target.sigma()

    if cfg.discriminator == "mlp":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 1)
            disc = MLPDiscriminator(cfg.d, cfg.mlp_hidden).double()
        d_params = list(disc.parameters())
    else:
        stats = (lambda y: truncated_stats(y, act)) if cfg.discriminator == "truncated" else quadratic_stats
        with torch.no_grad():
            scale = stats(target.sample(4 * cfg.batch, generator=g)).abs().mean()
        A = torch.nn.Parameter(torch.zeros(cfg.d, cfg.d, dtype=torch.float64))
        d_params = [A]
    sgda = SGDA([learner.W], d_params, cfg.sgda)

    def losses(gen: torch.Generator):
        real, fake = target.sample(cfg.batch, generator=gen), learner.sample(cfg.batch, generator=gen)
        if cfg.discriminator == "mlp":  # non-saturating GAN loss
            sp = torch.nn.functional.softplus
            d_loss = sp(-disc(real)).mean() + sp(disc(fake.detach())).mean()
            return d_loss, sp(-disc(fake)).mean()
        v = (A * (stats(real) - stats(fake))).sum() / scale - 0.5 * cfg.ridge * A.pow(2).sum()
        return -v, v

    reached: dict[float, int | None] = {e: None for e in cfg.eps}
    curve, samples = [], 0
    per_step = cfg.batch * (cfg.sgda.n_d + 1)
    for t in range(cfg.steps):
        for group in sgda.g_opt.param_groups:
            group["lr"] = cfg.sgda.lr_g / (1 + t / cfg.decay_t0)
        sgda.step(losses, g)
        samples += per_step
        if (t + 1) % cfg.eval_every == 0 or t + 1 == cfg.steps:
            with torch.no_grad():
                sig = learner.sigma()
                err, tv = sigma_rel_error(sig, sigma_star), gaussian_tv_upper(sig, sigma_star)
            if not torch.isfinite(learner.W).all():
                raise FloatingPointError(f"one-layer SGDA diverged at step {t + 1} (cfg={asdict(cfg)})")
            curve.append((samples, err, tv))
            for e in cfg.eps:
                if reached[e] is None and tv <= e:
                    reached[e] = samples
            if log is not None:
                log(t + 1, samples, err, tv)
    return {"config": asdict(cfg) | {"sgda": asdict(cfg.sgda)}, "sigma_rel_error": curve[-1][1],
            "tv_upper": curve[-1][2], "samples": samples, "samples_to_eps": {str(e): n for e, n in reached.items()},
            "curve": curve, "learner_W": learner.W.detach(), "target_W": target.W.detach()}
