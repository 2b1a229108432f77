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
    "latents",
    "LEAKY_SLOPE",
    "SIGMOID_MARGIN",
    "Activation",
    "ACTIVATIONS",
    "activation",
    "conditioned_matrix",
    "OneLayerGenerator",
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

    def dphi(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """phi'(z), given y = phi(z) (what autograd uses: 1{z > 0}, the slope, y (1 - y))."""
        if self.name == "relu":
            return (z > 0).to(z.dtype)
        if self.name == "leaky_relu":
            return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, LEAKY_SLOPE))
        return y * (1 - y)

    def invert(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(psi(y) with 0 off the set, mask of y in phi(S)); y is an output of phi."""
        if self.name == "relu":  # y = relu(z) >= 0 is already 0 off the set; no copy (the where
            # it replaces was 9-23% of a batched step, profiled)
            return y, y > 0
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


def conditioned_matrix(
    d: int, condition: float, *, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """W* = U diag(s) V^T with Haar U, V and singular values log-spaced from 1 down to 1/condition
    (so kappa(W*) = condition exactly), then scaled so that E||W* x||^2 = ||W*||_F^2 = d."""
    if condition < 1:
        raise ConfigError(f"condition={condition} is not allowed: must be >= 1")
    u, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    s = (
        torch.logspace(0, -math.log10(condition), d, dtype=torch.float64)
        if d > 1
        else torch.ones(1, dtype=torch.float64)
    )
    w = u @ torch.diag(s) @ v.T
    return (w * math.sqrt(d) / w.norm()).to(dtype)


def latents(n: int, d: int, *, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """n standard normal latents x ~ N(0, I_d), drawn in float32 and returned in ``dtype``.

    Why float32 draws (a design choice, measured): on CPU PyTorch draws float64 normals with a
    scalar Box-Muller, 14 ns per number against 2.4 ns for float32's vectorised one (4096 numbers:
    57 us vs 10 us, one thread); the training batches' draws were about a quarter of a one-layer
    run (26% of a batched 200-step run, d = 8, profiled). A float32 normal differs from a float64
    one by rounding (relative 6e-8) and by its tail, which ends at |x| = sqrt(2 ln 2^24) = 5.77
    (mass 8e-9 per coordinate beyond it): both far below one batch's sampling error
    (1/sqrt(batch) >= 0.3% at the largest batch, 16384). All the
    arithmetic after the draw stays in ``dtype``."""
    return torch.randn(n, d, generator=generator, dtype=torch.float32).to(dtype)


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
        x = latents(n, self.d, generator=generator, dtype=self.W.dtype).to(self.W.device)
        return self(x)

    def sigma(self) -> torch.Tensor:
        return self.W @ self.W.T
