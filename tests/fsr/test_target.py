import pytest
import torch

from ganlearn.fsr.config import TargetConfig
from ganlearn.fsr.target import FSRTarget

CFG = TargetConfig(levels=3, base_grid=2, patch=2, colours=3, channels=8, sparsity=2.0, latent_dim=10)


def test_shapes_orthonormality_and_sparsity():
    t = FSRTarget(CFG, seed=0, dtype=torch.float64, n_calibration=6000)
    X, S = t.sample(6000, generator=torch.Generator().manual_seed(1))
    for level in range(1, 4):
        J = t.geometry.n_patches(level)
        assert X[level - 1].shape == (6000, J, 12) and S[level - 1].shape == (6000, J, 8)
        w = t.net.W[level - 1][0]
        assert torch.allclose(w.T @ w, torch.eye(8, dtype=w.dtype), atol=1e-10)
        assert torch.allclose(t.net.encode(level, X[level - 1]), S[level - 1], atol=1e-10)  # S = W^T X
        rate = (S[level - 1] > 0).double().mean()
        assert rate == pytest.approx(2.0 / 8, abs=0.02)
    img = t.geometry.to_image(X[2], 3)
    assert img.shape == (6000, 3, 16, 16)
    assert torch.equal(t.geometry.to_patches(img, 3), X[2])


def test_sampling_is_deterministic_under_a_generator():
    t = FSRTarget(CFG, seed=0, n_calibration=2000)
    a, _ = t.sample(5, generator=torch.Generator().manual_seed(7))
    b, _ = t.sample(5, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_connection_graph_is_parent_and_neighbours():
    t = FSRTarget(CFG, seed=0, n_calibration=2000)
    idx, mask = t.geometry.parents(2)  # 4x4 children of a 2x2 grid, "cross"
    # child (0,0) -> parent (0,0) plus in-grid neighbours (1,0) and (0,1)
    assert sorted(idx[0][mask[0] > 0].tolist()) == [0, 1, 2]
    assert t.net.V[1][0, :, mask[0] == 0].abs().sum() == 0  # no weights off the graph


def test_assumption_report_measures_the_targets_own_codes():
    """The report is coactivation_stats of the codes the target samples (the same draws), per level;
    the measured firing rate is the calibrated k/m = 2/8 and a patch has k = 2 active channels."""
    from ganlearn.metrics.sparsity import coactivation_stats

    t = FSRTarget(CFG, seed=0, n_calibration=6000)
    rep = t.assumption_report(3000, generator=torch.Generator().manual_seed(0))
    _, S = t.sample(3000, generator=torch.Generator().manual_seed(0))
    assert set(rep) == {"level1", "level2", "level3"}
    for level in (1, 2, 3):
        assert rep[f"level{level}"] == coactivation_stats(S[level - 1], k_over_m=0.25)
        assert rep[f"level{level}"]["fire_rate_mean"] == pytest.approx(0.25, abs=0.02)
        assert rep[f"level{level}"]["active_per_patch"] == pytest.approx(2.0, abs=0.16)
    assert rep["level1"]["fire_rate_configured"] == 0.25


def test_upto_renders_the_same_draw_at_fewer_levels():
    t = FSRTarget(CFG, seed=0, n_calibration=2000)
    full, _ = t.sample(7, generator=torch.Generator().manual_seed(3))
    low, _ = t.sample(7, generator=torch.Generator().manual_seed(3), upto=2)
    assert len(low) == 2 and all(torch.equal(a, b) for a, b in zip(low, full[:2]))
