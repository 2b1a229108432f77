"""What an overparameterized-GAN run measures: the spectrum of J J^T, the predicted per-step rate
of the linearised GDA (the largest 2 x 2 block's spectral radius, ``overparam.train``) and the
fitted one."""
from __future__ import annotations

import numpy as np
import torch

from ganlearn.overparam.model import Problem

__all__ = ["block_radius", "fitted_rate", "spectrum"]


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
