"""Replica-batched single-loop SGDA for one-layer generators: R independent runs of one shape
trained as one computation (parameters with a leading replica dimension).

Each replica is the run :func:`ganlearn.onelayer.train.train` would do for its config: the same
target (stream ``onelayer.target`` of its seed), the same learner initialisation and the same
minibatches, drawn from its own ``onelayer.train`` stream in the same order (real batch, fake batch
for the discriminator, fresh fake batch for the generator), the same step sizes and schedule. Only
the arithmetic is batched (batched products over the replica dimension, samples stored as
columns: see :func:`_apply3`), so each replica's trajectory equals its separate run up to float
round-off (the test checks 1e-9 relative in float64).

Why: at the sizes of the sample-complexity sweep one run is bound by per-operation overhead (a
d x d matrix, a few hundred samples), so R runs cost far less than R times one (5.3x the
throughput at d = 8, R = 64; ``benchmarks/results/bench_replicas/``).

Compatible configs share what fixes the tensor shapes and the loop: ``d``, ``activation``,
``discriminator`` (truncated or quadratic; the MLP comparison is not batched), ``batch``,
``steps``, ``eval_every``, ``average``, ``stop_at_eps``, ``step_scale`` and the SGD generator step; they may differ
in ``seed``, ``condition``, ``lr_g``, ``lr_d``, ``ridge``, ``decay_t0``, ``decay_power``, ``eps``
and ``divergence_factor``. A replica that reaches its smallest eps (``stop_at_eps``) or diverges has
its result recorded at that step and leaves the batch; the batch stops when every replica has.
"""

from __future__ import annotations

import functools
from typing import cast

import torch

from ganlearn.config import ConfigError
from ganlearn.errors import DivergenceError
from ganlearn.onelayer.config import OneLayerConfig
from ganlearn.onelayer.discriminators import statistic_features
from ganlearn.onelayer.metrics import gaussian_tv_draws, sigma_rel_error
from ganlearn.onelayer.model import activation, conditioned_matrix
from ganlearn.onelayer.step_size import moment_scale, power_ratio
from ganlearn.onelayer.train import (
    average_sigma,
    curvature_probe,
    curvature_scaled,
    evaluation,
    new_reached,
    resolved_lr_g,
    result,
)
from ganlearn.rng import make_generator

__all__ = ["SHAPE_KEYS", "batch_key", "train_batched"]

SHAPE_KEYS = (
    "d",
    "activation",
    "discriminator",
    "batch",
    "steps",
    "eval_every",
    "average",
    "stop_at_eps",
    "step_scale",
)


def batch_key(cfg: OneLayerConfig) -> tuple | None:
    """Configs with the same key can be trained together; None: this config cannot be batched."""
    if cfg.discriminator == "mlp" or (cfg.g_optimizer or "sgd") != "sgd":
        return None
    return tuple(getattr(cfg, k) for k in SHAPE_KEYS)


def _stats(yt: torch.Tensor, act, kind: str) -> torch.Tensor:
    """Batched E_batch T(y) from samples stored as columns: (R, d, n) -> (R, d, d) (see
    ``onelayer.discriminators``)."""
    if kind == "truncated":
        yt, _ = act.invert(yt)  # already 0 off the set
    return yt @ yt.transpose(1, 2) / yt.shape[2]


def _generator_grad(A: torch.Tensor, zt: torch.Tensor, xt: torch.Tensor, act, kind: str) -> torch.Tensor:
    """grad_W of -<A, E_batch T(phi(z))>, z = W x, for each replica, in closed form (what autograd
    gives the separate run, without building its graph: a third of the batched step's time went to
    the backward pass); samples as columns, zt and xt (R, d, n). With T = h h^T
    (``discriminators.statistic_features``): dL/dz = -(A + A^T) h h'(z) / n and
    dL/dW = sum_n dL/dz_n x_n^T."""
    h, dh = statistic_features(zt, act, kind)
    gz = ((A + A.transpose(1, 2)) @ h) * dh
    return -(gz @ xt.transpose(1, 2)) / xt.shape[2]


def _apply3(xt: torch.Tensor, targets: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """A step's three products z = W x for the latents x = (real, fake for D, fake for G) and
    W = (W*, W, W) of every replica, as one batched product; samples as columns: xt and the result
    (3, R, d, n).

    Why this layout (measured, d = 8, n = 512, R = 64, float64, one thread): the three separate
    products on (R, n, d) rows, each on its own freshly stacked draw, were 4.5 ms of a 20 ms step
    and the draws' stacking and float64 copies another 7 ms. Here the latents land in two buffers
    allocated once (float32 as drawn, then float64 with samples as columns, so that real and fake
    are one contiguous (2 R, d, n) block for the statistics), and every product of the step is a
    (d, d) x (d, n) or (d, n) x (n, d) one, which MKL runs 1.6-2.4x faster than the (n, d) x (d, d)
    and (d, n)-transposed forms (1.2 against 3.1 ms and 1.1 against 1.8 ms for 3 R and 2 R
    matrices); the transposing float64 copy costs 0.5 ms against 0.2 ms for a plain one."""
    return torch.bmm(torch.stack((targets, W, W)).flatten(0, 1), xt.flatten(0, 1)).unflatten(0, xt.shape[:2])


@functools.lru_cache(maxsize=None)
def _whole_draws_match(n: int, d: int) -> bool:
    """Whether one ``randn(3, n, d)`` gives the numbers of three ``randn(n, d)`` drawn in a row from
    the same stream, checked once per shape on a throwaway stream. On the CPU it does when n d is a
    multiple of 16 (the vectorised normal fill transforms blocks of 16 uniforms and redraws a ragged
    tail), which every sweep's batch is; otherwise each replica draws its three blocks separately."""
    g1, g2 = (make_generator(0, "onelayer.batched.draw_check") for _ in range(2))
    whole = torch.randn(3, n, d, generator=g1)
    return torch.equal(whole, torch.stack([torch.randn(n, d, generator=g2) for _ in range(3)]))


def _draw(x32: torch.Tensor, xt: torch.Tensor, gens: list, whole: bool) -> None:
    """One step's latents into the buffers: for each live replica, from its own stream and in the
    separate run's order, the real batch, the fake batch for D and the fake batch for G
    (``onelayer.model.latents``: float32 normals used in float64); x32 (R, 3, n, d) as drawn,
    xt (3, R, d, n) in float64 with samples as columns."""
    for row, g in enumerate(gens):
        if whole:
            torch.randn(x32.shape[1:], generator=g, out=x32[row])
        else:
            for s in range(3):
                torch.randn(x32.shape[2:], generator=g, out=x32[row, s])
    xt.copy_(x32.permute(1, 0, 3, 2))


def _curvature_ratios(cfgs: list[OneLayerConfig], W: torch.Tensor) -> torch.Tensor:
    """c of ``onelayer.step_size`` for every replica, as its separate run computes it (the same probe
    batch and start), the power iterations of a chunk of replicas run as one batched computation."""
    xs, vs = zip(*(curvature_probe(c, W.shape[1:], W.dtype) for c in cfgs))
    # in chunks of replicas whose probe batches fill ~1 MB (2^17 float64): forming the moment tensor
    # of ``power_ratio`` passes once over d times that ((h'_a x_b) rows), and larger stacks fall out
    # of the cache (measured with the earlier product-form iteration, d = 8, per replica: 6.5 ms
    # alone, 5.7 ms in chunks of 4, 9.7 ms all 64 at once)
    step = max(1, 2**17 // xs[0].numel())
    kind, act = cfgs[0].discriminator, activation(cfgs[0].activation)
    return torch.cat(
        [
            power_ratio(
                kind, act, W[i : i + step].detach(), torch.stack(xs[i : i + step]), torch.stack(vs[i : i + step])
            )
            for i in range(0, len(cfgs), step)
        ]
    )


def _resolved(c: OneLayerConfig, lr_g: float, curvature_ratio: float | None) -> dict:
    """The settings a batched replica resolved, as its result records them."""
    out = {
        "g_optimizer": "sgd",
        "lr_d": c.lr_d if c.lr_d is not None else 1.0,
        "d_optimizer": "sgd (exact ascent on A)",
        "batched": True,
        "lr_g": lr_g,
        "step_scale": "curvature" if curvature_ratio is not None else "none",
    }
    if curvature_ratio is not None:
        out["curvature_ratio"] = curvature_ratio
    return out


def train_batched(cfgs: list[OneLayerConfig]) -> list[dict]:
    """Train every config (compatible, see :func:`batch_key`) as one batch; return one result per
    config, as :func:`~ganlearn.onelayer.train.train` returns it. A diverged replica's result is
    ``{"diverged": True, "divergence": message}`` (its separate run raises DivergenceError).
    A replica that stops (eps reached, diverged) leaves the batch: the tensors shrink to the live
    replicas, so a batch whose replicas stop at different steps costs what its live replicas do.
    One function, so the batched step reads beside the separate run's :func:`~ganlearn.onelayer.train.train`."""
    if not cfgs:
        return []
    for c in cfgs:
        c.validate()
    keys = {batch_key(c) for c in cfgs}
    if None in keys or len(keys) != 1:
        raise ConfigError(
            f"train_batched needs configs that agree on {', '.join(SHAPE_KEYS)} and use a "
            f"linear discriminator with SGD for W; got {len(keys)} groups"
        )
    c0, R = cfgs[0], len(cfgs)
    d, n, act = c0.d, c0.batch, activation(c0.activation)
    dt = torch.float64
    targets = torch.stack(
        [conditioned_matrix(d, c.condition, generator=make_generator(c.seed, "onelayer.target")) for c in cfgs]
    )
    gens = [make_generator(c.seed, "onelayer.train") for c in cfgs]
    W = torch.stack([torch.randn(d, d, generator=g, dtype=dt) / d**0.5 for g in gens])
    sigma_star = targets @ targets.transpose(1, 2)
    A = torch.zeros(R, d, d, dtype=dt)
    lr_g = torch.tensor([resolved_lr_g(c) for c in cfgs], dtype=dt)
    curv = curvature_scaled(c0)  # the same for every config of a batch key
    # each replica's curvature-to-moment ratio, exactly as its separate run computes it
    c_curv = _curvature_ratios(cfgs, W) if curv else torch.ones(R, dtype=dt)
    lr_d = torch.tensor([c.lr_d if c.lr_d is not None else 1.0 for c in cfgs], dtype=dt)
    ridge = torch.tensor([c.ridge for c in cfgs], dtype=dt)
    t0 = torch.tensor([c.decay_t0 for c in cfgs], dtype=dt)
    power = torch.tensor([c.decay_power for c in cfgs], dtype=dt)
    err0 = [sigma_rel_error(W[r] @ W[r].T, sigma_star[r]) for r in range(R)]
    tv_draws = [gaussian_tv_draws(c.tv_mc_samples, d, c.seed) if c.tv_mc_samples else None for c in cfgs]
    idx = list(range(R))  # the original index of each live replica (row of the tensors above)

    whole = _whole_draws_match(n, d)
    x32, xt = torch.empty(R, 3, n, d), torch.empty(3, R, d, n, dtype=dt)

    out: list[dict | None] = [None] * R
    curves: list[list] = [[] for _ in range(R)]
    reached = [new_reached(c) for c in cfgs]
    samples, sigma_bar = 0, None
    kind = c0.discriminator
    for t in range(c0.steps):
        with torch.no_grad():
            _draw(x32, xt, [gens[r] for r in idx], whole)  # real, fake for D, fresh fake for G
            zt = _apply3(xt, targets, W)
            # ascent on A: exact inner max when lr_d * ridge = 1
            m_real, m_fake = _stats(act.phi(zt[:2]).flatten(0, 1), act, kind).unflatten(0, (2, -1))
            A += lr_d[:, None, None] * ((m_real - m_fake) - ridge[:, None, None] * A)
            scale = c_curv * torch.maximum(moment_scale(m_real), moment_scale(m_fake)) if curv else c_curv
            samples += n
            grad = _generator_grad(A, zt[2], xt[2], act, kind)
            lr_t = lr_g / (1 + t / t0) ** power / scale  # the schedule of the separate run
            W -= lr_t[:, None, None] * grad
            sigma_bar = average_sigma(sigma_bar, W @ W.transpose(1, 2), t, c0.average)
        if (t + 1) % c0.eval_every == 0 or t + 1 == c0.steps:
            keep = []
            for row, r in enumerate(idx):
                c = cfgs[r]
                try:
                    evaluation(
                        c, sigma_bar[row], sigma_star[row], err0[r], t + 1, samples, curves[r], reached[r], tv_draws[r]
                    )
                except DivergenceError as e:
                    out[r] = {"diverged": True, "divergence": str(e)}
                    continue
                if c.stop_at_eps and reached[r]["upper"][min(c.eps)] is not None or t + 1 == c0.steps:
                    out[r] = result(
                        c,
                        _resolved(c, float(lr_g[row]), float(c_curv[row]) if curv else None),
                        sigma_bar[row].clone(),
                        targets[row],
                        curves[r],
                        reached[r],
                        samples,
                        t + 1,
                    )
                    continue
                keep.append(row)
            if not keep:
                break
            if len(keep) < len(idx):  # drop the stopped replicas from every per-replica tensor
                for row in set(range(len(idx))) - set(keep):
                    tv_draws[idx[row]] = None  # free its evaluation draws
                rows = torch.tensor(keep)
                targets, W, A, sigma_star, sigma_bar = (x[rows] for x in (targets, W, A, sigma_star, sigma_bar))
                lr_g, c_curv, lr_d, ridge, t0, power = (x[rows] for x in (lr_g, c_curv, lr_d, ridge, t0, power))
                idx = [idx[row] for row in keep]
                x32, xt = x32[: len(idx)], torch.empty(3, len(idx), d, n, dtype=dt)  # refilled every step
    assert all(r is not None for r in out)  # every replica ends with a result (or raised)
    return cast(list[dict], out)
