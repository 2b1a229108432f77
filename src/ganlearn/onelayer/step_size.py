"""The generator's step size in curvature units, for every activation and condition number.

With the discriminator at its exact inner max, the G step is SGD on f(W) = 1/2 |M(W) - M*|^2
(M(W) = E T(phi(W x)), T the truncated statistics). Near the optimum SGD is stable only for
eta < 2 / lambda_max(J^T J), J = dM/dW; the curvature lambda_max(J^T J) scales with the target's
size and depends on the activation:

* for an invertible phi (leaky ReLU; sigmoid, where the truncation is negligible) M = Sigma and the
  curvature of 1/2 |W W^T - Sigma*|^2 at the optimum is 4 lambda_max(Sigma*) = 4 lambda_max(M*)
  (measured: 3.9-4.0 lambda_max(M*) at d = 8, 32 and kappa 2, 10);
* for ReLU the censoring and the mean term change the ratio: 0.8-1.6 lambda_max(M*).

A fixed lr_g = 0.3 therefore put ReLU at lr x curvature 0.6-1.3 and leaky ReLU / sigmoid at up to
0.3 x 17.7 = 5.3 (d = 32, kappa 10): past the stability limit 2, which is why those runs blew up
(measured: Sigma error 17 and 6460; leaky ReLU NaN at step 25 with d = 16, kappa 10).

The rule (``step_scale="curvature"``): eta_t = lr_g * decay(t) / (c * lambda_t), with

    c        = lambda_max(J^T J) / lambda_max(M(W_0)) at the learner's initialisation (power
               iteration on a probe batch, once): the activation's curvature-to-moment ratio, which
               at init is within 10-30% of its value at the optimum (ReLU d = 32: 0.88-0.92 at init,
               0.81-0.91 at W*; leaky ReLU and sigmoid: 3.9-4.0 at both);
    lambda_t = max(lambda_max(M_real), lambda_max(M_fake)) of the step's two batch statistics
               (already computed for the discriminator): the target's scale, which sets the
               curvature at the optimum, and the learner's, which guards against an overshoot.

so lr_g is lr x curvature, dimensionless and the same for every activation, target scale and
condition number; stability needs lr_g < 2, and below 1 an eigen-direction approached from below
does not overshoot. Its cost: one d x d eigenvalue problem for each of the two statistics per step.
"""

from __future__ import annotations

import torch
from torch.func import jvp, vjp

from ganlearn.onelayer.discriminators import statistic_features

__all__ = ["curvature_ratio", "moment_scale", "power_ratio", "power_ratio_autograd"]


def curvature_ratio(
    stats, w: torch.Tensor, x: torch.Tensor, act, *, generator: torch.Generator, iters: int = 30
) -> float:
    """lambda_max(J^T J) / lambda_max(M(W)) at ``w`` on the probe batch ``x`` (n, d), where
    M(W) = stats(phi(x W^T)) and J = dM/dW; power iteration from a random start drawn from
    ``generator``. ``stats`` is any differentiable statistic (J by autograd); the trainers use
    :func:`power_ratio`, the same iteration in closed form for their two statistics."""
    v = torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device)
    return float(power_ratio_autograd(stats, act, w.detach(), x, v, iters))


def power_ratio_autograd(
    stats, act, w: torch.Tensor, x: torch.Tensor, v: torch.Tensor, iters: int = 30
) -> torch.Tensor:
    """The power iteration of :func:`curvature_ratio` from the start ``v`` for any statistic
    (J v by forward mode, J^T by reverse mode); the reference :func:`power_ratio` is tested against."""

    def moments(u: torch.Tensor) -> torch.Tensor:
        return stats(act.phi(x @ u.T))

    m, pull = vjp(moments, w)[:2]
    lam = torch.zeros((), dtype=w.dtype)
    for _ in range(iters):
        v = v / v.norm().clamp_min(torch.finfo(w.dtype).tiny)
        jv = jvp(moments, (w,), (v,))[1]
        v = pull(jv)[0]
        lam = v.norm()
    return lam / moment_scale(m).clamp_min(torch.finfo(w.dtype).tiny)


def power_ratio(kind: str, act, w: torch.Tensor, x: torch.Tensor, v: torch.Tensor, iters: int = 30) -> torch.Tensor:
    """:func:`power_ratio_autograd` for the trainers' statistics (``kind`` "truncated" or
    "quadratic"), in closed form and batched: ``w``, ``v`` (..., d, d), ``x`` (..., n, d), one
    ratio per leading index (a stack of replicas needs no vmap).

    With M(W) = E h(z) h(z)^T, z = W x (h, h' from :func:`statistic_features`; both fixed, since W
    is), J and J^T need only the third moment K_abi = E[h'_a x_b h_i] (d^3 numbers, one pass over
    the probe batch):

        (J V)_ij = sum_b K_jbi V_jb + K_ibj V_ib,     (J^T G)_ab = 2 sum_j K_abj G_ja  (G symmetric),

    so an iteration is two d^3 contractions instead of four (n, d) x (d, d) products over the probe
    batch (n >= 4096), the same iteration up to round-off (the test holds it to the autograd one at
    1e-12). Forming K costs n d^3 (d / 4 iterations of the product form; cheaper in all while d < 120),
    in blocks of rows a whose (h'_a x_b) products stay below 2^22 numbers. Measured (d = 8,
    n = 4096, one thread, 64 replicas in the batched trainer's chunks): 1.1-2.1 s -> 0.21-0.23 s, from
    a quarter of a 200-step batched run to 5%. (Before that: the forward-over-reverse version was 29%
    of a one-layer run of 200 steps at d = 8, and vmap's jvp made it 44% of a batched one.)"""
    n, d = x.shape[-2:]
    h, dh = statistic_features(x @ w.transpose(-1, -2), act, kind)
    m = h.transpose(-1, -2) @ h / n
    # K (..., a, b, i): the probe batch's (h'_a x_b) rows against h, in blocks of a whose product
    # rows stay below 2^22 numbers (one block up to d = 32 at n = 4096)
    step = max(1, 2**22 // x.numel())
    k = torch.cat(
        [
            (dh[..., :, a : a + step, None] * x[..., None, :]).flatten(-2).transpose(-1, -2) @ h / n
            for a in range(0, d, step)
        ],
        dim=-2,
    ).unflatten(-2, (d, d))
    tiny = torch.finfo(w.dtype).tiny
    lam = torch.zeros(w.shape[:-2], dtype=w.dtype, device=w.device)
    for _ in range(iters):
        v = v / torch.linalg.matrix_norm(v)[..., None, None].clamp_min(tiny)
        hu_t = (v[..., :, None, :] @ k).squeeze(-2)  # (hu^T)_ai = sum_b V_ab K_abi, hu = E[h U^T]
        jv = hu_t + hu_t.transpose(-1, -2)  # symmetric
        v = 2 * (k @ jv.transpose(-1, -2)[..., :, :, None]).squeeze(-1)  # sum_j K_abj G_ja
        lam = torch.linalg.matrix_norm(v)
    return lam / moment_scale(m).clamp_min(tiny)


def moment_scale(m: torch.Tensor) -> torch.Tensor:
    """lambda_max of a symmetric moment matrix (or of each in a (R, d, d) stack)."""
    return torch.linalg.eigvalsh(m)[..., -1]
