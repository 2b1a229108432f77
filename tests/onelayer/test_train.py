"""One-layer generators phi(W x): closed forms on tiny problems."""

import math

import pytest
import torch

from ganlearn.onelayer.discriminators import relu_second_moment, truncated_stats
from ganlearn.onelayer.metrics import gaussian_tv_upper, sigma_rel_error
from ganlearn.onelayer.model import OneLayerGenerator, activation, conditioned_matrix


def test_relu_truncated_moments_match_the_arc_cosine_closed_form(gen):
    w = conditioned_matrix(4, 3.0, generator=gen)
    g = OneLayerGenerator(w, "relu")
    y = g.sample(400_000, generator=gen)
    emp = truncated_stats(y, activation("relu"))
    exact = relu_second_moment(w @ w.T)
    assert torch.allclose(exact.diagonal(), (w @ w.T).diagonal() / 2)
    # Monte-Carlo error of a mean of 400k draws: well under 1% of the scale.
    assert (emp - exact).abs().max() < 0.01 * exact.abs().max(), (emp - exact).abs().max()


def test_relu_moment_is_increasing_in_the_correlation():
    rhos = torch.linspace(-0.99, 0.99, 50, dtype=torch.float64)
    vals = torch.stack(
        [relu_second_moment(torch.tensor([[1.0, r], [r, 1.0]], dtype=torch.float64))[0, 1] for r in rhos]
    )
    assert (vals.diff() > 0).all()
    r = float(rhos[25])
    assert vals[25].item() == pytest.approx(
        (math.sqrt(1 - r**2) + r * (math.pi - math.acos(r))) / (2 * math.pi), rel=1e-12
    )


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "sigmoid"])
def test_law_is_unchanged_under_right_rotation(act, gen):
    """phi(W Q x) has the law of phi(W x): compare sorted 1-D projections (a W1 estimate)."""
    w = conditioned_matrix(3, 2.0, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    a = OneLayerGenerator(w, act).sample(200_000, generator=torch.Generator().manual_seed(1))
    b = OneLayerGenerator(w @ q, act).sample(200_000, generator=torch.Generator().manual_seed(2))
    c = OneLayerGenerator(w + 0.3 * torch.eye(3, dtype=torch.float64), act).sample(
        200_000, generator=torch.Generator().manual_seed(2)
    )
    theta = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)

    def w1(x, y):
        return ((x @ theta).sort().values - (y @ theta).sort().values).abs().mean().item()

    assert w1(a, b) < 0.2 * w1(a, c), (w1(a, b), w1(a, c))
    assert sigma_rel_error((w @ q) @ (w @ q).T, w @ w.T) < 1e-12


def test_tv_bound_is_zero_at_the_truth_and_saturates(gen):
    w = conditioned_matrix(5, 10.0, generator=gen)
    s = w @ w.T
    assert gaussian_tv_upper(s, s) < 1e-9
    assert gaussian_tv_upper(4 * s, s) == 1.5
    s_v = torch.linalg.svdvals(w)
    assert (s_v.max() / s_v.min()).item() == pytest.approx(10.0, rel=1e-9)
    assert w.norm().item() ** 2 == pytest.approx(5.0, rel=1e-12)


def test_sigmoid_inverse_recovers_preactivations(gen):
    act = activation("sigmoid")
    z = torch.randn(1000, 4, generator=gen, dtype=torch.float64) * 3
    psi, mask = act.invert(act.phi(z))
    inside = z.abs() < 9.0  # logit(1 - 1e-4) = 9.21: the set S where sigmoid is inverted
    assert mask[inside].all() and not mask[z.abs() > 9.3].any()
    assert torch.allclose(psi[mask], z[mask], atol=1e-8)
    with pytest.raises(ValueError, match="activation='tanh' is not allowed"):
        activation("tanh")


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "sigmoid"])
def test_sgda_on_truncated_statistics_learns_sigma_on_a_tiny_instance(act):
    from ganlearn.onelayer import OneLayerConfig, train

    start = train(OneLayerConfig(d=3, activation=act, steps=1, eval_every=1))["sigma_rel_error"]
    out = train(OneLayerConfig(d=3, activation=act, steps=800, eval_every=200))
    assert out["sigma_rel_error"] < 0.1 and out["sigma_rel_error"] < 0.2 * start, (start, out["sigma_rel_error"])
    assert out["samples_to_eps"]["0.4"] is not None
    assert out["samples"] == 800 * 512  # real samples: one batch per step


def test_onelayer_config_errors_name_the_field():
    from ganlearn.onelayer import OneLayerConfig, train

    with pytest.raises(ValueError, match="condition=0.5 is not allowed: must be a number >= 1"):
        train(OneLayerConfig(condition=0.5))
    with pytest.raises(ValueError, match="discriminator='gp' is not allowed"):
        train(OneLayerConfig(discriminator="gp"))


def test_mlp_discriminator_honours_its_config_and_learns():
    from ganlearn.onelayer import OneLayerConfig, train

    out = train(OneLayerConfig(d=3, discriminator="mlp", steps=2, eval_every=1))
    assert out["resolved"] == {
        "g_optimizer": "adam",
        "lr_d": 1e-3,
        "d_optimizer": "adam",
        "lr_g": 0.3,
        "step_scale": "none",
    }
    out = train(OneLayerConfig(d=3, discriminator="mlp", steps=2, eval_every=1, lr_d=0.01, g_optimizer="sgd"))
    assert out["resolved"]["lr_d"] == 0.01 and out["resolved"]["g_optimizer"] == "sgd"
    # The comparison GAN does learn on a tiny instance (Adam, non-saturating loss).
    start = train(OneLayerConfig(d=3, discriminator="mlp", steps=1, eval_every=1, lr_g=0.01))["sigma_rel_error"]
    end = train(OneLayerConfig(d=3, discriminator="mlp", steps=150, eval_every=150, lr_g=0.01))["sigma_rel_error"]
    assert end < 0.5 * start, (start, end)
    with pytest.raises(ValueError, match="lr_d=nan is not allowed"):
        train(OneLayerConfig(lr_d=float("nan")))


def test_curvature_ratio_is_four_for_an_invertible_activation(gen):
    """For leaky ReLU the truncated statistic is z z^T, M(W) = W C W^T (C the probe batch's
    covariance), and the Gauss-Newton curvature of 1/2 |M(W) - M|^2 at W has top eigenvalue
    4 lambda_max(M) when C = I (J dW = dW W^T + W dW^T, maximised along the top eigenvector)."""
    from ganlearn.onelayer.discriminators import truncated_stats
    from ganlearn.onelayer.step_size import curvature_ratio

    act = activation("leaky_relu")
    w = conditioned_matrix(5, 4.0, generator=gen)
    x = torch.randn(2000, 5, generator=gen, dtype=torch.float64)
    x = x @ torch.linalg.inv(torch.linalg.cholesky(x.T @ x / 2000)).T  # exactly white: C = I
    r = curvature_ratio(lambda y: truncated_stats(y, act), w, x, act, generator=gen, iters=200)
    assert r == pytest.approx(4.0, rel=1e-6)


@pytest.mark.parametrize("act", ["leaky_relu", "sigmoid"])
def test_invertible_activations_at_condition_10_learn_with_the_curvature_step(act):
    """With the fixed step lr 0.3 these diverge (leaky ReLU NaN at step 25, d = 16,
    kappa 10): their curvature is 4 lambda_max(Sigma*). In curvature units they learn; the fixed
    step still blows up on the same small instance."""
    from ganlearn.errors import DivergenceError
    from ganlearn.onelayer import OneLayerConfig, train

    kw = {"d": 6, "activation": act, "condition": 10.0, "steps": 600, "eval_every": 50, "batch": 1024}
    out = train(OneLayerConfig(**kw))
    assert out["sigma_rel_error"] < 0.05 and out["resolved"]["step_scale"] == "curvature"
    assert 3.5 < out["resolved"]["curvature_ratio"] < 4.5
    with pytest.raises(DivergenceError):
        train(OneLayerConfig(**kw, step_scale="none", lr_g=0.3))  # the fixed step


def test_gaussian_tv_matches_the_one_dimensional_closed_form():
    """TV(N(0, s1^2), N(0, s2^2)) = 2 (Phi(x0 / s1) - Phi(x0 / s2)), x0 where the densities cross;
    the Monte-Carlo estimate is within 4 standard errors, invariant under a rotation, and never
    above the Devroye-Mehrabian-Reddad upper bound."""
    from ganlearn.onelayer.metrics import gaussian_tv

    s1, s2 = 1.0, 1.3
    x0 = s1 * s2 * math.sqrt(2 * math.log(s2 / s1) / (s2**2 - s1**2))
    phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))  # noqa: E731
    exact = 2 * (phi(x0 / s1) - phi(x0 / s2))
    est = gaussian_tv(torch.tensor([[s2**2]], dtype=torch.float64), torch.tensor([[s1**2]], dtype=torch.float64))
    assert abs(est - exact) < 4 / (2 * math.sqrt(2 * 200_000)), (est, exact)
    # In 3-D, a product with one differing coordinate has the same TV, in any orthonormal basis.
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    a, b = torch.diag(torch.tensor([s2**2, 1.0, 1.0], dtype=torch.float64)), torch.eye(3, dtype=torch.float64)
    est3 = gaussian_tv(q @ a @ q.T, q @ b @ q.T, seed=1)
    assert abs(est3 - exact) < 4 / (2 * math.sqrt(2 * 200_000)), (est3, exact)
    assert est3 <= gaussian_tv_upper(q @ a @ q.T, b) and gaussian_tv(b, b) == 0.0


def test_relu_tv_is_half_the_gaussian_tv_in_one_dimension_and_below_it_in_general():
    """relu(z) for z ~ N(0, s^2): the atoms at 0 are equal (1/2 each), so the ReLU TV is half the
    Gaussian TV (the two laws agree on the negative half-line). In 3-D, censoring can only hide
    differences: relu TV <= Gaussian TV, and 0 between equal laws."""
    from ganlearn.onelayer.metrics import gaussian_tv, relu_tv

    s1, s2 = 1.0, 1.3
    x0 = s1 * s2 * math.sqrt(2 * math.log(s2 / s1) / (s2**2 - s1**2))
    phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))  # noqa: E731
    exact = 2 * (phi(x0 / s1) - phi(x0 / s2))
    est = relu_tv(torch.tensor([[s2**2]], dtype=torch.float64), torch.tensor([[s1**2]], dtype=torch.float64), n=20000)
    assert abs(est - exact / 2) < 4 / (2 * math.sqrt(2 * 20000)), (est, exact / 2)
    w = conditioned_matrix(3, 3.0, generator=torch.Generator().manual_seed(0))
    s_star = w @ w.T
    s = s_star + 0.3 * torch.diag(torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64))
    r, g = relu_tv(s, s_star, n=3000), gaussian_tv(s, s_star)
    assert 0 < r <= g + 0.02, (r, g)
    assert relu_tv(s_star, s_star, n=500) < 1e-4  # 0 up to the CDF integration error


def test_gaussian_tv_with_its_draws_passed_is_the_same_number():
    """A trainer draws the Gaussian TV's batches once (``gaussian_tv_draws``) and passes them: the
    value is the one drawing them in the call gives, to the last bit."""
    from ganlearn.onelayer.metrics import gaussian_tv, gaussian_tv_draws

    g = torch.Generator().manual_seed(5)
    a, b = conditioned_matrix(4, 3.0, generator=g), conditioned_matrix(4, 2.0, generator=g)
    s, s_star = a @ a.T, b @ b.T
    draws = gaussian_tv_draws(5000, 4, seed=7)
    assert gaussian_tv(s, s_star, draws=draws) == gaussian_tv(s, s_star, n=5000, seed=7)
    assert gaussian_tv(s, s_star, draws=draws) != gaussian_tv(s, s_star, n=5000, seed=8)
