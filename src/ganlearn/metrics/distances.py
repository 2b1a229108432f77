"""Distribution distances as pure functions of samples."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["sliced_w2"]


def sliced_w2(
    x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, *, n_projections: int = 256, seed: int = 0
) -> float:
    """Sliced 2-Wasserstein distance (POT's Monte-Carlo estimator, equal sample weights).

        SW_2(mu, nu) = ( E_{theta ~ U(S^{d-1})} W_2^2(<theta, X>, <theta, Y>) )^{1/2}

    For N(0, I) against N(mu, I) in R^d this is |mu| / sqrt(d): every 1-D projection is a pure
    shift by <theta, mu> and E <theta, mu>^2 = |mu|^2 / d.

    Args:
        x: (n, d) samples; y: (n', d) samples.
    """
    import ot  # POT's import pulls in scikit-learn and networkx (1.3 s per process): only when measured

    x = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    y = y.detach().cpu().double().numpy() if isinstance(y, torch.Tensor) else np.asarray(y, dtype=np.float64)
    return float(ot.sliced_wasserstein_distance(x, y, n_projections=n_projections, p=2, seed=seed))
