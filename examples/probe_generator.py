"""Check the FSR paper's empirical claims on a generator defined right here: a small deconvolution
generator trained as a GAN on scikit-learn's 8x8 digits (shipped with the package, nothing to
download), then probed against its own random initialisation. Per hidden layer: does it map
linearly to the image at its resolution (held-out R^2 of a ridge probe, Fig. 1), and are its patch
codes sparse and not too positively correlated (Fig. 3)? A claim counts only where training
created it, so every value is printed beside the random-init one.

    python examples/probe_generator.py [--steps 1500] [--small]

--small: 200 steps.
"""

import argparse
import copy

import torch
import torch.nn.functional as F
from torch import nn

from ganlearn.images.data import load_digits
from ganlearn.images.probe import probe_generator, verdicts

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=1500)
ap.add_argument("--small", action="store_true")
a = ap.parse_args()
torch.manual_seed(0)
Z = 16


class Generator(nn.Module):
    """z -> 2x2x64 -> 4x4x32 -> 8x8x1; the probe hooks the named ReLU layers."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(Z, 64 * 2 * 2)
        self.act0 = nn.ReLU()
        self.up1 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.act1 = nn.ReLU()
        self.up2 = nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1)

    def forward(self, z):
        h = self.act0(self.fc(z).view(-1, 64, 2, 2))
        return torch.tanh(self.up2(self.act1(self.up1(h))))


D = nn.Sequential(
    nn.Conv2d(1, 32, 3, 2, 1),
    nn.LeakyReLU(0.2),
    nn.Conv2d(32, 64, 3, 2, 1),
    nn.LeakyReLU(0.2),
    nn.Flatten(),
    nn.Linear(64 * 2 * 2, 1),
)
G = Generator()
G_random = copy.deepcopy(G)
real = load_digits()  # (1797, 1, 8, 8) in [-1, 1]
opt_g = torch.optim.Adam(G.parameters(), 2e-3, betas=(0.5, 0.9))
opt_d = torch.optim.Adam(D.parameters(), 2e-3, betas=(0.5, 0.9))
for step in range(200 if a.small else a.steps):
    x = real[torch.randint(len(real), (128,))]
    fake = G(torch.randn(128, Z))
    d_loss = F.softplus(-D(x)).mean() + F.softplus(D(fake.detach())).mean()
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = F.softplus(-D(fake)).mean()  # non-saturating
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
print(f"trained {step + 1} steps: D loss {d_loss.item():.3f}, G loss {g_loss.item():.3f}")

res = probe_generator(G, G_random, z_dim=Z, layers=["act0", "act1"], n=500 if a.small else 2000)
for v in verdicts(res):
    value, rand = v["value"], v["random_init"]
    fmt = (lambda t: "/".join(f"{u:.3f}" for u in t)) if isinstance(value, tuple) else (lambda t: f"{t:.3f}")
    print(
        f"{'PASS' if v['pass'] else 'fail'}  {v['claim']}: {fmt(value)} (random init {fmt(rand)}, "
        f"threshold {v['threshold']})"
    )
for name, rec in res["layers"].items():  # sparsity on magnitudes (robust to many tiny activations)
    t, r = rec["trained"]["codes"], rec["random"]["codes"]
    print(
        f"{name}: Hoyer sparsity {t['hoyer_mean']:.3f} (random init {r['hoyer_mean']:.3f}), energy in the top "
        f"{t['top']} channels {t['topk_energy_mean']:.3f} ({r['topk_energy_mean']:.3f}), clearly active "
        f"{t['active_rel_mean']:.3f} ({r['active_rel_mean']:.3f})"
    )
