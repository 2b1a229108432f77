"""Metrics for one-layer generators, pure functions of Sigma = W W^T or of samples."""

from __future__ import annotations

import numpy as np
import torch

from ganlearn.onelayer.model import latents
from ganlearn.rng import default_init_rng, make_generator

__all__ = ["sigma_rel_error", "gaussian_tv_upper", "gaussian_tv", "gaussian_tv_draws", "relu_tv", "classifier_tv_lower"]


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


def gaussian_tv_draws(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The draws :func:`gaussian_tv` uses for ``(n, seed)``: two (n, d) float32 standard normal
    batches (one per direction) from stream ``gaussian_tv`` of ``seed``. A trainer that evaluates
    many times draws them once and passes them (``draws=``): the same numbers as drawing them in
    every call, for 2 n d float32 numbers of memory (a quarter of a batched one-layer run's time went
    to re-drawing them, d = 8, 64 replicas)."""
    g = make_generator(seed, "gaussian_tv")
    return latents(n, d, generator=g, dtype=torch.float32), latents(n, d, generator=g, dtype=torch.float32)


def gaussian_tv(
    sigma: torch.Tensor,
    sigma_star: torch.Tensor,
    *,
    n: int = 200_000,
    seed: int = 0,
    draws: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> float:
    """Monte-Carlo value of TV(N(0, Sigma), N(0, Sigma*)) itself, not a bound on it:

        TV = E_{z~P}[(1 - q(z)/p(z))_+] = E_{z~Q}[(1 - p(z)/q(z))_+],

    the two estimators averaged (n draws each; each term lies in [0, 1], so the standard error is
    below 1 / (2 sqrt(2n)), 0.0008 at n = 200k). For an invertible phi (leaky ReLU, sigmoid) this
    is exactly TV(phi(W x), phi(W* x)) (TV is invariant under a bijection); for ReLU it is an upper
    bound, between the true TV and :func:`gaussian_tv_upper` (which can be up to 150x the Gaussian
    TV: Devroye, Mehrabian & Reddad bound it below by min(1, |.|_F) / 100).

    Computed as (the cheap form matters: it is evaluated every 25 steps, and a form with two
    triangular solves over the n draws took half of a one-layer run): with Cholesky factors L_p,
    L_q and z = L_p u, u ~ N(0, I), the log ratio is
    log q(z) - log p(z) = (|u|^2 - |L_q^{-1} L_p u|^2) / 2 + log det L_p - log det L_q, so each
    direction costs one (n, d) x (d, d) product; u is drawn in float32 and used in float64
    (``onelayer.model.latents``: 5.7x
    cheaper draws, the same law to 6e-8). The same draws every call for a given ``seed``;
    ``draws``: those of :func:`gaussian_tv_draws` (then ``n`` and ``seed`` are theirs)."""
    sig, sig_star = sigma.double(), sigma_star.double()
    d = sig.shape[0]
    jitter = 1e-12 * torch.eye(d, dtype=torch.float64) * float(sig_star.diagonal().mean())
    lp, lq = torch.linalg.cholesky(sig + jitter), torch.linalg.cholesky(sig_star + jitter)
    total = 0.0
    draws = draws if draws is not None else gaussian_tv_draws(n, d, seed)
    for (a, b), u in zip(((lp, lq), (lq, lp)), draws):
        m = torch.linalg.solve_triangular(b, a, upper=False)  # L_b^{-1} L_a
        u = u.double()  # latents(..., dtype=float64) of the same draws
        v = u @ m.T
        log_ratio = 0.5 * ((u * u).sum(1) - (v * v).sum(1)) + (a.diagonal().log().sum() - b.diagonal().log().sum())
        total += float((1 - log_ratio.clamp_max(0).exp()).mean())
    return total / 2


def _relu_log_density(y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """log density of y = relu(z), z ~ N(0, Sigma), w.r.t. Lebesgue measure on the positive
    coordinates times counting measure on the zero ones: the Gaussian density of y_S (S = the
    positive coordinates) times Pr(z_{S^c} <= 0 | z_S = y_S), an orthant probability of the
    conditional Gaussian (scipy's multivariate normal CDF), grouped by sign pattern."""
    from scipy.stats import multivariate_normal, norm

    n, d = y.shape
    out = np.empty(n)
    pos = y > 0
    patterns, inverse = np.unique(pos, axis=0, return_inverse=True)
    for k, pat in enumerate(patterns):
        rows = np.nonzero(inverse.reshape(-1) == k)[0]
        s, c = np.nonzero(pat)[0], np.nonzero(~pat)[0]
        ys = y[np.ix_(rows, s)]
        logp = np.zeros(len(rows))
        mu = np.zeros((len(rows), len(c)))
        cov = sigma[np.ix_(c, c)]
        if len(s):
            sss = sigma[np.ix_(s, s)]
            logp += multivariate_normal(np.zeros(len(s)), sss, allow_singular=True).logpdf(ys).reshape(-1)
            if len(c):
                a = np.linalg.solve(sss, sigma[np.ix_(s, c)])  # (|S|, |S^c|)
                mu = ys @ a
                cov = cov - sigma[np.ix_(c, s)] @ a
        if len(c) == 1:
            logp += norm.logcdf(-mu[:, 0] / np.sqrt(max(cov[0, 0], 1e-300)))
        elif len(c) > 1:
            cov = (cov + cov.T) / 2 + 1e-12 * np.eye(len(c)) * np.trace(cov) / len(c)
            # seeded: the CDF is a randomised quasi-Monte-Carlo integral (error ~1e-6)
            prob = multivariate_normal(np.zeros(len(c)), cov, allow_singular=True, seed=0).cdf(-mu)
            logp += np.log(np.clip(np.atleast_1d(prob), 1e-300, None))
        out[rows] = logp
    return out


def relu_tv(sigma: torch.Tensor, sigma_star: torch.Tensor, *, n: int = 5000, seed: int = 0) -> float:
    """Monte-Carlo value of TV(relu(z), relu(z*)), z ~ N(0, Sigma), z* ~ N(0, Sigma*): the TV of
    the one-layer ReLU laws themselves (the ``gaussian_tv`` of the pre-activations is only an upper
    bound on it: censoring hides the negative half-space). The densities are exact (orthant
    probabilities of the censored coordinates, scipy); the average of E_P[(1 - q/p)_+] and
    E_Q[(1 - p/q)_+] over n draws each has standard error below 1 / (2 sqrt(2n)), 0.005 at 5000.
    Cost: one multivariate normal CDF per draw and law (about 10 s at d = 4, n = 5000), so it is a
    check for small d, not a per-step metric. In one dimension it is half the Gaussian TV (the atoms at
    0 are equal; the tests use that)."""

    g = make_generator(seed, "relu_tv")
    a, b = sigma.double().numpy(), sigma_star.double().numpy()
    total = 0.0
    for p_cov, q_cov in ((a, b), (b, a)):
        z = (
            torch.randn(n, a.shape[0], generator=g, dtype=torch.float64).numpy()
            @ np.linalg.cholesky(p_cov + 1e-12 * np.eye(a.shape[0]) * np.trace(p_cov) / a.shape[0]).T
        )
        y = np.maximum(z, 0)
        total += float(np.mean(1 - np.exp(np.minimum(_relu_log_density(y, q_cov) - _relu_log_density(y, p_cov), 0))))
    return total / 2


def classifier_tv_lower(
    real: torch.Tensor, fake: torch.Tensor, *, seed: int = 0, hidden: int = 64, steps: int = 300
) -> float:
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
    tr, te = perm[:n], perm[n:]
    with default_init_rng(seed, "tv_classifier.init"):
        net = torch.nn.Sequential(
            torch.nn.Linear(feats.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        ).double()
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
