"""GAN_ForwardSuperResolution (Allen-Zhu & Li, §3): its spec and runner, a moment game on pairs
(X_{l-1}, X_l) with a generator step in whitened coordinates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch

from ganlearn.config import ConfigError, Settings, check, setting
from ganlearn.fsr.discriminators import pair_moments, whitening, with_bias
from ganlearn.fsr.model import FSRNet
from ganlearn.fsr.stages.common import Data
from ganlearn.fsr.stages.moments import MomentGame
from ganlearn.sgda import SGDAConfig

__all__ = ["SuperResolutionStage", "SuperResolution"]


@dataclass(frozen=True)
class SuperResolutionStage(Settings):
    """GAN_ForwardSuperResolution: a discriminator on pairs (X_{l-1}, X_l) learns V_l, b_l."""

    kind: Literal["super_resolution"] = "super_resolution"
    name: Optional[str] = None  # for overrides (stages.NAME.key=...); None: see fsr.stages.stage_name
    level: int = setting(2, ge=2, allowed="an integer >= 2 (level 1 is first_hidden)")
    steps: int = setting(800, ge=1)
    # Real pairs per D evaluation. The stage's own error is set by the step noise of the cross
    # moments, not by the number of steps. Measured with every other layer exact (default target,
    # seed 0, own level-l coupled error after 800 steps): level 3: batch 256 -> 0.035 (still falling
    # 0.040 -> 0.035 over the last 100 steps), 1600 steps at batch 256 -> 0.022, lr_g 0.02 -> 0.092,
    # lr_half_life 800 -> 0.053 (a larger step is noisier, not faster), batch 1024 -> 0.0034.
    # In the pipeline (seed 0), the own error of levels 2 / 3 went 0.0072 / 0.0323 -> 0.0021 / 0.0031
    # and the level-3 error 0.080 -> 0.033, for ~55 s more on 2 cores. Over 5 seeds with the current
    # first_hidden, the own error is 0.0024-0.0030 (level 2) and 0.0085-0.0141 (level 3).
    batch: int = setting(1024, ge=1)
    fake_batch: int = setting(1024, ge=1)  # generator draws per D evaluation (parents="generated" only)
    # Adam for both players. Measured with every other layer exact (level-2 coupled error after 800
    # steps, seed 0): precondition=true with lr_g 0.005 / 0.01 / 0.02 / 0.05 -> 0.031 / 0.0068 /
    # 0.024 / 0.32; precondition=false, lr_g 0.05 (its best) -> 0.056.
    sgda: SGDAConfig = SGDAConfig(lr_g=0.01, lr_d=0.5, n_d=1, optimizer="adam")
    ridge: float = setting(1.0, gt=0)
    whiten: bool = True  # map [1, parent codes] by C^{-1/2} per patch before the cross moments
    precondition: bool = True  # G steps in the whitened input coordinates, (V, b) = V_w M
    # M = (C + whiten_ridge * mean diag(C) I)^{-1/2}. 1e-4 is safe because the warm start switches
    # off the channels of a wider learner that decode no signal, so their parent codes are exactly
    # 0 (default target, learner m = 24 for 16, seed 0: coupled error 0.068). Were they left on,
    # their near-zero codes would be amplified ~100x and the preconditioned step blow up (tiny
    # preset, learner m = 10 > 8: coupled error 44 at 1e-4, 1.09 at 1e-2).
    whiten_ridge: float = setting(1e-4, gt=0)
    parents: Literal["generated", "real"] = "real"  # fake pairs from G's own S_{l-1}, or G(real X_{l-1})
    lr_half_life: float = setting(300.0, gt=0)
    lr_floor: float = setting(0.05, gt=0, le=1)
    average_tail: float = setting(0.0, ge=0, lt=1)  # as in first_hidden.FirstHiddenStage

    @property
    def init_samples(self) -> int:
        """Real pairs drawn at stage start for the whitening and the moment scales: at least 1024
        (4 x the batch of 256 at which the whitening was measured), so a small batch
        does not give a noisy whitening, nor a large one 4 x its memory."""
        return max(self.batch, 1024)

    def validate(self, key: str) -> None:
        check(
            self.whiten or not self.precondition,
            f"{key}.precondition",
            self.precondition,
            "false when whiten is false (the step is taken in the whitened coordinates)",
        )


class SuperResolution(MomentGame):
    """GAN_ForwardSuperResolution for level l >= 2: learns V_l, b_l against a discriminator on
    pairs (X_{l-1}, X_l), decoded to codes by the learned output layers, whose features are the
    cross moments E[S_{l,j,r} (1, S_{l-1,P(j)})] (see :func:`pair_moments`).

    ``parents="real"`` (default): the generator super-resolves the real image, fake pairs are
    (S_hat_{l-1}, ReLU(V_l S_hat_{l-1} - b_l)) -- a conditional GAN whose real and fake pairs share
    their low-resolution half, so the moment gap carries only the residual's noise.
    ``parents="generated"`` (the unconditional reading): fake pairs are the generator's own
    (S_{l-1}(z), S_l(z)). Measured with every other layer exact (level-2 coupled error after 800
    steps, before preconditioning): 0.06 with real parents, 0.14 with generated ones.

    ``precondition=True`` (default): the generator's step is taken in whitened coordinates,
    [-b, V] = V_w M with M the whitening of the inputs x = [1, parents], so pre-activations are
    V_w (M x). The map is the same; only the geometry of the step changes, and the moment game's
    Hessian in V_w is that of a well-conditioned GLM instead of one squared by the parents' badly
    conditioned covariance. It took the level-2 error after 800 steps from 0.056 to 0.0068 (every
    other layer exact, seed 0; lr_g re-tuned to 0.01).
    """

    def __init__(self, spec: SuperResolutionStage, learner: FSRNet, data: Data, generator: torch.Generator):
        self.spec, self.learner, self.data = spec, learner, data
        self.level = spec.level
        if spec.level > learner.n_levels:
            raise ConfigError(f"super_resolution.level={spec.level} but the learner has {learner.n_levels} levels")
        self.n_steps, self.samples_per_step = spec.steps, spec.batch * (spec.sgda.n_d + 1)
        self.n_init = spec.init_samples
        self.white = None
        with torch.no_grad():
            if spec.whiten:
                xs = data(self.n_init, generator=generator, upto=self.level)
                x = with_bias(learner.parent_inputs(self.level, learner.encode(self.level - 1, xs[-2])))
                self.white, white_inv = whitening(
                    torch.einsum(learner.eq("njq,njp->jqp"), x, x) / x.shape[0], rel_ridge=spec.whiten_ridge
                )
            real = self._real(data(self.n_init, generator=generator, upto=self.level))[0]
        self.v_white = None
        g_params = [learner.V[self.level - 1], learner.b[self.level - 1]]
        if spec.precondition:
            if self.white is None:
                raise ConfigError("super_resolution.precondition=true needs whiten=true")
            with torch.no_grad():  # [-b, V] x = ([-b, V] M^{-1}) (M x): the same map, new coordinates
                full = torch.cat([-learner.b[self.level - 1][..., None], learner.V[self.level - 1].flatten(-2)], -1)
                self.v_white = torch.nn.Parameter(full @ white_inv)
            g_params = [self.v_white]
        self._init_game(g_params, [real], spec)
        if spec.precondition:
            self.sgda.g_project = self._write_back

    def _write_back(self) -> None:
        """Learner's (V_l, b_l) <- the whitened-coordinate parameters (after every G step)."""
        assert self.v_white is not None and self.white is not None  # set when the stage starts
        full = self.v_white @ self.white
        V, b = self.learner.V[self.level - 1], self.learner.b[self.level - 1]
        b.copy_(-full[..., 0])
        V.copy_(full[..., 1:].reshape(V.shape))

    def _fake_codes(self, s_lo: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        L, lv = self.learner, self.level
        if self.v_white is None:
            return L.hidden(lv, s_lo)
        # V_w (M x) = (V_w M) x: the map applied to the (J, m, q) weights, not to the n inputs
        v = torch.einsum(L.eq("jrp,jpq->jrq"), self.v_white, self.white)
        return torch.relu(torch.einsum(L.eq("jrq,njq->njr"), v, with_bias(parents)))

    def state_dict(self) -> dict[str, torch.Tensor]:
        sd = super().state_dict()
        if self.v_white is not None:
            sd["v_white"] = self.v_white.detach()
        return sd

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        super().load_state_dict(sd)
        if self.v_white is not None:
            with torch.no_grad():
                self.v_white.copy_(sd["v_white"])

    def _real(self, xs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cross moments, parent codes, gathered parents) of real pairs."""
        lv, L = self.level, self.learner
        with torch.no_grad():
            s_lo = L.encode(lv - 1, xs[lv - 2])
            s_hi = L.encode(lv, xs[lv - 1])
            parents = L.parent_inputs(lv, s_lo)
            return pair_moments(s_hi, parents, self.white), s_lo, parents

    def _generated_parents(self, n: int, g: torch.Generator) -> torch.Tensor:
        L = self.learner
        with torch.no_grad():
            s = L.hidden(1, L.sample_latent(n, generator=g))
            for level in range(2, self.level):
                s = L.hidden(level, s)
        return s

    def step(self, t: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        s, L, lv = self.spec, self.learner, self.level

        def losses(g: torch.Generator):
            real, s_lo, parents = self._real(self.data(s.batch, generator=g, upto=lv))
            if s.parents == "generated":
                s_lo = self._generated_parents(s.fake_batch, g)
                parents = L.parent_inputs(lv, s_lo)
            fake = pair_moments(self._fake_codes(s_lo, parents), parents, self.white)
            v = self._value([real], [fake])
            return -v, v

        out = self.sgda.step(losses, generator)
        self._average(t)
        return out
