"""Replica-batched FSR training (ganlearn.fsr.batched): each replica's trajectory equals its
separate run's, and the pieces it is built from hold replica by replica."""

import json

import pytest
import torch

from ganlearn.config import ConfigError
from ganlearn.errors import DivergenceError
from ganlearn.fsr.batched import batch_key, train_replicas
from ganlearn.fsr.config import resolve
from ganlearn.fsr.model import FSRNet
from ganlearn.fsr.train import train
from ganlearn.gauss_newton import conjugate_gradient
from ganlearn.io import load_tensors
from ganlearn.rng import Generators, make_generator

# the tiny preset, shortened; float64 so that the only difference is summation order
SHORT = ["dtype=float64", "baseline.enabled=false", "stages.1.steps=20", "stages.2.steps=40", "eval.every=20"]


def _cfgs(seeds, extra=()):
    return [resolve("tiny", overrides=SHORT + [f"seed={s}"] + list(extra)) for s in seeds]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(
            [], marks=pytest.mark.slow
        ),  # the default stage list: warm start, Gauss-Newton first hidden, preconditioned super-resolution
        # per-patch output layers, a redrawn first layer, GAN_OutputLayer after the hidden stages,
        # super-resolution from generated parents with iterate averaging
        [
            "target.shared_output=false",
            "stages.1.reinit=true",
            "stages.2.parents=generated",
            "stages.2.average_tail=0.3",
            'stages+={"kind": "output_layer", "steps": 12, "batch": 128, "beta_every": 4, "reset_every": 5}',
        ],
    ],
)
def test_each_replica_equals_its_separate_run(tmp_path, extra):
    cfgs = _cfgs([0, 3], extra)
    sep = [train(c, tmp_path / f"sep{i}", progress=False) for i, c in enumerate(cfgs)]
    bat = train_replicas(cfgs, [tmp_path / f"bat{i}" for i in range(2)], progress=False)
    for i in range(2):
        a, b = (load_tensors(tmp_path / f"{s}{i}/learner.safetensors")[0] for s in ("sep", "bat"))
        for k in a:
            assert torch.allclose(a[k], b[k], rtol=1e-9, atol=1e-9 * float(a[k].abs().max())), (i, k)
        for k in ("coupled_rel_error", "feature_cosine_min", "sliced_w2_top", "samples_seen"):
            assert sep[i][k] == pytest.approx(bat[i][k], rel=1e-8), (i, k)
        assert bat[i]["replicas"] == 2
        # the same evaluation points, the same metrics at each
        rows = [
            [json.loads(ln) for ln in (tmp_path / f"{s}{i}/metrics.jsonl").read_text().splitlines()]
            for s in ("sep", "bat")
        ]
        assert [(r["stage"], r["step"], r["samples_seen"]) for r in rows[0]] == [
            (r["stage"], r["step"], r["samples_seen"]) for r in rows[1]
        ]
        assert [r["coupled_rel_error"] for r in rows[0]] == pytest.approx(
            [r["coupled_rel_error"] for r in rows[1]], rel=1e-8
        )
    # the replicas are different runs (different targets and learners), not copies of one
    assert abs(sep[0]["coupled_rel_error"] - sep[1]["coupled_rel_error"]) > 1e-4


def test_stack_and_replica_round_trip_and_forward_per_replica():
    cfgs = _cfgs([0, 1, 2])
    from ganlearn.fsr.train import build

    nets = [build(c)[1] for c in cfgs]
    stacked = FSRNet.stack(nets)
    assert stacked.V[1].shape == (3, *nets[0].V[1].shape)
    gens = Generators([make_generator(i, "test.z") for i in range(3)])
    xs, ss = stacked(stacked.sample_latent(50, generator=gens))
    for r, net in enumerate(nets):
        for k, v in net.state_dict().items():
            assert torch.equal(stacked.replica(r).state_dict()[k], v)
        x1, s1 = net(net.sample_latent(50, generator=make_generator(r, "test.z")))
        for a, b in zip(xs + ss, x1 + s1):  # replica r's forward pass is net r's, on net r's latents
            assert torch.allclose(a[:, r], b, atol=1e-12)
    with pytest.raises(ValueError, match="plain nets"):
        FSRNet.stack([stacked])


def test_conjugate_gradient_batch_dims_solves_each_system_on_its_own(gen):
    A = torch.randn(3, 6, 6, generator=gen, dtype=torch.float64)
    A = A @ A.mT + 0.1 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: ((A @ v[0][..., None])[..., 0],), (b,), 4, batch_dims=1)[0]
    for r in range(3):  # four steps of each system's own solve (not yet converged: the steps differ)
        xr = conjugate_gradient(lambda v: (A[r] @ v[0],), (b[r],), 4)[0]
        assert torch.allclose(x[r], xr, atol=1e-12)
        assert not torch.allclose(xr, torch.linalg.solve(A[r], b[r]), atol=1e-6)


def test_generators_state_round_trip():
    g = Generators([make_generator(s, "test") for s in (0, 1)])
    state = g.get_state()
    a = [torch.randn(3, generator=x) for x in g.generators]
    g.set_state(state)
    assert all(torch.equal(x, torch.randn(3, generator=y)) for x, y in zip(a, g.generators))


def test_batch_key_and_refusals(tmp_path):
    a, b = _cfgs([0, 1])
    assert batch_key(a) == batch_key(b) is not None
    other = resolve("tiny", overrides=SHORT + ["target.channels=6"])
    assert batch_key(other) != batch_key(a)
    with pytest.raises(ConfigError, match="differ only in seed"):
        train_replicas([a, other], [tmp_path / "a", tmp_path / "b"], progress=False)
    e2e = resolve("tiny", overrides=SHORT + ['stages+={"kind": "end_to_end", "steps": 2}'])
    assert batch_key(e2e) is None
    with pytest.raises(ConfigError, match="one run directory per config"):
        train_replicas([a, b], [tmp_path / "a"], progress=False)


def test_a_diverging_replica_stops_the_batch_naming_its_run(tmp_path):
    cfgs = _cfgs([0, 1], ["stages.2.sgda.lr_g=1e6", "stages.2.sgda.optimizer=sgd", "divergence_factor=2"])
    with pytest.raises(DivergenceError, match="bat"):
        train_replicas(cfgs, [tmp_path / "bat0", tmp_path / "bat1"], progress=False)
