"""What an overparameterized-GAN run measures: the spectrum of J J^T, the predicted per-step rate
of the linearised GDA (the largest 2 x 2 block's spectral radius, ``overparam.train``) and the
fitted one."""

from __future__ import annotations

from dataclasses import asdict
from typing import TypedDict

import numpy as np
import torch

from ganlearn.overparam.config import OverparamConfig
from ganlearn.overparam.model import Problem

__all__ = ["Result", "record", "block_radius", "fitted_rate", "spectrum"]


def block_radius(s: np.ndarray, eta: float, mu: float, mode: str) -> np.ndarray:
    """Spectral radius of the linearised (r, d) block for each eigenvalue s of J J^T."""
    s = np.asarray(s, dtype=float)
    if mode == "simultaneous":
        a, b = np.ones_like(s), eta * s
    else:
        a, b = 1 - eta * mu * s, eta * s * (1 - mu)
    mats = np.stack([np.stack([a, b], -1), np.stack([np.full_like(s, -mu), np.full_like(s, 1 - mu)], -1)], -2)
    return np.abs(np.linalg.eigvals(mats)).max(-1)


def fitted_rate(residuals, floor: float = 1e-11) -> float:
    """exp(slope) of log |r_t| fitted by least squares on the second half of the steps above
    ``floor`` (float64 round-off sits near 1e-15 |xbar|): the per-step contraction factor.
    NaN when fewer than 10 such steps."""
    r = np.asarray(residuals, dtype=float)
    above = np.nonzero(~(r > floor))[0]
    end = int(above[0]) if above.size else r.size
    t = np.arange(end // 2, end)
    if t.size < 10:
        return float("nan")
    return float(np.exp(np.polyfit(t, np.log(r[t]), 1)[0]))


def spectrum(problem: Problem) -> np.ndarray:
    """Eigenvalues of J J^T at the current parameters, ascending."""
    J = problem.jacobian()
    return torch.linalg.eigvalsh(J @ J.T).clamp_min(0).numpy()


class Result(TypedDict):
    """What a GDA run returns: the spectra of J J^T at the start and the end, the predicted and
    fitted rates, success, divergence (recorded, not raised), and the residual and |d| per step."""

    config: dict
    eta: float
    mu: float
    n_params: int
    s_min0: float
    s_max0: float
    s_min_end: float
    s_max_end: float
    rate_predicted: float
    rate_fitted: float
    residual0: float
    residual_final: float
    diverged: bool
    divergence: str | None
    success: bool
    steps_to_tol: int | None
    relative_movement: float
    residual: list
    d_norm: list


def record(
    cfg: OverparamConfig,
    *,
    eta: float,
    n_params: int,
    spec0: np.ndarray,
    spec_end: np.ndarray,
    rate_predicted: float,
    residual: list[float],
    d_norm: list[float],
    divergence: str | None,
    relative_movement: float,
) -> Result:
    """The result of one GDA run, the same for the single and the batched trainer: ``residual``
    and ``d_norm`` per step and after the last one, ``divergence`` the message (None: none)."""
    diverged, final = divergence is not None, residual[-1]
    return {
        "config": asdict(cfg),
        "eta": eta,
        "mu": cfg.mu,
        "n_params": n_params,
        "s_min0": float(spec0[0]),
        "s_max0": float(spec0[-1]),
        "s_min_end": float(spec_end[0]),
        "s_max_end": float(spec_end[-1]),
        "rate_predicted": rate_predicted,
        "rate_fitted": fitted_rate(residual),
        "residual0": residual[0],
        "residual_final": final,
        "diverged": diverged,
        "divergence": divergence,
        "success": bool(not diverged and final < cfg.tol),
        "steps_to_tol": next((t for t, r in enumerate(residual) if r < cfg.tol), None),
        "relative_movement": relative_movement,
        "residual": residual,
        "d_norm": d_norm,
    }
