"""What every stage runner shares: the data callable's type and the step-size schedule."""

from __future__ import annotations

from typing import Callable

__all__ = ["schedule"]


# data(n, generator=..., upto=None) -> [(n, J_l, d) patches of levels 1..upto]: real images only
Data = Callable[..., list]


def schedule(spec) -> Callable[[int], float]:
    """Step sizes halve every ``lr_half_life`` steps, down to ``lr_floor`` times the initial."""
    return lambda t: max(spec.lr_floor, 0.5 ** (t / spec.lr_half_life))
