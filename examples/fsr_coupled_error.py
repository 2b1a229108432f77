"""The theorem's error between two FSR generators, next to what the sample-based distance can
resolve: a target G* and copies of it whose hidden layers are perturbed by noise of growing size
(and whose latent is rotated, which changes nothing in law). The coupled error min_U
E|G(z) - G*(U^T z)|^2 / E|G*|^2 (an upper bound on W2^2 / E|G*|^2) finds the rotation and grows
with the noise; the top level's sliced W2 sits on its floor (two samples of G* itself) until the
perturbation is large.

    python examples/fsr_coupled_error.py [--small]
"""

import argparse
import copy

import torch

from ganlearn import fsr

ap = argparse.ArgumentParser()
ap.add_argument("--small", action="store_true")
a = ap.parse_args()

cfg = fsr.TargetConfig(levels=2, base_grid=2, patch=3, channels=10, sparsity=2.0, latent_dim=16)
target = fsr.FSRTarget(cfg, seed=0)
ev = fsr.EvalConfig(n_samples=1000 if a.small else 4000, n_fit=1000 if a.small else 4000, fit_steps=100)
floor = fsr.sliced_w2_floor(target, ev)[f"sliced_w2_floor_level{cfg.levels}"]
print(f"sliced W2 of G* against itself (the floor at n = {ev.n_samples}): {floor:.4f}")
g = torch.Generator().manual_seed(1)
rotation, _ = torch.linalg.qr(torch.randn(cfg.latent_dim, cfg.latent_dim, generator=g))
for noise in [0.0, 0.01, 0.03, 0.1, 0.3]:
    other = copy.deepcopy(target.net)
    with torch.no_grad():
        other.V[0].copy_(other.V[0] @ rotation)  # G(z) = G*(R z): the same law
        for V in other.V:
            V.add_(noise * V.std() * torch.randn(V.shape, generator=g))
    m = fsr.evaluate(other, target, ev, final=False)
    print(
        f"noise {noise:<4}: coupled error {m['coupled_rel_error']:.4f}   sliced W2 (top level) {m['sliced_w2_top']:.4f}"
    )
