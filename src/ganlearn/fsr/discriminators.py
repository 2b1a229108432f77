"""The discriminators of the three FSR stages, and the generic one of the baseline.

All take decoded or raw data as tensors and return a scalar per batch (their mean output), so a
stage's game value is ``D(real) - D(fake)`` (+ the discriminator's regulariser).
"""

from __future__ import annotations

from typing import NamedTuple, cast

import torch

from ganlearn.fsr.model import replica_eq

__all__ = [
    "thresholded_output_d",
    "Whitening",
    "whitening",
    "code_moments",
    "second_moment",
    "mat_vec",
    "with_bias",
    "pair_moments",
]


def thresholded_output_d(x: torch.Tensor, w_d: torch.Tensor, bias: float | torch.Tensor) -> torch.Tensor:
    """GAN_OutputLayer discriminator of Allen-Zhu & Li §3.1, averaged over patches and batch:

        D_{l,j}(X) = sum_r ReLU(<w^D_{l,j,r}, X_{l,j}> - b^D)

    Args:
        x: (n, J, d) patches of one level; w_d: (J or 1, m, d) rows w^D_r; bias: scalar b^D.
        Replicas: x (n, R, J, d), w_d (R, J or 1, m, d), bias (R,).
    Returns: E_n mean_j D_{l,j}(X) (a scalar tensor); for replicas, the sum over replicas of theirs
    (so each replica's gradient is its own run's).
    """
    if x.dim() == 3:
        return torch.relu(torch.einsum("njd,jrd->njr", x, w_d) - bias).sum(-1).mean()
    act = torch.relu(torch.einsum(replica_eq("njd,jrd->njr"), x, w_d) - cast(torch.Tensor, bias)[:, None, None])
    return act.sum(-1).mean((0, 2)).sum()


class Whitening(NamedTuple):
    """:func:`whitening`'s result: the map M and its inverse."""

    map: torch.Tensor
    inverse: torch.Tensor


def whitening(second_moment: torch.Tensor, rel_ridge: float = 1e-4) -> Whitening:
    """M = (C + delta I)^{-1/2} for a batch of (..., q, q) second-moment matrices C, with delta =
    ``rel_ridge`` times the mean diagonal (directions that are identically zero stay harmless).

    Returns ``Whitening(M, M^{-1})``, M^{-1} = (C + delta I)^{1/2} from the same
    eigendecomposition. Why not ``torch.linalg.inv(M)``: batched LU on the CPU (``inv``, ``solve``,
    ``lu_factor``, ``slogdet``) returns corrupt pivots with 2+ threads for q >= ~160 in the
    torch 2.13 CPU build (it raised on the 5-level m = 32 square-graph shape, q = 289, and in a
    probe returned wrong inverses without raising); eigh is unaffected and this is exact anyway."""
    q = second_moment.shape[-1]
    delta = rel_ridge * second_moment.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None]
    evals, evecs = torch.linalg.eigh(
        second_moment + delta * torch.eye(q, dtype=second_moment.dtype, device=second_moment.device)
    )
    evals = evals.clamp_min(1e-30)
    return Whitening(
        evecs @ torch.diag_embed(evals.rsqrt()) @ evecs.transpose(-1, -2),
        evecs @ torch.diag_embed(evals.sqrt()) @ evecs.transpose(-1, -2),
    )


def code_moments(s: torch.Tensor, white: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """First and second moments of level-1 codes, the features of the GAN_FirstHidden D.

    s: (n, J, m) -> (mean (J*m,), second moment (J*m, J*m)); replicas: (n, R, J, m) -> (R, ...).
    For S = ReLU(V z - b) these are the truncated moments of the Gaussian pre-activations; together
    they fix every row norm, bias and
    pairwise angle of V (each E[S_r S_s] is increasing in the angle), i.e. V V^T and b.
    ``white``: an invertible (J*m, J*m) map applied to the codes first (x = M s). The moments of
    M s are an invertible linear function of those of s, so matching them has the same solutions;
    it only changes the conditioning of the game (see ``stages.FirstHidden``).
    """
    f = s.flatten(-2)  # (n, J*m), or (n, R, J*m) for replicas (then (R, J*m) and (R, J*m, J*m))
    mean, second = f.mean(0), second_moment(f)
    if white is not None:  # E[M s] = M E[s], E[(M s)(M s)^T] = M E[s s^T] M^T: no (n, J*m) product
        mean, second = mat_vec(white, mean), white @ second @ white.mT
    return mean, second


def second_moment(f: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
    """E[f g^T] over the sample axis: (n, q) -> (q, q), or per replica (n, R, q) -> (R, q, q)."""
    g = f if g is None else g
    if f.dim() == 2:
        return f.T @ g / f.shape[0]
    return torch.einsum("nRa,nRb->Rab", f, g) / f.shape[0]


def mat_vec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """a v for a (q, q) matrix and a (q,) vector, or row by row for (R, q, q) and (R, q)."""
    return a @ v if v.dim() == 1 else (a @ v[..., None])[..., 0]


def with_bias(parents: torch.Tensor) -> torch.Tensor:
    """(n, J, P, m') gathered parent codes -> (n, J, 1 + P*m') inputs [1, S_{l-1,P(j)}]."""
    return torch.cat([torch.ones_like(parents[..., 0, :1]), parents.flatten(-2)], dim=-1)


def pair_moments(s_hi: torch.Tensor, parents: torch.Tensor, white: torch.Tensor | None = None) -> torch.Tensor:
    """Cross moments of a level's codes with [1, its parents' codes], the GAN_ForwardSuperResolution
    D's features:  E[ S_{l,j,r} * (1, S_{l-1,P(j)}) ].

    s_hi: (n, J, m); parents: (n, J, P, m') gathered parent codes; white: optional (J, q, q) map
    of the inputs x = [1, parents] (q = 1 + P*m'). Returns (J, m, q). Replicas: (n, R, ...) inputs,
    (R, J, ...) white and result.
    Matching them is the moment condition E[(ReLU(V x - b) - S) (1, x)] = 0, the gradient of the
    strictly convex E[ (1/2) ReLU(V x - b)^2 - S (V x - b) ] when x has the real law: its unique
    zero is the true (V, b), wherever the parents' codes span their space.
    """
    eq = "njr,njq->jrq" if s_hi.dim() == 3 else replica_eq("njr,njq->jrq")
    mom = torch.einsum(eq, s_hi, with_bias(parents)) / s_hi.shape[0]
    if white is not None:  # (J, q, q), one invertible map per patch: same zeros, better conditioned
        # E[s (M x)^T] = E[s x^T] M^T: M applied to the (J, m, q) moments, not to the n inputs
        # (measured with SuperResolution's weights treated alike: the default level-3 step 110 -> 49 ms)
        mom = torch.einsum("jrq,jpq->jrp" if s_hi.dim() == 3 else replica_eq("jrq,jpq->jrp"), mom, white)
    return mom
