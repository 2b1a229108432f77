"""Overparameterized GANs (Balaji et al.): GDA on the linear-discriminator model against the
linear-time-varying stability rule, on tiny instances."""

import math

import numpy as np
import pytest
import torch

from ganlearn.overparam.config import OverparamConfig
from ganlearn.overparam.metrics import block_radius, fitted_rate
from ganlearn.overparam.model import Problem
from ganlearn.overparam.train import train


def test_block_radius_matches_the_closed_form_roots():
    s = np.array([0.01, 0.1, 0.2])
    eta = 1.0
    # mu = 1, simultaneous: lambda^2 - lambda + eta s = 0 -> (1 + sqrt(1 - 4 eta s)) / 2
    assert np.allclose(block_radius(s, eta, 1.0, "simultaneous"), (1 + np.sqrt(1 - 4 * eta * s)) / 2, atol=1e-12)
    # mu = 1, alternating: the block is [[1 - eta s, 0], [-1, 0]] -> 1 - eta s
    assert np.allclose(block_radius(s, eta, 1.0, "alternating"), 1 - eta * s, atol=1e-12)
    # unstable past eta s = 1 (Jury: 0 < eta s < 1 for mu = 1)
    assert block_radius(np.array([1.2]), 1.0, 1.0, "simultaneous")[0] > 1


def test_jacobian_matches_the_closed_form_for_one_hidden_layer(gen):
    """J J^T = V diag(|a_j|^2) V^T, a_j = (1/n) sum_i 1{w_j . z_i > 0} z_i (linear D, W trained)."""
    p = Problem(OverparamConfig(m=4, d=3, n=30, k=7))
    W, V, z = p.G.Ws[0].detach(), p.G.V.detach(), p.z
    a = ((z @ W.T > 0).double().T @ z) / len(z)  # (k, d)
    closed = V @ torch.diag((a**2).sum(1)) @ V.T
    J = p.jacobian()
    assert torch.allclose(J @ J.T, closed, atol=1e-12)


@pytest.mark.parametrize("mode", ["simultaneous", "alternating"])
def test_gda_converges_at_the_rate_the_stability_rule_predicts_for_a_linear_generator(mode):
    """act=identity: J is constant, so the linearised (r, d) system is exact and the residual
    contracts at the predicted spectral radius."""
    out = train(OverparamConfig(m=3, d=2, n=20, k=6, act="identity", steps=1500, mode=mode))
    pred, fit = out["rate_predicted"], out["rate_fitted"]
    assert 0.9 < pred < 1
    assert abs((1 - fit) - (1 - pred)) < 1e-6 * (1 - pred), (fit, pred)  # measured: agree to ~1e-14
    assert out["residual_final"] < 1e-5 * out["residual0"] and not out["diverged"]


def test_wide_relu_gda_tracks_the_prediction_and_narrow_cannot_converge():
    wide = train(OverparamConfig(m=3, d=3, n=50, k=300, steps=800))
    assert wide["success"] and wide["residual_final"] < 1e-6 * wide["residual0"]
    assert abs(math.log(wide["rate_fitted"]) / math.log(wide["rate_predicted"]) - 1) < 0.15, wide
    assert wide["relative_movement"] < 0.3  # lazy regime: the weights barely move
    # k < m: J J^T = V diag(.) V^T has rank <= k < m, s_min = 0 and no linear convergence
    narrow = train(OverparamConfig(m=3, d=3, n=50, k=2, steps=300))
    assert narrow["s_min0"] < 1e-12 and narrow["rate_predicted"] == pytest.approx(1.0)
    assert not narrow["success"]


def test_broader_class_runs_and_converges_when_wide():
    # random-feature D: fast transient, then slow linear convergence (s_min of J J^T is small);
    # measured at k = 200: residual 1.1% of the start after 100 steps, 0.4% after 500
    rf = train(OverparamConfig(m=3, d=3, n=50, k=200, steps=300, discriminator="random_features", features=4))
    assert rf["residual_final"] < 0.02 * rf["residual0"] and rf["rate_fitted"] < 1
    # With fewer features than the data dimension, smooth (tanh) or not, J J^T is well
    # conditioned and GDA converges (measured: residual 8.5e-14 in 600 steps, s_min 0.028); with
    # more features than m the feature means are nearly a linear function of G's mean, s_min(J J^T)
    # collapses (5e-4 for tanh, p = 8) and 600 steps leave 3% of the residual
    few = train(
        OverparamConfig(
            m=3, d=3, n=50, k=200, steps=600, discriminator="random_features", features=2, feature_act="tanh"
        )
    )
    many = train(
        OverparamConfig(
            m=3, d=3, n=50, k=200, steps=600, discriminator="random_features", features=8, feature_act="tanh"
        )
    )
    assert few["success"] and not many["success"] and many["s_min0"] < 0.05 * few["s_min0"]
    deep = train(OverparamConfig(m=3, d=3, n=50, k=200, steps=300, depth=2))  # measured: tol at step 67
    assert deep["success"] and deep["rate_fitted"] < 0.9


def test_fitted_rate_on_a_geometric_sequence():
    r = 3.0 * 0.9 ** np.arange(200)
    assert fitted_rate(r) == pytest.approx(0.9, rel=1e-9)
    assert math.isnan(fitted_rate([1.0, 1e-13]))


def test_overparam_config_errors_name_the_field():
    with pytest.raises(ValueError, match="mu=2.5 is not allowed"):
        OverparamConfig(mu=2.5).validate()
    with pytest.raises(ValueError, match="discriminator='mlp' is not allowed"):
        OverparamConfig(discriminator="mlp").validate()
    with pytest.raises(
        ValueError, match="feature_act='gelu' is not allowed: must be one of 'relu', 'tanh', 'softplus'"
    ):
        OverparamConfig(feature_act="gelu").validate()
    with pytest.raises(ValueError, match="k=0 is not allowed"):
        Problem(OverparamConfig(k=0))
