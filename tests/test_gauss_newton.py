"""Closed-form checks of the matrix-free Gauss-Newton solve (ganlearn.gauss_newton)."""

import torch
from reference import gauss_newton_direction

from ganlearn.gauss_newton import conjugate_gradient, jacobian_trace


def test_conjugate_gradient_solves_an_spd_system_in_dim_steps(gen):
    a = torch.randn(12, 12, generator=gen, dtype=torch.float64)
    spd = a @ a.T + 0.1 * torch.eye(12, dtype=torch.float64)
    b = torch.randn(12, generator=gen, dtype=torch.float64)
    (x,) = conjugate_gradient(lambda v: (spd @ v[0],), (b,), iters=12)
    assert torch.allclose(x, torch.linalg.solve(spd, b), atol=1e-8)
    (x2,) = conjugate_gradient(lambda v: (spd @ v[0],), (torch.zeros(12, dtype=torch.float64),), iters=5)
    assert torch.equal(x2, torch.zeros(12, dtype=torch.float64))  # zero right-hand side: no NaN


def test_gauss_newton_direction_of_a_linear_map_is_the_damped_normal_equations(gen):
    """f(V, b) = A vec(V) + B b is linear, so J = [A, B] exactly and the direction is
    (c J^T J + delta I)^{-1} g, split back into the shapes of (V, b)."""
    A = torch.randn(30, 6, generator=gen, dtype=torch.float64)
    B = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    f = lambda V, b: A @ V.flatten() + B @ b  # noqa: E731
    V, b = torch.randn(2, 3, generator=gen, dtype=torch.float64), torch.randn(2, generator=gen, dtype=torch.float64)
    g = (torch.randn(2, 3, generator=gen, dtype=torch.float64), torch.randn(2, generator=gen, dtype=torch.float64))
    c, delta = 0.5, 1e-2
    x = gauss_newton_direction(f, (V, b), g, curvature_scale=c, damping=delta, iters=8)
    J = torch.cat([A, B], 1)
    want = torch.linalg.solve(
        c * J.T @ J + delta * torch.eye(8, dtype=torch.float64), torch.cat([g[0].flatten(), g[1]])
    )
    assert torch.allclose(x[0].flatten(), want[:6], atol=1e-8) and torch.allclose(x[1], want[6:], atol=1e-8)


def test_jacobian_trace_estimates_the_mean_curvature(gen):
    A = torch.randn(40, 10, generator=gen, dtype=torch.float64)
    f = lambda v: A @ v  # noqa: E731
    est = jacobian_trace(f, (torch.zeros(10, dtype=torch.float64),), generator=gen, probes=4000)
    exact = (A**2).sum() / 10  # tr(A^T A) / dim
    assert abs(float(est / exact) - 1) < 0.05
