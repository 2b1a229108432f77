"""Gradient descent-ascent on the overparameterized GAN of ``overparam.model``, with the step size
chosen by the linear-time-varying (LTV) stability rule of ``overparam.md`` section 3.

Linearising r_{t+1} = r_t + J_t (theta_{t+1} - theta_t) with d* = -r, each eigenvalue s of J J^T gives a
2 x 2 block acting on (r, d) along its eigenvector:

    simultaneous   [[1, eta s], [-mu, 1 - mu]]
    alternating    [[1 - eta mu s, eta s (1 - mu)], [-mu, 1 - mu]]     (D moves first, G sees the new d)

GDA is locally stable iff every block has spectral radius < 1; the predicted linear rate is the
largest of these radii over the spectrum of J_0 J_0^T (for mu = 1, simultaneous:
(1 + sqrt(1 - 4 eta s_min)) / 2 ~ 1 - eta s_min). The rule: eta = eta_scale / lambda_max(J_0 J_0^T) with
eta_scale = 1/4 (the notes' choice, so that eta s_max <= 1/4 keeps the roots real). For a linear
generator (``act="identity"``) J is constant and the prediction is exact; for ReLU it holds while
J_t stays near J_0, which width buys (the lazy regime) -- ``relative_movement`` measures that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganlearn.errors import divergence
from ganlearn.overparam.config import OverparamConfig
from ganlearn.overparam.metrics import Result, block_radius, record, spectrum
from ganlearn.overparam.model import Problem
from ganlearn.rundir import run_in_dir, scalars, write_simple_report
from ganlearn.sgda import SGDA, SGDAConfig

__all__ = ["Result", "train", "run", "write_report"]


def train(cfg: OverparamConfig) -> Result:
    """Run GDA; returns the residual and |d| per step, the step sizes, the spectrum of J J^T at
    t = 0 and at the end, the predicted and fitted rates, the relative weight movement and success."""
    problem = Problem(cfg)
    spec0 = spectrum(problem)
    eta = cfg.eta if cfg.eta is not None else cfg.eta_scale / float(spec0[-1])
    rho_pred = float(block_radius(spec0, eta, cfg.mu, cfg.mode).max())
    theta0 = torch.cat([p.detach().reshape(-1) for p in problem.params]).clone()
    dvec = torch.zeros_like(problem.target, requires_grad=True)
    gda = SGDA(problem.params, [dvec], SGDAConfig(lr_g=eta, lr_d=cfg.mu, optimizer="sgd", mode=cfg.mode))

    seen = {}

    def losses(_gen):
        r = problem.residual()
        seen["r"] = r.detach()  # r(theta_t), before this step's updates: re-used for the curve
        h = (dvec * -r).sum() - 0.5 * (dvec**2).sum()
        return -h, h  # D ascends h, G descends it

    residual, dnorm, diverged, why = [], [], False, None
    for t in range(cfg.steps):
        dnorm.append(dvec.detach().norm().item())
        gda.step(losses, None)
        r = seen["r"].norm().item()
        residual.append(r)
        why = divergence("GDA residual |r|", r, max(residual[0], 1.0), cfg.divergence_factor, t + 1)
        if why is not None:
            # an outcome of this step size (the fixed-step control diverges by design), recorded
            # in the result rather than raised: the width sweep analyses it
            diverged = True
            break
        if r < cfg.stop_below:  # float64 round-off: nothing left to measure
            break
    with torch.no_grad():  # the point after the last step
        residual.append(problem.residual().norm().item())
    dnorm.append(dvec.detach().norm().item())
    theta = torch.cat([p.detach().reshape(-1) for p in problem.params])
    spec_end = spectrum(problem) if not diverged else np.full_like(spec0, np.nan)
    return record(
        cfg,
        eta=eta,
        n_params=int(theta.numel()),
        spec0=spec0,
        spec_end=spec_end,
        rate_predicted=rho_pred,
        residual=residual,
        d_norm=dnorm,
        divergence=why,
        relative_movement=float((theta - theta0).norm() / theta0.norm()),
    )


def run(cfg: OverparamConfig, run_dir: str | Path, *, progress: bool = False) -> dict:
    """One run into ``run_dir`` (``ganlearn run overparam``; files: :mod:`ganlearn.rundir`): the
    residual and |d| per step in ``metrics.jsonl``, rates, spectra and success in ``summary.json``."""

    def go():
        out = train(cfg)
        records = [
            {"step": t, "residual": r, "d_norm": dn} for t, (r, dn) in enumerate(zip(out["residual"], out["d_norm"]))
        ]
        return scalars(out), records

    return run_in_dir(run_dir, "overparam", cfg, go)


def write_report(run_dir: str | Path) -> Path:
    return write_simple_report(
        run_dir, "Overparameterized GAN, gradient descent-ascent", "step", ["residual", "d_norm"]
    )
