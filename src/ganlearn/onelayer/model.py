"""One-layer generators y = phi(W x), x ~ N(0, I_d) (Kontonis, Liu & Tzamos), target and learner.

The law of phi(W x) depends on W only through Sigma = W W^T (W x ~ N(0, Sigma)), so W is
identifiable up to W -> W Q with Q orthogonal; every metric here is a function of Sigma.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from ganlearn.config import ConfigError

__all__ = [
    "LEAKY_SLOPE", "SIGMOID_MARGIN", "Activation", "ACTIVATIONS", "activation",
    "conditioned_matrix", "OneLayerGenerator",
]

LEAKY_SLOPE = 0.2
SIGMOID_MARGIN = 1e-4  # the set S where sigmoid is inverted: y in (margin, 1 - margin)


@dataclass(frozen=True)
class Activation:
    """phi, and psi = phi^{-1} on the set phi(S) where phi is invertible (the truncation set).

    * relu: S = (0, inf), psi(y) = y; the coordinate is censored (only "z <= 0" is known) off S.
    * leaky_relu: invertible everywhere, psi(y) = y for y > 0 and y / slope otherwise.
    * sigmoid: smooth and invertible; psi = logit, used on (margin, 1 - margin) only, where it is
      numerically stable (a float32 sigmoid saturates to exactly 0 or 1 past |z| ~ 17).
    """

    name: str

    def phi(self, z: torch.Tensor) -> torch.Tensor:
        if self.name == "relu":
            return torch.relu(z)
        if self.name == "leaky_relu":
            return torch.nn.functional.leaky_relu(z, LEAKY_SLOPE)
        return torch.sigmoid(z)

    def invert(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(psi(y) with 0 off the set, mask of y in phi(S))."""
        if self.name == "relu":
            mask = y > 0
            return torch.where(mask, y, torch.zeros_like(y)), mask
        if self.name == "leaky_relu":
            return torch.where(y > 0, y, y / LEAKY_SLOPE), torch.ones_like(y, dtype=torch.bool)
        mask = (y > SIGMOID_MARGIN) & (y < 1 - SIGMOID_MARGIN)
        yc = y.clamp(SIGMOID_MARGIN, 1 - SIGMOID_MARGIN)
        return torch.where(mask, torch.log(yc) - torch.log1p(-yc), torch.zeros_like(y)), mask


ACTIVATIONS = ("relu", "leaky_relu", "sigmoid")


def activation(name: str) -> Activation:
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation={name!r} is not allowed: must be one of {', '.join(ACTIVATIONS)}")
    return Activation(name)


def conditioned_matrix(d: int, condition: float, *, generator: torch.Generator,
                       dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """W* = U diag(s) V^T with Haar U, V and singular values log-spaced from 1 down to 1/condition
    (so kappa(W*) = condition exactly), then scaled so that E||W* x||^2 = ||W*||_F^2 = d."""
    if condition < 1:
        raise ConfigError(f"condition={condition} is not allowed: must be >= 1")
    u, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    s = torch.logspace(0, -math.log10(condition), d, dtype=torch.float64) if d > 1 else torch.ones(1, dtype=torch.float64)
    w = u @ torch.diag(s) @ v.T
    return (w * math.sqrt(d) / w.norm()).to(dtype)


class OneLayerGenerator(torch.nn.Module):
    """G_W(x) = phi(W x); ``W`` is a (d, d) parameter."""

    def __init__(self, w: torch.Tensor, act: str):
        super().__init__()
        self.W = torch.nn.Parameter(w.clone())
        self.act = activation(act)

    @property
    def d(self) -> int:
        return self.W.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act.phi(x @ self.W.T)

    def sample(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        x = torch.randn(n, self.d, generator=generator, dtype=self.W.dtype).to(self.W.device)
        return self(x)

    def sigma(self) -> torch.Tensor:
        return self.W @ self.W.T
