"""Configuration of an FSR run: ``RunConfig`` -- the target, the learner, the list of stages
(staged training is data: each stage is a table with a ``kind`` and that kind's fields; the specs
live beside their runners in :mod:`ganlearn.fsr.stages`), evaluation, and the end-to-end baseline
-- presets by name, and :func:`resolve` (preset -> file -> ``key=value`` overrides -> validated).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from ganlearn.config import (
    ConfigError,
    Settings,
    apply_override,
    check,
    check_fields,
    from_dict,
    merge,
    read_config_file,
    setting,
    to_dict,
)
from ganlearn.fsr.stages import (
    STAGE_KINDS,
    EndToEndStage,
    FirstHiddenStage,
    OutputLayerStage,
    SuperResolutionStage,
    WarmStartStage,
    stage_from_dict,
    stage_name,
)
from ganlearn.sgda import SGDAConfig

__all__ = [
    "TargetConfig",
    "LearnerConfig",
    "EvalConfig",
    "BaselineConfig",
    "RunConfig",
    "PRESETS",
    "resolve",
    "default_stages",
    "tiny_stages",
    "scale_batches",
    "fire_rate_of",
    "REFERENCE_FIRE_RATE",
    "untrained_levels",
    "load_json",
    "WarmStartStage",
    "OutputLayerStage",
    "FirstHiddenStage",
    "SuperResolutionStage",
    "EndToEndStage",
    "STAGE_KINDS",
]


# 16 levels at base grid 1 are 32768 patches per side: far past any memory budget, but a bound
# that keeps a typo (levels=1000000000) from building a billion-stage list before that check.
MAX_LEVELS = 16


@dataclass(frozen=True)
class TargetConfig(Settings):
    """The ground-truth FSR distribution (paper §2.1). Defaults: images of 8, 16, 32 px, RGB."""

    levels: int = setting(3, ge=1, le=MAX_LEVELS)  # L, number of resolutions
    base_grid: int = setting(2, ge=1)  # patches per side at level 1; doubles every level
    patch: int = setting(4, ge=1)  # p, patch side in pixels
    colours: int = setting(3, ge=1)  # colour channels (d = colours * patch**2)
    channels: int = setting(16, ge=1)  # m, hidden channels per patch
    sparsity: float = setting(2.0, gt=0)  # k: each channel fires with probability k/m
    latent_dim: int = setting(32, ge=1)  # m0, dimension of z
    neighbourhood: Literal["parent", "cross", "square"] = "cross"  # connection graph P
    shared_output: bool = True  # W*_{l,j} = W*_l (a deconvolution)
    atoms: Literal["edge_colour", "random"] = "edge_colour"  # how W* is drawn
    seed: Optional[int] = setting(None, ge=0)  # None: derived from the run seed

    def validate(self, key: str = "target") -> None:
        d = self.colours * self.patch**2
        check(
            1 <= self.channels <= d,
            f"{key}.channels",
            self.channels,
            f"between 1 and the patch dimension d = colours*patch^2 = {d} (W* is column-orthonormal)",
        )
        check(self.sparsity < self.channels, f"{key}.sparsity", self.sparsity, "in (0, channels)")


@dataclass(frozen=True)
class LearnerConfig(Settings):
    """The learner generator: the target's structure (§2.2); None copies the target's value."""

    channels: Optional[int] = setting(None, ge=1)  # m of the learner (may exceed the target's)
    latent_dim: Optional[int] = setting(None, ge=1)
    sparsity: Optional[float] = setting(None, gt=0)  # firing rate k/m used to calibrate the initial biases

    def validate(self, key: str = "learner") -> None:
        """Every rule is a single field's range (those across the target: RunConfig.validate)."""


@dataclass(frozen=True)
class EvalConfig(Settings):
    every: int = setting(200, ge=2)  # evaluate every this many steps within a stage (and at each stage end)
    n_samples: int = setting(2000, ge=2)  # samples per side for the distribution metrics
    n_projections: int = setting(256, ge=2)  # sliced-Wasserstein directions
    n_fit: int = setting(2000, ge=2)  # latents used to fit the rotation U of the coupled error
    # L-BFGS loss-and-gradient evaluations of the rotation fit (at most; metrics.recovery.coupled_error).
    # 25: the default run's fit converges in 21 (200 Adam steps reach the same U, 7x slower).
    fit_steps: int = setting(25, ge=0)
    seed: int = 0  # evaluation streams fsr.eval*, separate from training so evaluation never changes training
    # Where the metrics are computed (float64 either way). "train" (default): the training device;
    # on the CPU with one thread, so a metric is a function of the parameters alone; on a GPU with
    # PyTorch's deterministic algorithms (repeatable on one GPU; equal to the CPU's to ~1e-6
    # relative, tests/test_gpu.py, and to the 4 digits printed in the default run's log on an
    # H100). "cpu": always one CPU thread, the same numbers on every machine. Why the GPU: on an
    # H100 each final evaluation of the default run took ~94 s on the CPU (almost all of it the
    # former 200-step Adam fit of U) against 3-4 s on the GPU, for ~32 s of staged training.
    device: Literal["train", "cpu"] = "train"

    def validate(self, key: str = "eval") -> None:
        """Every rule is a single field's range, declared above and checked at construction."""


@dataclass(frozen=True)
class BaselineConfig(Settings):
    enabled: bool = True  # also train the end-to-end baseline on the same sample budget ...
    max_steps: int = setting(400, ge=1)  # ... capped at this many steps (WGAN-GP costs far more per sample)
    stage: EndToEndStage = EndToEndStage()

    def validate(self, key: str = "baseline") -> None:
        self.stage.validate(f"{key}.stage")


def default_stages(levels: int = 3, fire_rate: float | None = None) -> list:
    """warm start -> GAN_FirstHidden -> GAN_ForwardSuperResolution for each level >= 2, with the
    moment stages' batches scaled for codes that fire at ``fire_rate`` (:func:`scale_batches`).

    No GAN_OutputLayer stage by default: the warm start (top-m eigenvectors, then the
    non-negative rotation) already returns W_l = W*_l P up to round-off (seed 0: worst feature
    cosine 1 - 2e-9 at every level), and 300 steps of GAN_OutputLayer on W_1 move it away, to
    0.9997 worst / 0.99980 mean, which alone is a level-1 error of ~0.02. GAN_OutputLayer stays
    available (``stages+={"kind": "output_layer", ...}``) for data where the warm start is not exact.

    GAN_FirstHidden takes Gauss-Newton-preconditioned steps (``FirstHiddenStage``'s defaults: 300
    steps, lr 0.5, constant, averaged over the last half). With W_1 exact, its level-1 error on
    seeds 0 / 1 / 4 is 0.0073 / 0.0070 / 0.0059; the same stage with Adam and no preconditioning
    (1500 steps, ``precondition="none"``) ends at 0.0107 / 0.011 / 0.016 and stays at 0.014-0.017 on
    seed 4 with the noise removed, 8x the samples or 2x the steps: its limit is the optimizer near
    the solution, not the samples. Averaging the last half of the iterates removes the step noise of
    the moment estimates that limits the last iterate.
    """
    return scale_batches(
        [WarmStartStage(), FirstHiddenStage()] + [SuperResolutionStage(level=lv) for lv in range(2, levels + 1)],
        fire_rate,
    )


# The firing rate k/m of the default target's codes (k = 2 of m = 16), at which every batch of the
# default stages was measured.
REFERENCE_FIRE_RATE = 2 / 16


def fire_rate_of(target: TargetConfig, learner: LearnerConfig) -> float:
    """k/m of the learner's codes: ``learner.sparsity`` over its channels, else the target's k/m
    (the same assumption the learner's initial biases are calibrated with, ``make_learner``)."""
    if learner.sparsity is not None:
        return learner.sparsity / (learner.channels or target.channels)
    return target.sparsity / target.channels


def scale_batches(stages: list, rate: float | None) -> list:
    """The stages with the batches of GAN_FirstHidden and GAN_ForwardSuperResolution multiplied by
    max(1, REFERENCE_FIRE_RATE / rate), rounded up to a multiple of 256, and GAN_FirstHidden's
    steps by the same factor (``rate`` None: unchanged).

    Why the batches (measured): the moment stages' noise follows the number of samples in
    which a channel is active, i.e. batch x k/m, so a sparser target needs proportionally larger
    batches. Default preset, seed 0, ``target.sparsity=1.0`` (half the default rate): coupled error
    0.170 (levels 0.035 / 0.075 / 0.180) with the default batches, 0.072 (0.019 / 0.039 / 0.076)
    with them doubled (373 s -> 754 s on one thread); k = 1.5 with the rule: 0.036. Denser targets
    keep the defaults (k = 4: 0.039 in the shape experiment).

    Why GAN_FirstHidden's steps too: at k = 0.5 (x 4) batches alone left level 1 at 0.130
    in the pipeline (0.255 in all), still improving at the last step. With every other layer exact
    (default preset, ``target.sparsity=0.5``, the x 4 batches, training stream seed 11), the last
    iterate's V V^T error fell 0.31 / 0.22 / 0.14 / 0.12 / 0.107 at steps 50 / 100 / 200 / 300 / 400
    and then stayed at ~0.10 (its noise): the transient takes ~400 steps, longer than the default
    300, so the average over the last half started before it ended. Level-1 coupled error with
    300 / 600 / 1200 steps: 0.0998 / 0.0502 / 0.0315 (level 3, inheriting it: 0.158 / 0.082 /
    0.060). The Gauss-Newton step's progress per step follows the same active count as the noise,
    so the steps scale with the batches' factor. The cost: this stage's time grows as factor^2
    (k = 0.5: 15 min on one thread instead of 1). In the pipeline (seed 0, baseline off): k = 1.0
    0.0645 (levels 0.011 / 0.029 / 0.069; was 0.072), k = 0.5 0.143 (0.050 / 0.089 / 0.148; was
    0.255), where the upper levels' own errors are 0.014 / 0.031 and the rest is level 1's carried
    up. The warm start is not scaled: its recovery of W was exact (worst cosine 1.000) on these
    targets."""
    if rate is None or not rate > 0 or rate >= REFERENCE_FIRE_RATE:
        return stages
    factor = REFERENCE_FIRE_RATE / rate

    def up(n: int) -> int:
        return 256 * math.ceil(n * factor / 256)

    out = []
    for st in stages:
        if isinstance(st, FirstHiddenStage):
            st = dataclasses.replace(st, steps=math.ceil(st.steps * factor))
        if isinstance(st, (FirstHiddenStage, SuperResolutionStage)):
            st = dataclasses.replace(st, batch=up(st.batch), fake_batch=up(st.fake_batch))
        out.append(st)
    return out


def untrained_levels(stages: list, levels: int) -> dict[int, str]:
    """Levels 1..``levels`` that ``stages`` leave (partly) untrained, with what is missing.

    Level 1 needs its output layer W_1 (warm_start, or output_layer with level 0 or 1) and its
    hidden layer V_1 (first_hidden); level l >= 2 needs W_l and V_l (super_resolution with that
    level). An end_to_end stage trains everything.
    """
    if any(isinstance(s, EndToEndStage) for s in stages):
        return {}
    out = {}
    for lv in range(1, levels + 1):
        missing = []
        if not any(
            isinstance(s, WarmStartStage) or (isinstance(s, OutputLayerStage) and s.level in (0, lv)) for s in stages
        ):
            missing.append(f"its output layer W_{lv} (a warm_start or output_layer stage)")
        hidden = (
            any(isinstance(s, FirstHiddenStage) for s in stages)
            if lv == 1
            else any(isinstance(s, SuperResolutionStage) and s.level == lv for s in stages)
        )
        if not hidden:
            what = "a first_hidden stage" if lv == 1 else f"a super_resolution stage with level={lv}"
            missing.append(f"its hidden layer V_{lv} ({what})")
        if missing:
            out[lv] = " and ".join(missing)
    return out


@dataclass(frozen=True)
class RunConfig(Settings):
    """One FSR run: the target, the learner, the stage list, evaluation and the baseline."""

    seed: int = setting(0, ge=0)
    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    target: TargetConfig = TargetConfig()
    learner: LearnerConfig = LearnerConfig()
    # None: derived from the target, ``default_stages(target.levels, fire_rate)`` (one super_resolution
    # stage per level >= 2); a preset or a config file may give its own list.
    stages: Optional[list] = dataclasses.field(default=None, metadata={"items": stage_from_dict})
    eval: EvalConfig = EvalConfig()
    baseline: BaselineConfig = BaselineConfig()
    checkpoint_every: int = setting(200, ge=1)  # steps between resumable checkpoints (and at every stage end)
    allow_untrained_levels: bool = False  # accept a stage list that leaves a level untrained
    memory_budget_gb: Optional[float] = setting(None, gt=0)  # refuse runs predicted above it; None: 75% of available
    # Stop a run (DivergenceError) when the coupled error exceeds this factor (a random learner's is
    # ~1; a run that blew up without a NaN reached 482). null switches it off (NaN/inf always stop a run).
    divergence_factor: Optional[float] = setting(100.0, gt=1)

    def __post_init__(self):
        check_fields(self)
        if self.stages is None:
            object.__setattr__(
                self, "stages", default_stages(self.target.levels, fire_rate_of(self.target, self.learner))
            )

    def validate(self) -> "RunConfig":
        self.target.validate()
        self.learner.validate()
        m_learner = self.learner.channels or self.target.channels
        d = self.target.colours * self.target.patch**2
        check(
            m_learner <= d,
            "learner.channels",
            self.learner.channels,
            f"null or <= the patch dimension d = {d} (W is column-orthonormal)",
        )
        # A narrower learner cannot represent the target (the paper's learner has its structure,
        # §2.2), and every feature metric matches each true feature to its own learned one: before
        # this check such a run trained to the end and then failed in its evaluation.
        check(
            m_learner >= self.target.channels,
            "learner.channels",
            self.learner.channels,
            f"null or >= target.channels = {self.target.channels} (a learned channel for every true one)",
        )
        if self.learner.sparsity is not None:
            check(
                self.learner.sparsity < m_learner,
                "learner.sparsity",
                self.learner.sparsity,
                f"null or in (0, learner channels = {m_learner})",
            )
        self.baseline.validate()
        assert self.stages is not None  # resolved in RunConfig.__post_init__
        check(len(self.stages) >= 1, "stages", self.stages, "a non-empty list of stages")
        for i, st in enumerate(self.stages):
            st.validate(f"stages.{i}")
            if isinstance(st, (SuperResolutionStage, OutputLayerStage)):
                check(
                    st.level <= self.target.levels,
                    f"stages.{i}.level",
                    st.level,
                    f"<= target.levels={self.target.levels}",
                )
        missing = untrained_levels(self.stages, self.target.levels)
        if missing and not self.allow_untrained_levels:
            lines = "; ".join(f"level {lv} lacks {what}" for lv, what in missing.items())
            raise ConfigError(
                f"stages leave level(s) {', '.join(map(str, missing))} of the learner untrained: {lines}. "
                f'Add the missing stage (--set \'stages+={{"kind": ..., "level": ...}}\'), leave the stage '
                f"list to be derived from the target, or set allow_untrained_levels=true"
            )
        return self


def _tiny() -> RunConfig:
    """A seconds-long run for tests: 2 levels, 4 patches at level 1, small everything."""
    target = TargetConfig(levels=2, base_grid=2, patch=2, colours=3, channels=8, sparsity=1.5, latent_dim=12)
    return RunConfig(
        target=target,
        stages=tiny_stages(target.levels),
        eval=EvalConfig(every=100, n_samples=500, n_projections=64, n_fit=500, fit_steps=25),
        baseline=BaselineConfig(
            stage=EndToEndStage(
                batch=128,
                hidden=64,
                sgda=SGDAConfig(lr_g=1e-3, lr_d=1e-3, n_d=2, optimizer="adam", beta1=0.5, beta2=0.9),
            )
        ),
        checkpoint_every=50,
    )


def tiny_stages(levels: int = 2, fire_rate: float | None = None) -> list:
    """The tiny preset's stages: the default sequence, short and on small batches (scaled for
    sparse codes as the default's, :func:`scale_batches`)."""
    return scale_batches(
        [WarmStartStage(n_samples=2048), FirstHiddenStage(steps=60, batch=1024, fake_batch=2048)]
        + [SuperResolutionStage(level=lv, steps=150, batch=256, lr_half_life=60) for lv in range(2, levels + 1)],
        fire_rate,
    )


PRESETS: dict[str, Any] = {
    "default": RunConfig,
    "tiny": _tiny,
}
# How each preset derives its stage list from the target (used when the user gives no list).
STAGE_FACTORIES: dict[str, Any] = {"default": default_stages, "tiny": tiny_stages}


def resolve(preset: str = "default", config_file: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """preset -> (file) -> overrides -> validated RunConfig."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r} is not allowed: must be one of {', '.join(PRESETS)}")
    d = to_dict(PRESETS[preset]())
    explicit_stages = False
    if config_file is not None:
        file_d = read_config_file(config_file, "--config")
        explicit_stages = "stages" in file_d
        if explicit_stages:  # a stage list in a file replaces the preset's whole list
            d["stages"] = file_d["stages"]
            file_d = {k: v for k, v in file_d.items() if k != "stages"}
        d = merge(d, file_d, "")
    stage_ovs = [ov for ov in overrides if ov.strip().startswith("stages")]
    for ov in overrides:
        if ov not in stage_ovs:
            d = apply_override(d, ov)
    if not explicit_stages:  # the stage list follows the (overridden) target
        target = from_dict(TargetConfig, d["target"], "target")  # its levels bounded before a list is built
        rate = fire_rate_of(target, from_dict(LearnerConfig, d["learner"], "learner"))
        d["stages"] = to_dict(STAGE_FACTORIES[preset](target.levels, rate))
    for ov in stage_ovs:
        d = apply_stage_override(d, ov)
    return from_dict(RunConfig, d).validate()


def apply_stage_override(d: dict, assignment: str) -> dict:
    """``stages.N.key=value`` or ``stages.NAME.key=value`` (as :func:`apply_override`; NAME as
    :func:`~ganlearn.fsr.stages.stage_name` gives it, e.g. ``stages.first_hidden.steps=500``),
    ``stages+=STAGE`` (append a stage given as a JSON table, or a list of them) or ``stages-=N``
    / ``stages-=NAME`` (remove a stage; stages after it move up)."""
    head = assignment.split("=", 1)[0].strip()
    parts = head.split(".")
    if len(parts) >= 2 and parts[0] == "stages" and not parts[1].isdigit():
        parts[1] = str(_stage_index(d["stages"], parts[1], "stages." + parts[1]))
        assignment = ".".join(parts) + "=" + assignment.split("=", 1)[1]
        head = ".".join(parts)
    if head == "stages+":
        raw = assignment.split("=", 1)[1]
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"stages+= needs a JSON stage table such as "
                f'\'{{"kind": "super_resolution", "level": 4}}\', got {raw!r} ({e.msg})'
            ) from None
        new = value if isinstance(value, list) else [value]
        new = [to_dict(stage_from_dict(st, f"stages+=[{i}]")) for i, st in enumerate(new)]
        d["stages"] = list(d["stages"]) + new
        return d
    if head == "stages-":
        raw = assignment.split("=", 1)[1].strip()
        n = len(d["stages"])
        if raw and not raw.isdigit():
            raw = str(_stage_index(d["stages"], raw, "stages-=" + raw))
        if not raw.isdigit() or int(raw) >= n:
            raise ConfigError(f"stages-={raw!r} is not allowed: must be a stage index 0..{n - 1}")
        d["stages"] = [s for i, s in enumerate(d["stages"]) if i != int(raw)]
        return d
    return apply_override(d, assignment)


def _stage_index(stages: list, name: str, key: str) -> int:
    hits = [i for i, st in enumerate(stages) if stage_name(st) == name]
    if len(hits) != 1:
        names = ", ".join(f"{i}: {stage_name(st)}" for i, st in enumerate(stages))
        why = "no stage is named" if not hits else f"stages {hits} are all named"
        raise ConfigError(
            f"{key}: {why} {name!r}; the stages here are {names} (use the index, or give the stages distinct names)"
        )
    return hits[0]


def load_json(path: str | Path) -> RunConfig:
    """A run configuration from a file (a run's ``config.json``: its ``ganlearn`` provenance is ignored)."""
    d = read_config_file(path, "run config")
    return from_dict(
        RunConfig, {k: v for k, v in d.items() if k != "ganlearn"} if isinstance(d, dict) else d
    ).validate()
