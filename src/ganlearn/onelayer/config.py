"""The configuration of a one-layer run (``ganlearn run onelayer``): every field's type and range
declared once (:func:`ganlearn.config.setting`), checked at construction and by ``from_dict``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from ganlearn.config import Settings, setting

__all__ = ["OneLayerConfig"]


@dataclass(frozen=True)
class OneLayerConfig(Settings):
    d: int = setting(8, ge=1)
    activation: Literal["relu", "leaky_relu", "sigmoid"] = "relu"
    condition: float = setting(2.0, ge=1)  # kappa(W*)
    discriminator: Literal["truncated", "quadratic", "mlp"] = "truncated"
    batch: int = setting(512, ge=1)  # real samples per step (and as many fake per player update)
    steps: int = setting(4000, ge=1)
    # None: 1.0 with step_scale="curvature" (lr x curvature), else 0.3 (SGD with step_scale="none", Adam, mlp)
    lr_g: Optional[float] = setting(None, gt=0)
    step_scale: Literal["curvature", "none"] = "curvature"  # SGD on W only (see onelayer.step_size)
    g_optimizer: Optional[Literal["sgd", "adam"]] = None  # None: sgd (truncated/quadratic), adam (mlp)
    decay_power: float = setting(0.6, ge=0)  # lr_g / (1 + t / decay_t0) ** decay_power
    # None: 1.0 (SGD on A; lr_d * ridge = 1 is the exact inner max), 1e-3 (mlp, Adam)
    lr_d: Optional[float] = setting(None, gt=0)
    ridge: float = setting(1.0, gt=0)
    decay_t0: float = setting(200.0, gt=0)
    average: bool = True  # report the polynomial-decay average of Sigma_t
    mlp_hidden: int = setting(64, ge=1)
    # record real samples to reach each TV upper bound
    eps: tuple[float, ...] = setting((0.4, 0.2, 0.1), gt=0, min_items=1)
    # ... and each Gaussian TV (tv_mc_samples > 0); empty: the same as eps. The Gaussian TV is 4-6x
    # below the certificate at kappa 2 and 6-10x at kappa 10, so smaller values are informative.
    eps_gauss: tuple[float, ...] = setting((), gt=0)
    stop_at_eps: bool = False  # stop once the smallest eps is reached
    eval_every: int = setting(25, ge=1)
    # Draws per Gaussian for the Monte-Carlo TV(N(0, Sigma), N(0, Sigma*)) at each evaluation
    # (onelayer.metrics.gaussian_tv: exact TV for leaky ReLU and sigmoid, an upper bound for ReLU;
    # standard error < 1 / (2 sqrt(2 n)) = 0.0025 at 20k, the same draws every time); 0: off.
    tv_mc_samples: int = setting(20_000, ge=0)
    seed: int = setting(0, ge=0)
    # Stop (DivergenceError) when the reported Sigma's relative error exceeds this factor times
    # max(the initial learner's, 1); null: NaN/inf only. A run that learns has it falling from
    # ~1; the sigmoid runs that blew up reached 17 and 6460 (measured).
    divergence_factor: Optional[float] = setting(10.0, gt=1)

    def validate(self) -> None:
        """Every rule is a single field's range, declared above and checked at construction."""
