"""The linear-discriminator moment game shared by the two moment-matching stages,
GAN_FirstHidden (``first_hidden.py``) and GAN_ForwardSuperResolution (``super_resolution.py``)."""

from __future__ import annotations

from typing import Any

import torch

from ganlearn.fsr.stages.common import schedule
from ganlearn.gauss_newton import along
from ganlearn.sgda import SGDA

__all__ = ["MomentGame"]


class MomentGame:
    """Shared SGDA machinery of the two moment-matching stages: a linear discriminator
    D(S) = <theta, phi(S)> over a fixed feature map with the -lambda/2 ||theta||^2 term, so that
    the inner max is theta* = (E phi(real) - E phi(fake)) / lambda and the generator minimises
    ||E phi(real) - E phi(fake)||^2 / (2 lambda): method of moments carried out by SGDA.

    Each block of features (first moments, second moments, cross moments) is divided by its mean
    magnitude on real data (measured at stage start), so blocks weigh alike. A per-feature scale
    was tried first and learned about half as fast (level-1 coupled error 0.49 against 0.23 after
    800 steps, default target, W set to the truth): it blows up the noise of rare co-activations.

    Whitening (``whiten=True``): the raw inputs of the moments (the codes for GAN_FirstHidden,
    [1, parent codes] for GAN_ForwardSuperResolution) are first mapped by M = C^{-1/2}, C their
    second moment on real data at stage start. The moments of M x are an invertible linear map of
    those of x, so the game has the same solutions; but the generator's objective
    ||gap||^2 / (2 lambda) has a Hessian ~ J^T J whose conditioning follows that of C, and the
    sparse codes' C is badly conditioned. Measured (default target, seed 0, every other layer set
    to the truth, level-l coupled error): GAN_ForwardSuperResolution level 2 after 600 steps
    0.33 raw -> 0.090 whitened (0.051 with lr_g 0.05); GAN_FirstHidden after 1000 steps 0.067 raw
    -> 0.048 whitened.

    lr_d * lambda = 1 (the default lr_d = ridge = 1, plain SGD for D): theta moves to the exact
    inner maximiser (the current moment gap / lambda) every step. With lr_d * lambda = 0.5 theta
    lags by a step and GAN_FirstHidden ended at 0.105 instead of 0.067 (same measurement as above).

    Iterate averaging (``average_tail``): the stage ends at the running mean of G's parameters over
    its last ``average_tail`` fraction of steps (Polyak-Ruppert), which removes the step noise of the
    moment estimates that the last iterate keeps. GAN_FirstHidden, seed 0, 1500 steps, level-1
    coupled error (Procrustes U): 0.0160 last iterate, 0.0107 averaging the last half, 0.0116 the
    last 75 %, 0.0102 with twice the batches. Caveat: V_1 is identified only up to V_1 U (a rotation
    of z); averaging V itself (not V V^T, as the one-layer trainer averages Sigma) assumes the
    iterates do not drift along that orbit within the window, which the numbers above support.
    """

    learner: Any  # the host stage's (an FSRNet)
    spec: Any  # the host stage's settings
    n_steps: int

    def _init_game(self, g_params, feats_real: list[torch.Tensor], spec) -> None:
        if self.learner.replicas is None:
            self.scale = [f.abs().mean().clamp_min(1e-12).expand_as(f).clone() for f in feats_real]
        else:  # one scale per replica (its own run's); the value below sums the replicas' values
            self.scale = [
                along(f.abs().flatten(1).mean(1).clamp_min(1e-12), f).expand_as(f).clone() for f in feats_real
            ]
        self.theta = [torch.nn.Parameter(torch.zeros_like(f)) for f in feats_real]
        self.sgda = SGDA(g_params, self.theta, spec.sgda, schedule=schedule(spec))
        self.g_params = list(g_params)
        self.avg_from = spec.steps - round(spec.average_tail * spec.steps) if spec.average_tail > 0 else None
        self.avg = [torch.zeros_like(p.detach()) for p in self.g_params] if self.avg_from is not None else []

    @torch.no_grad()
    def _average(self, t: int) -> None:
        """Running mean of G's iterates from step ``avg_from`` on; at the stage's last step G is set
        to it (then ``g_project`` writes it back to the learner, as after any G step)."""
        if self.avg_from is None or t < self.avg_from:
            return
        n = t - self.avg_from + 1  # iterates averaged so far, this one included
        for a, p in zip(self.avg, self.g_params):
            a.add_((p.detach() - a) / n)
        if t == self.n_steps - 1:
            for a, p in zip(self.avg, self.g_params):
                p.copy_(a)
            if self.sgda.g_project is not None:
                self.sgda.g_project()

    def _value(self, real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
        v: Any = 0.0
        for th, r, f, sc in zip(self.theta, real, fake, self.scale):
            v = v + (th * (r - f) / sc).sum() - 0.5 * self.spec.ridge * th.pow(2).sum()
        return v

    def state_dict(self) -> dict[str, torch.Tensor]:
        sd = {f"theta.{i}": t.detach() for i, t in enumerate(self.theta)}
        sd |= {f"scale.{i}": s for i, s in enumerate(self.scale)}
        if self.white is not None:
            sd["white"] = self.white
        sd |= {f"avg.{i}": a for i, a in enumerate(self.avg)}
        return sd | self.sgda.state_dict()

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for i, t in enumerate(self.theta):
                t.copy_(sd[f"theta.{i}"])
        self.scale = [sd[f"scale.{i}"] for i in range(len(self.theta))]
        self.white = sd.get("white")
        for i, a in enumerate(self.avg):
            a.copy_(sd[f"avg.{i}"])
        self.sgda.load_state_dict(sd)
