"""Experiments for ``ganlearn sweep``, declared in code: name -> ``ganlearn.sweep.Experiment``.

Each module declares its experiment(s): the typed parameters of a cell (a dataclass, parsed by
:func:`ganlearn.config.from_dict`), base and grid, and the functions that build, run, batch and
report a cell. Importing this package imports every problem package (torch included).
"""

from __future__ import annotations

from ganlearn.config import ConfigError
from ganlearn.experiments import fsr_scaling, fsr_shapes, image_width, sample_complexity, sparsity_claims, width_sweep
from ganlearn.sweep import Experiment

__all__ = ["registry", "get"]

_EXPERIMENTS = [
    sample_complexity.EXPERIMENT,
    width_sweep.EXPERIMENT,
    width_sweep.GENERAL,
    width_sweep.FEATURES,
    fsr_scaling.EXPERIMENT,
    fsr_shapes.EXPERIMENT,
    image_width.EXPERIMENT,
    sparsity_claims.EXPERIMENT,
]


def registry() -> dict[str, Experiment]:
    return {e.name: e for e in _EXPERIMENTS}


def get(name: str) -> Experiment:
    exps = registry()
    if name not in exps:
        raise ConfigError(f"EXPERIMENT {name!r} is not allowed: must be one of {', '.join(exps)}")
    return exps[name]
