"""FSR diagnostics for a trained image generator (the paper's Figures 1-4), as pure functions plus
one report writer. Works for ganlearn's generators and for any ``nn.Module`` mapping latents
(n, z_dim) to an image (or a list of images, finest last) whose hidden layers are named.

- Fig. 1, forward super-resolution: for each hidden layer h (n, c, s, s), ridge-regress the
  generator's own output, average-pooled to s x s ("1x1": one c -> C map per location) and to
  2s x 2s ("2x2": one c -> 4C map per location; "3x3": a location and its 8 neighbours -> its 2x2
  patch, a small stride-2 deconvolution) on h; report held-out R^2 (fit on the first 80% of
  samples, scored on the rest) beside the same probe on a random-init generator of the same
  architecture.
- Fig. 3, sparse and not-too-positively-correlated codes: each location of h is a patch code
  S_j in R^c; firing rate Pr[S_{j,r} > 0], and the pair / triple co-activation ratios
  Pr[S_r>0, S_r'>0] / (Pr[S_r>0] Pr[S_r'>0]) (1 = independent) from
  ``ganlearn.metrics.sparsity.coactivation_stats`` on up to 16 random patches x 48 random channels.
- Figs. 2 and 4, edge-colour features: the generator's output-layer filters and the discriminator's
  first-layer filters as tiles, with ``filter_stats``.

Pass/fail thresholds (our choice, stated in the report; the paper gives none):
  FSR holds at a layer if its best held-out R^2 >= 0.8;
  codes are sparse if the mean firing rate <= 0.25;
  not too positively correlated if the mean pair ratio <= 1.5 and the mean triple ratio <= 1.5^2;
  filters are edge/colour-like if their mean edge-colour energy fraction is at least twice the
  random-filter value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ganlearn.config import ConfigError
from ganlearn.metrics.sparsity import coactivation_stats, magnitude_sparsity
from ganlearn.rng import make_generator

__all__ = [
    "THRESHOLDS",
    "capture",
    "ridge_r2",
    "fsr_r2",
    "code_stats",
    "filter_stats",
    "filter_tiles",
    "probe_generator",
    "d_first_layer_rate",
    "verdicts",
    "code_sparsity",
]

THRESHOLDS = {"r2": 0.8, "fire_rate": 0.25, "pair_ratio": 1.5, "triple_ratio": 1.5**2, "edge_colour_gain": 2.0}


@torch.no_grad()
def capture(g: nn.Module, z: torch.Tensor, layers: list[str], batch: int = 500) -> tuple[dict, torch.Tensor]:
    """Hidden outputs of the named modules and the finest output image for latents ``z``."""
    mods = dict(g.named_modules())
    missing = [name for name in layers if name not in mods]
    if missing:
        raise ConfigError(
            f"layers={missing} not found in the generator; its modules are: {', '.join(n for n in mods if n)[:2000]}"
        )
    store: dict[str, list] = {name: [] for name in layers}
    hooks = [
        mods[name].register_forward_hook(lambda m, i, o, name=name: store[name].append(o.detach().cpu()))
        for name in layers
    ]
    images = []
    try:
        for i in range(0, len(z), batch):
            out = g(z[i : i + batch])
            images.append((out[-1] if isinstance(out, (list, tuple)) else out).detach().cpu())
    finally:
        for h in hooks:
            h.remove()
    hidden = {name: torch.cat(v) for name, v in store.items()}
    for name, h in hidden.items():
        if h.dim() != 4:
            raise ConfigError(f"layer {name!r} outputs shape {tuple(h.shape)}: the probe needs (n, channels, s, s)")
    return hidden, torch.cat(images)


def ridge_r2(x: torch.Tensor, y: torch.Tensor, *, train_frac: float = 0.8, ridge: float = 1e-3) -> float:
    """Held-out R^2 of a ridge map from rows of x (n, p) to rows of y (n, q), with intercept.

    Samples are split in order (the first ``train_frac`` fit, the rest score); the penalty is
    ``ridge`` times the mean diagonal of the centred Gram matrix. R^2 = 1 - SSE / SST with SST
    around the training mean, summed over all outputs."""
    x, y = x.double(), y.double()
    n = int(len(x) * train_frac)
    xm, ym = x[:n].mean(0), y[:n].mean(0)
    xt, yt = x[:n] - xm, y[:n] - ym
    gram = xt.T @ xt
    lam = ridge * float(torch.diagonal(gram).mean()) + 1e-12
    w = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), xt.T @ yt)
    pred = (x[n:] - xm) @ w + ym
    sse = float(((y[n:] - pred) ** 2).sum())
    sst = float(((y[n:] - ym) ** 2).sum())
    return 1.0 - sse / max(sst, 1e-30)


def fsr_r2(h: torch.Tensor, image: torch.Tensor, *, max_rows: int = 60000, seed: int = 0) -> dict:
    """Held-out R^2 of three linear maps from h (n, c, s, s) to the image (n, C, R, R) average-pooled:

    "1x1": a location's code -> the pixel at s x s;
    "2x2": a location's code -> its 2x2 patch at 2s x 2s (a stride-2, kernel-2 deconvolution);
    "3x3": the codes of the location and its 8 neighbours (zero-padded) -> the same 2x2 patch
        (a small stride-2 deconvolution; DCGAN's 4x4 stride-2 output layer is of this form).
    Rows are (sample, location) pairs, at most ``max_rows`` of them (a random subset of locations per
    sample); the train/test split is by sample."""
    n, c, s, _ = h.shape
    per = max(1, min(s * s, max_rows // n))
    gen = make_generator(seed, "probe.fsr_r2.locations")
    loc = torch.stack([torch.randperm(s * s, generator=gen)[:per] for _ in range(n)])
    take = lambda t: torch.gather(t, 1, loc[..., None].expand(n, per, t.shape[-1]))  # noqa: E731
    out = {}
    for name, f, ctx in (("1x1", 1, 1), ("2x2", 2, 1), ("3x3", 2, 3)):
        r = s * f
        if r > image.shape[-1] or image.shape[-1] % r:
            continue
        y = F.adaptive_avg_pool2d(image, r) if r < image.shape[-1] else image
        # (n, C, s, f, s, f) -> (n, s*s, C f f)
        y = y.reshape(n, image.shape[1], s, f, s, f).permute(0, 2, 4, 1, 3, 5).reshape(n, s * s, -1)
        x = F.unfold(h, ctx, padding=ctx // 2).transpose(1, 2)  # (n, s*s, c ctx^2)
        xs, ys = take(x), take(y)
        rows = n * per
        out[name] = ridge_r2(xs.reshape(rows, -1), ys.reshape(rows, -1)) if rows > 2 * xs.shape[-1] else float("nan")
    return out


def code_stats(h: torch.Tensor, *, seed: int = 0, max_patches: int = 16, max_channels: int = 48) -> dict:
    """Firing and co-activation statistics of patch codes (locations of h) on a random subset."""
    n, c, s, _ = h.shape
    gen = make_generator(seed, "probe.code_stats")
    codes = h.permute(0, 2, 3, 1).reshape(n, s * s, c)
    pj = torch.randperm(s * s, generator=gen)[:max_patches]
    pc = torch.randperm(c, generator=gen)[:max_channels]
    st = coactivation_stats(codes[:, pj][:, :, pc])
    st |= magnitude_sparsity(codes[:, pj])  # Hoyer, top-k energy, clearly-active fraction (all channels)
    st["fire_rate_all"] = float((h > 0).double().mean())
    st["patches_used"], st["channels_used"] = int(len(pj)), int(len(pc))
    return st


@torch.no_grad()
def code_sparsity(g: nn.Module, z_dim: int, *, seed: int, n: int = 256, device: str = "cpu") -> dict:
    """Per hidden layer of ``g`` (its ``hidden_layers()``): the firing rate Pr[h > 0] and the
    magnitude measures of :func:`~ganlearn.metrics.sparsity.magnitude_sparsity` (Hoyer, top-k energy,
    clearly-active fraction) over all patch codes, on ``n`` fixed latents (stream ``images.eval.codes``
    of ``seed``, the same at every call): cheap enough to log at every evaluation, so the measures
    can be followed over training time. {} for a generator without named hidden layers."""
    if not hasattr(g, "hidden_layers"):
        return {}
    z = torch.randn(n, z_dim, generator=make_generator(seed, "images.eval.codes")).to(device)
    was_training = g.training
    hidden, _ = capture(g.eval(), z, g.hidden_layers())
    g.train(was_training)
    out = {}
    for name, h in hidden.items():
        b, c, s, _ = h.shape
        ms = magnitude_sparsity(h.permute(0, 2, 3, 1).reshape(b, s * s, c))
        out[name] = {
            "fire_rate": float((h > 0).double().mean()),
            "hoyer": ms["hoyer_mean"],
            "topk_energy": ms["topk_energy_mean"],
            "active_rel": ms["active_rel_mean"],
            "top": ms["top"],
        }
    return out


def filter_stats(w: torch.Tensor) -> dict:
    """How edge/colour-like a bank of filters (k, C, f, f) is.

    edge_colour_fraction: mean over filters of the energy fraction in span{1, x, y} per channel (a flat
        colour plus a linear ramp = an edge seen at this scale); a white-noise filter gives 3 / f^2.
    dc_fraction: the energy fraction of the per-channel means (flat colour/intensity); noise: 1 / f^2.
    chroma_fraction (RGB): the energy fraction of the per-channel means minus their gray average.
    mean_abs_cosine: mean |cos| between distinct filters (near-orthogonal features give ~ sqrt(2/(pi d))).
    """
    w = w.detach().double().cpu()
    k, C, f, _ = w.shape
    coords = torch.linspace(-1, 1, f, dtype=torch.float64)
    basis = torch.stack(
        [torch.ones(f, f, dtype=torch.float64), coords[:, None].expand(f, f), coords[None, :].expand(f, f)]
    )
    q, _ = torch.linalg.qr(basis.reshape(3, -1).T)  # (f*f, 3) orthonormal
    flat = w.reshape(k, C, f * f)
    energy = (flat**2).sum((1, 2)).clamp_min(1e-30)
    proj = ((flat @ q) ** 2).sum((1, 2))
    means = flat.mean(-1)  # (k, C)
    dc = (means**2).sum(1) * f * f
    out = {
        "edge_colour_fraction": float((proj / energy).mean()),
        "edge_colour_random": 3.0 / (f * f),
        "dc_fraction": float((dc / energy).mean()),
        "dc_random": 1.0 / (f * f),
        "filters": k,
        "size": f,
    }
    if C == 3:
        chroma = ((means - means.mean(1, keepdim=True)) ** 2).sum(1) * f * f
        out["chroma_fraction"] = float((chroma / energy).mean())
    v = w.reshape(k, -1)
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-30)
    cos = (v @ v.T).abs()
    out["mean_abs_cosine"] = float(cos[~torch.eye(k, dtype=torch.bool)].mean()) if k > 1 else float("nan")
    out["mean_abs_cosine_random"] = math.sqrt(2 / (math.pi * v.shape[1]))
    return out


def filter_tiles(w: torch.Tensor, ncol: int | None = None) -> np.ndarray:
    """Each filter scaled by its own max |value| to [-1, 1] (gray = 0), upsampled 8x and tiled (uint8 RGB)."""
    from ganlearn.plots import tile

    w = w.detach().float().cpu()
    w = w / w.flatten(1).abs().amax(1).clamp_min(1e-12)[:, None, None, None]
    w = F.interpolate(w, scale_factor=8, mode="nearest")
    if w.shape[1] == 1:
        w = w.expand(-1, 3, -1, -1)
    ncol = ncol or int(math.ceil(math.sqrt(len(w))))
    return tile(w, ncol, gap=(220, 40, 40))  # red gaps: the filters' own values run from black to white


def probe_generator(
    g: nn.Module, g_random: nn.Module, *, z_dim: int, layers: list[str], n: int = 2000, seed: int = 0
) -> dict:
    """Figs. 1 and 3 for a trained generator and a random-init one: per-layer R^2 and code statistics."""
    z = torch.randn(n, z_dim, generator=make_generator(seed, "probe.latents"))
    out: dict[str, Any] = {"n": n, "seed": seed, "layers": {}}
    for label, net in (("trained", g), ("random", g_random)):
        hidden, image = capture(net.eval(), z, layers)
        for name in layers:
            h = hidden[name]
            rec = out["layers"].setdefault(name, {"shape": list(h.shape[1:])})
            rec[label] = {"r2": fsr_r2(h, image), "codes": code_stats(h, seed=seed)}
    return out


@torch.no_grad()
def d_first_layer_rate(d_first: nn.Module, real: torch.Tensor) -> float:
    """Fraction of positive first-layer pre-activations of D on real images (sparsity of its detectors)."""
    return float((d_first(real) > 0).double().mean())


def verdicts(res: dict) -> list[dict]:
    """The paper's claims with our thresholds (see the module docstring): claim, value, threshold, pass."""
    t = THRESHOLDS
    rows = []
    for name, rec in res["layers"].items():
        tr, rd = rec["trained"], rec["random"]
        best = max(v for v in tr["r2"].values() if v == v) if tr["r2"] else float("nan")
        best_rand = max(v for v in rd["r2"].values() if v == v) if rd["r2"] else float("nan")
        rows.append(
            {
                "claim": f"Fig. 1 FSR: {name} maps linearly to its resolution (best held-out R^2)",
                "value": best,
                "random_init": best_rand,
                "threshold": f">= {t['r2']}",
                "pass": best >= t["r2"],
            }
        )
        c = tr["codes"]
        rows.append(
            {
                "claim": f"Fig. 3 sparse: {name} mean firing rate",
                "value": c["fire_rate_mean"],
                "random_init": rd["codes"]["fire_rate_mean"],
                "threshold": f"<= {t['fire_rate']}",
                "pass": c["fire_rate_mean"] <= t["fire_rate"],
            }
        )
        ok = c["pair_ratio_mean"] <= t["pair_ratio"] and c["triple_ratio_mean"] <= t["triple_ratio"]
        rows.append(
            {
                "claim": f"Fig. 3 not too positively correlated: {name} mean pair / triple ratio",
                "value": (c["pair_ratio_mean"], c["triple_ratio_mean"]),
                "random_init": (rd["codes"]["pair_ratio_mean"], rd["codes"]["triple_ratio_mean"]),
                "threshold": f"<= {t['pair_ratio']} / {t['triple_ratio']:.2f}",
                "pass": ok,
            }
        )
    for key, label in (("g_filters", "Fig. 2 G output layer"), ("d_filters", "Fig. 4 D first layer")):
        if key in res:
            s, r = res[key]["trained"], res[key]["random"]
            gain = s["edge_colour_fraction"] / s["edge_colour_random"]
            # span{1, x, y} is 3 of the 4 dimensions of a 2x2 filter: the measure cannot tell there.
            informative = s["size"] >= 3
            rows.append(
                {
                    "claim": f"{label}: edge-colour energy fraction (x random-filter value)",
                    "value": s["edge_colour_fraction"],
                    "random_init": r["edge_colour_fraction"],
                    "threshold": f">= {t['edge_colour_gain']} x {s['edge_colour_random']:.3f}"
                    if informative
                    else f"n/a for {s['size']}x{s['size']} filters",
                    "pass": gain >= t["edge_colour_gain"] if informative else None,
                }
            )
    return rows
