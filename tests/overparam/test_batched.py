"""Replica-batched GDA (ganlearn.overparam.batched) equals the separate runs."""

import numpy as np
import pytest

from ganlearn.overparam.batched import batch_key, train_batched
from ganlearn.overparam.config import OverparamConfig
from ganlearn.overparam.train import train


def _close(a: dict, b: dict, tol: float) -> None:
    ra, rb = np.array(a["residual"]), np.array(b["residual"])
    assert ra.shape == rb.shape
    assert np.max(np.abs(ra - rb)) <= tol * ra[0]  # relative to |r_0|: round-off where r is tiny
    for k in ("success", "diverged", "steps_to_tol", "n_params"):
        assert a[k] == b[k], k
    for k in ("eta", "s_min0", "s_max0", "rate_predicted"):
        assert a[k] == pytest.approx(b[k], rel=1e-9), k
    assert a["relative_movement"] == pytest.approx(b["relative_movement"], rel=1e-8)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"mode": "alternating"},
        {"discriminator": "random_features"},
        {"discriminator": "random_features", "feature_act": "tanh", "feature_scale": 3.0},
        {"discriminator": "random_features", "feature_act": "softplus"},
        {"depth": 2},
        {"train": "all"},
    ],
)
def test_batched_replicas_of_different_widths_and_seeds_equal_their_separate_runs(extra):
    """Widths 30 and 48 padded to 48, two seeds: every replica's residual curve, step size, spectrum
    and outcome are its separate run's (converging runs: round-off only)."""
    cfgs = [OverparamConfig(k=k, seed=s, steps=100, **extra) for k, s in [(48, 0), (30, 1)]]
    for a, b in zip([train(c) for c in cfgs], train_batched(cfgs)):
        _close(a, b, 1e-10)


def test_a_diverging_replica_stops_alone_and_others_are_untouched():
    """A fixed step far beyond the stability rule diverges (recorded, as the separate run records
    it) while its batch-mates run on unchanged."""
    cfgs = [OverparamConfig(k=50, seed=0, steps=100, eta=50.0), OverparamConfig(k=50, seed=1, steps=100)]
    sep, bat = [train(c) for c in cfgs], train_batched(cfgs)
    assert sep[0]["diverged"] and bat[0]["diverged"]
    assert len(bat[0]["residual"]) == len(sep[0]["residual"]) < 100
    assert bat[0]["divergence"] == sep[0]["divergence"]
    _close(sep[1], bat[1], 1e-10)


def test_batch_key_groups_seeds_and_nearby_widths_but_not_shapes():
    a, b = OverparamConfig(k=40, seed=0), OverparamConfig(k=64, seed=3, eta=0.5)
    assert batch_key(a) == batch_key(b)
    assert batch_key(a) != batch_key(OverparamConfig(k=200))
    assert batch_key(a) != batch_key(OverparamConfig(k=40, m=5))
    with pytest.raises(ValueError, match="must share m"):
        train_batched([a, OverparamConfig(k=40, m=5)])
