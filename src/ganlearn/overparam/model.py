"""Overparameterized one-hidden-layer GANs (Balaji et al., ICLR 2021): the model of
``overparam.md`` section 1, on n fixed latents and n fixed data points.

    generator      G(z) = V phi(W_L ... phi(W_1 z))      (depth L = 1 is the theory's V phi(W z))
    discriminator  D_d(x) = <d, psi(x)>,  psi = identity ("linear") or f(B x) ("random_features";
                   f = ``feature_act``: relu, or the smooth tanh / softplus)
    game           min_theta max_d  <d, mean psi(x_i) - mean psi(G(z_i))> - 1/2 |d|^2
    residual       r(theta) = mean psi(G(z_i)) - mean psi(x_i)   (d*(theta) = -r, value 1/2 |r|^2)

V is fixed and the W's are trained (the theory's choice; ``train="all"`` trains V as well).
Initialisation, as in the reference check of ``overparam.md`` section 5: V iid N(0, 1/k),
W_1 iid N(0, 1), deeper W_l iid N(0, 2/k) (He), z_i iid N(0, I_d), float64.

Data (a design choice: the paper's synthetic set-up is unknown): x_i = xbar + 0.5 * N(0, I_m) / sqrt(m)
with xbar a random unit vector. The linear discriminator sees only the mean xbar; the random-feature
one sees the whole empirical law through mean f(B x_i), B iid N(0, feature_scale^2 / m) with
``features`` rows. The theory's assumptions (overparam.md 1.2) ask for a Jacobian J = dr/dtheta that
is Lipschitz near theta_0 and has sigma_min(J) bounded below: a ReLU feature map's J jumps whenever a
feature's sign pattern on the generated points changes (not Lipschitz); tanh and softplus keep it
smooth, which is what ``width-sweep-features`` compares.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ganlearn.config import check
from ganlearn.rng import make_generator

__all__ = ["OverparamConfig", "OneHiddenGenerator", "Problem", "FEATURE_ACTS"]

FEATURE_ACTS = {"relu": torch.relu, "tanh": torch.tanh, "softplus": torch.nn.functional.softplus}


@dataclass(frozen=True)
class OverparamConfig:
    m: int = 10  # data dimension
    d: int = 5  # latent dimension
    n: int = 200  # data points = fixed latents
    k: int = 50  # hidden width (the overparameterization)
    depth: int = 1  # hidden layers of G; 1 is the theory's V phi(W z)
    act: Literal["relu", "identity"] = "relu"  # identity: a linear G, for which the LTV rule is exact
    train: Literal["W", "all"] = "W"  # W: hidden weights only (theory); all: V as well
    discriminator: Literal["linear", "random_features"] = "linear"
    features: int = 20  # random-feature discriminator: rows of B
    feature_act: Literal["relu", "tanh", "softplus"] = "relu"  # random-feature discriminator: f in f(B x)
    feature_scale: float = 1.0  # B iid N(0, feature_scale^2 / m): how far into f's nonlinearity B x reaches
    mu: float = 1.0  # discriminator (ascent) step; mu = 1 is the best response
    eta: float | None = None  # generator (descent) step; None: the stability rule below
    eta_scale: float = 0.25  # stability rule: eta = eta_scale / lambda_max(J_0 J_0^T)
    mode: Literal["simultaneous", "alternating"] = "simultaneous"
    steps: int = 3000
    tol: float = 1e-6  # success: |r_T| < tol (|xbar| = 1)
    stop_below: float = 1e-13  # stop early once |r_t| is at float64 round-off
    seed: int = 0

    def validate(self) -> None:
        def bad(key, value, allowed):
            check(False, key, value, allowed)
        for key in ("m", "d", "n", "k", "depth", "features", "steps"):
            if int(getattr(self, key)) != getattr(self, key) or getattr(self, key) < 1:
                bad(key, getattr(self, key), "an integer >= 1")
        for key, allowed in (("act", ("relu", "identity")), ("train", ("W", "all")),
                             ("discriminator", ("linear", "random_features")),
                             ("feature_act", tuple(FEATURE_ACTS)),
                             ("mode", ("simultaneous", "alternating"))):
            if getattr(self, key) not in allowed:
                bad(key, getattr(self, key), "one of " + ", ".join(allowed))
        if not 0 < self.mu < 2:
            bad("mu", self.mu, "in (0, 2) (the stability range of the ascent step)")
        if self.eta is not None and not self.eta > 0:
            bad("eta", self.eta, "> 0, or null for the stability rule")
        if not self.eta_scale > 0:
            bad("eta_scale", self.eta_scale, "> 0")
        if not self.feature_scale > 0:
            bad("feature_scale", self.feature_scale, "> 0")
        if not self.tol > 0:
            bad("tol", self.tol, "> 0")


class OneHiddenGenerator(torch.nn.Module):
    """G(z) = V phi(W_L ... phi(W_1 z)); z of shape (n, d) -> (n, m)."""

    def __init__(self, m: int, d: int, k: int, depth: int, act: str, *, generator: torch.Generator):
        super().__init__()
        kw = dict(generator=generator, dtype=torch.float64)
        ws = [torch.randn(k, d, **kw)] + [torch.randn(k, k, **kw) * (2.0 / k) ** 0.5 for _ in range(depth - 1)]
        self.Ws = torch.nn.ParameterList([torch.nn.Parameter(w) for w in ws])
        self.V = torch.nn.Parameter(torch.randn(m, k, **kw) / k ** 0.5)
        self.act = torch.relu if act == "relu" else (lambda x: x)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for w in self.Ws:
            h = self.act(h @ w.T)
        return h @ self.V.T


class Problem:
    """Data, fixed latents, generator, discriminator features psi: everything but the dynamics."""

    def __init__(self, cfg: OverparamConfig):
        cfg.validate()
        g = make_generator(cfg.seed, "overparam")
        kw = dict(generator=g, dtype=torch.float64)
        xbar = torch.randn(cfg.m, **kw)
        self.xbar = xbar / xbar.norm()
        self.x = self.xbar + 0.5 * torch.randn(cfg.n, cfg.m, **kw) / cfg.m ** 0.5
        self.z = torch.randn(cfg.n, cfg.d, **kw)
        self.G = OneHiddenGenerator(cfg.m, cfg.d, cfg.k, cfg.depth, cfg.act, generator=g)
        if cfg.train == "W":
            self.G.V.requires_grad_(False)
        self.params = [p for p in self.G.parameters() if p.requires_grad]
        self.B = None  # the random features' matrix (random_features only)
        if cfg.discriminator == "linear":
            self.psi = lambda x: x
        else:
            self.B = torch.randn(cfg.features, cfg.m, **kw) * (cfg.feature_scale / cfg.m ** 0.5)
            f = FEATURE_ACTS[cfg.feature_act]
            self.psi = lambda x: f(x @ self.B.T)
        self.target = self.psi(self.x).mean(0)

    def residual(self) -> torch.Tensor:
        """r(theta) = mean psi(G(z_i)) - mean psi(x_i), shape (p,)."""
        return self.psi(self.G(self.z)).mean(0) - self.target

    def jacobian(self) -> torch.Tensor:
        """J = d r / d theta (trained parameters, flattened), shape (p, n_params); p backward passes."""
        r = self.residual()
        rows = []
        for i in range(r.numel()):
            gs = torch.autograd.grad(r[i], self.params, retain_graph=True)
            rows.append(torch.cat([x.reshape(-1) for x in gs]))
        return torch.stack(rows)
