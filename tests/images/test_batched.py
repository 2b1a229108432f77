"""Replica-batched image-GAN training (ganlearn.images.batched): grouped layers equal the R
networks they stack, and each replica's run follows its separate run."""

import json

import pytest
import torch

from ganlearn.config import ConfigError
from ganlearn.images.batched import batch_key, group, replica, train_replicas
from ganlearn.images.model import build
from ganlearn.images.train import load_generator, make_config, train
from ganlearn.rng import default_init_rng

TINY = dict(
    data="digits",
    width=4,
    z_dim=8,
    batch=16,
    eval_n=150,
    eval_patches=4,
    eval_every=10,
    grid_every=0,
    ckpt_every=0,
    log_every=5,
    steps=20,
)


def _nets(seeds, **kw):
    out = []
    for s in seeds:
        with default_init_rng(s, "images.init"):
            out.append(build("dcgan", resolution=8, channels=1, width=4, z_dim=8, **kw))
    return out


@pytest.mark.parametrize("d_norm,g_norm", [("sn", "bn"), ("bn", "none"), ("none", "bn")])
def test_grouped_networks_equal_the_replicas_they_stack(d_norm, g_norm, gen):
    nets = _nets([0, 1, 2], d_norm=d_norm, g_norm=g_norm)
    G, D = group([g for g, _ in nets]), group([d for _, d in nets])
    for _ in range(3):  # training mode: batch-norm statistics and spectral-norm power iterations move
        z = [torch.randn(5, 8, generator=gen) for _ in nets]
        x = G.train()(torch.cat(z, 1))[0]
        logits = D.train()([x])
        for r, (g, d) in enumerate(nets):
            xr = g.train()(z[r])[0]
            assert torch.allclose(x[:, r : r + 1], xr, atol=1e-6)
            assert torch.allclose(logits[:, r : r + 1], d.train()([xr]), atol=1e-5)
    for r, (g, _) in enumerate(nets):  # running statistics included
        for (k, a), b in zip(replica(G, nets[0][0], r).state_dict().items(), g.state_dict().values()):
            assert torch.allclose(a, b, atol=1e-6), k


def test_each_replica_follows_its_separate_run(tmp_path):
    cfgs = [make_config({**TINY, "seed": s}) for s in (0, 1)]
    batched = train_replicas(cfgs)
    for r, c in enumerate(cfgs):
        sep = train(c, tmp_path / f"sep{r}", progress=False)
        g, *_ = load_generator(tmp_path / f"sep{r}")
        # float32, grouped convolutions vs separate ones: round-off (measured: 6e-8 after 20 steps)
        for (k, a), b in zip(batched[r]["g_ema"].state_dict().items(), g.state_dict().values()):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), k
        stats = [json.loads(ln) for ln in (tmp_path / f"sep{r}" / "stats.jsonl").read_text().splitlines()]
        assert [s["step"] for s in stats] == [s["step"] for s in batched[r]["stats"]]
        assert [s["d_loss"] for s in stats] == pytest.approx([s["d_loss"] for s in batched[r]["stats"]], rel=1e-5)
        assert [m["step"] for m in batched[r]["metrics"]] == [10, 20]
        for key in ("swd_avg", "frechet"):
            assert batched[r]["result"][key] == pytest.approx(sep[key], rel=1e-5), key
        for layer, v in sep["codes"].items():  # the hidden codes' sparsity measures
            assert batched[r]["result"]["codes"][layer] == pytest.approx(v, rel=1e-5), layer
    # the two replicas are different runs
    assert batched[0]["result"]["swd_avg"] != batched[1]["result"]["swd_avg"]


def test_batch_key_and_refusals():
    a, b = make_config({**TINY, "seed": 0}), make_config({**TINY, "seed": 3})
    assert batch_key(a) == batch_key(b) is not None
    assert batch_key(make_config({**TINY, "width": 8})) != batch_key(a)
    assert batch_key(make_config({**TINY, "arch": "fsr"})) is None
    with pytest.raises(ConfigError, match="differ only in seed"):
        train_replicas([a, make_config({**TINY, "width": 8})])
