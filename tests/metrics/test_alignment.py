"""ganlearn.metrics.alignment on planted permutations and rotations."""

import torch

from ganlearn.metrics.alignment import match_columns, procrustes_rows


def test_alignment_recovers_planted_permutation_and_rotation():
    g = torch.Generator().manual_seed(3)
    w_true = torch.linalg.qr(torch.randn(20, 7, generator=g, dtype=torch.float64))[0]
    perm = torch.randperm(7, generator=g)
    w = w_true[:, perm] + 1e-3 * torch.randn(20, 7, generator=g, dtype=torch.float64)
    found, cos = match_columns(w, w_true)
    assert (perm[torch.as_tensor(found)] == torch.arange(7)).all()
    assert cos.min() > 0.99
    # rotation: b = a Q for a planted orthogonal Q
    a = torch.randn(50, 6, generator=g, dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))[0]
    assert torch.allclose(procrustes_rows(a, a @ q), q, atol=1e-10)


def test_signed_matching_does_not_accept_a_flipped_feature():
    w_true = torch.eye(4, dtype=torch.float64)
    _, cos = match_columns(-w_true, w_true)
    assert cos.max() <= 0
