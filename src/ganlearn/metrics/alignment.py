"""Alignment of learned parameters to the truth: signed permutations of dictionary columns and
orthogonal maps of the latent (the rotation U of the theorem)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = ["match_columns", "procrustes_rows"]


def match_columns(w: torch.Tensor, w_true: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Match every true column to a distinct learned column by maximal cosine.

    Codes are non-negative, so a feature and its negative are different features: the cosine is
    signed (no sign flips allowed).

    Args:
        w: (d, m) learned columns; w_true: (d, m_true) with m >= m_true.
    Returns:
        perm: (m_true,) index of the learned column matched to each true column.
        cos: (m_true,) cosine of each matched pair.
    """
    if w.shape[1] < w_true.shape[1]:
        raise ValueError(f"need at least as many learned columns ({w.shape[1]}) as true ones ({w_true.shape[1]})")
    a = torch.nn.functional.normalize(w.detach().double().cpu(), dim=0)
    b = torch.nn.functional.normalize(w_true.detach().double().cpu(), dim=0)
    c = (b.T @ a).numpy()  # (m_true, m)
    rows, cols = linear_sum_assignment(-c)
    perm = np.empty(w_true.shape[1], dtype=np.int64)
    perm[rows] = cols
    return perm, c[rows, cols][np.argsort(rows)]


def procrustes_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """argmin_Q ||a Q - b||_F over Q with orthonormal rows (the orthogonal Procrustes problem).

    a: (n, p), b: (n, q) with p <= q. Returns Q: (p, q), Q Q^T = I, the polar factor of a^T b.
    """
    u, _, vh = torch.linalg.svd(a.T @ b, full_matrices=False)
    return u @ vh
