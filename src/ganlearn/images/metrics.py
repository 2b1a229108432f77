"""Image-GAN metrics that need no download. Pure functions of two image batches (n, C, R, R) in [-1, 1];
each returns a record that states its sample sizes, feature space, seed and parameters.

- ``swd``: multi-scale sliced Wasserstein distance on Laplacian-pyramid patches, the ProGAN protocol
  (Karras et al. 2018, App. D): 5-tap binomial Laplacian pyramid; at every level with side >= ``min_side``
  ``patches_per_image`` random 7x7 patches per image; each descriptor set normalised by its own
  per-channel mean and std; SWD averaged over ``repeats`` x ``directions`` random unit directions;
  reported x 1e3 per level ("swd_32", "swd_16", ...) and averaged ("swd_avg"). ProGAN uses 16384
  images, 128 patches, min side 16, 4 x 128 directions; our defaults keep the patch and direction
  counts and take the sample size as given. Values depend on n: compare at equal n and next to the
  real-vs-real baseline (``swd`` of two disjoint real sets).
- ``features``: a fixed, named feature space. "randconv128-v1": a 3-layer random ReLU conv net
  (3x3 convs 3->32->64->128, each followed by 2x2 average pooling, then the spatial mean: 128
  features) on 32x32 RGB input, with weights drawn from NumPy's PCG64(seed 2023) and He-normal
  scaling, so the same numbers come out everywhere without a download. It is *not* Inception:
  its Frechet distance is not comparable with published FID. "pixels16": the image area-pooled to
  16x16, flattened.
- ``frechet``: Frechet distance between Gaussian fits of two feature sets (float64; the matrix square
  root through symmetric eigendecompositions, which stays real and needs no ``sqrtm``).
- ``prdc``: precision, recall, density and coverage (Naeem et al. 2020) with k nearest neighbours.
- ``inception_fid_kid``: FID and KID through torchmetrics, only with Inception weights the user passes
  by path (never a download).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganlearn.config import ConfigError
from ganlearn.rng import make_generator

__all__ = [
    "laplacian_pyramid",
    "sliced_wasserstein",
    "swd",
    "FEATURES",
    "features",
    "frechet",
    "prdc",
    "feature_metrics",
    "inception_fid_kid",
]

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = (_BINOMIAL[:, None] * _BINOMIAL[None, :]).to(x.dtype)
    k = k.expand(c, 1, 5, 5).contiguous()
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=c)


def laplacian_pyramid(x: torch.Tensor, min_side: int = 16) -> list[torch.Tensor]:
    """Band-pass levels finest first, then the low-pass residual; the last item's side is >= min_side."""
    levels, cur = [], x
    while cur.shape[-1] // 2 >= min_side:
        lo = _blur(cur)[..., ::2, ::2]
        up = torch.zeros_like(cur)
        up[..., ::2, ::2] = lo
        levels.append(cur - 4 * _blur(up))
        cur = lo
    levels.append(cur)
    return levels


def _patches(x: torch.Tensor, per_image: int, size: int, gen: torch.Generator) -> torch.Tensor:
    n, c, h, w = x.shape
    ys = torch.randint(0, h - size + 1, (n, per_image), generator=gen)
    xs = torch.randint(0, w - size + 1, (n, per_image), generator=gen)
    ar = torch.arange(size)
    rows = (ys[..., None] + ar)[..., :, None].expand(n, per_image, size, size)
    cols = (xs[..., None] + ar)[..., None, :].expand(n, per_image, size, size)
    idx = torch.arange(n)[:, None, None, None].expand_as(rows)
    p = x.permute(0, 2, 3, 1)[idx, rows, cols]  # (n, per_image, size, size, c)
    p = p.reshape(-1, size, size, c)
    mean = p.mean(dim=(0, 1, 2), keepdim=True)
    std = p.std(dim=(0, 1, 2), keepdim=True).clamp_min(1e-8)
    return ((p - mean) / std).reshape(p.shape[0], -1)


def sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, *, repeats: int, directions: int, gen: torch.Generator
) -> float:
    """Mean over random unit directions of the 1-D W1 between projections (equal sizes: sorted pairs)."""
    if a.shape[0] != b.shape[0]:
        m = min(a.shape[0], b.shape[0])
        a, b = a[:m], b[:m]
    out = []
    an, bn = a.double().numpy(), b.double().numpy()
    for _ in range(repeats):
        d = torch.randn(a.shape[1], directions, generator=gen, dtype=torch.float64).numpy()
        d = d / np.linalg.norm(d, axis=0, keepdims=True)
        # NumPy sorts the (directions, n) rows about 3x faster than torch.sort on 2 CPU cores.
        pa = np.sort((an @ d).T, axis=1)
        pb = np.sort((bn @ d).T, axis=1)
        out.append(float(np.abs(pa - pb).mean()))
    return float(np.mean(out))


@torch.no_grad()
def swd(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    seed: int = 0,
    patches_per_image: int = 128,
    patch: int = 7,
    repeats: int = 4,
    directions: int = 128,
    min_side: int = 16,
) -> dict:
    """Multi-scale SWD x 1e3 per Laplacian level (ProGAN protocol; see the module docstring)."""
    side = real.shape[-1]
    min_side = min(min_side, side)
    gen = make_generator(seed, "images.swd")
    pr = laplacian_pyramid(real.double(), min_side)
    pf = laplacian_pyramid(fake.double(), min_side)
    rec: dict[str, Any] = {}
    for lr, lf in zip(pr, pf):
        size = min(patch, lr.shape[-1])
        dr = _patches(lr, patches_per_image, size, gen)
        df = _patches(lf, patches_per_image, size, gen)
        rec[f"swd_{lr.shape[-1]}"] = 1e3 * sliced_wasserstein(dr, df, repeats=repeats, directions=directions, gen=gen)
    rec["swd_avg"] = float(np.mean(list(rec.values())))
    rec["meta"] = {
        "metric": "swd-laplacian",
        "n_real": int(real.shape[0]),
        "n_fake": int(fake.shape[0]),
        "seed": seed,
        "patches_per_image": patches_per_image,
        "patch": patch,
        "repeats": repeats,
        "directions": directions,
        "min_side": min_side,
        "pyramid": "binomial-5tap, reflect pad",
        "normalisation": "per descriptor set, per channel",
    }
    return rec


# ---- a fixed, named feature space --------------------------------------------------------------

FEATURES = ("randconv128-v1", "pixels16")
_RANDCONV: dict = {}
_RANDCONV_V1_SEED = 2023  # part of the definition of the randconv128-v1 feature space, not a run seed


def _randconv_weights() -> list[tuple[torch.Tensor, torch.Tensor]]:
    if not _RANDCONV:
        rng = np.random.Generator(np.random.PCG64(_RANDCONV_V1_SEED))
        layers = []
        for cin, cout in ((3, 32), (32, 64), (64, 128)):
            w = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))
            b = rng.standard_normal(cout) * 0.1
            layers.append((torch.from_numpy(w).float(), torch.from_numpy(b).float()))
        _RANDCONV["w"] = layers
    return _RANDCONV["w"]


@torch.no_grad()
def features(x: torch.Tensor, name: str = "randconv128-v1", batch: int = 1024) -> torch.Tensor:
    """(n, d) float64 features of images in [-1, 1] (gray images are repeated to RGB)."""
    if not isinstance(name, str) or name not in FEATURES:
        raise ConfigError(f"features={name!r} is not allowed: must be one of {', '.join(FEATURES)}")
    x = x.float()
    if name == "pixels16":
        return (
            F.interpolate(x, size=(16, 16), mode="area").flatten(1).double()
            if x.shape[-1] >= 16
            else F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False).flatten(1).double()
        )
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(32, 32), mode="area" if x.shape[-1] >= 32 else "bilinear")
    weights = [(w.to(x.device), b.to(x.device)) for w, b in _randconv_weights()]
    out = []
    for i in range(0, x.shape[0], batch):
        h = x[i : i + batch]
        for w, b in weights:
            h = F.avg_pool2d(F.relu(F.conv2d(h, w, b, padding=1)), 2)
        out.append(h.mean(dim=(2, 3)))
    return torch.cat(out).double().cpu()


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet(fa: torch.Tensor | np.ndarray, fb: torch.Tensor | np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr S_a + tr S_b - 2 tr (S_a^1/2 S_b S_a^1/2)^1/2 of Gaussian fits (float64)."""
    a, b = np.asarray(fa, dtype=np.float64), np.asarray(fb, dtype=np.float64)
    d = a.shape[1]
    if min(a.shape[0], b.shape[0]) <= d:
        raise ConfigError(
            f"frechet needs more samples than feature dimensions: n = {a.shape[0]}, {b.shape[0]}, "
            f"d = {d} (the covariance would be singular)"
        )
    ma, mb = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ra = _psd_sqrt(sa)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(ra @ sb @ ra), 0, None)).sum()
    return float(((ma - mb) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * cross)


def prdc(real_f: torch.Tensor, fake_f: torch.Tensor, k: int = 5) -> dict:
    """Precision, recall, density, coverage (Naeem et al. 2020) on features, Euclidean k-NN balls."""
    r, f = torch.as_tensor(real_f, dtype=torch.float64), torch.as_tensor(fake_f, dtype=torch.float64)
    if min(len(r), len(f)) <= k:
        raise ConfigError(f"prdc needs more than k={k} samples per set, got {len(r)} and {len(f)}")
    d_rr, d_ff, d_rf = torch.cdist(r, r), torch.cdist(f, f), torch.cdist(r, f)
    rad_r = d_rr.kthvalue(k + 1, dim=1).values  # k+1: the point itself is at distance 0
    rad_f = d_ff.kthvalue(k + 1, dim=1).values
    inside = d_rf <= rad_r[:, None]  # (real i, fake j): fake j in the ball of real i
    return {
        "precision": float(inside.any(0).double().mean()),
        "recall": float((d_rf <= rad_f[None, :]).any(1).double().mean()),
        "density": float(inside.double().sum(0).mean() / k),
        "coverage": float((d_rf.min(1).values <= rad_r).double().mean()),
    }


def feature_metrics(
    real: torch.Tensor, fake: torch.Tensor, *, feature: str = "randconv128-v1", k: int = 5, seed: int | None = None
) -> dict:
    """Frechet distance and PRDC in a named feature space, with the record's metadata."""
    fr, ff = features(real, feature), features(fake, feature)
    rec = {"frechet": frechet(fr, ff), **prdc(fr, ff, k)}
    rec["meta"] = {
        "metric": "frechet+prdc",
        "features": feature,
        "n_real": int(len(real)),
        "n_fake": int(len(fake)),
        "k": k,
        "seed": seed,
    }
    return rec


def inception_fid_kid(real: torch.Tensor, fake: torch.Tensor, weights_path: str, *, kid_subset: int = 1000) -> dict:
    """FID and KID with Inception-v3 weights from ``weights_path`` (torchmetrics; never downloads).

    Needs ``pip install 'ganlearn[fid]'`` (torchmetrics and torch-fidelity). Images are mapped to
    [0, 1] and repeated to RGB; torchmetrics resizes them to 299x299."""

    if not Path(weights_path).is_file():
        raise FileNotFoundError(
            f"inception_weights={weights_path!r}: no such file (pass the path of the "
            "pt_inception-2015-12-05 weights; ganlearn never downloads them)"
        )
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("FID/KID need torchmetrics and torch-fidelity: pip install 'ganlearn[fid]'") from e

    def rgb01(x):
        x = (x.float().clamp(-1, 1) + 1) / 2
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    fid = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=weights_path)
    kid = KernelInceptionDistance(
        subset_size=min(kid_subset, len(real), len(fake)), normalize=True, feature_extractor_weights_path=weights_path
    )
    for m in (fid, kid):
        m.update(rgb01(real), real=True)
        m.update(rgb01(fake), real=False)
    kid_mean, kid_std = kid.compute()
    return {
        "fid": float(fid.compute()),
        "kid": float(kid_mean),
        "kid_std": float(kid_std),
        "meta": {
            "metric": "fid+kid",
            "features": "inception-v3 pool3 (user weights)",
            "weights": str(weights_path),
            "n_real": int(len(real)),
            "n_fake": int(len(fake)),
        },
    }
