"""GAN_FirstHidden (Allen-Zhu & Li, §3): its spec and runner, a moment game on the decoded
level-1 codes with a Gauss-Newton-preconditioned generator step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch

from ganlearn.config import Settings, setting
from ganlearn.fsr.discriminators import code_moments, mat_vec, second_moment, whitening
from ganlearn.fsr.model import FSRNet, replica_eq
from ganlearn.fsr.stages.common import Data
from ganlearn.fsr.stages.moments import MomentGame
from ganlearn.gauss_newton import along, conjugate_gradient, jacobian_trace
from ganlearn.rng import randn
from ganlearn.sgda import SGDAConfig

__all__ = ["FirstHiddenStage", "FirstHidden", "CodeMomentJacobian"]


@dataclass(frozen=True)
class FirstHiddenStage(Settings):
    """GAN_FirstHidden: a moment discriminator on decoded level-1 codes learns V_1, b_1.

    The defaults are the measured best (see ``FirstHidden``): Gauss-Newton-preconditioned SGDA,
    300 steps, ending at the average of the last half of the iterates. Plain SGDA with Adam, for
    comparison, is ``precondition="none"`` with ``sgda.optimizer="adam"``, ``sgda.lr_g=0.02``,
    ``steps=1500``, ``lr_half_life=300`` (5x the steps, 1.5-3x the error).
    """

    kind: Literal["first_hidden"] = "first_hidden"
    name: Optional[str] = None  # for overrides (stages.NAME.key=...); None: see fsr.stages.stage_name
    steps: int = setting(300, ge=1)
    batch: int = setting(8192, ge=1)  # real images per D evaluation (level 1 only is rendered: cheap)
    fake_batch: int = setting(16384, ge=1)  # generator draws per D evaluation (one layer: cheap; less noise)
    # G: plain SGD on the Gauss-Newton direction (the step is already scale-free, so no Adam);
    # D: plain SGD with lr_d * ridge = 1, so theta jumps to the exact inner maximiser.
    # g_batch="same": the G step re-uses the D step's batch, so the moment gap and the Jacobian of
    # the Gauss-Newton step come from the same generated samples (see FirstHidden).
    sgda: SGDAConfig = SGDAConfig(lr_g=0.5, lr_d=1.0, n_d=1, optimizer="sgd", d_optimizer="sgd", g_batch="same")
    # "gauss_newton": G's gradient is mapped by (J^T J / ridge + damping * mean curvature * I)^{-1},
    # J the Jacobian of the fake moment features, by cg_iters conjugate-gradient steps (matrix-free).
    precondition: Literal["gauss_newton", "none"] = "gauss_newton"
    cg_iters: int = setting(10, ge=1)
    damping: float = setting(1e-3, gt=0)  # relative to the mean curvature tr(J^T J) / dim at the stage's start
    ridge: float = setting(1.0, gt=0)  # lambda of the -lambda/2 ||theta||^2 term of D
    whiten: bool = True  # map the codes by C^{-1/2} before taking moments (same zeros, better conditioned)
    reinit: bool = False  # redraw the directions of V_1's rows first (norms and biases kept)
    # Constant step by default: the iterate average, not a decaying step, removes the noise.
    lr_half_life: float = setting(1e9, gt=0)
    lr_floor: float = setting(0.01, gt=0, le=1)
    # Average G's iterates over the last ``average_tail`` fraction of the steps and end the stage
    # at the average (Polyak-Ruppert); 0 = the last iterate. See _MomentGame.
    average_tail: float = setting(0.5, ge=0, lt=1)

    def validate(self, key: str) -> None:
        """Every rule is a single field's range, declared above and checked at construction."""


class FirstHidden(MomentGame):
    """GAN_FirstHidden: learns V_1, b_1 against a discriminator on the decoded level-1 codes
    S_hat = W_1^T X_1 (real) and S_1 = ReLU(V_1 z - b_1) (fake) whose features are the codes'
    first and second (truncated-Gaussian) moments, across all level-1 patches.

    The paper's text for this stage is not available. This design follows the reference notes:
    S_1 is a one-layer generator ReLU(V z - b) with a Gaussian input, its law is fixed by V V^T and
    b, and these two moments determine V V^T and b -- so V_1 is learned up to a rotation of z,
    which is exactly the theorem's U.

    ``precondition="gauss_newton"`` (default): G's gradient J^T theta (theta = the moment gap /
    ridge, D at its inner max) is mapped by (J^T J / ridge + delta I)^{-1}, J the Jacobian of the
    fake features, by conjugate gradients with Jacobian-vector products (in closed form,
    :class:`CodeMomentJacobian`; J is 4160 x 2112 on the default target and never formed). The
    curvature of this game spans orders of magnitude: plain SGD on V_1 does not move at lr 1e-5 and
    is NaN at 1e-4, and Adam stalls near the solution. Measured with W_1 exact (level-1 coupled
    error, Procrustes U; seeds 0 / 1 / 4): Adam, 1500 steps -> 0.0107 / 0.011 / 0.016, and
    0.014-0.017 on seed 4 with the real moments' noise removed, 8x the generated samples or 2x the
    steps; Gauss-Newton, 300 steps at lr 0.5, averaged over the last half -> 0.0073 / 0.0070 /
    0.0059 (last iterate ~0.02: the average removes the step noise). The gap and the Jacobian must
    come from the same generated batch (``sgda.g_batch="same"``): with independent batches the error
    grew during the stage and ended at 0.039 (seed 0), against 0.0072 -- with the same samples each
    step is Newton's on one well-posed sample problem, otherwise (J^T J)^{-1} amplifies the gap's
    independent noise.
    """

    def __init__(
        self, spec: FirstHiddenStage, learner: FSRNet, data: Data, generator: Any
    ):  # a torch.Generator, or rng.Generators (one per replica)
        self.spec, self.learner, self.data = spec, learner, data
        reuse = spec.sgda.g_batch == "same" and spec.sgda.mode == "alternating"
        self.n_steps, self.samples_per_step = spec.steps, spec.batch * (spec.sgda.n_d + (0 if reuse else 1))
        self.white = None
        with torch.no_grad():
            if spec.reinit:  # fresh unit-norm rows, biases b / |v| (so the same firing rates)
                V, b = learner.V[0], learner.b[0]
                b.div_(V.norm(dim=-1).clamp_min(1e-12))  # a switched-off row (V = 0) stays off
                one = V.shape if learner.replicas is None else V.shape[1:]  # randn stacks replicas' draws
                fresh = randn(one, generator=generator, dtype=torch.float64).to(V)
                V.copy_(fresh / fresh.norm(dim=-1, keepdim=True))
            if spec.whiten:
                s = learner.encode(1, data(spec.batch, generator=generator, upto=1)[0]).flatten(-2)
                self.white = whitening(second_moment(s)).map
            real = self._real(data(spec.batch, generator=generator, upto=1))
        self._init_game([learner.V[0], learner.b[0]], list(real), spec)
        self._z: torch.Tensor | None = None  # the fake latents of the latest game evaluation (the G step's batch)
        self.curvature = None
        if spec.precondition == "gauss_newton":
            z = learner.sample_latent(spec.fake_batch, generator=generator)
            if learner.replicas is None:
                self.curvature = jacobian_trace(self._features_at(z), self.g_params, generator=generator)
            else:  # each replica's own estimate, from its own stream
                self.curvature = torch.stack(
                    [
                        jacobian_trace(
                            self._features_at(z[:, r], r), [p[r] for p in self.g_params], generator=generator[r]
                        )
                        for r in range(learner.replicas)
                    ]
                )
            self.sgda.g_precondition = self._gauss_newton

    def _features_at(self, z: torch.Tensor, replica: int | None = None):
        """(V_1, b_1) -> the D's fake features (moments of the whitened codes, each block divided by
        its scale) on the latents ``z``, flattened: the map whose Jacobian the Gauss-Newton step uses.
        The codes are ``learner.hidden(1, z)`` written as a function of (V_1, b_1). ``replica``: that
        replica's map (its whitening and scales), of its own (V_1, b_1)."""
        white, scale = self.white, self.scale
        if replica is not None:
            white = None if white is None else white[replica]
            scale = [sc[replica] for sc in scale]

        def features(V: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            s = torch.relu(torch.einsum("jrk,nk->njr", V, z) - b)
            return torch.cat([(f / sc).flatten() for f, sc in zip(code_moments(s, white), scale)])

        return features

    def _gauss_newton(self, grads):
        """The Gauss-Newton direction (J^T J / ridge + damping I)^{-1} grad of the G step. Its
        gradient is J^T theta with theta = the D's moment gap / ridge, so with D at its inner max
        this is Gauss-Newton on ||gap||^2 / (2 ridge). J's products in closed form
        (:class:`CodeMomentJacobian`); ``_features_at`` is the map they differentiate."""
        s = self.spec
        jac = CodeMomentJacobian(self.g_params[0].detach(), self.g_params[1].detach(), self._z, self.white, self.scale)
        damping = s.damping * self.curvature / s.ridge

        def apply_a(v):
            return tuple(a / s.ridge + along(damping, vi) * vi for a, vi in zip(jac.vjp(jac.jvp(v)), v))

        return conjugate_gradient(
            apply_a, tuple(g.detach() for g in grads), s.cg_iters, batch_dims=0 if self.learner.replicas is None else 1
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        sd = super().state_dict()
        return sd | ({"curvature": self.curvature} if self.curvature is not None else {})

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        super().load_state_dict(sd)
        if self.curvature is not None:
            self.curvature = sd["curvature"]

    def _real(self, xs):
        with torch.no_grad():
            return code_moments(self.learner.encode(1, xs[0]), self.white)

    def step(self, t: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        s, learner = self.spec, self.learner

        def losses(g: torch.Generator):
            real = self._real(self.data(s.batch, generator=g, upto=1))
            self._z = z = learner.sample_latent(s.fake_batch, generator=g)
            fake = code_moments(learner.hidden(1, z), self.white)
            v = self._value(list(real), list(fake))
            return -v, v

        out = self.sgda.step(losses, generator)
        self._average(t)
        return out


class CodeMomentJacobian:
    """Products with J, the Jacobian of GAN_FirstHidden's D features with respect to (V_1, b_1), in
    closed form: the features are (M E[s] / c_1, M E[s s^T] M^T / c_2) of the codes s = ReLU(V z - b)
    (flattened over patches and channels, M the whitening, c the blocks' scales), so with
    ds = 1[s > 0] (dV z - db):

        J (dV, db) = (M E[ds] / c_1,  M E[ds s^T + s ds^T] M^T / c_2)
        J^T (u_1, u_2) = (E[g z^T], -E[g]),  g = 1[s > 0] (M^T u_1 / c_1 + (A + A^T) s),  A = M^T (u_2 / c_2) M

    Why not autograd (``tests/reference.py``: ``gauss_newton_direction`` gives the same numbers to
    round-off, tests/fsr/test_stages.py): ``torch.func.jvp`` re-ran the forward pass in every
    conjugate-gradient iteration and went through decompositions of the reductions; the codes and
    their mask here are computed once per step. Measured, default preset, one CPU thread, in
    alternating processes: a step of the stage 193 ms with autograd (of which the 10 CG iterations
    169 ms), 83 ms with these products."""

    def __init__(
        self, V: torch.Tensor, b: torch.Tensor, z: torch.Tensor, white: torch.Tensor | None, scale: list[torch.Tensor]
    ):
        self.z, self.white, self.n = z, white, z.shape[0]
        self.shape = V.shape  # (J, m, m0), or (R, J, m, m0) for replicas (z: (n, R, m0))
        self.eq = (lambda e: e) if V.dim() == 3 else replica_eq
        pre = torch.einsum(self.eq("jrk,nk->njr"), V, z) - b
        self.mask = (pre > 0).to(pre.dtype).flatten(-2)  # (n, J*m), ReLU's derivative as autograd takes it
        self.s = torch.relu(pre).flatten(-2)
        self.c1, self.c2 = scale

    def jvp(self, v: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        dV, db = v
        ds = self.mask * (torch.einsum(self.eq("jrk,nk->njr"), dV, self.z) - db).flatten(-2)
        d1 = ds.mean(0)
        b2 = second_moment(ds, self.s)
        d2 = b2 + b2.mT
        if self.white is not None:
            d1, d2 = mat_vec(self.white, d1), self.white @ d2 @ self.white.mT
        return d1 / self.c1, d2 / self.c2

    def vjp(self, u: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        w1, a = u[0] / self.c1, u[1] / self.c2
        if self.white is not None:
            w1, a = mat_vec(self.white.mT, w1), self.white.mT @ a @ self.white
        sym = a + a.mT
        s_sym = self.s @ sym if sym.dim() == 2 else torch.einsum("nRa,Rab->nRb", self.s, sym)
        g = self.mask * (w1 + s_sym) / self.n  # (n, J*m): d<u, J(.)>/d pre-activation
        return (torch.einsum(self.eq("nr,nk->rk"), g, self.z).reshape(self.shape), -g.sum(0).reshape(self.shape[:-1]))
