"""The end-to-end baseline (every layer at once, WGAN-GP): its spec and its runner."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import torch

from ganlearn.config import Settings, setting
from ganlearn.discriminators import MLPDiscriminator
from ganlearn.fsr.model import FSRNet
from ganlearn.fsr.stages.common import Data
from ganlearn.rng import to_device
from ganlearn.sgda import SGDA, SGDAConfig

__all__ = ["EndToEndStage", "EndToEnd"]


@dataclass(frozen=True)
class EndToEndStage(Settings):
    """Baseline: all generator parameters against a generic MLP discriminator (WGAN-GP)."""

    kind: Literal["end_to_end"] = "end_to_end"
    name: Optional[str] = None  # for overrides (stages.NAME.key=...); None: see fsr.stages.stage_name
    steps: int = setting(1000, ge=1)  # replaced by the staged run's sample budget when used as the baseline
    batch: int = setting(256, ge=1)
    # n_d = 2 rather than WGAN-GP's usual 5: 0.35 s against 0.74 s a step on 2 CPU cores
    sgda: SGDAConfig = SGDAConfig(lr_g=1e-3, lr_d=1e-3, n_d=2, optimizer="adam", beta1=0.5, beta2=0.9)
    hidden: int = setting(256, ge=1)  # width of the MLP discriminator
    gp_weight: float = setting(10.0, ge=0)  # WGAN-GP gradient-penalty weight

    def validate(self, key: str) -> None:
        """Every rule is a single field's range, declared above and checked at construction."""


class EndToEnd:
    """Baseline: every generator parameter trained at once against a generic MLP discriminator on
    all resolutions together, with the WGAN-GP loss (Gulrajani et al. 2017) and Adam -- what a
    practitioner would try instead of the staged algorithm."""

    def __init__(self, spec: EndToEndStage, learner: FSRNet, data: Data, generator: torch.Generator):
        self.spec, self.learner, self.data = spec, learner, data
        self.n_steps, self.samples_per_step = spec.steps, spec.batch * spec.sgda.n_d
        geo = learner.shape.geometry
        in_dim = sum(geo.n_patches(lv) * geo.d for lv in range(1, geo.n_levels + 1))
        p = learner.W[0]
        self.disc = MLPDiscriminator(in_dim, spec.hidden).to(device=p.device, dtype=p.dtype)
        with torch.no_grad():  # explicit, seeded init of D (not the global RNG)
            for prm in self.disc.parameters():
                bound = 1.0 / math.sqrt(prm.shape[-1]) if prm.dim() > 1 else 0.01
                prm.copy_((torch.rand(prm.shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound)
        self.sgda = SGDA(list(learner.parameters()), list(self.disc.parameters()), spec.sgda)

    def step(self, t: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        s, L, D = self.spec, self.learner, self.disc

        def losses(g: torch.Generator):
            real = self.data(s.batch, generator=g)
            fake, _ = L(L.sample_latent(s.batch, generator=g))
            eps = to_device(torch.rand(s.batch, 1, 1, generator=g, dtype=real[0].dtype), real[0].device)
            mixed = [(eps * r + (1 - eps) * f.detach()).requires_grad_(True) for r, f in zip(real, fake)]
            grads = torch.autograd.grad(D(mixed).sum(), mixed, create_graph=True)
            gnorm = torch.cat([gr.flatten(1) for gr in grads], 1).norm(dim=1)
            gp = s.gp_weight * (gnorm - 1).pow(2).mean()
            d_loss = D([f.detach() for f in fake]).mean() - D(real).mean() + gp
            g_loss = -D(fake).mean()
            return d_loss, g_loss

        return self.sgda.step(losses, generator)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"disc.{k}": v for k, v in self.disc.state_dict().items()} | self.sgda.state_dict()

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        self.disc.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("disc.")})
        self.sgda.load_state_dict(sd)
