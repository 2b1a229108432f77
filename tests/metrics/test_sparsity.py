"""ganlearn.metrics.sparsity on independent codes."""

import pytest
import torch

from ganlearn.metrics.sparsity import coactivation_stats


def test_coactivation_ratios_are_one_for_independent_codes():
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(40000, 3, 6, generator=g) < 0.3).double()
    st = coactivation_stats(s, k_over_m=0.3)
    assert st["fire_rate_mean"] == pytest.approx(0.3, abs=0.01)
    assert st["pair_ratio_mean"] == pytest.approx(1.0, abs=0.03)
    assert st["triple_ratio_mean"] == pytest.approx(1.0, abs=0.06)


def test_magnitude_sparsity_closed_forms():
    """One-hot codes: Hoyer 1, all energy in the top channel, 1/m clearly active. Equal codes:
    Hoyer 0, top-k energy k/m. One large channel plus m-1 tiny ones: the firing rate is 1 but the
    magnitude measures see a one-hot code."""
    import torch

    from ganlearn.metrics.sparsity import coactivation_stats, magnitude_sparsity

    n, J, m = 400, 3, 8
    idx = torch.arange(n * J) % m
    onehot = torch.nn.functional.one_hot(idx, m).reshape(n, J, m).double() * 2.0
    r = magnitude_sparsity(onehot, top=1)
    assert r["hoyer_mean"] == pytest.approx(1.0) and r["topk_energy_mean"] == pytest.approx(1.0)
    assert r["active_rel_mean"] == pytest.approx(1 / m)
    equal = torch.ones(n, J, m)
    r = magnitude_sparsity(equal, top=2)
    assert r["hoyer_mean"] == pytest.approx(0.0, abs=1e-12) and r["topk_energy_mean"] == pytest.approx(2 / m)
    assert r["active_rel_mean"] == pytest.approx(1.0)
    tiny = onehot + 1e-4 * (onehot == 0)
    assert coactivation_stats(tiny)["fire_rate_mean"] == pytest.approx(1.0)
    r = magnitude_sparsity(tiny, top=1)
    assert r["hoyer_mean"] > 0.99 and r["topk_energy_mean"] > 0.999 and r["active_rel_mean"] == pytest.approx(1 / m)
    assert magnitude_sparsity(torch.zeros(5, 1, 4))["active_rel_mean"] == 0.0  # all-zero codes: no NaN
