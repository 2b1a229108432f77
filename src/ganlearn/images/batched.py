"""Replica-batched image-GAN training (DCGAN): R runs of one configuration that differ only in their
seed trained as one computation.

The R generators (and the R discriminators) become one network of grouped layers: a replica's
channels are one block of every layer's channels, convolutions run with ``groups=R`` (their weights
are the replicas' weights concatenated), linear layers as one batched product, batch norm over R * C
channels (each replica's statistics are its own channels'), and spectral norm per replica (each
replica's power iteration on its own weight, as ``torch.nn.utils.parametrizations.spectral_norm``
does it). Images are (n, R * C, H, W), latents (n, R * z): each replica's from its own named streams,
so it sees the batches and latents of its separate run. The losses are summed over replicas (each
replica's gradient is its own), Adam and the EMA act elementwise. Every replica's trajectory is its
separate run's up to float round-off (``tests/images/test_batched.py``).

Why (``benchmarks/results/bench_image_overhead/``): at the ``image-width`` sweep's sizes a step on
one CPU thread is 34-62% per-operation cost (the part batching removes). What a batch does per
replica: its evaluations (SWD, Frechet/PRDC, code sparsity) and its loss checks. No checkpoints:
an interrupted batch starts again (a sweep resumes cell by cell). DCGAN only (``arch="dcgan"``).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ganlearn.config import ConfigError
from ganlearn.errors import check_finite_and_bounded
from ganlearn.images import data as datamod
from ganlearn.images.config import ImageGANConfig
from ganlearn.images.model import build
from ganlearn.images.train import ema_update, evaluate, real_baseline, sgda_step, step_generator
from ganlearn.rng import default_init_rng, to_device

__all__ = ["batch_key", "group", "replica", "train_replicas"]


def batch_key(cfg: ImageGANConfig) -> str | None:
    """Equal for configurations that can train as replicas of one batch (all but ``seed``); None
    where batching is not built (``arch="fsr"``)."""

    if cfg.arch != "dcgan":
        return None
    d = asdict(cfg)
    d.pop("seed")
    return repr(sorted(d.items()))


class GroupedLinear(nn.Module):
    """R linear layers as one: (n, R * in) -> (n, R * out), replica r's block by its own weight."""

    def __init__(self, layers: list[nn.Linear]):
        super().__init__()
        self.R = len(layers)
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))  # (R, out, in)
        self.bias = None if layers[0].bias is None else nn.Parameter(torch.stack([m.bias.detach() for m in layers]))

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        w = self.weight if weight is None else weight
        y = torch.einsum("nri,roi->nro", x.reshape(x.shape[0], self.R, -1), w)
        return (y if self.bias is None else y + self.bias).flatten(1)


class GroupedSpectralNorm(nn.Module):
    """R spectrally normalised layers (``Conv2d`` with ``groups=R``, or :class:`GroupedLinear`):
    each replica's weight divided by its own sigma = u^T W v, after one power iteration on (u, v) in
    training mode, in the order and form of PyTorch's ``spectral_norm`` (u first, then v)."""

    def __init__(self, layers: list[Any]):  # spectrally normalised Conv2d / Linear (parametrized: duck-typed)
        super().__init__()
        sn: list[Any] = [m.parametrizations.weight[0] for m in layers]
        self.eps, self.n_iter = sn[0].eps, sn[0].n_power_iterations
        self.inner = group([_unparametrized(m) for m in layers])
        self.register_buffer("_u", torch.stack([s._u.detach().clone() for s in sn]))
        self.register_buffer("_v", torch.stack([s._v.detach().clone() for s in sn]))
        self.R = len(layers)

    def normalised_weight(self) -> torch.Tensor:
        w = cast(torch.Tensor, self.inner.weight)
        w_r = w.reshape(self.R, -1, *w.shape[1:]) if w.dim() != 3 else w  # (R, out, ...) per replica
        mat = w_r.flatten(2)
        if self.training:
            with torch.no_grad():
                for _ in range(self.n_iter):
                    self._u.copy_(F.normalize(torch.einsum("rij,rj->ri", mat, self._v), dim=1, eps=self.eps))
                    self._v.copy_(F.normalize(torch.einsum("rij,ri->rj", mat, self._u), dim=1, eps=self.eps))
        u, v = self._u.clone(), self._v.clone()
        sigma = torch.einsum("ri,ri->r", u, torch.einsum("rij,rj->ri", mat, v))
        return (w_r / sigma.reshape(-1, *[1] * (w_r.dim() - 1))).reshape(w.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.normalised_weight()
        if isinstance(self.inner, GroupedLinear):
            return self.inner(x, w)
        return self.inner._conv_forward(x, w, self.inner.bias)


def _unparametrized(m: Any) -> nn.Module:
    """A plain copy of a spectrally normalised Conv2d or Linear holding its unnormalised weight.
    (Not ``parametrize.remove_parametrizations`` on a deep copy: the copy shares the original's
    generated class, and removing the parametrization from it breaks the original.)"""
    plain: Any
    if isinstance(m, nn.Conv2d):
        k, st, pad = cast(Any, m.kernel_size), cast(Any, m.stride), cast(Any, m.padding)  # the layer's own
        plain = nn.Conv2d(m.in_channels, m.out_channels, k, st, pad, bias=m.bias is not None)
    elif isinstance(m, nn.Linear):
        plain = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    else:
        raise ConfigError(f"group: spectral norm on {type(m).__name__} has no grouped form")
    plain.weight = nn.Parameter(m.parametrizations.weight.original.detach().clone())
    if m.bias is not None:
        plain.bias = nn.Parameter(m.bias.detach().clone())
    return plain


def _cat(ts, dim: int = 0) -> nn.Parameter:
    return nn.Parameter(torch.cat([t.detach() for t in ts], dim=dim))


def group(modules: list[Any]) -> nn.Module:
    """R modules of one architecture as one module of grouped layers (see the module docstring).
    The modules are read by their attributes whatever their class (hence ``Any``)."""
    base, R = modules[0], len(modules)
    out: Any
    if parametrize.is_parametrized(base, "weight"):
        return GroupedSpectralNorm(modules)
    if isinstance(base, nn.Linear):
        return GroupedLinear(modules)
    if isinstance(base, (nn.Conv2d, nn.ConvTranspose2d)):
        if base.groups != 1:
            raise ConfigError("group: layers that are already grouped are not supported")
        cls: Any = type(base)
        out = cls(
            R * base.in_channels,
            R * base.out_channels,
            base.kernel_size,
            base.stride,
            base.padding,
            bias=base.bias is not None,
            groups=R,
        )
        out.weight = _cat([m.weight for m in modules])  # Conv2d: (R*out, in, k, k); transposed: (R*in, out, k, k)
        if base.bias is not None:
            out.bias = _cat([m.bias for m in modules])
        return out
    if isinstance(base, nn.BatchNorm2d):
        out = nn.BatchNorm2d(R * base.num_features, eps=base.eps, momentum=base.momentum)
        out.weight, out.bias = _cat([m.weight for m in modules]), _cat([m.bias for m in modules])
        with torch.no_grad():
            out.running_mean.copy_(torch.cat([m.running_mean for m in modules]))
            out.running_var.copy_(torch.cat([m.running_var for m in modules]))
            out.num_batches_tracked.copy_(base.num_batches_tracked)
        return out
    if isinstance(base, nn.Unflatten):
        return nn.Unflatten(base.dim, (R * base.unflattened_size[0], *base.unflattened_size[1:]))
    if not list(base.children()):  # parameter-free leaves: activations, Identity
        if list(base.parameters(recurse=False)) or list(base.buffers(recurse=False)):
            raise ConfigError(f"group: {type(base).__name__} has state and no grouped form")
        return copy.deepcopy(base)
    if list(base.parameters(recurse=False)) or list(base.buffers(recurse=False)):
        raise ConfigError(f"group: {type(base).__name__} holds tensors of its own and has no grouped form")
    out = copy.copy(base)  # a container: the same class and attributes, grouped children
    out._parameters, out._buffers = {}, {}
    out._modules = {name: group([m.get_submodule(name) for m in modules]) for name in base._modules}
    return out


@torch.no_grad()
def replica(grouped_g: nn.Module, template: nn.Module, r: int) -> nn.Module:
    """Replica ``r`` of a grouped generator, as a plain copy of ``template`` (its architecture)."""
    net = copy.deepcopy(template)
    gsd = grouped_g.state_dict()
    for name, t in net.state_dict().items():
        g = gsd[name]
        if name.endswith("num_batches_tracked"):  # one counter for every replica
            t.copy_(g)
        elif g.dim() == t.dim() + 1:  # GroupedLinear: (R, out, in)
            t.copy_(g[r])
        else:  # replica r's block of the concatenated channels
            k = t.shape[0]
            t.copy_(g[r * k : (r + 1) * k])
    return net


def _d_losses(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Per replica: logits (n, R) -> (R,), each as images.train.d_loss_fn on its column."""
    if kind == "ns":
        return F.softplus(-real).mean(0) + F.softplus(fake).mean(0)
    return F.relu(1 - real).mean(0) + F.relu(1 + fake).mean(0)


def _g_losses(kind: str, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake).mean(0) if kind == "ns" else -fake.mean(0)


def train_replicas(cfgs: list[ImageGANConfig], *, progress: bool = False) -> list[dict]:
    """Train ``cfgs`` (one :func:`batch_key`) as replicas of one batch; for each, a dict with
    ``result`` (the last evaluation and the wall time, as ``images.train.train`` returns it),
    ``metrics`` and ``stats`` (the records of its metrics.jsonl and stats.jsonl) and ``g_ema``
    (its EMA generator). A replica whose loss or parameters blow up stops the batch with
    :class:`~ganlearn.errors.DivergenceError` naming its seed."""
    keys = {batch_key(c) for c in cfgs}
    if not cfgs or None in keys or len(keys) != 1:
        raise ConfigError("train_replicas: the configs must differ only in seed, with arch='dcgan'")
    for c in cfgs:
        c.validate()
    cfg, R, device = cfgs[0], len(cfgs), cfgs[0].device
    real = datamod.load(cfg.data, resolution=cfg.res, channels=cfg.channels or None, limit=cfg.limit or None)
    nets = []
    for c in cfgs:
        with default_init_rng(c.seed, "images.init"):
            nets.append(
                build(
                    c.arch,
                    resolution=real.shape[-1],
                    channels=real.shape[1],
                    width=c.width,
                    d_width=c.d_width or None,
                    z_dim=c.z_dim,
                    d_norm=c.d_norm,
                    g_norm=c.g_norm,
                )
            )
    template = copy.deepcopy(nets[0][0])
    norm0 = [math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in g.parameters())) for g, _ in nets]
    G, D = group([g for g, _ in nets]).to(device), group([d for _, d in nets]).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    if cfg.optimizer == "adam":
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    else:
        opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=cfg.lr_g), torch.optim.SGD(D.parameters(), lr=cfg.lr_d)
    baselines = [real_baseline(real, c) for c in cfgs]
    out: list[dict[str, Any]] = [{"metrics": [], "stats": []} for _ in cfgs]

    def real_batch(step: int, k: int) -> list[torch.Tensor]:
        xs = [
            real[torch.randint(0, len(real), (c.batch,), generator=step_generator(c.seed, step, 0, f"real{k}"))]
            for c in cfgs
        ]
        return [to_device(torch.cat(xs, dim=1), device)]

    def latents(step: int, k: int) -> torch.Tensor:
        zs = [torch.randn(c.batch, c.z_dim, generator=step_generator(c.seed, step, 0, f"latent{k}")) for c in cfgs]
        return to_device(torch.cat(zs, dim=1), device)

    t0 = time.time()
    for step in range(cfg.steps):
        G.train()
        D.train()
        d_losses, g_losses = sgda_step(
            G, D, opt_g, opt_d, cfg, real_batch, latents, step, d_losses=_d_losses, g_losses=_g_losses
        )  # per replica (R,); their sum is differentiated
        beta = ema_update(G_ema, G, cfg, step)
        done = step + 1
        log_now = bool(cfg.log_every) and (done % cfg.log_every == 0 or done == cfg.steps)
        ckpt_now = (cfg.ckpt_every and done % cfg.ckpt_every == 0) or done == cfg.steps
        if log_now or ckpt_now:  # the separate run's checks, at the same steps, replica by replica
            dl, gl = d_losses.detach().cpu(), g_losses.detach().cpu()
            for r, c in enumerate(cfgs):
                where = f"replica seed={c.seed}, step {done} (the batch stops; train this seed on its own)"
                check_finite_and_bounded("the discriminator loss", float(dl[r]), 0.0, None, where)
                check_finite_and_bounded("the generator loss", float(gl[r]), 0.0, None, where)
                g_r = replica(G, template, r)
                norm = math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in g_r.parameters()))
                check_finite_and_bounded("G's parameter norm", norm, norm0[r], c.divergence_factor, where)
                if log_now:
                    out[r]["stats"].append(
                        {
                            "step": done,
                            "d_loss": float(dl[r]),
                            "g_loss": float(gl[r]),
                            "ema_beta": beta,
                            "wall_seconds": time.time() - t0,
                        }
                    )
        if (cfg.eval_every and done % cfg.eval_every == 0) or done == cfg.steps:
            for r, c in enumerate(cfgs):
                rec = evaluate(
                    replica(G_ema, template, r).to(device).eval(),
                    real,
                    c,
                    done,
                    done * c.batch,
                    baselines[r],
                    device=device,
                )
                out[r]["metrics"].append(rec)
    wall = time.time() - t0
    for r in range(R):
        out[r]["result"] = {
            **out[r]["metrics"][-1],
            "wall_seconds": wall,
            "world": 1,
            "replica_max_abs_diff": 0.0,
            "replicas": R,
        }
        out[r]["g_ema"] = replica(G_ema, template, r).eval()
    return out
