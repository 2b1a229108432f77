"""Run configuration: dataclasses whose fields are constructor arguments, presets by name,
dotted ``key=value`` overrides, strict validation (unknown keys and wrong types are errors
that name the key and what is allowed), JSON round trip.

A run is ``RunConfig``: the target, the learner, the list of stages (staged training is
data: each stage is a dict with a ``kind`` and that kind's fields), evaluation, and the
end-to-end baseline.
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

from ganlearn.sgda import SGDAConfig


class ConfigError(ValueError):
    """A configuration value, key or type that is not allowed."""


def _check(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"{key}={value!r} is not allowed: must be {allowed}")


@dataclass(frozen=True)
class TargetConfig:
    """The ground-truth FSR distribution (paper §2.1). Defaults: images of 8, 16, 32 px, RGB."""

    levels: int = 3  # L, number of resolutions
    base_grid: int = 2  # patches per side at level 1; doubles every level
    patch: int = 4  # p, patch side in pixels
    colours: int = 3  # colour channels (d = colours * patch**2)
    channels: int = 16  # m, hidden channels per patch
    sparsity: float = 2.0  # k: each channel fires with probability k/m
    latent_dim: int = 32  # m0, dimension of z
    neighbourhood: Literal["parent", "cross", "square"] = "cross"  # connection graph P
    shared_output: bool = True  # W*_{l,j} = W*_l (a deconvolution)
    atoms: Literal["edge_colour", "random"] = "edge_colour"  # how W* is drawn
    seed: Optional[int] = None  # None: derived from the run seed

    def validate(self, key: str = "target") -> None:
        _check(self.levels >= 1, f"{key}.levels", self.levels, "an integer >= 1")
        _check(self.base_grid >= 1, f"{key}.base_grid", self.base_grid, "an integer >= 1")
        _check(self.patch >= 1, f"{key}.patch", self.patch, "an integer >= 1")
        _check(self.colours >= 1, f"{key}.colours", self.colours, "an integer >= 1")
        d = self.colours * self.patch ** 2
        _check(1 <= self.channels <= d, f"{key}.channels", self.channels,
               f"between 1 and the patch dimension d = colours*patch^2 = {d} (W* is column-orthonormal)")
        _check(0 < self.sparsity < self.channels, f"{key}.sparsity", self.sparsity, "in (0, channels)")
        _check(self.latent_dim >= 1, f"{key}.latent_dim", self.latent_dim, "an integer >= 1")


@dataclass(frozen=True)
class LearnerConfig:
    """The learner generator: the target's structure (§2.2); None copies the target's value."""

    channels: Optional[int] = None  # m of the learner (may exceed the target's)
    latent_dim: Optional[int] = None
    sparsity: Optional[float] = None  # firing rate k/m used to calibrate the initial biases

    def validate(self, key: str = "learner") -> None:
        if self.channels is not None:
            _check(self.channels >= 1, f"{key}.channels", self.channels, "null or an integer >= 1")
        if self.latent_dim is not None:
            _check(self.latent_dim >= 1, f"{key}.latent_dim", self.latent_dim, "null or an integer >= 1")
        if self.sparsity is not None:
            _check(self.sparsity > 0, f"{key}.sparsity", self.sparsity, "null or > 0")


@dataclass(frozen=True)
class WarmStartStage:
    """SVD warm start of every output layer from a truncated patch covariance."""

    kind: Literal["warm_start"] = "warm_start"
    n_samples: int = 4096  # images drawn to estimate the covariance
    truncation: float = 0.99  # keep patches whose squared norm is below this quantile
    # "span": W_l <- top-m eigenvectors only (W* up to an unknown rotation Q, paper Remark 3.1).
    # "nonneg": then rotate inside the span to the basis in which the decoded codes are
    # non-negative (see stages.nonnegative_rotation): the only basis where they can be, so the
    # sparse features themselves. Needed for per-patch output layers (shared_output=false), where
    # GAN_OutputLayer alone does not find the basis; measured numbers in stages.WarmStart.
    rotation: Literal["span", "nonneg"] = "nonneg"
    rotation_steps: int = 3000  # Riemannian gradient steps of the rotation (a patch stops early at tol)
    rotation_lr: float = 1.0

    def validate(self, key: str) -> None:
        _check(self.n_samples >= 2, f"{key}.n_samples", self.n_samples, "an integer >= 2")
        _check(0 < self.truncation <= 1, f"{key}.truncation", self.truncation, "in (0, 1]")
        _check(self.rotation_steps >= 0, f"{key}.rotation_steps", self.rotation_steps, "an integer >= 0")
        _check(self.rotation_lr > 0, f"{key}.rotation_lr", self.rotation_lr, "> 0")


@dataclass(frozen=True)
class OutputLayerStage:
    """GAN_OutputLayer: thresholded one-hidden-layer discriminators learn every W_l."""

    kind: Literal["output_layer"] = "output_layer"
    level: int = 0  # 0: every level at once; l >= 1: only W_l (a later polish of one level)
    steps: int = 600
    batch: int = 512
    sgda: SGDAConfig = SGDAConfig(lr_g=20.0, lr_d=20.0, n_d=2)
    lr_half_life: float = 150.0  # step sizes halve every this many steps ...
    lr_floor: float = 0.05  # ... down to this fraction of their start
    beta_start: float = 0.5  # b^D = beta * rho_l, rho_l = RMS patch norm of level l
    beta_end: float = 0.2
    beta_decay: float = 0.8  # beta <- max(beta_end, beta * beta_decay) ...
    beta_every: int = 50  # ... every this many steps
    reset_every: int = 10  # W^D <- generator's W every this many steps

    def validate(self, key: str) -> None:
        _check(self.level >= 0, f"{key}.level", self.level, "0 (every level) or a level >= 1")
        _check(self.steps >= 1, f"{key}.steps", self.steps, "an integer >= 1")
        _check(self.batch >= 1, f"{key}.batch", self.batch, "an integer >= 1")
        _check(self.lr_half_life > 0, f"{key}.lr_half_life", self.lr_half_life, "> 0")
        _check(0 < self.lr_floor <= 1, f"{key}.lr_floor", self.lr_floor, "in (0, 1]")
        _check(self.beta_start >= self.beta_end >= 0, f"{key}.beta_start", self.beta_start,
               f">= beta_end={self.beta_end} >= 0")
        _check(0 < self.beta_decay <= 1, f"{key}.beta_decay", self.beta_decay, "in (0, 1]")
        _check(self.beta_every >= 1, f"{key}.beta_every", self.beta_every, "an integer >= 1")
        _check(self.reset_every >= 1, f"{key}.reset_every", self.reset_every, "an integer >= 1")


@dataclass(frozen=True)
class FirstHiddenStage:
    """GAN_FirstHidden: a moment discriminator on decoded level-1 codes learns V_1, b_1."""

    kind: Literal["first_hidden"] = "first_hidden"
    steps: int = 1000
    batch: int = 4096  # real images per D evaluation (level 1 only is rendered: cheap)
    fake_batch: int = 8192  # generator draws per D evaluation (one layer: cheap; less noise)
    # G: Adam; D: plain SGD with lr_d * ridge = 1, so theta jumps to the exact inner maximiser
    sgda: SGDAConfig = SGDAConfig(lr_g=0.02, lr_d=1.0, n_d=1, optimizer="adam", d_optimizer="sgd")
    ridge: float = 1.0  # lambda of the -lambda/2 ||theta||^2 term of D
    whiten: bool = True  # map the codes by C^{-1/2} before taking moments (same zeros, better conditioned)
    reinit: bool = False  # redraw the directions of V_1's rows first (norms and biases kept)
    lr_half_life: float = 500.0
    lr_floor: float = 0.01

    def validate(self, key: str) -> None:
        _check(self.steps >= 1, f"{key}.steps", self.steps, "an integer >= 1")
        _check(self.batch >= 1, f"{key}.batch", self.batch, "an integer >= 1")
        _check(self.fake_batch >= 1, f"{key}.fake_batch", self.fake_batch, "an integer >= 1")
        _check(self.ridge > 0, f"{key}.ridge", self.ridge, "> 0")
        _check(self.lr_half_life > 0, f"{key}.lr_half_life", self.lr_half_life, "> 0")
        _check(0 < self.lr_floor <= 1, f"{key}.lr_floor", self.lr_floor, "in (0, 1]")


@dataclass(frozen=True)
class SuperResolutionStage:
    """GAN_ForwardSuperResolution: a discriminator on pairs (X_{l-1}, X_l) learns V_l, b_l."""

    kind: Literal["super_resolution"] = "super_resolution"
    level: int = 2
    steps: int = 800
    batch: int = 256
    fake_batch: int = 1024  # generator draws per D evaluation (parents="generated" only)
    # Adam for both players. Measured with every other layer exact (level-2 coupled error after 800
    # steps, seed 0): precondition=true with lr_g 0.005 / 0.01 / 0.02 / 0.05 -> 0.031 / 0.0068 /
    # 0.024 / 0.32; precondition=false, lr_g 0.05 (its best) -> 0.056.
    sgda: SGDAConfig = SGDAConfig(lr_g=0.01, lr_d=0.5, n_d=1, optimizer="adam")
    ridge: float = 1.0
    whiten: bool = True  # map [1, parent codes] by C^{-1/2} per patch before the cross moments
    precondition: bool = True  # G steps in the whitened input coordinates, (V, b) = V_w M
    # M = (C + whiten_ridge * mean diag(C) I)^{-1/2}. A learner wider than the target has parent
    # codes with almost no variance; 1e-4 amplifies them ~100x and the preconditioned step blew up
    # (tiny preset, learner m = 10 > 8, seed 0: coupled error 44, sliced W2 2.4 vs floor 0.064);
    # 1e-2 kept it at 1.09 / 0.16. Measured on the default preset in the issue-3 note.
    whiten_ridge: float = 1e-4
    parents: Literal["generated", "real"] = "real"  # fake pairs from G's own S_{l-1}, or G(real X_{l-1})
    lr_half_life: float = 300.0
    lr_floor: float = 0.05

    def validate(self, key: str) -> None:
        _check(self.level >= 2, f"{key}.level", self.level, "an integer >= 2 (level 1 is first_hidden)")
        _check(self.steps >= 1, f"{key}.steps", self.steps, "an integer >= 1")
        _check(self.batch >= 1, f"{key}.batch", self.batch, "an integer >= 1")
        _check(self.fake_batch >= 1, f"{key}.fake_batch", self.fake_batch, "an integer >= 1")
        _check(self.whiten or not self.precondition, f"{key}.precondition", self.precondition,
               "false when whiten is false (the step is taken in the whitened coordinates)")
        _check(self.whiten_ridge > 0, f"{key}.whiten_ridge", self.whiten_ridge, "> 0")
        _check(self.ridge > 0, f"{key}.ridge", self.ridge, "> 0")
        _check(self.lr_half_life > 0, f"{key}.lr_half_life", self.lr_half_life, "> 0")
        _check(0 < self.lr_floor <= 1, f"{key}.lr_floor", self.lr_floor, "in (0, 1]")


@dataclass(frozen=True)
class EndToEndStage:
    """Baseline: all generator parameters against a generic MLP discriminator (WGAN-GP)."""

    kind: Literal["end_to_end"] = "end_to_end"
    steps: int = 1000  # replaced by the staged run's sample budget when used as the baseline
    batch: int = 256
    # n_d = 2 rather than WGAN-GP's usual 5: 0.35 s against 0.74 s a step on 2 CPU cores
    sgda: SGDAConfig = SGDAConfig(lr_g=1e-3, lr_d=1e-3, n_d=2, optimizer="adam", beta1=0.5, beta2=0.9)
    hidden: int = 256  # width of the MLP discriminator
    gp_weight: float = 10.0  # WGAN-GP gradient-penalty weight

    def validate(self, key: str) -> None:
        _check(self.steps >= 1, f"{key}.steps", self.steps, "an integer >= 1")
        _check(self.batch >= 1, f"{key}.batch", self.batch, "an integer >= 1")
        _check(self.hidden >= 1, f"{key}.hidden", self.hidden, "an integer >= 1")
        _check(self.gp_weight >= 0, f"{key}.gp_weight", self.gp_weight, ">= 0")


STAGE_KINDS: dict[str, type] = {
    "warm_start": WarmStartStage,
    "output_layer": OutputLayerStage,
    "first_hidden": FirstHiddenStage,
    "super_resolution": SuperResolutionStage,
    "end_to_end": EndToEndStage,
}
Stage = Union[WarmStartStage, OutputLayerStage, FirstHiddenStage, SuperResolutionStage, EndToEndStage]


@dataclass(frozen=True)
class EvalConfig:
    every: int = 200  # evaluate every this many steps within a stage (and at each stage end)
    n_samples: int = 2000  # samples per side for the distribution metrics
    n_projections: int = 256  # sliced-Wasserstein directions
    n_fit: int = 2000  # latents used to fit the rotation U of the coupled error
    fit_steps: int = 200  # optimisation steps of the rotation fit
    seed: int = 12345  # evaluation RNG, separate from training so evaluation never changes training

    def validate(self, key: str = "eval") -> None:
        for name in ("every", "n_samples", "n_projections", "n_fit"):
            v = getattr(self, name)
            _check(v >= 2, f"{key}.{name}", v, "an integer >= 2")
        _check(self.fit_steps >= 0, f"{key}.fit_steps", self.fit_steps, "an integer >= 0")


@dataclass(frozen=True)
class BaselineConfig:
    enabled: bool = True  # also train the end-to-end baseline on the same sample budget ...
    max_steps: int = 400  # ... capped at this many steps (WGAN-GP costs far more per sample)
    stage: EndToEndStage = EndToEndStage()

    def validate(self, key: str = "baseline") -> None:
        _check(self.max_steps >= 1, f"{key}.max_steps", self.max_steps, "an integer >= 1")
        self.stage.validate(f"{key}.stage")


def default_stages(levels: int = 3) -> list:
    """warm start -> GAN_OutputLayer (all levels) -> GAN_FirstHidden -> polish W_1, then V_1 ->
    GAN_ForwardSuperResolution for each level >= 2.

    Why the polish: GAN_OutputLayer runs while the hidden layers are still random, so its fake
    patches have the wrong code law; at level 1 (fewest patches, most weight per feature) this
    biases W_1 (seed 0: mean cosine 0.989 at step 400 drifting to 0.980 by step 1600). Once V_1
    is learned the fake codes are nearly right, and 300 more steps of the same game on level 1
    alone lift the mean cosine to 0.9985; V_1 is then re-fitted against the better decoding.
    The re-fit continues from the first V_1 with a smaller step. Restarting it from fresh row
    directions (``reinit=True``) was tried and is not the default: seed 0, level-1 coupled error
    0.052 continuing (U by Procrustes only) against 0.029 / 0.033 / 0.040 / 0.054 for four draws
    of fresh directions, but in the full run (U refined) 0.044 continuing against 0.063 fresh:
    the spread between draws is as large as the gain.
    """
    polish_w1 = OutputLayerStage(level=1, steps=300, beta_start=0.2, sgda=SGDAConfig(lr_g=1.0, lr_d=1.0, n_d=2),
                                 lr_floor=1.0)
    polish_v1 = FirstHiddenStage(steps=500, sgda=dataclasses.replace(FirstHiddenStage().sgda, lr_g=0.01),
                                 lr_half_life=250.0)
    return ([WarmStartStage(), FirstHiddenStage(), polish_w1, polish_v1]
            + [SuperResolutionStage(level=lv) for lv in range(2, levels + 1)])


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
        if not any(isinstance(s, WarmStartStage) or (isinstance(s, OutputLayerStage) and s.level in (0, lv))
                   for s in stages):
            missing.append(f"its output layer W_{lv} (a warm_start or output_layer stage)")
        hidden = (any(isinstance(s, FirstHiddenStage) for s in stages) if lv == 1 else
                  any(isinstance(s, SuperResolutionStage) and s.level == lv for s in stages))
        if not hidden:
            what = "a first_hidden stage" if lv == 1 else f"a super_resolution stage with level={lv}"
            missing.append(f"its hidden layer V_{lv} ({what})")
        if missing:
            out[lv] = " and ".join(missing)
    return out


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    target: TargetConfig = TargetConfig()
    learner: LearnerConfig = LearnerConfig()
    # None: derived from the target, ``default_stages(target.levels)`` (one super_resolution
    # stage per level >= 2); a preset or a config file may give its own list.
    stages: Optional[list] = None
    eval: EvalConfig = EvalConfig()
    baseline: BaselineConfig = BaselineConfig()
    checkpoint_every: int = 200  # steps between resumable checkpoints (and at every stage end)
    allow_untrained_levels: bool = False  # accept a stage list that leaves a level untrained
    memory_budget_gb: Optional[float] = None  # refuse runs predicted above it; None: 75% of available

    def __post_init__(self):
        if self.stages is None:
            object.__setattr__(self, "stages", default_stages(self.target.levels))

    def validate(self) -> "RunConfig":
        self.target.validate()
        self.learner.validate()
        self.eval.validate()
        self.baseline.validate()
        _check(self.checkpoint_every >= 1, "checkpoint_every", self.checkpoint_every, "an integer >= 1")
        if self.memory_budget_gb is not None:
            _check(self.memory_budget_gb > 0, "memory_budget_gb", self.memory_budget_gb, "null or > 0")
        _check(len(self.stages) >= 1, "stages", self.stages, "a non-empty list of stages")
        for i, st in enumerate(self.stages):
            st.validate(f"stages.{i}")
            if isinstance(st, (SuperResolutionStage, OutputLayerStage)):
                _check(st.level <= self.target.levels, f"stages.{i}.level", st.level,
                       f"<= target.levels={self.target.levels}")
        missing = untrained_levels(self.stages, self.target.levels)
        if missing and not self.allow_untrained_levels:
            lines = "; ".join(f"level {lv} lacks {what}" for lv, what in missing.items())
            raise ConfigError(
                f"stages leave level(s) {', '.join(map(str, missing))} of the learner untrained: {lines}. "
                f"Add the missing stage (--set 'stages+={{\"kind\": ..., \"level\": ...}}'), leave the stage "
                f"list to be derived from the target, or set allow_untrained_levels=true")
        return self


# ----------------------------------------------------------------------------------------------
# Dict <-> dataclass with strict checking.


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is Union:
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}={value!r} is not allowed: must be {_type_name(tp)}")
        return value
    if origin is Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} has the wrong type: must be a bool (true/false)")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}={value!r} has the wrong type: must be an int")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r} has the wrong type: must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r} has the wrong type: must be a string")
        return value
    return value


def stage_from_dict(d: Any, key: str) -> Stage:
    if dataclasses.is_dataclass(d):
        return d
    if not isinstance(d, dict) or "kind" not in d:
        raise ConfigError(f"{key} must be a table with a 'kind' (one of {', '.join(STAGE_KINDS)}), got {d!r}")
    if d["kind"] not in STAGE_KINDS:
        raise ConfigError(f"{key}.kind={d['kind']!r} is not allowed: must be one of {', '.join(STAGE_KINDS)}")
    return from_dict(STAGE_KINDS[d["kind"]], d, key)


def from_dict(cls: type, d: Any, key: str = "") -> Any:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys and wrong types."""
    if not isinstance(d, dict):
        raise ConfigError(f"{key or 'config'} must be a table/dict, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in d.items():
        full = f"{key}.{k}" if key else k
        if k not in names:
            raise ConfigError(f"unknown key {full!r}; allowed keys here: {', '.join(names)}")
        if cls is RunConfig and k == "stages":
            if not isinstance(v, list):
                raise ConfigError(f"stages must be a list of stage tables, got {v!r}")
            kwargs[k] = [stage_from_dict(s, f"stages.{i}") for i, s in enumerate(v)]
        else:
            kwargs[k] = _convert(v, hints[k], full)
    try:
        obj = cls(**kwargs)
    except ValueError as e:  # SGDAConfig checks its own values
        raise ConfigError(f"{key}: {e}") from None
    return obj


def parse_value(text: str):
    """JSON if it parses (numbers, lists, true/false/null); ``[a,b]`` with bare words is a list whose
    items are parsed the same way; anything else is the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        t = text.strip()
        if t.startswith("[") and t.endswith("]"):
            return [parse_value(x.strip()) for x in t[1:-1].split(",") if x.strip()]
        return text


def apply_override(d: dict, assignment: str) -> dict:
    """Apply one ``dotted.key=value`` (value read by :func:`parse_value`) to a dict."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like key=value (e.g. target.channels=32)")
    path, raw = assignment.split("=", 1)
    value = parse_value(raw)
    parts = path.strip().split(".")
    node: Any = d
    for i, part in enumerate(parts[:-1]):
        here = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"unknown key {here!r}: index must be 0..{len(node) - 1}")
            node = node[int(part)]
        elif isinstance(node, dict) and part in node and isinstance(node[part], (dict, list)):
            node = node[part]
        else:
            allowed = ", ".join(k for k, v in node.items() if isinstance(v, (dict, list))) if isinstance(node, dict) else ""
            raise ConfigError(f"unknown key {here!r}; sections allowed here: {allowed}")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"unknown key {path!r}: index must be 0..{len(node) - 1}")
        node[int(last)] = value
    else:
        if last not in node:
            raise ConfigError(f"unknown key {path!r}; allowed keys here: {', '.join(node)}")
        node[last] = value
    return d


# ----------------------------------------------------------------------------------------------
# Presets.


def _tiny() -> RunConfig:
    """A seconds-long run for tests: 2 levels, 4 patches at level 1, small everything."""
    target = TargetConfig(levels=2, base_grid=2, patch=2, colours=3, channels=8, sparsity=1.5, latent_dim=12)
    return RunConfig(target=target, stages=tiny_stages(target.levels),
                     eval=EvalConfig(every=100, n_samples=500, n_projections=64, n_fit=500, fit_steps=50),
                     baseline=BaselineConfig(stage=EndToEndStage(batch=128, hidden=64, sgda=SGDAConfig(
                         lr_g=1e-3, lr_d=1e-3, n_d=2, optimizer="adam", beta1=0.5, beta2=0.9))),
                     checkpoint_every=50)


def tiny_stages(levels: int = 2) -> list:
    """The tiny preset's stages: the default sequence, short and on small batches."""
    return ([WarmStartStage(n_samples=2048),
             FirstHiddenStage(steps=200, batch=256, lr_half_life=80),
             OutputLayerStage(level=1, steps=50, batch=256, beta_start=0.2, lr_floor=1.0,
                              sgda=SGDAConfig(lr_g=0.2, lr_d=0.2, n_d=2))]
            + [SuperResolutionStage(level=lv, steps=150, batch=256, lr_half_life=60) for lv in range(2, levels + 1)])


PRESETS: dict[str, Any] = {
    "default": RunConfig,
    "tiny": _tiny,
}
# How each preset derives its stage list from the target (used when the user gives no list).
STAGE_FACTORIES: dict[str, Any] = {"default": default_stages, "tiny": tiny_stages}


def resolve(preset: str = "default", config_file: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """preset -> (file) -> overrides -> validated RunConfig."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r} is not allowed: must be one of {', '.join(PRESETS)}")
    d = to_dict(PRESETS[preset]())
    explicit_stages = False
    if config_file is not None:
        path = Path(config_file)
        if not path.exists():
            raise ConfigError(f"--config {str(path)!r}: no such file")
        text = path.read_text()
        file_d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        explicit_stages = isinstance(file_d, dict) and "stages" in file_d
        if explicit_stages:  # a stage list in a file replaces the preset's whole list
            d["stages"] = file_d["stages"]
            file_d = {k: v for k, v in file_d.items() if k != "stages"}
        d = _merge(d, file_d, "")
    stage_ovs = [ov for ov in overrides if ov.strip().startswith("stages")]
    for ov in overrides:
        if ov not in stage_ovs:
            d = apply_override(d, ov)
    if not explicit_stages:  # the stage list follows the (overridden) target
        levels = _convert(d["target"]["levels"], int, "target.levels")
        d["stages"] = to_dict(STAGE_FACTORIES[preset](levels))
    for ov in stage_ovs:
        d = apply_stage_override(d, ov)
    return from_dict(RunConfig, d).validate()


def apply_stage_override(d: dict, assignment: str) -> dict:
    """``stages.N.key=value`` (as :func:`apply_override`), ``stages+=STAGE`` (append a stage given
    as a JSON table, or a list of them) or ``stages-=N`` (remove stage N; stages after it move up)."""
    head = assignment.split("=", 1)[0].strip()
    if head == "stages+":
        raw = assignment.split("=", 1)[1]
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigError(f"stages+= needs a JSON stage table such as "
                              f"'{{\"kind\": \"super_resolution\", \"level\": 4}}', got {raw!r} ({e.msg})") from None
        new = value if isinstance(value, list) else [value]
        new = [to_dict(stage_from_dict(st, f"stages+=[{i}]")) for i, st in enumerate(new)]
        d["stages"] = list(d["stages"]) + new
        return d
    if head == "stages-":
        raw = assignment.split("=", 1)[1].strip()
        n = len(d["stages"])
        if not raw.isdigit() or int(raw) >= n:
            raise ConfigError(f"stages-={raw!r} is not allowed: must be a stage index 0..{n - 1}")
        d["stages"] = [s for i, s in enumerate(d["stages"]) if i != int(raw)]
        return d
    return apply_override(d, assignment)


def _merge(base: dict, new: dict, key: str) -> dict:
    out = dict(base)
    for k, v in new.items():
        full = f"{key}.{k}" if key else k
        if k not in base:
            raise ConfigError(f"unknown key {full!r}; allowed keys here: {', '.join(base)}")
        out[k] = _merge(base[k], v, full) if isinstance(v, dict) and isinstance(base[k], dict) else v
    return out


def load_json(path: str | Path) -> RunConfig:
    return from_dict(RunConfig, json.loads(Path(path).read_text())).validate()
