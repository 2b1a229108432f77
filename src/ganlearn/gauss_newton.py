"""Matrix-free Gauss-Newton preconditioning for moment-matching generators.

For a generator objective (1/2 lambda) ||r(theta)||^2 with residual r = m_real - f(theta) (a
vector of moments), the gradient is -J^T r / lambda with J = df/dtheta, and the Gauss-Newton
(natural-gradient) direction is

    x = (J^T J / lambda + delta I)^{-1} g,        g the gradient,

solved here by conjugate gradients with one Jacobian-vector and one vector-Jacobian product per
iteration (``torch.func.jvp`` / ``vjp``), so J is never formed. In an SGDA moment game whose
discriminator sits at its exact inner maximum theta_D = gap / lambda, the generator's gradient is
exactly J^T theta_D, so a preconditioned SGDA step ``theta <- theta - eta * x`` is Gauss-Newton on
the moment gap: invariant to how the parameters are scaled, and fast where the curvature spans
orders of magnitude (see ``fsr.stages.first_hidden.FirstHidden``).
"""

from __future__ import annotations

from typing import Callable, Sequence, cast

import torch
from torch.func import jvp

from ganlearn.rng import to_device

__all__ = ["along", "conjugate_gradient", "jacobian_trace"]

Tensors = tuple[torch.Tensor, ...]


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], batch_dims: int = 0) -> torch.Tensor:
    if batch_dims == 0:
        return cast(torch.Tensor, sum((x * y).sum() for x, y in zip(a, b)))
    return cast(torch.Tensor, sum((x * y).flatten(batch_dims).sum(-1) for x, y in zip(a, b)))


def along(c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A per-system coefficient ``c`` (shape = the leading batch dimensions) broadcast against ``t``."""
    return c if c.dim() == 0 else c.reshape(c.shape + (1,) * (t.dim() - c.dim()))


def conjugate_gradient(
    apply_a: Callable[[Tensors], Tensors], b: Tensors, iters: int, *, batch_dims: int = 0
) -> Tensors:
    """``iters`` steps of conjugate gradients for A x = b from x = 0 (A symmetric positive
    definite, given as a function on tuples of tensors). Exact after dim(b) steps in exact
    arithmetic; stops early once the residual is zero. No host synchronisation.

    ``batch_dims=k``: the first k dimensions of every tensor index independent systems (replicas,
    :mod:`ganlearn.fsr.batched`), each with its own inner products and step lengths, so each
    system's iterates are those of its own solve."""
    x = tuple(torch.zeros_like(t) for t in b)
    r, p = b, b
    rs = _dot(r, r, batch_dims)
    for _ in range(iters):
        ap = apply_a(p)
        pap = _dot(p, ap, batch_dims)
        alpha = torch.where(pap > 0, rs / pap.clamp_min(torch.finfo(pap.dtype).tiny), torch.zeros_like(pap))
        x = tuple(xi + along(alpha, pi) * pi for xi, pi in zip(x, p))
        r = tuple(ri - along(alpha, ai) * ai for ri, ai in zip(r, ap))
        rs_new = _dot(r, r, batch_dims)
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(torch.finfo(rs.dtype).tiny), torch.zeros_like(rs))
        p = tuple(ri + along(beta, pi) * pi for ri, pi in zip(r, p))
        rs = rs_new
    return x


def jacobian_trace(
    f: Callable[..., torch.Tensor], params: Sequence[torch.Tensor], *, generator: torch.Generator, probes: int = 4
) -> torch.Tensor:
    """Hutchinson estimate of tr(J^T J) / dim(params) = E ||J v||^2 / dim for v ~ N(0, I): the
    mean curvature, against which a relative damping is set."""
    primals = tuple(p.detach() for p in params)
    n = sum(p.numel() for p in primals)
    total = torch.zeros((), dtype=primals[0].dtype, device=primals[0].device)
    for _ in range(probes):
        # drawn on the generator's device (the training RNG lives on the CPU), then moved
        v = tuple(
            to_device(torch.randn(p.shape, generator=generator, dtype=p.dtype, device=generator.device), p.device)
            for p in primals
        )
        jv = jvp(f, primals, v)[1]
        total = total + jv.pow(2).sum()
    return total / (probes * n)
