"""The ground-truth FSR target distribution and its Assumption 2.2 report."""

from __future__ import annotations

import torch

from ganlearn.config import ConfigError
from ganlearn.fsr.config import LearnerConfig, TargetConfig
from ganlearn.fsr.geometry import Geometry
from ganlearn.fsr.model import FSRNet, Shape, edge_colour_atoms, init_hidden, random_orthonormal
from ganlearn.metrics.sparsity import coactivation_stats
from ganlearn.rng import make_generator

__all__ = ["geometry_of", "init_output_layers", "FSRTarget", "make_learner"]


def geometry_of(cfg: TargetConfig) -> Geometry:
    return Geometry(cfg.levels, cfg.base_grid, cfg.patch, cfg.colours, cfg.neighbourhood)


@torch.no_grad()
def init_output_layers(net: FSRNet, *, atoms: str, generator: torch.Generator) -> None:
    """Column-orthonormal W_l for every level (and patch, when not shared)."""
    geo, m = net.shape.geometry, net.shape.channels
    for W in net.W:
        for j in range(W.shape[0]):
            if atoms == "edge_colour":
                W[j].copy_(edge_colour_atoms(geo, m, generator=generator))
            else:
                W[j].copy_(random_orthonormal(geo.d, m, generator=generator))


class FSRTarget:
    """A frozen FSR network G* with ground truth attached.

    ``sample(n, generator=g)`` returns ``(X, S)``: per level, ``(n, d_l, d)`` patches and the
    ``(n, d_l, m)`` hidden codes that made them (a learner only ever sees ``X``).
    """

    def __init__(
        self,
        cfg: TargetConfig,
        *,
        seed: int,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        n_calibration: int = 20000,
    ):
        cfg.validate()
        self.cfg = cfg
        self.geometry = geometry_of(cfg)
        self.net = FSRNet(Shape(self.geometry, cfg.channels, cfg.latent_dim, cfg.shared_output)).double()
        g = make_generator(seed, "fsr.target")
        init_output_layers(self.net, atoms=cfg.atoms, generator=g)
        init_hidden(self.net, k=cfg.sparsity, n_calibration=n_calibration, generator=g)
        self.net = self.net.to(device=device, dtype=dtype).requires_grad_(False)

    @property
    def n_levels(self) -> int:
        return self.cfg.levels

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator, upto: int | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``n`` draws; ``upto`` renders only levels 1..upto of each (the same draw, cheaper when a
        stage looks at low resolutions only; a real dataset would average-pool instead)."""
        return self.net(self.net.sample_latent(n, generator=generator), upto=upto)

    def images(self, n: int, *, generator: torch.Generator, upto: int | None = None) -> list[torch.Tensor]:
        """``n`` draws, images only (per level, ``(n, d_l, d)`` patches): the ``data`` callable a
        stage takes, ``data(n, generator=g, upto=l)``; a learner never sees the hidden codes."""
        return self.sample(n, generator=generator, upto=upto)[0]

    @torch.no_grad()
    def assumption_report(self, n: int = 20000, *, generator: torch.Generator) -> dict:
        """How well the target meets Assumption 2.2 (sparse, not-too-positively correlated codes)."""
        m, k = self.cfg.channels, self.cfg.sparsity
        out, s = {}, self.net.sample_latent(n, generator=generator)
        for level in range(1, self.n_levels + 1):  # codes only, one level alive at a time (no images)
            s = self.net.hidden(level, s)
            out[f"level{level}"] = coactivation_stats(s, k_over_m=k / m)
        return out


def make_learner(
    target_cfg: TargetConfig,
    learner_cfg: LearnerConfig,
    *,
    seed: int,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> FSRNet:
    """The learner: same structure (§2.2), random hidden layers with calibrated biases, random
    orthonormal output layers (the warm start replaces them)."""
    m = learner_cfg.channels or target_cfg.channels
    m0 = learner_cfg.latent_dim or target_cfg.latent_dim
    k = learner_cfg.sparsity or target_cfg.sparsity * m / target_cfg.channels
    geo = geometry_of(target_cfg)
    if m > geo.d:
        raise ConfigError(f"learner.channels={m} must be <= patch dimension d={geo.d}")
    net = FSRNet(Shape(geo, m, m0, target_cfg.shared_output)).double()
    g = make_generator(seed, "fsr.learner")
    init_output_layers(net, atoms="random", generator=g)
    init_hidden(net, k=k, n_calibration=5000, generator=g)
    return net.to(device=device, dtype=dtype)
