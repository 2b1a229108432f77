"""The generic discriminator shared by the problems: an MLP (the one-layer comparison's, the FSR
end-to-end baseline's)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLPDiscriminator"]


class MLPDiscriminator(nn.Module):
    """in_dim -> hidden -> hidden -> 1 with LeakyReLU(0.2); the input is a (n, in_dim) tensor or a
    list of tensors (e.g. every resolution of an FSR image), flattened and concatenated."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        if isinstance(x, (list, tuple)):
            x = torch.cat([t.flatten(1) for t in x], dim=1)
        return self.net(x).squeeze(-1)
