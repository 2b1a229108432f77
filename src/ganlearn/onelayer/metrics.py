"""Metrics for one-layer generators, pure functions of Sigma = W W^T or of samples."""
from __future__ import annotations

import torch

from ganlearn.rng import default_init_rng, make_generator

__all__ = ["sigma_rel_error", "gaussian_tv_upper", "gaussian_tv", "classifier_tv_lower"]


def sigma_rel_error(sigma: torch.Tensor, sigma_star: torch.Tensor) -> float:
    """||Sigma - Sigma*||_F / ||Sigma*||_F (invariant under W -> W Q)."""
    return float((sigma - sigma_star).norm() / sigma_star.norm())


def gaussian_tv_upper(sigma: torch.Tensor, sigma_star: torch.Tensor) -> float:
    """Upper bound on TV(phi(W x), phi(W* x)) <= TV(N(0, Sigma), N(0, Sigma*))
    <= 1.5 * min(1, ||Sigma*^{-1/2} Sigma Sigma*^{-1/2} - I||_F)  (Devroye, Mehrabian, Reddad 2018;
    TV cannot grow under the map phi)."""
    evals, evecs = torch.linalg.eigh(sigma_star.double())
    inv_sqrt = evecs @ torch.diag(evals.clamp_min(1e-300).rsqrt()) @ evecs.T
    m = inv_sqrt @ sigma.double() @ inv_sqrt - torch.eye(sigma.shape[0], dtype=torch.float64)
    return 1.5 * min(1.0, float(m.norm()))


def gaussian_tv(sigma: torch.Tensor, sigma_star: torch.Tensor, *, n: int = 200_000, seed: int = 0) -> float:
    """Monte-Carlo value of TV(N(0, Sigma), N(0, Sigma*)) itself, not a bound on it:

        TV = E_{z~P}[(1 - q(z)/p(z))_+] = E_{z~Q}[(1 - p(z)/q(z))_+],

    the two estimators averaged (n draws each; each term lies in [0, 1], so the standard error is
    below 1 / (2 sqrt(2n)), 0.0008 at n = 200k). For an invertible phi (leaky ReLU, sigmoid) this
    is exactly TV(phi(W x), phi(W* x)) (TV is invariant under a bijection); for ReLU it is an upper
    bound, between the true TV and :func:`gaussian_tv_upper` (which can be up to 150x the Gaussian
    TV: Devroye, Mehrabian & Reddad bound it below by min(1, |.|_F) / 100)."""
    g = make_generator(seed, "gaussian_tv")
    sig, sig_star = sigma.double(), sigma_star.double()
    d = sig.shape[0]
    jitter = 1e-12 * torch.eye(d, dtype=torch.float64) * float(sig_star.diagonal().mean())
    lp, lq = torch.linalg.cholesky(sig + jitter), torch.linalg.cholesky(sig_star + jitter)

    def log_density(z: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:  # up to the shared constant
        u = torch.linalg.solve_triangular(chol, z.T, upper=False)
        return -0.5 * (u * u).sum(0) - chol.diagonal().log().sum()

    total = 0.0
    for a, b in ((lp, lq), (lq, lp)):
        z = torch.randn(n, d, generator=g, dtype=torch.float64) @ a.T
        total += float((1 - (log_density(z, b) - log_density(z, a)).clamp_max(0).exp()).mean())
    return total / 2


def classifier_tv_lower(real: torch.Tensor, fake: torch.Tensor, *, seed: int = 0, hidden: int = 64,
                        steps: int = 300) -> float:
    """Sample lower bound on TV: a classifier c trained on half of the samples, its held-out
    balanced accuracy a gives TV >= 2a - 1 (any test's advantage is at most the TV), clipped at 0.

    The classifier is a small MLP on (y, y y^T upper triangle) trained by Adam; with finite test
    samples the estimate carries a sampling error of about 1 / sqrt(n_test).
    """
    g = make_generator(seed, "tv_classifier.split")
    n = min(len(real), len(fake))
    x = torch.cat([real[:n], fake[:n]]).detach().double()  # samples, not a graph
    iu = torch.triu_indices(x.shape[1], x.shape[1])
    feats = torch.cat([x, (x[:, :, None] * x[:, None, :])[:, iu[0], iu[1]]], 1)
    feats = (feats - feats.mean(0)) / feats.std(0).clamp_min(1e-12)
    lab = torch.cat([torch.ones(n), torch.zeros(n)]).double()
    perm = torch.randperm(2 * n, generator=g)
    tr, te = perm[: n], perm[n:]
    with default_init_rng(seed, "tv_classifier.init"):
        net = torch.nn.Sequential(torch.nn.Linear(feats.shape[1], hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(hidden, 1)).double()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(feats[tr]).squeeze(-1), lab[tr])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = net(feats[te]).squeeze(-1) > 0
    y = lab[te] > 0.5
    acc = 0.5 * (pred[y].double().mean() + (~pred[~y]).double().mean())
    return max(0.0, 2 * float(acc) - 1)
