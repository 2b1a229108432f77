"""GAN_OutputLayer (Allen-Zhu & Li, §3): its spec and its runner."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch

from ganlearn.config import ConfigError, Settings, check, setting
from ganlearn.fsr.discriminators import thresholded_output_d
from ganlearn.fsr.model import FSRNet, polar
from ganlearn.fsr.stages.common import Data, schedule
from ganlearn.sgda import SGDA, SGDAConfig

__all__ = ["OutputLayerStage", "OutputLayer"]


@dataclass(frozen=True)
class OutputLayerStage(Settings):
    """GAN_OutputLayer: thresholded one-hidden-layer discriminators learn every W_l."""

    kind: Literal["output_layer"] = "output_layer"
    name: Optional[str] = None  # for overrides (stages.NAME.key=...); None: see fsr.stages.stage_name
    level: int = setting(0, ge=0, allowed="0 (every level) or a level >= 1")  # l >= 1: only W_l (a later polish)
    steps: int = setting(600, ge=1)
    batch: int = setting(512, ge=1)
    sgda: SGDAConfig = SGDAConfig(lr_g=20.0, lr_d=20.0, n_d=2)
    lr_half_life: float = setting(150.0, gt=0)  # step sizes halve every this many steps ...
    lr_floor: float = setting(0.05, gt=0, le=1)  # ... down to this fraction of their start
    beta_start: float = 0.5  # b^D = beta * rho_l, rho_l = RMS patch norm of level l
    beta_end: float = setting(0.2, ge=0)
    beta_decay: float = setting(0.8, gt=0, le=1)  # beta <- max(beta_end, beta * beta_decay) ...
    beta_every: int = setting(50, ge=1)  # ... every this many steps
    reset_every: int = setting(10, ge=1)  # W^D <- generator's W every this many steps

    def validate(self, key: str) -> None:
        check(self.beta_start >= self.beta_end, f"{key}.beta_start", self.beta_start, f">= beta_end={self.beta_end}")


class OutputLayer:
    """GAN_OutputLayer (§3.1): for every level, the thresholded discriminator
    D_l(X) = sum_r ReLU(<w^D_r, X_{l,j}> - b^D_l) against the generator's W_l, by SGDA.

        V(W, W^D) = E_real D(X) - E_z D(W S(z)),      min over W, max over W^D

    Design choices (the paper's text for them is not available; reasons beside each):
    * b^D_l = beta * rho_l with rho_l the RMS patch norm of level l measured at stage start:
      one schedule for every level whatever its code scale. beta starts at ``beta_start`` and is
      multiplied by ``beta_decay`` every ``beta_every`` steps down to ``beta_end`` ("start with
      some b^D and periodically decrease it").
    * W^D is reset to the generator's W every ``reset_every`` steps ("periodically set W^D to the
      generator's W from a previous checkpoint").
    * Rows of W^D are kept on the unit sphere (otherwise the inner max is unbounded) and W_l is kept
      column-orthonormal by the polar retraction, as W* is (§2.1): the orthogonality is what stops
      two columns from collapsing on the same feature.
    * The gradient of E ReLU(<w, X> - b) is proportional to the firing probability (~k/m), so the
      step sizes are large (about 1 / Pr[fire]) and halve every ``lr_half_life`` steps: early
      steps act like the fixed point w <- mean of the patches that fire w, later ones average noise.
    * Fake patches are W_l S_l(z) with the learner's current hidden codes (no gradient to V here).
    """

    def __init__(self, spec: OutputLayerStage, learner: FSRNet, data: Data, generator: torch.Generator):
        self.spec, self.learner, self.data = spec, learner, data
        self.n_steps = spec.steps
        self.samples_per_step = spec.batch * (spec.sgda.n_d + 1)
        if spec.level > learner.n_levels:
            raise ConfigError(f"output_layer.level={spec.level} but the learner has {learner.n_levels} levels")
        self.levels = [spec.level] if spec.level else list(range(1, learner.n_levels + 1))
        self.upto = max(self.levels)
        self.W = [learner.W[lv - 1] for lv in self.levels]
        with torch.no_grad():
            xs = data(spec.batch, generator=generator, upto=self.upto)
        # replicas: rho is (levels, R), each replica's from its own patches
        per = (lambda e: e.mean()) if learner.replicas is None else (lambda e: e.mean((0, 2)))  # e: (n, R, J)
        self.rho = torch.stack([per(xs[lv - 1].pow(2).sum(-1)).sqrt() for lv in self.levels])
        self.w_d = [torch.nn.Parameter(W.detach().transpose(-1, -2).clone()) for W in self.W]
        self.sgda = SGDA(
            self.W, self.w_d, spec.sgda, g_project=self._project_g, d_project=self._project_d, schedule=schedule(spec)
        )

    def _project_g(self) -> None:
        for W in self.W:
            for j in itertools.product(*map(range, W.shape[:-2])):  # (patch) or (replica, patch)
                W[j].copy_(polar(W[j]))

    def _project_d(self) -> None:
        for w in self.w_d:
            w.div_(w.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    def beta(self, t: int) -> float:
        s = self.spec
        return max(s.beta_end, s.beta_start * s.beta_decay ** (t // s.beta_every))

    def step(self, t: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        s, learner = self.spec, self.learner
        if t % s.reset_every == 0:
            with torch.no_grad():
                for w, W in zip(self.w_d, self.W):
                    w.copy_(W.transpose(-1, -2))
        bias = self.rho * self.beta(t)

        def losses(g: torch.Generator):
            real = self.data(s.batch, generator=g, upto=self.upto)
            with torch.no_grad():
                _, codes = learner(learner.sample_latent(s.batch, generator=g), upto=self.upto)
            value: Any = 0.0
            for i, lv in enumerate(self.levels):
                value = (
                    value
                    + thresholded_output_d(real[lv - 1], self.w_d[i], bias[i])
                    - thresholded_output_d(learner.decode(lv, codes[lv - 1]), self.w_d[i], bias[i])
                )
            return -value, value

        out = self.sgda.step(losses, generator)
        out["b_d_beta"] = torch.tensor(self.beta(t))
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        sd = {f"w_d.{i}": w.detach() for i, w in enumerate(self.w_d)}
        sd["rho"] = self.rho
        return sd | self.sgda.state_dict()

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for i, w in enumerate(self.w_d):
                w.copy_(sd[f"w_d.{i}"])
        self.rho = sd["rho"]
        self.sgda.load_state_dict(sd)
