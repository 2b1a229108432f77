"""Patch grids and the connection graph of a forward-super-resolution network.

Level ``l`` (1-based) of the default geometry is a ``g_l x g_l`` grid of non-overlapping
``p x p`` patches with ``c`` colour channels, ``g_l = base_grid * 2**(l-1)``, so each level
doubles the resolution (8, 16, 32 pixels for ``base_grid=2, patch=4``). A patch vector has
``d = c * p * p`` entries laid out as ``(c, p, p)``.

Connection graph P(l, j) (paper §2.1: "can be any subset"): patch ``(a, b)`` at level ``l``
reads the patch ``(a // 2, b // 2)`` one level down (its *parent*) and the parent's
neighbours. ``neighbourhood`` chooses which neighbours:

* ``"parent"`` -- only the parent (|P| = 1);
* ``"cross"``  -- the parent and its 4-neighbours (|P| <= 5), the default: local like a 3x3
  deconvolution but with fewer weights, so that the default problem stays CPU-sized;
* ``"square"`` -- the parent's 3x3 neighbourhood (|P| <= 9).

Neighbours outside the grid are dropped; rows are padded with index 0 and a 0 mask so that a
level is one gather + one einsum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["NEIGHBOURHOODS", "Geometry"]

NEIGHBOURHOODS = {
    "parent": [(0, 0)],
    "cross": [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)],
    "square": [(da, db) for da in (-1, 0, 1) for db in (-1, 0, 1)],
}


@dataclass(frozen=True)
class Geometry:
    """Shapes of an FSR network: grids per level, patch size, colour channels."""

    n_levels: int
    base_grid: int
    patch: int
    colours: int
    neighbourhood: str = "cross"

    @property
    def d(self) -> int:
        """Patch dimension d = colours * patch**2."""
        return self.colours * self.patch * self.patch

    def grid(self, level: int) -> int:
        return self.base_grid * 2 ** (level - 1)

    def n_patches(self, level: int) -> int:
        return self.grid(level) ** 2

    def resolution(self, level: int) -> int:
        return self.grid(level) * self.patch

    def parents(self, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Connection graph of ``level >= 2``.

        Returns:
            idx: (n_patches(level), P_max) long tensor of parent patch indices at ``level-1``.
            mask: (n_patches(level), P_max) float tensor, 1 for a real parent, 0 for padding.
        """
        if level < 2:
            raise ValueError(f"level must be >= 2 to have parents, got {level}")
        offsets = NEIGHBOURHOODS[self.neighbourhood]
        g, gp = self.grid(level), self.grid(level - 1)
        idx = torch.zeros(g * g, len(offsets), dtype=torch.long)
        mask = torch.zeros(g * g, len(offsets))
        for a in range(g):
            for b in range(g):
                col = 0
                for da, db in offsets:
                    pa, pb = a // 2 + da, b // 2 + db
                    if 0 <= pa < gp and 0 <= pb < gp:
                        idx[a * g + b, col] = pa * gp + pb
                        mask[a * g + b, col] = 1.0
                        col += 1
        return idx, mask

    def to_image(self, patches: torch.Tensor, level: int) -> torch.Tensor:
        """(n, n_patches, d) patch vectors -> (n, colours, H, W) images."""
        n, g, p, c = patches.shape[0], self.grid(level), self.patch, self.colours
        x = patches.reshape(n, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(n, c, g * p, g * p)

    def to_patches(self, images: torch.Tensor, level: int) -> torch.Tensor:
        """Inverse of :meth:`to_image`."""
        n, g, p, c = images.shape[0], self.grid(level), self.patch, self.colours
        x = images.reshape(n, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(n, g * g, c * p * p)
