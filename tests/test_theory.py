"""Closed-form checks on tiny problems."""
import math

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles

from ganlearn.fsr.config import TargetConfig, WarmStartStage
from ganlearn.fsr.stages import WarmStart
from ganlearn.fsr.target import FSRTarget, make_learner
from ganlearn.fsr.config import LearnerConfig
from ganlearn.metrics.alignment import match_columns, procrustes_rows
from ganlearn.metrics.distances import sliced_w2
from ganlearn.metrics.recovery import coupled_error, feature_recovery, procrustes_latent_map
from ganlearn.metrics.sparsity import coactivation_stats
from ganlearn.sgda import SGDA, SGDAConfig

TINY = TargetConfig(levels=2, base_grid=2, patch=2, colours=3, channels=8, sparsity=1.5, latent_dim=12)


def test_warm_start_recovers_span_of_w_star_on_noiseless_target(gen):
    target = FSRTarget(TINY, seed=0, dtype=torch.float64, n_calibration=4000)
    learner = make_learner(TINY, LearnerConfig(), seed=1, dtype=torch.float64)
    before = [subspace_angles(learner.W[i][0].detach().numpy(), target.net.W[i][0].numpy()).max() for i in range(2)]
    ws = WarmStart(WarmStartStage(n_samples=3000), learner, lambda n, generator: target.sample(n, generator=generator)[0], gen)
    ws.step(0, gen)
    for i in range(2):
        angles = subspace_angles(learner.W[i][0].detach().numpy(), target.net.W[i][0].numpy())
        assert angles.max() < 1e-6, (i, angles.max())
        assert before[i] > 0.1  # a random start is not already aligned
        # orthonormal columns, as the learner's W must be
        w = learner.W[i][0].detach()
        assert torch.allclose(w.T @ w, torch.eye(w.shape[1], dtype=w.dtype), atol=1e-10)


def test_sliced_w2_of_shifted_gaussian_matches_closed_form():
    rng = np.random.default_rng(0)
    d, n = 4, 20000
    mu = np.array([1.0, -2.0, 0.5, 0.0])
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d)) + mu
    # Each projection is a pure shift by <theta, mu>; E <theta, mu>^2 = |mu|^2 / d.
    expected = np.linalg.norm(mu) / math.sqrt(d)
    assert sliced_w2(x, y, n_projections=2000, seed=1) == pytest.approx(expected, rel=0.05)
    assert sliced_w2(x, rng.standard_normal((n, d)), n_projections=500, seed=1) < 0.05


def test_alignment_recovers_planted_permutation_and_rotation():
    g = torch.Generator().manual_seed(3)
    w_true = torch.linalg.qr(torch.randn(20, 7, generator=g, dtype=torch.float64))[0]
    perm = torch.randperm(7, generator=g)
    w = w_true[:, perm] + 1e-3 * torch.randn(20, 7, generator=g, dtype=torch.float64)
    found, cos = match_columns(w, w_true)
    assert (perm[torch.as_tensor(found)] == torch.arange(7)).all()
    assert cos.min() > 0.99
    # rotation: b = a Q for a planted orthogonal Q
    a = torch.randn(50, 6, generator=g, dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))[0]
    assert torch.allclose(procrustes_rows(a, a @ q), q, atol=1e-10)


def test_signed_matching_does_not_accept_a_flipped_feature():
    w_true = torch.eye(4, dtype=torch.float64)
    _, cos = match_columns(-w_true, w_true)
    assert cos.max() <= 0


def test_coupled_error_is_zero_for_a_permuted_rotated_copy_of_the_target():
    target = FSRTarget(TINY, seed=0, dtype=torch.float64, n_calibration=4000)
    learner = make_learner(TINY, LearnerConfig(), seed=1, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    m = TINY.channels
    perms = [torch.randperm(m, generator=g) for _ in range(2)]
    q = torch.linalg.qr(torch.randn(TINY.latent_dim, TINY.latent_dim, generator=g, dtype=torch.float64))[0]
    with torch.no_grad():
        # Learner channel r of level l is target channel perm_l[r]; latent rotated by q.
        learner.W[0].copy_(target.net.W[0][:, :, perms[0]])
        learner.V[0].copy_(target.net.V[0][:, perms[0]] @ q)
        learner.b[0].copy_(target.net.b[0][:, perms[0]])
        learner.W[1].copy_(target.net.W[1][:, :, perms[1]])
        learner.V[1].copy_(target.net.V[1][:, perms[1]][..., perms[0]])
        learner.b[1].copy_(target.net.b[1][:, perms[1]])
    fr = feature_recovery(learner.W, target.net.W)
    assert fr["level1"]["cos_min"] == pytest.approx(1.0)
    ut0 = procrustes_latent_map(learner.V[0], target.net.V[0], fr["perms"][0])
    assert torch.allclose(ut0, q, atol=1e-10)  # Procrustes recovers the latent rotation exactly
    out = coupled_error(learner, target.net, ut0=ut0, perms=fr["perms"], n_fit=200, n_eval=500, fit_steps=0,
                        generator=g)
    assert out["coupled_rel_error"] < 1e-20
    assert out["hidden_rel_error_level2"] < 1e-20
    # The same learner coupled through the wrong U (the identity) is far off: U matters.
    out2 = coupled_error(learner, target.net, ut0=torch.eye(TINY.latent_dim, dtype=torch.float64), perms=fr["perms"],
                         n_fit=200, n_eval=500, fit_steps=0, generator=g)
    assert out2["coupled_rel_error"] > 0.1


def test_coactivation_ratios_are_one_for_independent_codes():
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(40000, 3, 6, generator=g) < 0.3).double()
    st = coactivation_stats(s, k_over_m=0.3)
    assert st["fire_rate_mean"] == pytest.approx(0.3, abs=0.01)
    assert st["pair_ratio_mean"] == pytest.approx(1.0, abs=0.03)
    assert st["triple_ratio_mean"] == pytest.approx(1.0, abs=0.06)


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
        assert r == pytest.approx((1 + eta ** 2) ** (200 / 2), rel=1e-9)
    else:
        assert 0.8 < r < 1.2


def test_sgda_converges_on_strongly_monotone_quadratic_game():
    """min_x max_y x^2/2 + x*y - y^2/2: unique saddle at 0, GDA contracts."""
    x = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([-1.0], dtype=torch.float64, requires_grad=True)
    algo = SGDA([x], [y], SGDAConfig(lr_g=0.1, lr_d=0.1, n_d=3))
    f = lambda: (0.5 * x * x + x * y - 0.5 * y * y).sum()
    for _ in range(300):
        algo.step(lambda _g: (-f(), f()), torch.Generator())
    assert abs(float(x)) < 1e-6 and abs(float(y)) < 1e-6


def test_output_layer_polish_of_one_level_moves_only_that_level_towards_w_star(gen):
    """With the hidden layers right (fake code law = real code law), W* is the fixed point of the
    thresholded game: a perturbed W_1 is pulled back, and the other levels are not touched."""
    from ganlearn.fsr.config import OutputLayerStage
    from ganlearn.fsr.model import polar
    from ganlearn.fsr.stages import OutputLayer

    target = FSRTarget(TINY, seed=0, dtype=torch.float64, n_calibration=4000)
    learner = make_learner(TINY, LearnerConfig(), seed=1, dtype=torch.float64)
    learner.load_state_dict(target.net.state_dict())
    with torch.no_grad():
        w = learner.W[0]
        w[0].copy_(polar(w[0] + 0.15 * torch.randn(w[0].shape, generator=gen, dtype=w.dtype)))
    w2_before = learner.W[1].detach().clone()
    cos_before = feature_recovery(learner.W, target.net.W)["level1"]["cos_mean"]
    spec = OutputLayerStage(level=1, steps=200, batch=512, beta_start=0.2, lr_floor=1.0,
                            sgda=SGDAConfig(lr_g=1.0, lr_d=1.0, n_d=2))
    data = lambda n, generator, upto=None: target.sample(n, generator=generator, upto=upto)[0]  # noqa: E731
    runner = OutputLayer(spec, learner, data, gen)
    for t in range(spec.steps):
        runner.step(t, gen)
    cos_after = feature_recovery(learner.W, target.net.W)["level1"]["cos_mean"]
    assert cos_before < 0.995 and cos_after > 0.995, (cos_before, cos_after)
    assert torch.equal(learner.W[1].detach(), w2_before)


def test_output_layer_level_out_of_range_is_a_clear_error(gen):
    from ganlearn.fsr.config import OutputLayerStage
    from ganlearn.fsr.stages import OutputLayer

    target = FSRTarget(TINY, seed=0, n_calibration=2000)
    learner = make_learner(TINY, LearnerConfig(), seed=1)
    data = lambda n, generator, upto=None: target.sample(n, generator=generator, upto=upto)[0]  # noqa: E731
    with pytest.raises(ValueError, match="output_layer.level=3 but the learner has 2 levels"):
        OutputLayer(OutputLayerStage(level=3), learner, data, gen)


def test_whitening_is_an_inverse_square_root_and_keeps_moment_matching_solutions(gen):
    from ganlearn.fsr.discriminators import code_moments, whitening

    a = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    c = a @ a.T + 0.1 * torch.eye(6, dtype=torch.float64)
    m = whitening(c, rel_ridge=0.0)
    assert torch.allclose(m @ c @ m.T, torch.eye(6, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(m, m.T, atol=1e-12)
    # The whitened moments are an invertible linear image of the raw ones: equal raw moments give
    # equal whitened moments, and the whitened second moment is M E[s s^T] M^T exactly.
    s = torch.relu(torch.randn(500, 2, 3, generator=gen, dtype=torch.float64))
    mean_w, second_w = code_moments(s, m)
    mean, second = code_moments(s)
    assert torch.allclose(mean_w, m @ mean, atol=1e-12) and torch.allclose(second_w, m @ second @ m.T, atol=1e-12)
    # A singular C (a coordinate that is always zero) stays finite thanks to the relative ridge.
    c0 = torch.zeros(3, 3, dtype=torch.float64)
    c0[0, 0] = c0[1, 1] = 1.0
    assert torch.isfinite(whitening(c0)).all()


def test_whitening_inverse_is_exact_for_large_batched_blocks_with_two_threads(gen):
    # Regression: the preconditioned super-resolution stage inverted a (J, q, q) whitening with
    # torch.linalg.inv, whose batched LU is broken on the torch 2.13 CPU build with 2+ threads
    # for q >= ~160 (the 5-level m = 32 square-graph target has q = 289 and crashed).
    from ganlearn.fsr.discriminators import whitening

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a = torch.randn(4, 200, 200, generator=gen)
        c = a @ a.mT / 200 + 0.1 * torch.eye(200)
        m, m_inv = whitening(c, with_inverse=True)
        assert torch.allclose(m @ m_inv, torch.eye(200).expand(4, 200, 200), atol=1e-3)
    finally:
        torch.set_num_threads(threads)


def test_pair_moments_whitened_per_patch_match_the_explicit_formula(gen):
    from ganlearn.fsr.discriminators import pair_moments, with_bias

    s_hi = torch.rand(50, 2, 3, generator=gen, dtype=torch.float64)
    parents = torch.rand(50, 2, 2, 4, generator=gen, dtype=torch.float64)
    white = torch.randn(2, 9, 9, generator=gen, dtype=torch.float64)
    got = pair_moments(s_hi, parents, white)
    x = with_bias(parents)
    for j in range(2):
        want = s_hi[:, j].T @ (x[:, j] @ white[j].T) / 50
        assert torch.allclose(got[j], want, atol=1e-12)
    assert torch.equal(x[:, :, 0], torch.ones(50, 2, dtype=torch.float64))


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
    with pytest.raises(ValueError, match="d_optimizer must be"):
        SGDAConfig(d_optimizer="rmsprop")


def test_preconditioned_super_resolution_keeps_the_map_and_learns_a_planted_layer(gen):
    """Every layer but V_2 exact: SR in whitened coordinates starts from the same map (V_w M =
    [-b, V]), keeps the learner's (V, b) in sync with V_w after each step, and drives the level-2
    code error well down."""
    from ganlearn.fsr.config import SuperResolutionStage
    from ganlearn.fsr.stages import SuperResolution

    target = FSRTarget(TINY, seed=0, dtype=torch.float64, n_calibration=4000)
    learner = make_learner(TINY, LearnerConfig(), seed=1, dtype=torch.float64)
    random_v2 = (learner.V[1].detach().clone(), learner.b[1].detach().clone())
    learner.load_state_dict(target.net.state_dict())
    with torch.no_grad():
        learner.V[1].copy_(random_v2[0])
        learner.b[1].copy_(random_v2[1])
    data = lambda n, generator, upto=None: target.sample(n, generator=generator, upto=upto)[0]  # noqa: E731
    spec = SuperResolutionStage(level=2, steps=400, batch=256)
    runner = SuperResolution(spec, learner, data, gen)
    full = torch.cat([-learner.b[1][..., None], learner.V[1].flatten(2)], -1)
    assert torch.allclose(runner.v_white.detach() @ runner.white, full, atol=1e-8)

    def code_error():
        z = torch.randn(4000, TINY.latent_dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        with torch.no_grad():
            s_true, s_hat = target.net(z)[1][1], learner(z)[1][1]
        return float((s_hat - s_true).pow(2).sum() / s_true.pow(2).sum())

    before = code_error()
    for t in range(spec.steps):
        runner.step(t, gen)
    after = code_error()
    full = torch.cat([-learner.b[1][..., None], learner.V[1].flatten(2)], -1)
    assert torch.allclose(runner.v_white.detach() @ runner.white, full, atol=1e-8)
    assert before > 0.5 and after < 0.05, (before, after)


def test_nonnegative_rotation_recovers_a_planted_rotation_of_sparse_codes(gen):
    """y = R s with s >= 0 sparse and R orthogonal (per patch): the rotation that makes y Q
    non-negative is R up to a permutation, so Q^T R is a permutation matrix."""
    from ganlearn.fsr.stages import nonnegative_rotation

    n, J, m = 4000, 3, 6
    s = torch.relu(torch.randn(n, J, m, generator=gen, dtype=torch.float64) - 1.0)  # fires w.p. 0.16
    R = torch.stack([torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))[0] for _ in range(J)])
    y = torch.einsum("jmk,njk->njm", R, s)
    q = nonnegative_rotation(y, steps=3000, lr=1.0)
    p = torch.einsum("jmk,jml->jkl", q, R)  # Q^T R
    assert torch.allclose(p.abs().amax(-1), torch.ones(J, m, dtype=p.dtype), atol=1e-4)
    assert torch.allclose(p.clamp_min(0).sum(-1), torch.ones(J, m, dtype=p.dtype), atol=1e-4)  # a permutation, signs +
    assert torch.relu(-torch.einsum("njm,jmk->njk", y, q)).max() < 1e-4


def test_warm_start_recovers_per_patch_features(gen):
    """Per-patch output layers (shared_output=false): span + non-negative rotation give every
    patch's own features; GAN_OutputLayer alone did not (README, issue 11)."""
    import dataclasses

    cfg = dataclasses.replace(TINY, shared_output=False)
    target = FSRTarget(cfg, seed=0, dtype=torch.float64, n_calibration=4000)
    learner = make_learner(cfg, LearnerConfig(), seed=1, dtype=torch.float64)
    data = lambda n, generator, upto=None: target.sample(n, generator=generator, upto=upto)[0]  # noqa: E731
    span_only = make_learner(cfg, LearnerConfig(), seed=1, dtype=torch.float64)
    WarmStart(WarmStartStage(n_samples=3000, rotation="span"), span_only, data, gen).step(0, gen)
    WarmStart(WarmStartStage(n_samples=3000), learner, data, gen).step(0, gen)
    fr, fr_span = feature_recovery(learner.W, target.net.W), feature_recovery(span_only.W, target.net.W)
    for lv in (1, 2):
        assert learner.W[lv - 1].shape[0] == target.net.W[lv - 1].shape[0] > 1
        assert fr[f"level{lv}"]["cos_min"] > 0.999, fr
        assert fr_span[f"level{lv}"]["cos_min"] < 0.9  # the span alone is a rotated basis
