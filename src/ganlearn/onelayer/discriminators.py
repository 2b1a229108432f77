"""Discriminators for one-layer generators: linear in a fixed feature map T, D_A(y) = <A, T(y)>,
with the -lambda/2 ||A||^2 term (so the inner max is A* = (E T(real) - E T(fake)) / lambda), and an
MLP for comparison.

* ``truncated``: T_ij(y) = psi(y_i) psi(y_j) 1{y_i in phi(S)} 1{y_j in phi(S)}, the sufficient
  statistics of a Gaussian truncated to the set where phi can be inverted (Daskalakis et al. 2018;
  ``onelayer.md`` section 3). For ReLU this is y y^T, for leaky ReLU the full Gaussian second moment.
* ``quadratic``: T(y) = y y^T on the raw outputs, the plain quadratic discriminator of Lei et al.
  (identical to ``truncated`` for ReLU; for sigmoid it does not invert the saturation).
"""

from __future__ import annotations

import torch

from ganlearn.onelayer.model import Activation

__all__ = ["statistic_features", "truncated_stats", "quadratic_stats", "relu_second_moment"]


def truncated_stats(y: torch.Tensor, act: Activation) -> torch.Tensor:
    """E_batch T(y): (d, d), T_ij = psi(y_i) psi(y_j) on the set where both coordinates invert."""
    p, _ = act.invert(y)  # already 0 off the set
    return p.T @ p / y.shape[0]


def statistic_features(z: torch.Tensor, act: Activation, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, h') with E_batch T(phi(z)) = E h h^T for the statistic ``kind``, h' = dh/dz elementwise.

    ``truncated``: h = psi(phi(z)) on the set where phi inverts (= z there), 0 off it, so h' is the
    set's mask (a.e.); ``quadratic``: h = phi(z), h' = phi'(z). What the closed-form generator
    gradient (``onelayer.batched``) and curvature probe (``onelayer.step_size.power_ratio``) use."""
    y = act.phi(z)
    if kind == "truncated":
        h, mask = act.invert(y)  # already 0 off the set
        return h, mask.to(z.dtype)
    if kind == "quadratic":
        return y, act.dphi(z, y)
    raise ValueError(f"kind={kind!r} is not allowed: must be one of truncated, quadratic")


def quadratic_stats(y: torch.Tensor) -> torch.Tensor:
    return y.T @ y / y.shape[0]


def relu_second_moment(sigma: torch.Tensor) -> torch.Tensor:
    """Closed form E[relu(z) relu(z)^T] for z ~ N(0, Sigma) (the degree-1 arc-cosine kernel):

        E[relu(z_i) relu(z_j)] = s_i s_j / (2 pi) * (sqrt(1 - rho^2) + rho (pi - arccos rho)),

    with s_i^2 = Sigma_ii and rho = Sigma_ij / (s_i s_j); the diagonal is Sigma_ii / 2.
    """
    s = sigma.diagonal().clamp_min(0).sqrt()
    rho = (sigma / (s[:, None] * s[None, :]).clamp_min(1e-300)).clamp(-1.0, 1.0)
    return s[:, None] * s[None, :] / (2 * torch.pi) * (torch.sqrt(1 - rho**2) + rho * (torch.pi - torch.arccos(rho)))
