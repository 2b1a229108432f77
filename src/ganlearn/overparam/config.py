"""The configuration of an overparameterized-GAN run (``ganlearn run overparam``): every field's
type and range declared once (:func:`ganlearn.config.setting`), checked at construction and by
``from_dict``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from ganlearn.config import Settings, setting

__all__ = ["OverparamConfig"]


@dataclass(frozen=True)
class OverparamConfig(Settings):
    m: int = setting(10, ge=1)  # data dimension
    d: int = setting(5, ge=1)  # latent dimension
    n: int = setting(200, ge=1)  # data points = fixed latents
    k: int = setting(50, ge=1)  # hidden width (the overparameterization)
    depth: int = setting(1, ge=1)  # hidden layers of G; 1 is the theory's V phi(W z)
    act: Literal["relu", "identity"] = "relu"  # identity: a linear G, for which the LTV rule is exact
    train: Literal["W", "all"] = "W"  # W: hidden weights only (theory); all: V as well
    discriminator: Literal["linear", "random_features"] = "linear"
    features: int = setting(20, ge=1)  # random-feature discriminator: rows of B
    feature_act: Literal["relu", "tanh", "softplus"] = "relu"  # random-feature discriminator: f in f(B x)
    # B iid N(0, feature_scale^2 / m): how far into f's nonlinearity B x reaches
    feature_scale: float = setting(1.0, gt=0)
    # discriminator (ascent) step; mu = 1 is the best response
    mu: float = setting(1.0, gt=0, lt=2, allowed="in (0, 2) (the stability range of the ascent step)")
    # generator (descent) step; None: the stability rule below
    eta: Optional[float] = setting(None, gt=0, allowed="> 0, or null for the stability rule")
    eta_scale: float = setting(0.25, gt=0)  # stability rule: eta = eta_scale / lambda_max(J_0 J_0^T)
    mode: Literal["simultaneous", "alternating"] = "simultaneous"
    steps: int = setting(3000, ge=1)
    tol: float = setting(1e-6, gt=0)  # success: |r_T| < tol (|xbar| = 1)
    stop_below: float = setting(1e-13, ge=0)  # stop early once |r_t| is at float64 round-off
    # Stop when |r_t| exceeds this factor times max(|r_0|, 1): the run is recorded as diverged
    # (``divergence`` in the result) rather than raised, since a width sweep analyses it.
    divergence_factor: float = setting(1e6, gt=1)
    seed: int = setting(0, ge=0)

    def validate(self) -> None:
        """Every rule is a single field's range, declared above and checked at construction."""
