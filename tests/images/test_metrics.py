"""Image metrics, networks and FSR probes against closed forms on tiny problems."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from ganlearn.images import metrics as M
from ganlearn.images import probe as P
from ganlearn.images.model import Discriminator, FSRGenerator, build


def test_sliced_wasserstein_of_a_shift_is_the_shift():
    # 1-D data: every direction is +-1, so the 1-D W1 of x vs x + c is exactly c.
    x = torch.randn(1000, 1, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    assert M.sliced_wasserstein(x, x + 0.3, repeats=2, directions=8, gen=gen) == pytest.approx(0.3, abs=1e-12)


def test_swd_orders_real_real_below_real_noise():
    from ganlearn.images.data import load

    torch.manual_seed(0)
    base = load("digits", resolution=32)[torch.randperm(1797)[:800]]
    noise = torch.rand(400, 1, 32, 32) * 2 - 1
    same = M.swd(base[:400], base[400:], seed=1, patches_per_image=16)
    diff = M.swd(base[:400], noise, seed=1, patches_per_image=16)
    assert set(same) >= {"swd_32", "swd_16", "swd_avg", "meta"}
    assert same["meta"]["n_real"] == 400 and same["meta"]["patches_per_image"] == 16
    assert same["swd_avg"] * 5 < diff["swd_avg"]


def test_laplacian_pyramid_reconstructs():
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    lev = M.laplacian_pyramid(x, 8)
    assert [t.shape[-1] for t in lev] == [32, 16, 8]
    cur = lev[-1]
    for band in reversed(lev[:-1]):
        up = torch.zeros_like(band)
        up[..., ::2, ::2] = cur
        cur = band + 4 * M._blur(up)
    torch.testing.assert_close(cur, x)


def test_frechet_matches_sqrtm_formula_and_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6))
    b = rng.standard_normal((400, 6)) * 2 + 1
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa + sb - 2 * scipy.linalg.sqrtm(sa @ sb).real)
    assert M.frechet(a, b) == pytest.approx(ref, rel=1e-8)
    # Same covariance, shifted mean: the squared shift exactly.
    assert M.frechet(a, a + 0.5) == pytest.approx(6 * 0.25, rel=1e-9)
    with pytest.raises(ValueError, match="more samples than feature dimensions"):
        M.frechet(a[:5], b[:5])


def test_prdc_limits():
    torch.manual_seed(0)
    r = torch.randn(300, 4)
    same = M.prdc(r, r.clone())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = M.prdc(r, r + 100)
    assert far["precision"] == far["recall"] == far["coverage"] == far["density"] == 0.0
    # Same law, fresh sample: precision/recall/coverage high, density near 1.
    fresh = M.prdc(r, torch.randn(300, 4))
    assert fresh["precision"] > 0.8 and fresh["coverage"] > 0.8 and 0.6 < fresh["density"] < 1.4


def test_features_are_fixed_and_named():
    x = torch.rand(10, 1, 28, 28) * 2 - 1
    f1, f2 = M.features(x), M.features(x.clone())
    assert f1.shape == (10, 128) and torch.equal(f1, f2)
    assert M.features(x, "pixels16").shape == (10, 256)
    with pytest.raises(ValueError, match="must be one of randconv128-v1, pixels16"):
        M.features(x, "inception")
    rec = M.feature_metrics(torch.rand(200, 1, 16, 16), torch.rand(200, 1, 16, 16), seed=3)
    assert rec["meta"] == {
        "metric": "frechet+prdc",
        "features": "randconv128-v1",
        "n_real": 200,
        "n_fake": 200,
        "k": 5,
        "seed": 3,
    }


def test_inception_metrics_never_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        M.inception_fid_kid(torch.zeros(4, 3, 8, 8), torch.zeros(4, 3, 8, 8), str(tmp_path / "missing.pth"))


@pytest.mark.parametrize(
    "arch,res,g_norm", [("dcgan", 8, "bn"), ("dcgan", 32, "none"), ("fsr", 16, "bn"), ("fsr", 8, "none")]
)
def test_network_shapes(arch, res, g_norm):
    g, d = build(arch, resolution=res, channels=3, width=4, z_dim=8, g_norm=g_norm)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules()) == (g_norm == "bn")
    out = g(torch.randn(5, 8))
    sides = [o.shape[-1] for o in out]
    assert sides[-1] == res and all(o.shape[:2] == (5, 3) for o in out)
    if arch == "fsr":
        assert sides == [4 * 2**i for i in range(len(sides))]
    assert d(out).shape == (5, len(out))
    with pytest.raises(ValueError, match="resolution=12 is not allowed"):
        build(arch, resolution=12, channels=1, width=4)


def test_fsr_generator_images_are_linear_in_the_codes():
    """X_l = W_l S_l exactly: each level's image is the 2x2 deconvolution of that layer's code."""
    torch.manual_seed(0)
    g = FSRGenerator(16, 1, 6, 8).eval()
    z = torch.randn(7, 8)
    hidden, _ = P.capture(g, z, g.hidden_layers())
    with torch.no_grad():
        out = g(z)
    for i, name in enumerate(g.hidden_layers()):
        head = g.heads[i]
        torch.testing.assert_close(out[i], F.conv_transpose2d(hidden[name], head.weight, head.bias, stride=2))
        assert P.fsr_r2(hidden[name], out[i])["2x2"] == pytest.approx(1.0, abs=1e-4)


def test_ridge_r2_closed_forms():
    torch.manual_seed(0)
    x = torch.randn(2000, 5)
    a = torch.randn(5, 3)
    assert P.ridge_r2(x, x @ a + 2.0) == pytest.approx(1.0, abs=1e-4)
    assert abs(P.ridge_r2(x, torch.randn(2000, 3))) < 0.02
    # Half the variance explained: y = x1 + e with Var(e) = Var(x1).
    y = x[:, :1] + torch.randn(2000, 1)
    assert P.ridge_r2(x, y) == pytest.approx(0.5, abs=0.06)


def test_filter_stats_closed_forms():
    torch.manual_seed(0)
    noise = P.filter_stats(torch.randn(4000, 3, 4, 4))
    assert noise["edge_colour_fraction"] == pytest.approx(3 / 16, abs=0.01)
    assert noise["dc_fraction"] == pytest.approx(1 / 16, abs=0.005)
    assert noise["mean_abs_cosine"] == pytest.approx(noise["mean_abs_cosine_random"], rel=0.05)
    ramp = torch.linspace(-1, 1, 4)
    edges = torch.stack([ramp[:, None].expand(4, 4), ramp[None, :].expand(4, 4) + 0.3])  # two ramps
    s = P.filter_stats(edges[:, None].expand(2, 3, 4, 4) * torch.tensor([1.0, 0.5, -1.0])[None, :, None, None])
    assert s["edge_colour_fraction"] == pytest.approx(1.0, abs=1e-9)


def test_code_stats_independent_codes():
    torch.manual_seed(0)
    h = torch.relu(torch.randn(20000, 6, 2, 2) - 1.0)  # independent, firing rate Pr[N > 1] = 0.159
    st = P.code_stats(h)
    assert st["fire_rate_mean"] == pytest.approx(0.1587, abs=0.01)
    assert st["pair_ratio_mean"] == pytest.approx(1.0, abs=0.05)
    assert st["triple_ratio_mean"] == pytest.approx(1.0, abs=0.15)


def test_capture_names_missing_layers():
    g = FSRGenerator(8, 1, 4, 8)
    with pytest.raises(ValueError, match="not found in the generator"):
        P.capture(g, torch.randn(2, 8), ["blocks.9"])
    assert math.isfinite(P.d_first_layer_rate(Discriminator(8, 1, 4).first_layer(), torch.randn(3, 1, 8, 8)))


def test_small_deconvolution_probe_recovers_a_4x4_stride2_output_layer():
    """image = ConvTranspose(4, stride 2, pad 1)(h): each 2x2 output patch is linear in the 3x3
    neighbourhood of codes, so the "3x3" probe has R^2 = 1 while one code alone ("2x2") does not."""
    torch.manual_seed(0)
    g = torch.nn.Sequential(
        torch.nn.Linear(8, 6 * 8 * 8),
        torch.nn.Unflatten(1, (6, 8, 8)),
        torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(6, 2, 4, 2, 1),
    )
    hidden, image = P.capture(g, torch.randn(400, 8), ["2"])
    r2 = P.fsr_r2(hidden["2"], image)
    assert r2["3x3"] == pytest.approx(1.0, abs=1e-4)
    assert r2["2x2"] < 0.95
