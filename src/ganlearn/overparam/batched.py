"""R independent GDA runs of the overparameterized GAN (``overparam.train.train``) as one batched
computation: every parameter gets a leading replica dimension, and the replicas' widths k are
zero-padded to the largest.

Why padding is exact: a padded hidden unit has a zero row of W (and a zero column of V, and of
the next W), so it outputs phi(0) = 0 for ReLU and identity alike, and every gradient that reaches
its weights carries a factor of its output or of its zero outgoing weights: the padded weights stay
zero and the replica's trajectory is its separate run's, up to the order of floating-point sums
(tests/overparam: residual curves equal to ~1e-10 relative).

Each replica keeps its own data, latents, initialisation and random features (drawn by
``Problem(cfg)`` from its own seed's stream, exactly as the separate run), its own step size (the
LTV rule on its own spectrum, or its fixed eta) and its own stopping step: a replica that diverges
or reaches ``stop_below`` is frozen from the next step on (masked updates, no host synchronisation
inside the loop), as the separate run breaks out of its loop.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch

from ganlearn.errors import divergence
from ganlearn.overparam.config import OverparamConfig
from ganlearn.overparam.metrics import block_radius, record
from ganlearn.overparam.model import FEATURE_ACTS, Problem

__all__ = ["batch_key", "train_batched"]

# What replicas of one batch must share (everything but the seed, the width k and the step size).
SHARED = (
    "m",
    "d",
    "n",
    "depth",
    "act",
    "train",
    "discriminator",
    "features",
    "feature_act",
    "mu",
    "mode",
    "steps",
    "tol",
    "stop_below",
    "divergence_factor",
)


def batch_key(cfg: OverparamConfig) -> tuple:
    """Cells with equal keys can be trained together. Widths are bucketed by powers of two so that
    padding at most doubles a replica's work."""
    return tuple(getattr(cfg, k) for k in SHARED) + (math.ceil(math.log2(max(cfg.k, 1))),)


class _Batch:
    """The replicas' padded tensors: x, z (R, n, .), Ws [(R, K, d), (R, K, K) ...], V (R, m, K)."""

    def __init__(self, cfgs: list[OverparamConfig], device: str | torch.device = "cpu"):
        c0 = cfgs[0]
        for c in cfgs:
            for k in SHARED:
                if getattr(c, k) != getattr(c0, k):
                    raise ValueError(f"replicas of one batch must share {k}: {getattr(c, k)!r} != {getattr(c0, k)!r}")
        self.cfg = c0
        probs = [Problem(c) for c in cfgs]
        K = max(c.k for c in cfgs)
        self.ks = [c.k for c in cfgs]
        # drawn on the CPU from each seed's stream (the separate run's draws), then moved
        self.x = torch.stack([p.x for p in probs]).to(device)
        self.z = torch.stack([p.z for p in probs]).to(device)
        self.target = torch.stack([p.target for p in probs]).to(device)  # (R, p)
        ws = []
        for layer in range(c0.depth):
            w = torch.zeros(len(cfgs), K, c0.d if layer == 0 else K, dtype=torch.float64)
            for i, p in enumerate(probs):
                src = p.G.Ws[layer].detach()
                w[i, : src.shape[0], : src.shape[1]] = src
            ws.append(w.to(device).requires_grad_(True))
        V = torch.zeros(len(cfgs), c0.m, K, dtype=torch.float64)
        for i, p in enumerate(probs):
            V[i, :, : p.G.V.shape[1]] = p.G.V.detach()
        self.Ws, self.V = ws, V.to(device).requires_grad_(c0.train == "all")
        self.params = self.Ws + ([self.V] if c0.train == "all" else [])
        self.B = (
            torch.stack([cast(torch.Tensor, p.B) for p in probs]).to(device)
            if c0.discriminator == "random_features"
            else None
        )
        self.act = torch.relu if c0.act == "relu" else (lambda t: t)

    def residual(self) -> torch.Tensor:
        """(R, p): mean psi(G(z_i)) - mean psi(x_i) per replica."""
        h = self.z
        for w in self.Ws:
            h = self.act(h @ w.transpose(1, 2))
        if self.B is None:  # linear D: mean psi(G(z)) = V mean_i h_i, so average before V (m x fewer flops)
            return (h.mean(1, keepdim=True) @ self.V.transpose(1, 2)).squeeze(1) - self.target
        g = FEATURE_ACTS[self.cfg.feature_act](h @ self.V.transpose(1, 2) @ self.B.transpose(1, 2))
        return g.mean(1) - self.target

    def jacobian(self) -> torch.Tensor:
        """(R, p, n_params of the largest replica): the replicas' J, one backward pass per output
        (the replicas are independent, so the gradient of the sum over replicas is each one's)."""
        r = self.residual()
        rows = []
        for i in range(r.shape[1]):
            gs = torch.autograd.grad(r[:, i].sum(), self.params, retain_graph=True)
            rows.append(torch.cat([g.reshape(g.shape[0], -1) for g in gs], 1))
        return torch.stack(rows, 1)

    def spectrum(self) -> torch.Tensor:
        J = self.jacobian()
        return torch.linalg.eigvalsh(J @ J.transpose(1, 2)).clamp_min(0)

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(p.shape[0], -1) for p in self.params], 1)


@torch.no_grad()
def _masked_step(params, grads, lr, active) -> None:
    for p, g in zip(params, grads):
        shape = (-1,) + (1,) * (p.dim() - 1)
        # where, not a product: a stopped replica's gradient may be NaN, and 0 * NaN is NaN
        p.sub_(torch.where(active.reshape(shape) > 0, lr.reshape(shape) * g, torch.zeros_like(g)))


def train_batched(cfgs: list[OverparamConfig], device: str | torch.device = "cpu") -> list[dict]:
    """Train the replicas together; returns one result per config, as ``gda.train`` gives it.

    ``device``: where the batch trains (float64 everywhere; on a GPU the steps never wait for the
    host, except one check every 50 steps whether any replica is still running)."""
    for c in cfgs:
        c.validate()
    b = _Batch(cfgs, device)
    c0, R = b.cfg, len(cfgs)
    spec0 = b.spectrum().cpu()
    eta = torch.tensor(
        [c.eta if c.eta is not None else c.eta_scale / float(s[-1]) for c, s in zip(cfgs, spec0)], dtype=torch.float64
    ).to(device)
    rho_pred = [float(block_radius(s.numpy(), float(e), c0.mu, c0.mode).max()) for s, e in zip(spec0, eta)]
    theta0 = b.flat().clone()
    d = torch.zeros_like(b.target)
    active = torch.ones(R, dtype=torch.float64, device=device)
    r0 = None
    # Preallocated histories written in place: appending one small tensor per step (the first
    # version) pinned freed step temporaries in the heap, and glibc's arena grew by ~1 MB a step
    # (23 GB RSS and an OOM kill for 3000 steps of R = 15 replicas at k = 1000).
    res_hist = torch.zeros(c0.steps, R, dtype=torch.float64, device=device)
    d_hist = torch.zeros(c0.steps, R, dtype=torch.float64, device=device)
    act_hist = torch.zeros(c0.steps, R, dtype=torch.float64, device=device)
    steps_run = 0
    for t in range(c0.steps):
        d_hist[t] = d.norm(dim=1)
        r = b.residual()
        rd = r.detach()
        d_new = d + c0.mu * (-rd - d)
        g_dir = d if c0.mode == "simultaneous" else d_new  # alternating: G sees the new d
        # h = <d, -r> - |d|^2 / 2; G descends h: grad = -J^T d
        grads = torch.autograd.grad((-(g_dir * r)).sum(), b.params)
        d = torch.where(active[:, None] > 0, d_new, d)
        _masked_step(b.params, grads, eta, active)
        rn = rd.norm(dim=1)
        res_hist[t] = rn
        act_hist[t] = active
        steps_run = t + 1
        if r0 is None:
            r0 = rn.clamp_min(1.0)
        stop = ~torch.isfinite(rn) | (rn > c0.divergence_factor * r0) | (rn < c0.stop_below)
        active = torch.where(stop, torch.zeros_like(active), active)
        if t % 50 == 49 and not bool(active.any()):  # every replica stopped: nothing left to run
            break
    with torch.no_grad():
        r_end = b.residual().norm(dim=1).cpu()
    d_end = d.norm(dim=1).cpu()
    spec_end = b.spectrum().cpu()
    theta, theta0, eta = b.flat().cpu(), theta0.cpu(), eta.cpu()
    res = res_hist[:steps_run].cpu().numpy()  # (T, R)
    dn = d_hist[:steps_run].cpu().numpy()
    alive = act_hist[:steps_run].cpu().numpy() > 0  # replica i took step t
    outs = []
    for i, c in enumerate(cfgs):
        n_steps = int(alive[:, i].sum())  # steps taken: up to and including the stopping one
        residual = [float(v) for v in res[:n_steps, i]] + [float(r_end[i])]
        dnorm = [float(v) for v in dn[:n_steps, i]] + [float(d_end[i])]
        last = residual[-2]
        why = divergence("GDA residual |r|", last, max(residual[0], 1.0), c.divergence_factor, n_steps)
        diverged = why is not None
        s_end = spec_end[i].numpy() if not diverged else np.full(spec0.shape[1], np.nan)
        outs.append(
            record(
                c,
                eta=float(eta[i]),
                n_params=_n_params(c),
                spec0=spec0[i].numpy(),
                spec_end=s_end,
                rate_predicted=rho_pred[i],
                residual=residual,
                d_norm=dnorm,
                divergence=why,
                relative_movement=float((theta[i] - theta0[i]).norm() / theta0[i].norm()),
            )
        )
    return cast(list[dict], outs)


def _n_params(c: OverparamConfig) -> int:
    n = c.k * c.d + (c.depth - 1) * c.k * c.k
    return n + (c.m * c.k if c.train == "all" else 0)
