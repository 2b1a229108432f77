"""Stochastic gradient descent-ascent (SGDA) for min_G max_D games.

One step, with step sizes eta_g (generator) and eta_d (discriminator) and ``n_d`` inner
ascent steps ("the inner maximisation is trained at a faster frequency", Allen-Zhu & Li 2023,
§3; Algorithm GDA):

    alternating (default):
        repeat n_d times:  phi <- Proj_D(phi - eta_d * grad_phi L_D(theta, phi; fresh batch))
        theta <- Proj_G(theta - eta_g * grad_theta L_G(theta, phi; fresh batch))
    simultaneous:
        repeat n_d - 1 times: the D update above
        (g_theta, g_phi) evaluated at the same (theta, phi) on one batch, then both applied.

For a zero-sum game with value V (G minimises, D maximises) use L_D = -V and L_G = V; a
non-zero-sum GAN loss (non-saturating, WGAN-GP) passes its two losses. ``Proj`` are optional
projections applied after each update (e.g. keep W column-orthonormal, keep D rows on the
sphere). Plain SGD is the default, as in the theory; Adam is an option.

The step is a function of explicit parameters, optimizer state and an explicit
``torch.Generator``: it never calls ``.item()`` or otherwise synchronises with the host, and
returns the losses as tensors, so the caller decides when to read them.

SGDA owns its optimizer state and its step-size schedule: ``schedule(t)`` scales both step sizes
at its own step counter t (0, 1, ...), and ``state_dict()`` is a flat dict of tensors (the
optimizers' per-parameter state and t) that a safetensors checkpoint stores as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence, cast

import torch

from ganlearn.config import Settings, setting
from ganlearn.io import flatten_optimizer, load_flat_optimizer

__all__ = ["SGDAConfig", "SGDA"]

Losses = Callable[..., tuple[torch.Tensor, torch.Tensor]]  # losses(generator) -> (d_loss, g_loss)
Projection = Callable[[], None]


@dataclass(frozen=True)
class SGDAConfig(Settings):
    lr_g: float = setting(0.1, gt=0)  # generator step size eta_g
    lr_d: float = setting(0.1, gt=0)  # discriminator step size eta_d
    n_d: int = setting(1, ge=1)  # discriminator (inner max) steps per generator step
    optimizer: Literal["sgd", "adam"] = "sgd"
    d_optimizer: Literal["same", "sgd", "adam"] = "same"  # the discriminator's, if it differs
    mode: Literal["alternating", "simultaneous"] = "alternating"
    # "fresh": every D and G evaluation draws its own batch (the theory's SGDA); "same": the G step
    # re-uses the batch of the last D step (alternating mode), so D's fresh maximiser and G's
    # gradient see the same samples (see fsr.stages.first_hidden.FirstHidden for when that matters).
    g_batch: Literal["fresh", "same"] = "fresh"
    beta1: float = 0.5  # Adam only
    beta2: float = 0.999  # Adam only


def _make_optimizer(params: Sequence[torch.Tensor], lr: float, cfg: SGDAConfig, kind: str) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2))


def _apply(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    for p in params:
        p.grad = None


class SGDA:
    """Two-player SGDA with its optimizer state (see module docstring for the update).

    Args:
        g_params, d_params: the tensors each player updates (``requires_grad=True``).
        cfg: step sizes, inner steps, optimizer, mode.
        g_project, d_project: called under ``torch.no_grad()`` after each update of that player.
        g_precondition: maps the generator's gradients to the direction the optimizer applies
            (e.g. a Gauss-Newton solve, :mod:`ganlearn.gauss_newton`); None: the gradients.
        schedule: ``t -> scale``; step t uses step sizes ``scale * (lr_g, lr_d)`` (None: constant).
    """

    def __init__(
        self,
        g_params: Sequence[torch.Tensor],
        d_params: Sequence[torch.Tensor],
        cfg: SGDAConfig,
        *,
        g_project: Projection | None = None,
        d_project: Projection | None = None,
        schedule: Callable[[int], float] | None = None,
        g_precondition: Callable[[Sequence[torch.Tensor]], Sequence[torch.Tensor]] | None = None,
    ):
        self.g_precondition = g_precondition
        self.g_params, self.d_params, self.cfg = list(g_params), list(d_params), cfg
        self.g_opt = _make_optimizer(self.g_params, cfg.lr_g, cfg, cfg.optimizer)
        self.d_opt = _make_optimizer(
            self.d_params, cfg.lr_d, cfg, cfg.optimizer if cfg.d_optimizer == "same" else cfg.d_optimizer
        )
        self.g_project, self.d_project = g_project, d_project
        self.schedule, self.t = schedule, 0

    def lr_scale(self) -> float:
        """The schedule's scale at the current step (1 without a schedule)."""
        return 1.0 if self.schedule is None else float(self.schedule(self.t))

    def _set_step_sizes(self) -> None:
        scale = self.lr_scale()
        for opt, lr in ((self.g_opt, self.cfg.lr_g), (self.d_opt, self.cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    def _d_update(self, d_loss: torch.Tensor) -> None:
        _apply(
            self.d_opt,
            self.d_params,
            torch.autograd.grad(d_loss, self.d_params, allow_unused=True, materialize_grads=True),
        )
        if self.d_project is not None:
            with torch.no_grad():
                self.d_project()

    def _g_update(self, grads: Sequence[torch.Tensor]) -> None:
        if self.g_precondition is not None:
            grads = self.g_precondition(grads)
        _apply(self.g_opt, self.g_params, grads)
        if self.g_project is not None:
            with torch.no_grad():
                self.g_project()

    def step(self, losses: Losses, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """One SGDA step. ``losses(generator) -> (d_loss, g_loss)`` draws its own fresh batch."""
        cfg = self.cfg
        if self.schedule is not None:
            self._set_step_sizes()
        n_pure_d = cfg.n_d if cfg.mode == "alternating" else cfg.n_d - 1
        d_loss = None
        reuse = cfg.g_batch == "same" and cfg.mode == "alternating"
        for _ in range(n_pure_d):
            if reuse:  # the G step below re-draws exactly this (the last D step's) batch
                state = cast(torch.Generator, generator).get_state()
            d_loss, _ = losses(generator)
            self._d_update(d_loss)
        if reuse:
            cast(torch.Generator, generator).set_state(state)
        d_loss_now, g_loss = losses(generator)
        if cfg.mode == "simultaneous":
            # Both players' gradients at the same point (theta, phi), then both updates.
            g_grads = torch.autograd.grad(
                g_loss, self.g_params, retain_graph=True, allow_unused=True, materialize_grads=True
            )
            d_grads = torch.autograd.grad(d_loss_now, self.d_params, allow_unused=True, materialize_grads=True)
            _apply(self.d_opt, self.d_params, d_grads)
            if self.d_project is not None:
                with torch.no_grad():
                    self.d_project()
            self._g_update(g_grads)
            d_loss = d_loss_now
        else:
            self._g_update(torch.autograd.grad(g_loss, self.g_params, allow_unused=True, materialize_grads=True))
        self.t += 1
        return {"d_loss": cast(torch.Tensor, d_loss).detach(), "g_loss": g_loss.detach()}  # n_d >= 1: set

    # -- exact resume ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """``g_opt.*`` / ``d_opt.*`` (per-parameter optimizer state) and ``sgda_step`` (t)."""
        return (
            flatten_optimizer("g_opt", self.g_opt)
            | flatten_optimizer("d_opt", self.d_opt)
            | {"sgda_step": torch.tensor(self.t)}
        )

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore from :meth:`state_dict` (other keys in ``state`` are ignored)."""
        load_flat_optimizer("g_opt", self.g_opt, state)
        load_flat_optimizer("d_opt", self.d_opt, state)
        self.t = int(state["sgda_step"]) if "sgda_step" in state else 0
        if self.schedule is not None:
            self._set_step_sizes()
