"""The stages of the FSR learning algorithm (Allen-Zhu & Li, §3), one runner per stage kind.

Each runner has the same small contract, so the training loop never branches on the kind:

* ``n_steps``; ``step(t, generator) -> dict[str, Tensor]`` (one SGDA step, or the warm start);
* ``samples_per_step``: real images (full multi-resolution tuples) one step consumes;
* ``state_dict() / load_state_dict()``: everything besides the learner needed to resume exactly.

Data enter only through ``data(n, generator=...) -> list of (n, d_l, d) patch tensors``: a
learner never sees the target's hidden codes.

One module per stage kind holds its spec (a frozen dataclass: the stage's constructor arguments,
with ``validate``) next to its runner.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Union, cast

import torch

from ganlearn.config import ConfigError, from_dict
from ganlearn.fsr.model import FSRNet
from ganlearn.fsr.stages.common import Data, schedule
from ganlearn.fsr.stages.end_to_end import EndToEnd, EndToEndStage
from ganlearn.fsr.stages.first_hidden import FirstHidden, FirstHiddenStage
from ganlearn.fsr.stages.output_layer import OutputLayer, OutputLayerStage
from ganlearn.fsr.stages.super_resolution import SuperResolution, SuperResolutionStage
from ganlearn.fsr.stages.warm_start import WarmStart, WarmStartStage, nonnegative_rotation, truncated_patch_covariance
from ganlearn.rng import Generators

__all__ = [
    "STAGE_KINDS",
    "Stage",
    "make_runner",
    "WarmStartStage",
    "OutputLayerStage",
    "FirstHiddenStage",
    "SuperResolutionStage",
    "EndToEndStage",
    "nonnegative_rotation",
    "truncated_patch_covariance",
    "Data",
    "schedule",
    "stage_from_dict",
    "stage_name",
    "run_stage",
    "run_steps",
]

STAGE_KINDS: dict[str, type] = {
    "warm_start": WarmStartStage,
    "output_layer": OutputLayerStage,
    "first_hidden": FirstHiddenStage,
    "super_resolution": SuperResolutionStage,
    "end_to_end": EndToEndStage,
}
Stage = Union[WarmStartStage, OutputLayerStage, FirstHiddenStage, SuperResolutionStage, EndToEndStage]


def stage_name(stage: Any) -> str:
    """A stage's name in overrides: its ``name`` if given, else its kind, followed by its level for
    the kinds that train one level (``super_resolution_3``, ``output_layer_1``)."""
    d = stage if isinstance(stage, dict) else dataclasses.asdict(stage)
    if d.get("name"):
        return d["name"]
    return f"{d.get('kind')}_{d['level']}" if d.get("level") else str(d.get("kind"))


def stage_from_dict(d: Any, key: str) -> Stage:
    if dataclasses.is_dataclass(d) and not isinstance(d, type):
        return cast(Stage, d)
    if not isinstance(d, dict) or "kind" not in d:
        raise ConfigError(f"{key} must be a table with a 'kind' (one of {', '.join(STAGE_KINDS)}), got {d!r}")
    if not isinstance(d["kind"], str) or d["kind"] not in STAGE_KINDS:
        raise ConfigError(f"{key}.kind={d['kind']!r} is not allowed: must be one of {', '.join(STAGE_KINDS)}")
    return from_dict(STAGE_KINDS[d["kind"]], d, key)


RUNNERS = {
    "warm_start": WarmStart,
    "output_layer": OutputLayer,
    "first_hidden": FirstHidden,
    "super_resolution": SuperResolution,
    "end_to_end": EndToEnd,
}


def make_runner(spec, learner: FSRNet, data: Data, generator: torch.Generator | Generators):
    """The stage's runner; ``generator``: one stream, or one per replica (``rng.Generators``) for a
    replica-stacked learner."""
    return RUNNERS[spec.kind](spec, learner, data, generator)


def run_steps(runner, generator: torch.Generator, *, progress: bool = False, desc: str = "stage") -> int:
    """Run a stage runner (anything with ``n_steps``, ``samples_per_step`` and ``step(t, g)``: the
    contract above, so a runner written in a script works too) to its end; returns the real
    samples it consumed. No checkpoints: ``ganlearn.fsr.train`` is the resumable loop."""
    from tqdm.auto import tqdm

    for t in tqdm(range(runner.n_steps), desc=desc, disable=not progress, dynamic_ncols=True):
        runner.step(t, generator)
    return runner.n_steps * runner.samples_per_step


def run_stage(spec, learner: FSRNet, data: Data, generator: torch.Generator, *, progress: bool = False) -> int:
    """Train ``learner`` in place with one stage ``spec`` (a ``WarmStartStage``, ``FirstHiddenStage``,
    ...) on real images from ``data(n, generator=g, upto=l)`` (e.g. ``FSRTarget.images``); returns
    the real samples consumed."""
    return run_steps(make_runner(spec, learner, data, generator), generator, progress=progress, desc=stage_name(spec))
