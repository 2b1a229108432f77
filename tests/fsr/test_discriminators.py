"""The FSR discriminators' feature maps and whitening (ganlearn.fsr.discriminators)."""

import torch


def test_whitening_is_an_inverse_square_root_and_keeps_moment_matching_solutions(gen):
    from ganlearn.fsr.discriminators import code_moments, whitening

    a = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    c = a @ a.T + 0.1 * torch.eye(6, dtype=torch.float64)
    m = whitening(c, rel_ridge=0.0).map
    assert torch.allclose(m @ c @ m.T, torch.eye(6, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(m, m.T, atol=1e-12)
    # The whitened moments are an invertible linear image of the raw ones: equal raw moments give
    # equal whitened moments, and the whitened second moment is M E[s s^T] M^T exactly.
    s = torch.relu(torch.randn(500, 2, 3, generator=gen, dtype=torch.float64))
    mean_w, second_w = code_moments(s, m)
    mean, second = code_moments(s)
    assert torch.allclose(mean_w, m @ mean, atol=1e-12) and torch.allclose(second_w, m @ second @ m.T, atol=1e-12)
    # A singular C (a coordinate that is always zero) stays finite thanks to the relative ridge.
    c0 = torch.zeros(3, 3, dtype=torch.float64)
    c0[0, 0] = c0[1, 1] = 1.0
    assert torch.isfinite(whitening(c0).map).all()


def test_whitening_inverse_is_exact_for_large_batched_blocks_with_two_threads(gen):
    # Regression: the preconditioned super-resolution stage inverted a (J, q, q) whitening with
    # torch.linalg.inv, whose batched LU is broken on the torch 2.13 CPU build with 2+ threads
    # for q >= ~160 (the 5-level m = 32 square-graph target has q = 289 and crashed).
    from ganlearn.fsr.discriminators import whitening

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a = torch.randn(4, 200, 200, generator=gen)
        c = a @ a.mT / 200 + 0.1 * torch.eye(200)
        m, m_inv = whitening(c)
        assert torch.allclose(m @ m_inv, torch.eye(200).expand(4, 200, 200), atol=1e-3)
    finally:
        torch.set_num_threads(threads)


def test_pair_moments_whitened_per_patch_match_the_explicit_formula(gen):
    from ganlearn.fsr.discriminators import pair_moments, with_bias

    s_hi = torch.rand(50, 2, 3, generator=gen, dtype=torch.float64)
    parents = torch.rand(50, 2, 2, 4, generator=gen, dtype=torch.float64)
    white = torch.randn(2, 9, 9, generator=gen, dtype=torch.float64)
    got = pair_moments(s_hi, parents, white)
    x = with_bias(parents)
    for j in range(2):
        want = s_hi[:, j].T @ (x[:, j] @ white[j].T) / 50
        assert torch.allclose(got[j], want, atol=1e-12)
    assert torch.equal(x[:, :, 0], torch.ones(50, 2, dtype=torch.float64))
