"""Replica-batched one-layer SGDA: each replica's trajectory equals its separate run (float64
round-off), including early stops at eps and a replica that diverges; the sweep packs cells."""

import json

import pytest

from ganlearn.config import ConfigError
from ganlearn.errors import DivergenceError
from ganlearn.onelayer import OneLayerConfig, train
from ganlearn.onelayer.batched import train_batched


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


@pytest.mark.parametrize("step_scale,lrs", [("curvature", (1.0, 0.7, 1.0, 30.0)), ("none", (0.3, 0.2, 0.3, 3.0))])
def test_each_replica_equals_its_separate_run(step_scale, lrs):
    kw = {"d": 4, "steps": 300, "step_scale": step_scale}
    cfgs = [
        OneLayerConfig(**kw, seed=0, condition=2.0, lr_g=lrs[0]),
        OneLayerConfig(**kw, seed=1, condition=5.0, lr_g=lrs[1], decay_t0=100.0),
        OneLayerConfig(**kw, seed=2, condition=2.0, lr_g=lrs[2], ridge=2.0, lr_d=0.5),
        OneLayerConfig(**kw, seed=3, condition=3.0, lr_g=lrs[3], eval_every=25),
    ]  # diverges
    with pytest.raises(DivergenceError):
        train(cfgs[3])
    out = train_batched(cfgs)
    assert out[3]["diverged"] is True and "step 25" in out[3]["divergence"]
    for c, b in zip(cfgs[:3], out[:3]):
        a = train(c)
        assert a["steps"] == b["steps"] and a["samples"] == b["samples"]
        assert a["samples_to_eps"] == b["samples_to_eps"]
        assert len(a["curve"]) == len(b["curve"])
        for (na, ea, ta, ga), (nb, eb, tb, gb) in zip(a["curve"], b["curve"]):
            assert na == nb and _close(ea, eb) and _close(ta, tb) and _close(ga, gb, 1e-6)


def test_early_stops_at_eps_are_per_replica():
    cfgs = [OneLayerConfig(d=2, steps=2000, seed=s, eps=(0.4, e), stop_at_eps=True) for s, e in ((0, 0.3), (1, 0.1))]
    out = train_batched(cfgs)
    for c, b in zip(cfgs, out):
        a = train(c)
        assert a["steps"] == b["steps"] < 2000 and a["samples_to_eps"] == b["samples_to_eps"]
    assert out[0]["steps"] < out[1]["steps"]


@pytest.mark.parametrize("batch,force_blocks", [(100, False), (64, True)])
def test_draws_per_block_equal_the_separate_run(monkeypatch, batch, force_blocks):
    """Each replica draws a step's three latent blocks in one call only where that gives the
    numbers of three calls (n d a multiple of 16 on the CPU); otherwise, and when forced, block by
    block: both paths give the separate run's trajectory."""
    from ganlearn.onelayer import batched

    if force_blocks:
        monkeypatch.setattr(batched, "_whole_draws_match", lambda n, d: False)
    else:
        assert batched._whole_draws_match(batch, 3) is False  # 300 numbers: a ragged tail
    cfgs = [OneLayerConfig(d=3, batch=batch, steps=80, eval_every=40, seed=s) for s in (0, 1)]
    for c, b in zip(cfgs, train_batched(cfgs)):
        a = train(c)
        for (na, ea, ta, _), (nb, eb, tb, _) in zip(a["curve"], b["curve"]):
            assert na == nb and _close(ea, eb) and _close(ta, tb)


def test_incompatible_configs_are_refused():
    with pytest.raises(ConfigError, match="agree on d"):
        train_batched([OneLayerConfig(d=4), OneLayerConfig(d=5)])
    with pytest.raises(ConfigError):
        train_batched([OneLayerConfig(d=4, discriminator="mlp")])


def test_sample_complexity_sweep_batched_equals_unbatched(tmp_path):
    from ganlearn.experiments import get
    from ganlearn.sweep import run_sweep

    sets = [
        "d=[2,4]",
        "condition=[2.0]",
        'activation=["relu","sigmoid"]',
        "eps=[0.4,0.2]",
        "max_samples=60000",
        "tv_lower_samples=400",
    ]
    for name, batch in (("one", 1), ("batched", 64)):
        stats = run_sweep(
            get("sample-complexity"),
            tmp_path / name,
            overrides=sets,
            seeds=2,
            workers=1,
            progress=False,
            log=lambda s: None,
            batch=batch,
        )
        assert stats["ran"] == 8 and stats["failed"] == 0
    hist = [json.loads(ln) for ln in (tmp_path / "batched" / "history.jsonl").read_text().splitlines()]
    assert hist[-1]["batch"] == 64
    for f in sorted((tmp_path / "one" / "cells").glob("*.json")):
        a = json.loads(f.read_text())["result"]
        b = json.loads((tmp_path / "batched" / "cells" / f.name).read_text())["result"]
        assert a["steps"] == b["steps"] and a["samples"] == b["samples"]
        assert _close(a["sigma_rel_error_final"], b["sigma_rel_error_final"], 1e-8)
        assert {k: v for k, v in a.items() if k.startswith("N_eps")} == {
            k: v for k, v in b.items() if k.startswith("N_eps")
        }


@pytest.mark.parametrize(
    "act,disc",
    [
        ("leaky_relu", "truncated"),
        ("sigmoid", "truncated"),
        ("relu", "quadratic"),
        ("leaky_relu", "quadratic"),
        ("sigmoid", "quadratic"),
    ],
)
def test_closed_form_generator_step_equals_autograd(act, disc):
    """The batched trainer's closed-form G gradient (every activation, both statistics) gives the
    trajectory of the separate run's autograd step."""
    cfgs = [OneLayerConfig(d=3, steps=60, eval_every=20, activation=act, discriminator=disc, seed=s) for s in (0, 1)]
    for c, b in zip(cfgs, train_batched(cfgs)):
        a = train(c)
        assert a["steps"] == b["steps"]
        for (na, ea, ta, _), (nb, eb, tb, _) in zip(a["curve"], b["curve"]):
            assert na == nb and _close(ea, eb) and _close(ta, tb)


def test_latents_are_float32_normals_returned_in_float64():
    import torch

    from ganlearn.onelayer.model import latents

    x = latents(200_000, 2, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float64
    assert torch.equal(x, torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0)).double())
    # N(0, I) to the sampling error (sd of the mean 0.0022, of the variance 0.0032)
    assert x.mean(0).abs().max() < 0.01 and (x.var(0) - 1).abs().max() < 0.015
    assert abs(float(x[:, 0] @ x[:, 1]) / 200_000) < 0.01


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "sigmoid"])
@pytest.mark.parametrize("disc", ["truncated", "quadratic"])
def test_closed_form_curvature_probe_equals_autograd(act, disc):
    """``step_size.power_ratio`` (closed form, batched over replicas) gives the forward-over-reverse
    autograd iteration's ratio, for one replica and for each of a stack."""
    import torch

    from ganlearn.onelayer.discriminators import quadratic_stats, truncated_stats
    from ganlearn.onelayer.model import activation, conditioned_matrix
    from ganlearn.onelayer.step_size import power_ratio, power_ratio_autograd

    g = torch.Generator().manual_seed(3)
    a = activation(act)
    stats = (lambda y: truncated_stats(y, a)) if disc == "truncated" else quadratic_stats
    ws = [conditioned_matrix(5, c, generator=g) for c in (2.0, 6.0)]
    xs = [torch.randn(1500, 5, generator=g, dtype=torch.float64) for _ in ws]
    vs = [torch.randn(5, 5, generator=g, dtype=torch.float64) for _ in ws]
    ref = [float(power_ratio_autograd(stats, a, w, x, v)) for w, x, v in zip(ws, xs, vs)]
    assert ref[0] != pytest.approx(ref[1], rel=1e-3)  # the two replicas differ
    assert float(power_ratio(disc, a, ws[0], xs[0], vs[0])) == pytest.approx(ref[0], rel=1e-12)
    both = power_ratio(disc, a, torch.stack(ws), torch.stack(xs), torch.stack(vs))
    assert both.shape == (2,) and both.tolist() == pytest.approx(ref, rel=1e-12)


def test_curvature_probe_built_in_blocks_equals_autograd():
    """At d = 40, n = 4096 the third-moment tensor of ``power_ratio`` is built in two blocks of rows
    (its (h'_a x_b) products capped at 2^22 numbers): the same ratio as the autograd iteration."""
    import torch

    from ganlearn.onelayer.discriminators import truncated_stats
    from ganlearn.onelayer.model import activation
    from ganlearn.onelayer.step_size import power_ratio, power_ratio_autograd

    g, a, d = torch.Generator().manual_seed(0), activation("relu"), 40
    w = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    x = torch.randn(4096, d, generator=g, dtype=torch.float64)
    v = torch.randn(d, d, generator=g, dtype=torch.float64)
    assert 2**22 // x.numel() < d  # more than one block
    ref = float(power_ratio_autograd(lambda y: truncated_stats(y, a), a, w, x, v))
    assert float(power_ratio("truncated", a, w, x, v)) == pytest.approx(ref, rel=1e-12)
