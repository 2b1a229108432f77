"""Reference implementations used only by the tests: the autograd versions of what the library
computes in closed form, so that a test can compare the two."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.func import jvp, vjp

from ganlearn.gauss_newton import conjugate_gradient

Tensors = tuple[torch.Tensor, ...]


def gauss_newton_direction(
    f: Callable[..., torch.Tensor],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    *,
    curvature_scale: float,
    damping: float | torch.Tensor,
    iters: int,
) -> Tensors:
    """x ~= (curvature_scale * J^T J + damping I)^{-1} grads, J the Jacobian of the vector
    function ``f(*params)`` at ``params``, by ``iters`` conjugate-gradient steps."""
    primals = tuple(p.detach() for p in params)
    _, pull = vjp(f, *primals)

    def apply_a(v: Tensors) -> Tensors:
        _, jv = jvp(f, primals, v)
        return tuple(curvature_scale * a + damping * vi for a, vi in zip(pull(jv), v))

    return conjugate_gradient(apply_a, tuple(g.detach() for g in grads), iters)
