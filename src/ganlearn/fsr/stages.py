"""The stages of the FSR learning algorithm (Allen-Zhu & Li, §3), one runner per stage kind.

Each runner has the same small contract, so the training loop never branches on the kind:

* ``n_steps``; ``step(t, generator) -> dict[str, Tensor]`` (one SGDA step, or the warm start);
* ``samples_per_step``: real images (full multi-resolution tuples) one step consumes;
* ``state_dict() / load_state_dict()``: everything besides the learner needed to resume exactly.

Data enter only through ``data(n, generator=...) -> list of (n, d_l, d) patch tensors``: a
learner never sees the target's hidden codes.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ganlearn.config import (EndToEndStage, FirstHiddenStage, OutputLayerStage, SuperResolutionStage,
                             WarmStartStage)
from ganlearn.fsr.discriminators import (MLPDiscriminator, code_moments, pair_moments, thresholded_output_d,
                                         whitening, with_bias)
from ganlearn.fsr.model import FSRNet, polar
from ganlearn.sgda import SGDA

Data = Callable[..., list]


def _schedule(spec):
    """Step sizes halve every ``lr_half_life`` steps, down to ``lr_floor`` times the initial."""
    return lambda t: max(spec.lr_floor, 0.5 ** (t / spec.lr_half_life))


# ----------------------------------------------------------------------------------------------


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


def nonnegative_rotation(y: torch.Tensor, *, steps: int, lr: float, tol: float = 1e-10) -> torch.Tensor:
    """Rotation Q (per patch) that makes the codes y Q non-negative: argmin over orthogonal Q of

        E || ReLU(-Q^T y) ||^2          (non-negative ICA, Plumbley 2003)

    y: (N, J, m) patches in the warm start's span coordinates, y = R s with R orthogonal (W and
    W* are both column-orthonormal with the same span) and s >= 0 sparse. The objective is 0 at
    Q = R P for any permutation P, and only there: Q^T R s >= 0 for every s, and sparse codes put
    mass on every axis e_i (samples where channel i fires alone), so the orthogonal Q^T R maps every
    e_i into the non-negative orthant and is a permutation. Its gradient -E[y ReLU(-y Q)^T] is a
    truncated second moment of the data: it uses only the negative parts of the decoded codes.
    Riemannian gradient descent with the polar retraction, step ``lr`` in units of the code scale.
    A patch stops when its objective (relative to E||y||^2) is below ``tol``; the others go on
    (denser codes converge more slowly: with k/m = 1/4 and d = 27 one patch of 16 needed ~1500
    steps, measured). Returns Q: (J, m, m).
    """
    n, J, m = y.shape
    q = torch.eye(m, dtype=y.dtype, device=y.device).expand(J, m, m).clone()
    scale = y.pow(2).mean((0, 2))[:, None, None]  # per patch
    active = torch.arange(J, device=y.device)
    for _ in range(steps):
        ya, qa = y[:, active], q[active]
        neg = torch.relu(-torch.einsum("njm,jmk->njk", ya, qa))
        obj = neg.pow(2).mean((0, 2)) / scale[active, 0, 0]
        keep = obj >= tol
        if not bool(keep.any()):
            break
        active, ya, qa, neg = active[keep], ya[:, keep], qa[keep], neg[:, keep]
        grad = -torch.einsum("njm,njk->jmk", ya, neg) / (n * scale[active])
        q[active] = polar(qa - lr * grad)  # batched over patches
    return q


class WarmStart:
    """SVD warm start (Algorithm init-last): W_l <- top-m eigenvectors of the truncated patch
    covariance of level l, pooled over patches when W_l is shared, per patch otherwise.

    This recovers span(W*_l) only (W*_l Q for an unknown rotation Q). With ``rotation="span"``
    GAN_OutputLayer then has to find the sparse basis inside the span (paper, Remark 3.1). With
    ``rotation="nonneg"`` (default) the warm start also rotates inside the span to the basis in
    which the decoded codes are non-negative (:func:`nonnegative_rotation`).

    Why (measured, default shape, seed 0, mean / worst feature cosine per level):
    * per-patch output layers (``shared_output=false``): after the span 0.43 / -0.17 at level 1;
      GAN_OutputLayer alone ends at 0.53 mean with worst columns near 0 (the issue-11 failure).
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

    @torch.no_grad()
    def step(self, t: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        xs = self.data(self.spec.n_samples, generator=generator)
        for level, x in enumerate(xs, start=1):
            W = self.learner.W[level - 1]
            m = W.shape[-1]
            for j in range(W.shape[0]):
                patches = x.reshape(-1, x.shape[-1]) if W.shape[0] == 1 else x[:, j]
                cov = truncated_patch_covariance(patches.double(), self.spec.truncation)
                _, evec = torch.linalg.eigh(cov)
                W[j].copy_(evec[:, -m:].flip(1))
            if self.spec.rotation == "nonneg":
                w = W.double()
                if W.shape[0] == 1:  # shared: every patch is a sample of the one dictionary
                    y = (x.reshape(-1, x.shape[-1]).double() @ w[0])[:, None, :]
                else:
                    y = torch.einsum("njd,jdm->njm", x.double(), w)
                q = nonnegative_rotation(y, steps=self.spec.rotation_steps, lr=self.spec.rotation_lr)
                W.copy_(torch.einsum("jdm,jmk->jdk", w, q).to(W.dtype))
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        pass


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
            raise ValueError(f"output_layer.level={spec.level} but the learner has {learner.n_levels} levels")
        self.levels = [spec.level] if spec.level else list(range(1, learner.n_levels + 1))
        self.upto = max(self.levels)
        self.W = [learner.W[lv - 1] for lv in self.levels]
        with torch.no_grad():
            xs = data(spec.batch, generator=generator, upto=self.upto)
        self.rho = torch.stack([xs[lv - 1].pow(2).sum(-1).mean().sqrt() for lv in self.levels])
        self.w_d = [torch.nn.Parameter(W.detach().transpose(1, 2).clone()) for W in self.W]
        self.sgda = SGDA(self.W, self.w_d, spec.sgda, g_project=self._project_g, d_project=self._project_d,
                         schedule=_schedule(spec))

    def _project_g(self) -> None:
        for W in self.W:
            for j in range(W.shape[0]):
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
                    w.copy_(W.transpose(1, 2))
        bias = self.rho * self.beta(t)

        def losses(g: torch.Generator):
            real = self.data(s.batch, generator=g, upto=self.upto)
            with torch.no_grad():
                _, codes = learner(learner.sample_latent(s.batch, generator=g), upto=self.upto)
            value = 0.0
            for i, lv in enumerate(self.levels):
                value = value + thresholded_output_d(real[lv - 1], self.w_d[i], bias[i]) \
                    - thresholded_output_d(learner.decode(lv, codes[lv - 1]), self.w_d[i], bias[i])
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


class _MomentGame:
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
    """

    def _init_game(self, g_params, feats_real: list[torch.Tensor], spec) -> None:
        self.scale = [f.abs().mean().clamp_min(1e-12).expand_as(f).clone() for f in feats_real]
        self.theta = [torch.nn.Parameter(torch.zeros_like(f)) for f in feats_real]
        self.sgda = SGDA(g_params, self.theta, spec.sgda, schedule=_schedule(spec))

    def _value(self, real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
        v = 0.0
        for th, r, f, sc in zip(self.theta, real, fake, self.scale):
            v = v + (th * (r - f) / sc).sum() - 0.5 * self.spec.ridge * th.pow(2).sum()
        return v

    def state_dict(self) -> dict[str, torch.Tensor]:
        sd = {f"theta.{i}": t.detach() for i, t in enumerate(self.theta)}
        sd |= {f"scale.{i}": s for i, s in enumerate(self.scale)}
        if self.white is not None:
            sd["white"] = self.white
        return sd | self.sgda.state_dict()

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for i, t in enumerate(self.theta):
                t.copy_(sd[f"theta.{i}"])
        self.scale = [sd[f"scale.{i}"] for i in range(len(self.theta))]
        self.white = sd.get("white")
        self.sgda.load_state_dict(sd)


class FirstHidden(_MomentGame):
    """GAN_FirstHidden: learns V_1, b_1 against a discriminator on the decoded level-1 codes
    S_hat = W_1^T X_1 (real) and S_1 = ReLU(V_1 z - b_1) (fake) whose features are the codes'
    first and second (truncated-Gaussian) moments, across all level-1 patches.

    The paper's text for this stage is not available. This design follows the reference notes:
    S_1 is a one-layer generator ReLU(V z - b) with a Gaussian input, its law is fixed by V V^T and
    b, and these two moments determine V V^T and b -- so V_1 is learned up to a rotation of z,
    which is exactly the theorem's U.
    """

    def __init__(self, spec: FirstHiddenStage, learner: FSRNet, data: Data, generator: torch.Generator):
        self.spec, self.learner, self.data = spec, learner, data
        self.n_steps, self.samples_per_step = spec.steps, spec.batch * (spec.sgda.n_d + 1)
        self.white = None
        with torch.no_grad():
            if spec.reinit:  # fresh unit-norm rows, biases b / |v| (so the same firing rates)
                V, b = learner.V[0], learner.b[0]
                b.div_(V.norm(dim=-1))
                fresh = torch.randn(V.shape, generator=generator, dtype=torch.float64).to(V)
                V.copy_(fresh / fresh.norm(dim=-1, keepdim=True))
            if spec.whiten:
                s = learner.encode(1, data(spec.batch, generator=generator, upto=1)[0]).flatten(1)
                self.white = whitening(s.T @ s / s.shape[0])
            real = self._real(data(spec.batch, generator=generator, upto=1))
        self._init_game([learner.V[0], learner.b[0]], list(real), spec)

    def _real(self, xs):
        with torch.no_grad():
            return code_moments(self.learner.encode(1, xs[0]), self.white)

    def step(self, t: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        s, learner = self.spec, self.learner

        def losses(g: torch.Generator):
            real = self._real(self.data(s.batch, generator=g, upto=1))
            fake = code_moments(learner.hidden(1, learner.sample_latent(s.fake_batch, generator=g)), self.white)
            v = self._value(list(real), list(fake))
            return -v, v

        return self.sgda.step(losses, generator)


class SuperResolution(_MomentGame):
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
            raise ValueError(f"super_resolution.level={spec.level} but the learner has {learner.n_levels} levels")
        self.n_steps, self.samples_per_step = spec.steps, spec.batch * (spec.sgda.n_d + 1)
        self.white = None
        with torch.no_grad():
            if spec.whiten:
                xs = data(4 * spec.batch, generator=generator, upto=self.level)
                x = with_bias(learner.parent_inputs(self.level, learner.encode(self.level - 1, xs[-2])))
                self.white = whitening(torch.einsum("njq,njp->jqp", x, x) / x.shape[0], rel_ridge=spec.whiten_ridge)
            real = self._real(data(4 * spec.batch, generator=generator, upto=self.level))[0]
        self.v_white = None
        g_params = [learner.V[self.level - 1], learner.b[self.level - 1]]
        if spec.precondition:
            if self.white is None:
                raise ValueError("super_resolution.precondition=true needs whiten=true")
            with torch.no_grad():  # [-b, V] x = ([-b, V] M^{-1}) (M x): the same map, new coordinates
                full = torch.cat([-learner.b[self.level - 1][..., None], learner.V[self.level - 1].flatten(2)], -1)
                self.v_white = torch.nn.Parameter(full @ torch.linalg.inv(self.white))
            g_params = [self.v_white]
        self._init_game(g_params, [real], spec)
        if spec.precondition:
            self.sgda.g_project = self._write_back

    def _write_back(self) -> None:
        """Learner's (V_l, b_l) <- the whitened-coordinate parameters (after every G step)."""
        full = self.v_white @ self.white
        V, b = self.learner.V[self.level - 1], self.learner.b[self.level - 1]
        b.copy_(-full[..., 0])
        V.copy_(full[..., 1:].reshape(V.shape))

    def _fake_codes(self, s_lo: torch.Tensor) -> torch.Tensor:
        L, lv = self.learner, self.level
        if self.v_white is None:
            return L.hidden(lv, s_lo)
        x = torch.einsum("njq,jpq->njp", with_bias(L.parent_inputs(lv, s_lo)), self.white)
        return torch.relu(torch.einsum("jrq,njq->njr", self.v_white, x))

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

    def _real(self, xs) -> tuple[torch.Tensor, torch.Tensor]:
        lv, L = self.level, self.learner
        with torch.no_grad():
            s_lo = L.encode(lv - 1, xs[lv - 2])
            s_hi = L.encode(lv, xs[lv - 1])
            return pair_moments(s_hi, L.parent_inputs(lv, s_lo), self.white), s_lo

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
            real, s_lo_real = self._real(self.data(s.batch, generator=g, upto=lv))
            s_lo = s_lo_real if s.parents == "real" else self._generated_parents(s.fake_batch, g)
            fake = pair_moments(self._fake_codes(s_lo), L.parent_inputs(lv, s_lo), self.white)
            v = self._value([real], [fake])
            return -v, v

        return self.sgda.step(losses, generator)


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
            eps = torch.rand(s.batch, 1, 1, generator=g, dtype=real[0].dtype).to(real[0].device)
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


RUNNERS = {
    "warm_start": WarmStart,
    "output_layer": OutputLayer,
    "first_hidden": FirstHidden,
    "super_resolution": SuperResolution,
    "end_to_end": EndToEnd,
}


def make_runner(spec, learner: FSRNet, data: Data, generator: torch.Generator):
    return RUNNERS[spec.kind](spec, learner, data, generator)
