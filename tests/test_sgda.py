"""SGDA (ganlearn.sgda): games with closed-form solutions, and SGDA owning its optimizer state and
step-size schedule (an exact resume from its state_dict, the schedule at its own step counter)."""

import math

import pytest
import torch

from ganlearn.io import load_tensors, save_tensors
from ganlearn.sgda import SGDA, SGDAConfig


def _game(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_(True)
    y = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_(True)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)

    def losses(gen):  # min_x max_y x^T A y + noise-free quadratic terms; draws from gen like a batch
        noise = torch.randn(3, generator=gen, dtype=torch.float64) * 1e-3
        v = x @ a @ y + 0.5 * x.pow(2).sum() - 0.5 * y.pow(2).sum() + noise @ x
        return -v, v

    return x, y, losses


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_from_state_dict_is_exact(tmp_path, optimizer):
    cfg = SGDAConfig(lr_g=0.05, lr_d=0.05, n_d=2, optimizer=optimizer)
    sched = lambda t: 0.5 ** (t / 3)  # noqa: E731
    x, y, losses = _game()
    sgda = SGDA([x], [y], cfg, schedule=sched)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        sgda.step(losses, g)
    save_tensors(tmp_path / "s.safetensors", sgda.state_dict() | {"x": x, "y": y, "rng": g.get_state()})
    for _ in range(5):
        sgda.step(losses, g)
    want = (x.detach().clone(), y.detach().clone())

    saved, _ = load_tensors(tmp_path / "s.safetensors")
    x2, y2, losses2 = _game()
    with torch.no_grad():
        x2.copy_(saved["x"])
        y2.copy_(saved["y"])
    sgda2 = SGDA([x2], [y2], cfg, schedule=sched)
    sgda2.load_state_dict(saved)
    assert sgda2.t == 5
    g2 = torch.Generator().manual_seed(999)
    g2.set_state(saved["rng"])
    for _ in range(5):
        sgda2.step(losses2, g2)
    assert torch.equal(x2.detach(), want[0]) and torch.equal(y2.detach(), want[1])


def test_schedule_scales_both_step_sizes_at_sgdas_own_counter():
    # One plain-SGD simultaneous step on V(x, y) = x y from (1, 1): x -= lr_g s(t) y, y += lr_d s(t) x.
    x = torch.ones(1, dtype=torch.float64, requires_grad=True)
    y = torch.ones(1, dtype=torch.float64, requires_grad=True)

    def losses(gen):
        v = (x * y).sum()
        return -v, v

    sgda = SGDA([x], [y], SGDAConfig(lr_g=0.1, lr_d=0.2, mode="simultaneous"), schedule=lambda t: 10.0**-t)
    g = torch.Generator()
    sgda.step(losses, g)  # t = 0: scale 1
    assert x.item() == pytest.approx(1 - 0.1) and y.item() == pytest.approx(1 + 0.2)
    x0, y0 = x.item(), y.item()
    sgda.step(losses, g)  # t = 1: scale 0.1
    assert x.item() == pytest.approx(x0 - 0.01 * y0) and y.item() == pytest.approx(y0 + 0.02 * x0)
    assert sgda.t == 2 and sgda.lr_scale() == pytest.approx(0.01)


@pytest.mark.parametrize("mode", ["simultaneous", "alternating"])
def test_sgda_on_bilinear_game(mode):
    """min_x max_y x*y: simultaneous GDA spirals out by exactly sqrt(1 + eta^2) per step;
    alternating GDA keeps the orbit bounded (it conserves x^2 + y^2 - eta*x*y... up to O(eta))."""
    eta = 0.1
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
    algo = SGDA([x], [y], SGDAConfig(lr_g=eta, lr_d=eta, n_d=1, mode=mode))
    g = torch.Generator()
    for _ in range(200):
        algo.step(lambda _g: (-(x * y).sum(), (x * y).sum()), g)
    r = math.hypot(float(x.detach()), float(y.detach()))
    if mode == "simultaneous":
        assert r == pytest.approx((1 + eta**2) ** (200 / 2), rel=1e-9)
    else:
        assert 0.8 < r < 1.2


def test_sgda_converges_on_strongly_monotone_quadratic_game():
    """min_x max_y x^2/2 + x*y - y^2/2: unique saddle at 0, GDA contracts."""
    x = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([-1.0], dtype=torch.float64, requires_grad=True)
    algo = SGDA([x], [y], SGDAConfig(lr_g=0.1, lr_d=0.1, n_d=3))

    def f():
        return (0.5 * x * x + x * y - 0.5 * y * y).sum()

    for _ in range(300):
        algo.step(lambda _g: (-f(), f()), torch.Generator())
    assert abs(float(x.detach())) < 1e-6 and abs(float(y.detach())) < 1e-6


def test_sgd_discriminator_with_unit_step_lands_on_the_inner_maximiser(gen):
    """V = theta (a - p) - theta^2 / 2 has argmax theta* = a - p; plain SGD with lr_d * lambda = 1
    reaches it in one step whatever the generator's optimizer (here Adam)."""
    p = torch.nn.Parameter(torch.tensor([0.3], dtype=torch.float64))
    theta = torch.nn.Parameter(torch.tensor([5.0], dtype=torch.float64))
    sgda = SGDA([p], [theta], SGDAConfig(lr_g=0.01, lr_d=1.0, n_d=1, optimizer="adam", d_optimizer="sgd"))
    assert isinstance(sgda.g_opt, torch.optim.Adam) and isinstance(sgda.d_opt, torch.optim.SGD)

    def losses(g):
        v = (theta * (2.0 - p)).sum() - 0.5 * theta.pow(2).sum()
        return -v, v

    p_before = p.detach().clone()
    sgda.step(losses, gen)
    assert theta.item() == pytest.approx(2.0 - p_before.item(), abs=1e-12)
    with pytest.raises(ValueError, match="d_optimizer=.rmsprop. is not allowed"):
        SGDAConfig(d_optimizer="rmsprop")
