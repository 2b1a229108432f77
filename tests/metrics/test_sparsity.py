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

