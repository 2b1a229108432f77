"""Image generators and discriminators whose size is one width parameter k.

- ``DCGANGenerator``: z -> 4x4 -> 8x8 -> ... -> R (transposed 4x4 convolutions, BN, ReLU), as in
  Radford et al.; channels 2^(n-1) k at 4x4 halving to k at R/2, so k scales every layer
  (Balaji et al., Fig. 8: "DCGAN with width k").
- ``FSRGenerator``: the forward-super-resolution shape (Allen-Zhu & Li). Hidden codes S_l live on a
  (r_l/2)x(r_l/2) grid of patches with k channels; S_{l+1} = ReLU(BN(conv3x3(upsample2(S_l)))) (each
  patch reads its parent and the parent's neighbours: the connection graph); a *linear* head
  W_l (a 2x2 stride-2 transposed convolution = one shared k -> C*2*2 matrix per patch,
  X_{l,j} = W_l S_{l,j}) draws the resolution-r_l image from S_l. No tanh on the heads, so that the
  image at every resolution is exactly linear in that layer's code, as in the paper.
- ``g_norm``: "bn" (default, DCGAN) or "none" (biases instead). Batch norm centres every
  pre-activation, so about half the ReLUs fire whatever is learned; "none" lets the biases set the
  firing rate, which is what the paper's sparse-code claim (Fig. 3) is about.
- ``Discriminator``: stride-2 4x4 convolutions C -> k -> 2k -> ... down to 4x4 (2x2 for a 4-px
  input), LeakyReLU(0.2), then a linear logit. ``norm``: "sn" (spectral norm on every layer; default:
  no batch statistics, so calling D on the real and on the fake batch separately is harmless), "bn"
  (DCGAN: batch norm after every conv but the first) or "none".
- ``MultiResDiscriminator``: one ``Discriminator`` per resolution, for ``FSRGenerator``.

Every generator returns a list of images, coarsest first (one item for DCGAN); every discriminator
takes such a list and returns logits (n, number of images). ``hidden_layers()`` names the modules
whose outputs are the hidden codes (post-ReLU), for ``ganlearn probe``; ``output_filters()`` and
``first_filters()`` give the output-layer and first-layer filters (Figs. 2 and 4).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from ganlearn.config import ConfigError

__all__ = [
    "DCGANGenerator",
    "FSRGenerator",
    "Discriminator",
    "SingleResDiscriminator",
    "MultiResDiscriminator",
    "ARCHS",
    "build",
]


def _levels(resolution: int, lowest: int = 4) -> int:
    n = math.log2(resolution / lowest)
    if resolution < lowest or n != int(n):
        raise ConfigError(f"resolution={resolution} is not allowed: must be {lowest} * 2^n (8, 16, 32, 64, ...)")
    return int(n)


def _gnorm(norm: str, c: int) -> nn.Module:
    if norm not in ("bn", "none"):
        raise ConfigError(f"g_norm={norm!r} is not allowed: must be bn or none")
    return nn.BatchNorm2d(c) if norm == "bn" else nn.Identity()


class DCGANGenerator(nn.Module):
    def __init__(self, resolution: int = 32, channels: int = 1, width: int = 32, z_dim: int = 64, norm: str = "bn"):
        super().__init__()
        n = _levels(resolution)
        if n < 1:
            raise ConfigError(f"resolution={resolution} is not allowed for dcgan: must be >= 8")
        self.z_dim, self.resolution = z_dim, resolution
        c = width * 2 ** (n - 1)
        bias = norm != "bn"  # a bias only where no batch norm follows
        self.blocks = nn.ModuleList([nn.Sequential(nn.Unflatten(1, (c, 4, 4)), _gnorm(norm, c), nn.ReLU())])
        self.fc = nn.Linear(z_dim, c * 16, bias=bias)
        for _ in range(n - 1):
            self.blocks.append(
                nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=bias), _gnorm(norm, c // 2), nn.ReLU())
            )
            c //= 2
        self.out = nn.ConvTranspose2d(c, channels, 4, 2, 1)

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        h = self.fc(z)
        for b in self.blocks:
            h = b(h)
        return [torch.tanh(self.out(h))]

    def hidden_layers(self) -> list[str]:
        return [f"blocks.{i}" for i in range(len(self.blocks))]

    def output_filters(self) -> torch.Tensor:
        """(k, C, 4, 4): the image patch each last-hidden-layer channel paints."""
        return self.out.weight.detach()


class FSRGenerator(nn.Module):
    def __init__(self, resolution: int = 32, channels: int = 1, width: int = 32, z_dim: int = 64, norm: str = "bn"):
        super().__init__()
        n = _levels(resolution)
        self.z_dim, self.resolution = z_dim, resolution
        k = width
        bias = norm != "bn"
        self.fc = nn.Linear(z_dim, k * 4, bias=bias)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Unflatten(1, (k, 2, 2)), _gnorm(norm, k), nn.ReLU())])
        for _ in range(n):
            self.blocks.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(k, k, 3, 1, 1, bias=bias),
                    _gnorm(norm, k),
                    nn.ReLU(),
                )
            )
        self.heads = nn.ModuleList([nn.ConvTranspose2d(k, channels, 2, 2) for _ in range(n + 1)])

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        h, out = self.fc(z), []
        for block, head in zip(self.blocks, self.heads):
            h = block(h)
            out.append(head(h))
        return out

    def hidden_layers(self) -> list[str]:
        return [f"blocks.{i}" for i in range(len(self.blocks))]

    def output_filters(self) -> torch.Tensor:
        """(k, C, 2, 2): W_L, the patch each top-layer channel paints."""
        return self.heads[-1].weight.detach()


class Discriminator(nn.Module):
    def __init__(self, resolution: int = 32, channels: int = 1, width: int = 32, norm: str = "sn"):
        super().__init__()
        if norm not in ("sn", "bn", "none"):
            raise ConfigError(f"d_norm={norm!r} is not allowed: must be sn, bn or none")
        _levels(resolution)
        wrap = spectral_norm if norm == "sn" else (lambda m: m)
        layers = [wrap(nn.Conv2d(channels, width, 4, 2, 1)), nn.LeakyReLU(0.2)]
        c, side = width, resolution // 2
        while side > 4:
            layers += [wrap(nn.Conv2d(c, 2 * c, 4, 2, 1, bias=norm != "bn"))]
            if norm == "bn":
                layers.append(nn.BatchNorm2d(2 * c))
            layers.append(nn.LeakyReLU(0.2))
            c, side = 2 * c, side // 2
        self.features = nn.Sequential(*layers)
        self.logit = wrap(nn.Linear(c * side * side, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(x).flatten(1))

    def first_filters(self) -> torch.Tensor:
        """(k, C, 4, 4): the first layer's filters (the spectrally normalised weight under "sn")."""
        return self.features[0].weight.detach()

    def first_layer(self) -> nn.Module:
        return self.features[0]


class SingleResDiscriminator(nn.Module):
    """A ``Discriminator`` behind the list interface: logits (n, 1) for the finest image."""

    def __init__(self, **kw):
        super().__init__()
        self.net = Discriminator(**kw)

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        return self.net(images[-1])

    def first_filters(self) -> torch.Tensor:
        return self.net.first_filters()

    def first_layer(self) -> nn.Module:
        return self.net.first_layer()


class MultiResDiscriminator(nn.Module):
    """One discriminator per resolution 4, 8, ..., R; logits (n, levels)."""

    def __init__(self, resolution: int = 32, channels: int = 1, width: int = 32, norm: str = "sn"):
        super().__init__()
        n = _levels(resolution)
        self.nets = nn.ModuleList([Discriminator(4 * 2**i, channels, width, norm) for i in range(n + 1)])

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([d(x) for d, x in zip(self.nets, images)], dim=1)

    def first_filters(self) -> torch.Tensor:
        return self.nets[-1].first_filters()

    def first_layer(self) -> nn.Module:
        return self.nets[-1].first_layer()


ARCHS = ("dcgan", "fsr")


def build(
    arch: str,
    *,
    resolution: int,
    channels: int,
    width: int,
    d_width: int | None = None,
    z_dim: int = 64,
    d_norm: str = "sn",
    g_norm: str = "bn",
) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) for ``arch`` in ARCHS."""
    dw = d_width or width
    if arch == "dcgan":
        return (
            DCGANGenerator(resolution, channels, width, z_dim, g_norm),
            SingleResDiscriminator(resolution=resolution, channels=channels, width=dw, norm=d_norm),
        )
    if arch == "fsr":
        return (
            FSRGenerator(resolution, channels, width, z_dim, g_norm),
            MultiResDiscriminator(resolution, channels, dw, d_norm),
        )
    raise ConfigError(f"arch={arch!r} is not allowed: must be one of {', '.join(ARCHS)}")
