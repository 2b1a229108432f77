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

from typing import Any

import torch

from ganlearn.overparam.config import OverparamConfig
from ganlearn.rng import make_generator

__all__ = ["OneHiddenGenerator", "Problem", "FEATURE_ACTS"]

FEATURE_ACTS = {"relu": torch.relu, "tanh": torch.tanh, "softplus": torch.nn.functional.softplus}


class OneHiddenGenerator(torch.nn.Module):
    """G(z) = V phi(W_L ... phi(W_1 z)); z of shape (n, d) -> (n, m)."""

    def __init__(self, m: int, d: int, k: int, depth: int, act: str, *, generator: torch.Generator):
        super().__init__()
        kw: dict[str, Any] = dict(generator=generator, dtype=torch.float64)
        ws = [torch.randn(k, d, **kw)] + [torch.randn(k, k, **kw) * (2.0 / k) ** 0.5 for _ in range(depth - 1)]
        self.Ws = torch.nn.ParameterList([torch.nn.Parameter(w) for w in ws])
        self.V = torch.nn.Parameter(torch.randn(m, k, **kw) / k**0.5)
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
        kw: dict[str, Any] = dict(generator=g, dtype=torch.float64)
        xbar = torch.randn(cfg.m, **kw)
        self.xbar = xbar / xbar.norm()
        self.x = self.xbar + 0.5 * torch.randn(cfg.n, cfg.m, **kw) / cfg.m**0.5
        self.z = torch.randn(cfg.n, cfg.d, **kw)
        self.G = OneHiddenGenerator(cfg.m, cfg.d, cfg.k, cfg.depth, cfg.act, generator=g)
        if cfg.train == "W":
            self.G.V.requires_grad_(False)
        self.params = [p for p in self.G.parameters() if p.requires_grad]
        self.B = None  # the random features' matrix (random_features only)
        if cfg.discriminator == "linear":
            self.psi = lambda x: x
        else:
            self.B = B = torch.randn(cfg.features, cfg.m, **kw) * (cfg.feature_scale / cfg.m**0.5)
            f = FEATURE_ACTS[cfg.feature_act]
            self.psi = lambda x: f(x @ B.T)
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
