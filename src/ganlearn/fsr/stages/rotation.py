"""The warm start's non-negative rotation: the rotation Q (per patch) inside the span of the
output layer that makes the decoded codes non-negative, by Gauss-Newton with restarts (default)
or by Riemannian gradient descent (kept for comparison: ``solver="gradient"``)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ganlearn.config import ConfigError
from ganlearn.fsr.model import polar
from ganlearn.rng import make_generator

__all__ = ["ROTATION_SOLVERS", "ROTATION_TOL", "Rotation", "nonnegative_rotation", "rotation_objective"]

ROTATION_SOLVERS = ("gauss_newton", "gradient")
ROTATION_TOL = 1e-10  # a patch is solved below this objective (relative to E||y||^2)


def rotation_objective(y: torch.Tensor, q: torch.Tensor, y_sq: torch.Tensor | None = None) -> torch.Tensor:
    """E||ReLU(-y Q)||^2 / E||y||^2 per patch; y (J, n, m) patches first, q (J, m, m); ``y_sq``: the
    patches' ||y||^2 if already known (the line search evaluates many Q on the same y)."""
    c = torch.bmm(y, q).clamp_(max=0)
    if y_sq is None:
        y_sq = torch.linalg.vector_norm(y, dim=(1, 2)).square()
    return torch.linalg.vector_norm(c, dim=(1, 2)).square() / y_sq


class Rotation(NamedTuple):
    """:func:`nonnegative_rotation`'s result: the rotations and each patch's final objective."""

    q: torch.Tensor
    objective: torch.Tensor


def nonnegative_rotation(
    y: torch.Tensor,
    *,
    steps: int,
    lr: float = 1.0,
    tol: float = ROTATION_TOL,
    solver: str = "gauss_newton",
    restarts: int = 8,
    seed: int = 0,
) -> Rotation:
    """Rotation Q (per patch) that makes the codes y Q non-negative: argmin over orthogonal Q of

        E || ReLU(-Q^T y) ||^2          (non-negative ICA, Plumbley 2003)

    y: (N, J, m) patches in the warm start's span coordinates, y = R s with R orthogonal (W and
    W* are both column-orthonormal with the same span) and s >= 0 sparse. The objective is 0 at
    Q = R P for any permutation P, and only there: Q^T R s >= 0 for every s, and sparse codes put
    mass on every axis e_i (samples where channel i fires alone), so the orthogonal Q^T R maps every
    e_i into the non-negative orthant and is a permutation. It is not convex, and the codes of an
    FSR target are not uncorrelated (Plumbley's condition for no spurious minima), so it has local
    minima. A patch is solved when its objective (relative to E||y||^2) is below ``tol``.

    ``solver="gauss_newton"`` (default): Q <- Q expm(Omega), Omega skew, the Gauss-Newton step of
    the piecewise-quadratic objective (exact Newton while the negative sets stay put) with
    backtracking; at most ``steps`` iterations per start, a patch stops when solved or when no
    step decreases it; the patches left unsolved restart from random rotations (``restarts``
    rounds, drawn from stream ``fsr.warm_start.rotation_restarts`` of ``seed``, the best start kept).
    ``solver="gradient"``: Riemannian gradient descent with the polar retraction, ``steps`` steps of
    size ``lr`` in units of the code scale, from the identity, no restarts.

    Why Gauss-Newton (measured): the gradient's rate along a rotation between two channels
    is the mass where one fires without the other, which is tiny for channels that mostly co-fire
    (children of one parent). In the 4-level per-patch shape-experiment cell (patch 4, parent
    graph, k = 2, seed 0, 4096 images) 3000 gradient steps left 1 of 16 level-2 patches, 8 of 64
    level-3 and 100 of 256 level-4 patches with a feature at cosine < 0.95 (worst 0.016; 20000 steps
    did not solve one of them either); Gauss-Newton from the identity left 2 / 64 and 14 / 256, all
    at local minima (objective ~1e-4), and 1-3 restarts solved every one (worst cosine 1.0000); the
    whole warm start of that cell took 36 s against the gradient's 422 s.

    y must span no more than the codes' rank: columns of round-off (a learner wider than the target)
    make the objective 0 along rotations that split a feature onto them (``WarmStart`` passes only
    the signal part of its span).

    Returns ``Rotation(q, objective)``: Q (J, m, m) and each patch's final objective (J,).
    """
    if solver not in ROTATION_SOLVERS:
        raise ConfigError(f"rotation solver={solver!r} is not allowed: must be one of {', '.join(ROTATION_SOLVERS)}")
    n, J, m = y.shape
    # Patches first, contiguous, once: every step then multiplies whole (n, m) blocks with bmm.
    y = y.transpose(0, 1).contiguous()  # (J, n, m)
    q = torch.eye(m, dtype=y.dtype, device=y.device).expand(J, m, m).clone()
    if m == 1:  # O(1) = {1, -1}: no rotation reaches -1 from 1; the sign that makes the mean code >= 0
        q = torch.where(y.sum(1, keepdim=True) < 0, -q, q)
    if solver == "gradient":
        q = _gradient(y, q, steps=steps, lr=lr, tol=tol)
        f = rotation_objective(y, q)
    else:
        # Newton converges quadratically: polish far below tol (a few cheap steps on the rows that are
        # still negative), so that a solved patch is exact to round-off. The objective alone says
        # little about the angle: a rotation of 2e-4 rad between two channels that mostly co-fire
        # costs only 6e-15 (measured on tests/fsr/test_rotation.py's planted codes).
        polish = tol * 1e-10
        q, f = _gauss_newton(y, q, steps=steps, tol=polish, solved=tol)
        g = make_generator(seed, "fsr.warm_start.rotation_restarts")
        for _ in range(restarts):
            bad = (f >= tol).nonzero().flatten()
            if bad.numel() == 0:
                break
            q0 = _random_rotations(bad.numel(), m, g).to(dtype=y.dtype, device=y.device)
            qr, fr = _gauss_newton(y[bad], q0, steps=steps, tol=polish, solved=tol)
            better = fr < f[bad]
            q[bad[better]], f[bad[better]] = qr[better], fr[better]
    return Rotation(q, f)


def _random_rotations(k: int, m: int, g: torch.Generator) -> torch.Tensor:
    """k Haar-random (m, m) rotations (QR of a Gaussian with the signs of R's diagonal fixed)."""
    a = torch.randn(k, m, m, generator=g, dtype=torch.float64)
    qq, r = torch.linalg.qr(a)
    return qq * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]


def _gradient(y: torch.Tensor, q: torch.Tensor, *, steps: int, lr: float, tol: float) -> torch.Tensor:
    """Riemannian gradient descent on every patch still above ``tol`` (the comparison solver).
    The negative parts are taken in place and the converged patches leave the batch (the 4-level
    per-patch warm start takes 420 s with that, 1724 s without)."""
    J, n, m = y.shape
    scale = y.pow(2).mean((1, 2))[:, None, None]  # per patch
    active = torch.arange(J, device=y.device)
    ya = y
    for _ in range(steps):
        qa = q[active]
        c = torch.bmm(ya, qa).clamp_(max=0)  # c = -ReLU(-y Q): the codes' negative parts
        obj = torch.linalg.vector_norm(c, dim=(1, 2)).square() / (n * m) / scale[active, 0, 0]
        keep = obj >= tol
        if not bool(keep.any()):
            break
        if not bool(keep.all()):  # drop the converged patches (a copy only when some converged)
            active, ya, qa, c = active[keep], ya[keep], qa[keep], c[keep]
        grad = torch.bmm(ya.transpose(1, 2), c) / (n * scale[active])  # = -E[y ReLU(-y Q)^T]
        q[active] = polar(qa - lr * grad)  # batched over patches
    return q


def _skew_supports(m: int, device) -> tuple[torch.Tensor, torch.Tensor, list]:
    """The skew parameters w_p, p = (a < b): Omega[a, b] = w_p, Omega[b, a] = -w_p. Code column i
    of c' = c (I + Omega) changes by sum_k c_k Omega[k, i]: w_p enters column b through row a with
    sign + and column a through row b with sign -. Returns (a, b, supports [(column, row, sign)])."""
    a, b = torch.triu_indices(m, m, 1, device=device)
    return a, b, [(b, a, 1.0), (a, b, -1.0)]


def _gauss_newton(
    y: torch.Tensor,
    q: torch.Tensor,
    *,
    steps: int,
    tol: float,
    solved: float = ROTATION_TOL,
    ridge: float = 1e-9,
    backtracks: int = 10,
    hessian_rows: int = 16384,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Newton on f(Q) = sum_i sum_n min(c_ni, 0)^2, c = y Q, over Q <- Q expm(Omega).

    On fixed negative sets N_i = {n: c_ni < 0}, f is quadratic in the skew Omega with gradient
    dF/dOmega[k, i] = 2 sum_{N_i} c_k c_i and a block-diagonal Hessian 2 sum_{N_i} c c^T per code
    column i: the Gauss-Newton model is exact up to the sets' changes, which the backtracking
    (step / 4 until f decreases) absorbs. Returns (Q, relative objective) per patch."""
    J, n, m = y.shape
    a, b, supports = _skew_supports(m, y.device)
    npairs = a.numel()
    eye = torch.eye(npairs, dtype=y.dtype, device=y.device)
    q = q.clone()
    y_sq = torch.linalg.vector_norm(y, dim=(1, 2)).square()
    f = rotation_objective(y, q, y_sq)
    active = (f >= tol).nonzero().flatten()
    for _ in range(steps):
        if active.numel() == 0:
            break
        k = active.numel()
        ya = y if k == J else y[active]  # (a copy only once some patch is done)
        qa, fa = q[active], f[active]
        f_before = fa.clone()
        c = torch.bmm(ya, qa)
        neg = c < 0
        grad = torch.bmm(c.transpose(1, 2), c.clamp(max=0))  # (k, row, column)
        g = grad[:, a, b] - grad[:, b, a]
        # Rows with no negative entry add nothing to the Hessian (near the end, most rows); of the
        # others at most ``hessian_rows`` per patch are used, the sum scaled up to all of them (a
        # subsampled Gauss-Newton matrix is still positive definite, so the step still descends;
        # the gradient is exact). Shared output layers pool every patch: 262144 rows at level 3 of
        # the default preset, where the exact Hessian took the warm start from 3 to 7 s.
        has_neg = neg.any(2).to(c.dtype)
        counts = has_neg.sum(1)
        rows = min(int(counts.max()), hessian_rows)
        if rows < n // 2:
            idx = torch.topk(has_neg, rows, dim=1).indices  # rows with a negative first, per patch
            c = torch.gather(c, 1, idx[..., None].expand(k, rows, m))
            neg = torch.gather(neg, 1, idx[..., None].expand(k, rows, m))
        up = (counts / counts.clamp(max=rows)).clamp_min(1.0)[:, None, None, None]  # used rows -> all
        hcol = up * torch.stack([torch.bmm((c * neg[:, :, i : i + 1]).transpose(1, 2), c) for i in range(m)], 1)
        del c, neg  # (k, n, m) each: not needed by the line search
        hs = torch.zeros(k, npairs, npairs, dtype=y.dtype, device=y.device)
        for col_p, row_p, s_p in supports:
            for col_q, row_q, s_q in supports:
                same = (col_p[:, None] == col_q[None, :]).to(y.dtype)
                hs += (s_p * s_q) * same * hcol[:, col_p[:, None], row_p[:, None], row_q[None, :]]
        lam = ridge * hs.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(torch.finfo(y.dtype).tiny)
        w = torch.linalg.solve(hs + lam[:, None, None] * eye, -g)
        omega = torch.zeros(k, m, m, dtype=y.dtype, device=y.device)
        omega[:, a, b], omega[:, b, a] = w, -w
        step = torch.ones(k, 1, 1, dtype=y.dtype, device=y.device)
        moved = torch.zeros(k, dtype=torch.bool, device=y.device)
        for _ in range(backtracks):
            qn = torch.bmm(qa, torch.linalg.matrix_exp(step * omega))
            fn = rotation_objective(ya, qn, y_sq[active])
            better = (fn < fa) & ~moved
            qa[better], fa[better] = qn[better], fn[better]
            moved |= better
            if bool(moved.all()):
                break
            step = torch.where(moved[:, None, None], step, step / 4)
        q[active], f[active] = qa, fa
        # Done: solved, stuck (no step decreased f), a step below round-off, or, once below ``solved``
        # (the polish), a step that gains less than 10x: round-off in the data (float32 images) sets
        # a floor above 0 that every step approaches a little (without this rule the pooled level 3
        # of a learner with m = 24 for 16 polished for over 10 min).
        tiny = step[:, 0, 0] * torch.linalg.vector_norm(w, dim=1) < 1e-12
        slow = (fa < solved) & (fa > 0.1 * f_before)
        active = active[moved & (fa >= tol) & ~tiny & ~slow]
    return q, f
