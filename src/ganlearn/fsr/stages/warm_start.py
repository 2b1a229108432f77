"""The SVD warm start of the output layers (Allen-Zhu & Li, §3): its spec and its runner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch

from ganlearn.config import Settings, setting
from ganlearn.fsr.model import FSRNet
from ganlearn.fsr.stages.common import Data
from ganlearn.fsr.stages.rotation import ROTATION_TOL, nonnegative_rotation

__all__ = ["WarmStartStage", "truncated_patch_covariance", "nonnegative_rotation", "WarmStart"]

# Eigenvalues of the truncated patch covariance below this fraction of the largest are round-off
# (float32 images give ~1e-15 of it; the smallest signal eigenvalue of the shape experiment's
# targets is a few percent of it).
RANK_RTOL = 1e-9


@dataclass(frozen=True)
class WarmStartStage(Settings):
    """SVD warm start of every output layer from a truncated patch covariance."""

    kind: Literal["warm_start"] = "warm_start"
    name: Optional[str] = None  # for overrides (stages.NAME.key=...); None: see fsr.stages.stage_name
    n_samples: int = setting(4096, ge=2)  # images drawn to estimate the covariance
    truncation: float = setting(0.99, gt=0, le=1)  # keep patches whose squared norm is below this quantile
    # "span": W_l <- top-m eigenvectors only (W* up to an unknown rotation Q, paper Remark 3.1).
    # "nonneg": then rotate inside the span to the basis in which the decoded codes are
    # non-negative (see stages.nonnegative_rotation): the only basis where they can be, so the
    # sparse features themselves. Needed for per-patch output layers (shared_output=false), where
    # GAN_OutputLayer alone does not find the basis; measured numbers in stages.WarmStart.
    rotation: Literal["span", "nonneg"] = "nonneg"
    # The rotation's solver (stages.rotation.nonnegative_rotation): Gauss-Newton with random
    # restarts for the patches it leaves at a local minimum, or Riemannian gradient descent (the
    # comparison solver; it leaves 100 of 256 level-4 patches of a 4-level per-patch target unsolved).
    rotation_solver: Literal["gauss_newton", "gradient"] = "gauss_newton"
    rotation_steps: int = setting(3000, ge=0)  # iterations per start (a patch stops early when solved or stuck)
    rotation_restarts: int = setting(8, ge=0)  # gauss_newton: rounds of random restarts for the unsolved patches
    rotation_lr: float = setting(1.0, gt=0)  # gradient only: the step, in units of the code scale
    # A learner channel whose decoded codes carry less than this fraction of the mean channel's
    # energy on the warm start's samples spans no signal (a learner wider than the target's rank):
    # it is switched off (V row 0, bias 1, so ReLU(-1) = 0 and no gradient revives it). 0 = never.
    dead_energy: float = setting(1e-6, ge=0, lt=1)

    def validate(self, key: str) -> None:
        """Every rule is a single field's range, declared above and checked at construction."""


def truncated_patch_covariance(patches: torch.Tensor, truncation: float) -> torch.Tensor:
    """M = E[X X^T 1{||X||^2 <= tau}], tau the ``truncation``-quantile of ||X||^2.

    patches: (N, d). Truncating the heaviest patches keeps the estimate robust to rare large
    patches (co-activations of many channels); every kept patch lies in span(W*), so on a
    noiseless target the top-m eigenvectors of M span exactly span(W*).
    """
    sq = patches.pow(2).sum(1)
    keep = sq <= torch.quantile(sq, truncation) if truncation < 1 else torch.ones_like(sq, dtype=torch.bool)
    x = patches[keep]
    return x.T @ x / x.shape[0]


class WarmStart:
    """SVD warm start (Algorithm init-last): W_l <- top-m eigenvectors of the truncated patch
    covariance of level l, pooled over patches when W_l is shared, per patch otherwise.

    This recovers span(W*_l) only (W*_l Q for an unknown rotation Q). With ``rotation="span"``
    GAN_OutputLayer then has to find the sparse basis inside the span (paper, Remark 3.1). With
    ``rotation="nonneg"`` (default) the warm start also rotates inside the span to the basis in
    which the decoded codes are non-negative (:func:`nonnegative_rotation`).

    Why (measured, default shape, seed 0, mean / worst feature cosine per level):
    * per-patch output layers (``shared_output=false``): after the span 0.43 / -0.17 at level 1;
      GAN_OutputLayer alone ends at 0.53 mean with worst columns near 0 (per-patch W learned nothing).
      The per-patch game has no restoring force at the truth: started *at* W = W* with the hidden
      layers *set to the truth*, 300 steps of it drift to mean cosine 0.82 at level 2 (one patch's
      data, shared learner) -- pooling over 16-64 patches is what made the shared case work.
      The rotation gives 1.000 / 1.000, 1.000 / 1.000, 1.000 / 0.997 (levels 1-3, 4096 images,
      300 steps, 19 s on 2 CPU cores); with each patch run to its own tolerance (up to
      ``rotation_steps``) the worst cosine is 1.000 at every level.
    * shared output layers: the rotation alone gives worst cosine 1.000 at every level; the old
      default (span, then 600 steps of GAN_OutputLayer on every level) gave 0.987 / 0.988 / 0.998,
      because GAN_OutputLayer runs while the hidden codes are still random. Full default pipeline,
      seed 0: coupled error per level 0.053 / 0.125 / 0.225 before, 0.020 / 0.044 / 0.098 after.
    """

    def __init__(self, spec: WarmStartStage, learner: FSRNet, data: Data, generator: torch.Generator):
        self.spec, self.learner, self.data = spec, learner, data
        self.n_steps, self.samples_per_step = 1, spec.n_samples
        self.n_dead: dict[int, int] = {}
        self.unsolved: dict[int, int] = {}

    @torch.no_grad()
    def step(self, t: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        xs = self.data(self.spec.n_samples, generator=generator)
        for level, x in enumerate(xs, start=1):
            W = self.learner.W[level - 1]
            m = W.shape[-1]
            evals = []
            for j in range(W.shape[0]):
                patches = x.reshape(-1, x.shape[-1]) if W.shape[0] == 1 else x[:, j]
                cov = truncated_patch_covariance(patches.double(), self.spec.truncation)
                ev, evec = torch.linalg.eigh(cov)
                W[j].copy_(evec[:, -m:].flip(1))
                evals.append(ev[-m:].flip(0))
            if self.spec.rotation == "nonneg":
                w = W.double()
                if W.shape[0] == 1:  # shared: every patch is a sample of the one dictionary
                    y = (x.reshape(-1, x.shape[-1]).double() @ w[0])[:, None, :]
                else:
                    y = torch.einsum("njd,jdm->njm", x.double(), w)
                # Rotate only inside the signal part of the span: with a learner wider than the target
                # (m > rank), the columns past the rank carry round-off only, and the non-negative
                # objective is 0 along every rotation that moves part of a feature e_i onto such a
                # column n (cos t e_i + sin t n and sin t e_i - cos t n both decode s_i >= 0): not
                # identifiable. Measured (m = 32 for 16, per-patch W*): Gauss-Newton with
                # restarts found such splits (worst cosine 0.61-0.79 at objective 2e-16). Those
                # columns stay as the eigenvectors give them and are switched off below as dead.
                ev = torch.stack(evals)  # (J, m), descending
                rank = (ev > RANK_RTOL * ev[:, :1]).sum(1)
                q = torch.eye(m, dtype=y.dtype).expand(W.shape[0], m, m).clone()
                unsolved = 0
                sp = self.spec
                for r in sorted(set(rank.tolist())):
                    idx = (rank == r).nonzero().flatten()
                    yr = y if r == m and idx.numel() == y.shape[1] else y[:, idx, :r]  # (no copy in the usual case)
                    qr, obj = nonnegative_rotation(
                        yr,
                        steps=sp.rotation_steps,
                        lr=sp.rotation_lr,
                        solver=sp.rotation_solver,
                        restarts=sp.rotation_restarts,
                    )
                    q[idx, :r, :r] = qr
                    unsolved += int((obj >= ROTATION_TOL).sum())
                self.unsolved[level] = unsolved
                W.copy_(torch.einsum("jdm,jmk->jdk", w, q).to(W.dtype))
            self.switch_off_dead_channels(level, x)
        out = {f"dead_channels_level{lv}": torch.tensor(float(n)) for lv, n in self.n_dead.items()}
        # patches whose codes the rotation could not make non-negative (0 on a noiseless target)
        return out | {f"rotation_unsolved_level{lv}": torch.tensor(float(n)) for lv, n in self.unsolved.items()}

    def switch_off_dead_channels(self, level: int, x: torch.Tensor) -> None:
        """Channels of ``level`` that decode no signal from the patches ``x`` (n, J, d) are switched
        off: their hidden unit is ReLU(0 . input - 1) = 0 whatever the input, with zero gradient.

        Why: a learner wider than the target (m > rank of the patches) gets m - rank columns of W
        from the null space of the covariance. Their real codes are 0; left on, the hidden stages
        fit moments of pure round-off (whitened by up to 1/sqrt(ridge)) and the preconditioned
        super-resolution step blew up (README, `fsr-scaling`: coupled error 1.0-1.15 for m = 24,
        482 with the defaults; 0.068-0.094 once switched off, 3 seeds). Switched off, they
        "contribute nothing", which is one of the two outcomes the theory allows a wider learner."""
        if self.spec.dead_energy <= 0:
            return
        L = self.learner
        codes = L.encode(level, x.to(L.W[level - 1].dtype))  # (n, J, m)
        energy = codes.double().pow(2).mean(0)  # (J, m)
        if L.W[level - 1].shape[0] == 1:  # shared W: one decision for every patch
            energy = energy.mean(0, keepdim=True).expand_as(energy)
        dead = energy < self.spec.dead_energy * energy.mean()
        if bool(dead.any()):
            L.V[level - 1][dead] = 0.0
            L.b[level - 1][dead] = 1.0
        self.n_dead[level] = int(dead.sum())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        pass
