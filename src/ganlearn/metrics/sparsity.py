"""Sparsity and within-patch co-activation statistics (Assumption 2.2; paper Fig. 3)."""

from __future__ import annotations

import torch

__all__ = ["coactivation_stats", "magnitude_sparsity"]


@torch.no_grad()
def coactivation_stats(s: torch.Tensor, *, k_over_m: float | None = None) -> dict[str, float]:
    """Firing statistics of hidden codes within a patch.

    Args:
        s: (n, n_patches, m) non-negative codes.
        k_over_m: the configured firing rate, reported beside the measured one.

    Returns a dict with
        fire_rate_mean/min/max: Pr[S_{j,r} > 0] over (patch, channel);
        active_per_patch: E ||S_j||_0;
        pair_ratio_mean/max: Pr[S_r>0, S_r'>0] / (Pr[S_r>0] Pr[S_r'>0]) over distinct pairs in a
            patch (1 = independent, < 1 = "not too positively correlated");
        triple_ratio_mean/max: the three-wise analogue;
        pair_prob_max_over_rate2, triple_prob_max_over_rate3: the worst co-activation probability
            divided by (k/m)^2 and (k/m)^3, the scale footnote 4 of the paper compares with.
    Pairs or triples whose independent baseline probability is below 1/n are left out of the
    ratios (too rare to estimate).
    """
    a = (s > 0).to(torch.float64)  # (n, J, m)
    n, J, m = a.shape
    p = a.mean(0)  # (J, m)
    pair = torch.einsum("njr,njs->jrs", a, a) / n  # (J, m, m)
    base2 = p[:, :, None] * p[:, None, :]
    off = ~torch.eye(m, dtype=torch.bool, device=a.device)[None].expand(J, m, m)
    ok2 = off & (base2 > 1.0 / n)
    ratio2 = (pair / base2.clamp_min(1e-12))[ok2]
    # Three-wise: E[a_r a_s a_t] per patch, one r at a time: a three-operand einsum can build an
    # (n, J, m, m) temporary (2.6 GB for n = 20000, J = 64, m = 16, measured), this loop (n, J, m).
    triple = torch.stack([torch.einsum("njs,njt->jst", a * a[:, :, r, None], a) for r in range(m)], dim=1) / n
    base3 = p[:, :, None, None] * p[:, None, :, None] * p[:, None, None, :]
    idx = torch.arange(m, device=a.device)
    distinct = (
        (idx[:, None, None] != idx[None, :, None])
        & (idx[:, None, None] != idx[None, None, :])
        & (idx[None, :, None] != idx[None, None, :])
    )
    ok3 = distinct[None].expand(J, m, m, m) & (base3 > 1.0 / n)
    ratio3 = (triple / base3.clamp_min(1e-15))[ok3]
    rate = float(p.mean()) if k_over_m is None else k_over_m
    out = {
        "fire_rate_mean": float(p.mean()),
        "fire_rate_min": float(p.min()),
        "fire_rate_max": float(p.max()),
        "active_per_patch": float(a.sum(-1).mean()),
        "pair_ratio_mean": float(ratio2.mean()) if ratio2.numel() else float("nan"),
        "pair_ratio_max": float(ratio2.max()) if ratio2.numel() else float("nan"),
        "triple_ratio_mean": float(ratio3.mean()) if ratio3.numel() else float("nan"),
        "triple_ratio_max": float(ratio3.max()) if ratio3.numel() else float("nan"),
        "pair_prob_max_over_rate2": float(pair[off].max() / rate**2),
        "triple_prob_max_over_rate3": float(triple[distinct[None].expand(J, m, m, m)].max() / rate**3),
    }
    if k_over_m is not None:
        out["fire_rate_configured"] = k_over_m
    return out


@torch.no_grad()
def magnitude_sparsity(s: torch.Tensor, *, top: int | None = None, rel: float = 0.1) -> dict[str, float]:
    """Sparsity of codes measured on magnitudes, robust to many tiny activations (which make the
    firing rate Pr[S > 0] large while the code is, in energy, carried by a few channels; batch norm
    pins that rate near 0.5 whatever is learned).

    Args:
        s: (n, n_patches, m) non-negative codes (one m-vector per sample and patch).
        top: k of the top-k energy fraction (default ceil(m / 8), the default targets' k/m).
        rel: threshold of the "clearly active" fraction, relative to a channel's typical value.

    Returns:
        hoyer_mean: mean over code vectors of Hoyer's (sqrt(m) - |s|_1 / |s|_2) / (sqrt(m) - 1):
            1 for a single active channel, 0 for all channels equal (zero vectors left out);
        topk_energy_mean: mean fraction of |s|_2^2 in the ``top`` largest channels (top / m for
            all channels equal, 1 when at most ``top`` are active);
        active_rel_mean: fraction of activations above ``rel`` times their channel's typical active
            value E[x^2] / E[x] (per patch and channel): the firing rate without tiny activations;
        top: the k used.
    """
    x = s.to(torch.float64).clamp_min(0)
    m = x.shape[-1]
    k = top if top is not None else max(1, -(-m // 8))
    l1, l2 = x.sum(-1), x.norm(dim=-1)
    nz = l2 > 0
    hoyer = ((m**0.5 - l1[nz] / l2[nz]) / (m**0.5 - 1)) if m > 1 else torch.ones_like(l1[nz])
    energy = x.pow(2)
    topk = energy.topk(min(k, m), dim=-1).values.sum(-1)[nz] / energy.sum(-1)[nz]
    # A channel's typical active value: its energy-weighted mean E[x^2] / E[x] (per patch), which
    # the large activations set (a median of the positive values would be a tiny one when most are
    # tiny); a channel that never fires has none (inf: nothing of it counts as active).
    mean = x.mean(0)
    typical = torch.where(mean > 0, energy.mean(0) / mean.clamp_min(1e-300), torch.full_like(mean, float("inf")))
    active = (x > rel * typical[None]).to(torch.float64)
    return {
        "hoyer_mean": float(hoyer.mean()) if hoyer.numel() else float("nan"),
        "topk_energy_mean": float(topk.mean()) if topk.numel() else float("nan"),
        "active_rel_mean": float(active.mean()),
        "top": k,
    }
