"""The warm start's non-negative rotation (ganlearn.fsr.stages.rotation) on planted problems whose
answer is known: y = R s per patch, R orthogonal, s >= 0 the codes of children of sparse parents
(s = ReLU(V p - b), as an FSR target's level-l codes are), so the solution is Q = R up to a
permutation of the columns."""

import pytest
import torch

from ganlearn.config import ConfigError
from ganlearn.fsr.stages.rotation import ROTATION_TOL, nonnegative_rotation, rotation_objective


def _children_codes(seed: int, n: int, J: int, m: int, fire: float):
    """(y (n, J, m), R (J, m, m)): J patches of m child codes of m sparse parents each (every
    child's bias set so it fires with probability ``fire``), rotated by a random R per patch."""
    g = torch.Generator().manual_seed(seed)
    parents = torch.relu(torch.randn(n, J, m, generator=g, dtype=torch.float64) - 1.15)  # fires w.p. 1/8
    V = torch.randn(J, m, m, generator=g, dtype=torch.float64)
    pre = torch.einsum("jmp,njp->njm", V, parents)
    s = torch.relu(pre - torch.quantile(pre, 1 - fire, dim=0))
    R = torch.linalg.qr(torch.randn(J, m, m, generator=g, dtype=torch.float64))[0]
    return torch.einsum("jmk,njk->njm", R, s), R


def _is_permutation(q: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Per patch: Q^T R is a permutation matrix (one entry ~1 per row, the rest ~0)."""
    p = torch.einsum("jmk,jml->jkl", q, R)
    return (p.amax(-1) > 1 - 1e-6).all(-1) & (p.abs().sum(-1) < 1 + 1e-4).all(-1)


def test_gauss_newton_solves_children_codes_that_the_gradient_solver_does_not():
    """Children of one parent mostly fire together, so the objective is nearly flat along the
    rotations that mix them: 3000 Riemannian gradient steps leave patches unsolved, Gauss-Newton
    (exact Newton on fixed negative sets) solves every one."""
    y, R = _children_codes(0, n=2000, J=8, m=8, fire=1 / 8)
    q, f = nonnegative_rotation(y, steps=3000)
    assert _is_permutation(q, R).all() and (f < ROTATION_TOL).all(), f
    assert torch.allclose(f, rotation_objective(y.transpose(0, 1).contiguous(), q))
    q_grad = nonnegative_rotation(y, steps=3000, solver="gradient").q
    assert not _is_permutation(q_grad, R).all()  # the case is hard for the gradient


def test_restarts_take_every_patch_out_of_its_local_minimum():
    """From the identity, Gauss-Newton ends one of these 16 patches at a local minimum (objective
    above the tolerance, Q not a permutation); the random restarts solve it."""
    y, R = _children_codes(0, n=2000, J=16, m=8, fire=1 / 4)
    q0, f0 = nonnegative_rotation(y, steps=3000, restarts=0)
    stuck = f0 >= ROTATION_TOL
    assert stuck.any() and not _is_permutation(q0, R)[stuck].any()
    q, f = nonnegative_rotation(y, steps=3000)
    assert _is_permutation(q, R).all() and (f < ROTATION_TOL).all(), f
    assert torch.equal(q[~stuck], q0[~stuck])  # the solved patches are left as they were


def test_rotation_solver_must_be_known():
    with pytest.raises(ConfigError, match="solver='newton'"):
        nonnegative_rotation(torch.zeros(4, 1, 2, dtype=torch.float64), steps=1, solver="newton")


@pytest.mark.parametrize("solver", ["gauss_newton", "gradient"])
def test_one_channel_gets_the_sign_that_makes_its_codes_non_negative(solver):
    """m = 1: no rotation turns 1 into -1 (the eigenvector's sign is arbitrary), so the sign is set."""
    s = torch.relu(torch.randn(500, 3, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 1)
    y = s * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)[None, :, None]
    q, f = nonnegative_rotation(y, steps=10, solver=solver)
    assert q.flatten().tolist() == [1.0, -1.0, -1.0] and (f == 0).all()
