"""Recovery of a target multi-resolution generator by a learner, against exact ground truth.

Pure functions of tensors and callables (no network class is imported here):

* :func:`feature_recovery` -- output features W_l matched to W*_l by the best permutation.
* :func:`procrustes_latent_map` -- a first latent rotation from the level-1 hidden weights.
* :func:`coupled_error` -- the theorem's quantity (Allen-Zhu & Li, §2.3):

      min_U  E_z || G(z) - G*(U^T z) ||^2 / E_z || G*(z) ||^2,   U column-orthonormal,

  where G(z) = (X_1, ..., X_L) is the whole multi-resolution output. For any column-orthonormal
  U, U^T z ~ N(0, I), so (G(z), G*(U^T z)) is a coupling and the numerator bounds W_2(G, G*)^2
  from above: every U we report gives a valid upper bound; fitting U only tightens it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from ganlearn.metrics.alignment import match_columns, procrustes_rows

__all__ = ["feature_recovery", "procrustes_latent_map", "coupled_error"]

# z (n, latent) -> (images per level [(n, J_l, d)], codes per level [(n, J_l, m_l)])
Generator = Callable[[torch.Tensor], tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]]


def feature_recovery(W_learned: Sequence[torch.Tensor], W_true: Sequence[torch.Tensor]) -> dict:
    """Per level: mean and worst cosine of matched (learned, true) output features.

    ``W_*[l]`` is (n_W, d, m): one output matrix per patch (n_W = J_l) or one shared (n_W = 1).
    For per-patch output layers the columns of every patch are matched separately and pooled.
    Returns ``{"perms": [per level (n_W, m_true) arrays], "level{l}": {"cos_mean", "cos_min"}}``.
    """
    out: dict = {"perms": []}
    for level, (Wl, Wt) in enumerate(zip(W_learned, W_true), start=1):
        perms, coss = [], []
        for j in range(Wt.shape[0]):
            p, c = match_columns(Wl[min(j, Wl.shape[0] - 1)], Wt[j])
            perms.append(p)
            coss.append(c)
        cos = np.concatenate(coss)
        out["perms"].append(np.stack(perms))
        out[f"level{level}"] = {"cos_mean": float(cos.mean()), "cos_min": float(cos.min())}
    return out


def _flat(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([x.flatten(1) for x in xs], dim=1)


def procrustes_latent_map(V1_learned: torch.Tensor, V1_true: torch.Tensor, perm1: np.ndarray) -> torch.Tensor:
    """Initial U^T from level-1 hidden weights (J, m, latent): rows of V*_1 aligned by the level-1
    feature matching ``perm1`` (from :func:`feature_recovery`).

    Learner pre-activations are V_1 z; the target's are V*_1 U^T z. With Pi the matched rows,
    U^T = argmin ||V*_1 U^T - Pi V_1|| = polar((V*_1)^T Pi V_1).
    Returns U^T: (latent_true, latent_learned), float64 on the CPU.
    """
    vt = V1_true.detach().double().cpu()
    vl = V1_learned.detach().double().cpu()
    rows_l = torch.stack([vl[j, torch.as_tensor(perm1[min(j, len(perm1) - 1)])] for j in range(vt.shape[0])])
    return procrustes_rows(vt.reshape(-1, vt.shape[-1]), rows_l.reshape(-1, vl.shape[-1]))


def coupled_error(learner: Generator, target: Generator, *, ut0: torch.Tensor, perms: list[np.ndarray],
                  n_fit: int, n_eval: int, fit_steps: int, generator: torch.Generator) -> dict:
    """The theorem's coupled relative error, with U fitted on ``n_fit`` latents and the error
    measured on ``n_eval`` fresh ones.

    ``learner`` and ``target`` map latents to (images, codes) per level; ``ut0`` (latent_true,
    latent_learned) is the starting U^T (e.g. :func:`procrustes_latent_map`), and sets the dtype
    and device of the latents. U^T is refined by Adam on the Stiefel manifold
    (U^T = U0^T expm(A - A^T)) for ``fit_steps`` steps; the better of the two on the fitting set is
    kept. ``target`` should not require gradients of its own parameters (only U^T is fitted).

    Returns: ``coupled_rel_error`` (all levels together), ``coupled_rel_error_level{l}``,
    ``w2_upper`` (the root of the numerator, an upper bound on W_2), ``hidden_rel_error_level{l}``
    (codes compared through the matched channels ``perms``), ``u_fit`` ("procrustes" or "refined").
    """
    dev, dt = ut0.device, ut0.dtype
    m0_l = ut0.shape[1]
    z_fit = torch.randn(n_fit, m0_l, generator=generator, dtype=dt).to(dev)
    z_ev = torch.randn(n_eval, m0_l, generator=generator, dtype=dt).to(dev)

    best, how = ut0, "procrustes"
    if fit_steps > 0:
        with torch.no_grad():  # the learner's side does not depend on U: computed once
            x_l_fit = _flat(learner(z_fit)[0])

        def loss(ut: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return (_flat(target(z @ ut.T)[0]) - x_l_fit).pow(2).sum(1).mean()

        a = torch.zeros(m0_l, m0_l, dtype=dt, device=dev, requires_grad=True)
        opt = torch.optim.Adam([a], lr=0.02)
        for _ in range(fit_steps):
            ut = ut0 @ torch.linalg.matrix_exp(a - a.T)
            val = loss(ut, z_fit)
            opt.zero_grad()
            val.backward()
            opt.step()
        with torch.no_grad():
            ut = ut0 @ torch.linalg.matrix_exp(a - a.T)
            if loss(ut, z_fit) < loss(ut0, z_fit):
                best, how = ut, "refined"
    with torch.no_grad():
        x_l, s_l = learner(z_ev)
        x_t, s_t = target(z_ev @ best.T)
        norm = _flat(x_t).pow(2).sum(1).mean()
        out = {"u_fit": how}
        num = (_flat(x_l) - _flat(x_t)).pow(2).sum(1).mean()
        out["coupled_rel_error"] = float(num / norm)
        out["w2_upper"] = float(num.sqrt())
        for level in range(1, len(x_t) + 1):
            i = level - 1
            e = (x_l[i] - x_t[i]).pow(2).flatten(1).sum(1).mean() / x_t[i].pow(2).flatten(1).sum(1).mean()
            out[f"coupled_rel_error_level{level}"] = float(e)
            p = perms[i]
            s_match = torch.stack([s_l[i][:, j, torch.as_tensor(p[min(j, len(p) - 1)], device=dev)]
                                   for j in range(s_t[i].shape[1])], dim=1)
            out[f"hidden_rel_error_level{level}"] = float((s_match - s_t[i]).pow(2).sum((1, 2)).mean()
                                                          / s_t[i].pow(2).sum((1, 2)).mean())
    return out
