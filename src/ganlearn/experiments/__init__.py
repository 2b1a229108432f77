"""Experiments for ``ganlearn sweep``, declared in code: name -> ``ganlearn.sweep.Experiment``."""
from __future__ import annotations

from ganlearn.config import ConfigError


def registry() -> dict:
    from ganlearn.experiments import (fsr_scaling, fsr_shapes, image_width, sample_complexity, sparsity_claims,
                                      width_sweep)

    exps = [sample_complexity.EXPERIMENT, width_sweep.EXPERIMENT, width_sweep.GENERAL, width_sweep.FEATURES,
            fsr_scaling.EXPERIMENT,
            fsr_shapes.EXPERIMENT, image_width.EXPERIMENT, sparsity_claims.EXPERIMENT]
    return {e.name: e for e in exps}


def get(name: str):
    exps = registry()
    if name not in exps:
        raise ConfigError(f"EXPERIMENT {name!r} is not allowed: must be one of {', '.join(exps)}")
    return exps[name]
