"""Predicted peak memory of an FSR run, from its configuration alone (no tensor is allocated).

The peak is the largest of the run's phases, each the sum of the tensors alive at its worst
moment, plus the interpreter and PyTorch themselves (``BASE_BYTES``). The phases and what
drives them (n = samples, J_l = patches of level l, d = patch dimension, m = channels, P =
parents per patch):

* ``target``: calibrating the target's biases, codes of two adjacent levels for
  ``n_calibration`` draws in float32, plus one float64 block of ``CALIBRATION_CHUNK`` elements
  (pre-activation, its sorted copy for the quantile, temporaries);
* ``target_assumptions``: the target's sparsity / co-activation report on 20000 draws, one level
  at a time;
* ``warm_start``: ``n_samples`` images of every level, float64 copies for the covariances and
  the (n, J, m) rotation iterates;
* ``super_resolution`` (per level): ``init_samples`` images up to the level and the
  (n, J_l, 1 + P m) whitened parent features;
* ``first_hidden``, ``output_layer``: a level-1 (or level-l) batch of patches and codes;
* ``evaluation``: float64 copies, ``n_samples`` draws of every level from both networks, the
  rotation fit's graph on ``n_fit`` draws, the flattened top-level images for sliced W2;
* ``baseline``: the end-to-end MLP discriminator and a batch through the gradient penalty.

The multipliers (how many copies of a tensor are alive at once) were measured against peak RSS on
the shapes of ``benchmarks/bench_memory.py`` and err on the high side: the prediction is meant
to be an upper bound within about 1.5x.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable, NamedTuple

from ganlearn.fsr.config import (
    EndToEndStage,
    FirstHiddenStage,
    OutputLayerStage,
    RunConfig,
    SuperResolutionStage,
    WarmStartStage,
)
from ganlearn.fsr.geometry import NEIGHBOURHOODS

__all__ = [
    "BASE_BYTES",
    "N_ASSUMPTIONS",
    "FALLBACK_BUDGET_BYTES",
    "Budget",
    "predict_peak_bytes",
    "available_bytes",
    "total_bytes",
    "memory_budget",
    "budget_bytes",
    "drivers",
    "check_budget",
    "format_prediction",
]

BASE_BYTES = 0.55e9  # python + torch + numpy + scipy + POT + matplotlib, measured RSS after import
N_CALIBRATION_TARGET, N_CALIBRATION_LEARNER = 20000, 5000
N_ASSUMPTIONS = 20000  # draws of FSRTarget.assumption_report
FALLBACK_BUDGET_BYTES = 8e9  # when no memory size can be read: enough for the presets, refuses the huge


def _shape(cfg: RunConfig):
    t = cfg.target
    J = [(t.base_grid * 2 ** (lv - 1)) ** 2 for lv in range(1, t.levels + 1)]
    d = t.colours * t.patch**2
    m = max(t.channels, cfg.learner.channels or t.channels)
    P = len(NEIGHBOURHOODS[t.neighbourhood])
    return J, d, m, P


def predict_peak_bytes(cfg: RunConfig) -> tuple[float, dict[str, float]]:
    """(predicted peak bytes, bytes per phase without the base). See the module docstring."""
    from ganlearn.fsr.model import CALIBRATION_CHUNK

    J, d, m, P = _shape(cfg)
    L = len(J)
    f = 4 if cfg.dtype == "float32" else 8
    phases: dict[str, float] = {}

    def images(n, upto, bytes_per=f):  # patches and codes of levels 1..upto, with sampling temporaries
        return n * sum(J[:upto]) * (d + 3 * m) * bytes_per

    pairs = max(J[i] + J[i - 1] for i in range(1, L)) if L > 1 else J[0]
    chunk = min(CALIBRATION_CHUNK, N_CALIBRATION_TARGET * max(J) * m)
    phases["target"] = N_CALIBRATION_TARGET * pairs * m * 4 + 6 * chunk * 8
    # the target's Assumption 2.2 report: codes of one level and its parent (float32), the float64
    # firing indicators and one product of them at a time (metrics.sparsity.coactivation_stats)
    phases["target_assumptions"] = N_ASSUMPTIONS * (max(J) * m * (4 + 8 + 8 + 1) + pairs * m * 4)
    assert cfg.stages is not None  # resolved in RunConfig.__post_init__
    for i, st in enumerate(cfg.stages):
        if isinstance(st, WarmStartStage):
            # every level's images, float64 copies of the top level's patches (covariance; pooled
            # when W is shared) and the (n, J, m) rotation iterates
            b = images(st.n_samples, L) + 3 * st.n_samples * max(J) * d * 8 + 4 * st.n_samples * max(J) * m * 8
        elif isinstance(st, SuperResolutionStage):
            n = st.init_samples
            q = 1 + P * m
            b = images(n, st.level) + 4 * n * J[st.level - 1] * q * f
        elif isinstance(st, FirstHiddenStage):
            b = images(st.batch, 1) + images(st.fake_batch, 1) + 4 * st.fake_batch * J[0] * m * f
        elif isinstance(st, OutputLayerStage):
            upto = st.level or L
            b = 3 * images(st.batch, upto)
        elif isinstance(st, EndToEndStage):
            b = 0.0
        else:
            continue
        phases[f"stages.{i}.{st.kind}"] = float(b)
    ev = cfg.eval
    phases["evaluation"] = (
        4 * images(ev.n_samples, L, 8) + 3 * images(ev.n_fit, L, 8) + 4 * ev.n_samples * J[-1] * d * 8
    )
    if cfg.baseline.enabled:
        st = cfg.baseline.stage
        in_dim = sum(J) * d
        phases["baseline"] = 4 * st.hidden * in_dim * 4 + 8 * images(st.batch, L) + images(ev.n_samples, L, 8)
    # latents z (n, m0): target calibration (float64), the generated batch of GAN_FirstHidden,
    # the evaluation's draws (float64 copies)
    m0 = max(cfg.target.latent_dim, cfg.learner.latent_dim or cfg.target.latent_dim)
    phases["target"] += N_CALIBRATION_TARGET * m0 * 8
    phases["evaluation"] += 3 * (ev.n_samples + ev.n_fit) * m0 * 8
    assert cfg.stages is not None  # resolved in RunConfig.__post_init__
    for i, st in enumerate(cfg.stages):
        if isinstance(st, FirstHiddenStage):
            phases[f"stages.{i}.{st.kind}"] += 3 * st.fake_batch * m0 * f
    # parameters, resident throughout: the target (built in float64), the learner with its
    # gradient and two Adam moments, and the evaluation's float64 copies of both
    n_params = sum(
        J[lv] * m * ((m0 if lv == 0 else P * m) + 1) + (1 if cfg.target.shared_output else J[lv]) * d * m
        for lv in range(L)
    )
    resident = n_params * (8 + 4 * f + 2 * 8)
    peak = BASE_BYTES + resident + max(phases.values())
    return peak, phases


def available_bytes() -> float | None:
    """Memory available to a new process now (Linux: MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def total_bytes() -> float | None:
    """The machine's physical memory (sysconf), or None if unknown."""
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


class Budget(NamedTuple):
    bytes: float
    source: str  # what the budget is: the setting, or which share of which memory


def memory_budget(
    cfg: RunConfig, available: Callable[[], float | None] | None = None, total: Callable[[], float | None] | None = None
) -> Budget:
    """The run's memory budget and where it comes from: ``memory_budget_gb`` if set, else 75% of the
    memory available now. When the available memory cannot be read, the fall-back is stated with a
    warning: 75% of the machine's physical memory (an upper bound on what is available, so the check
    can only be more lenient), or, when that is unknown too, ``FALLBACK_BUDGET_BYTES``.
    ``available``, ``total``: the readers (default :func:`available_bytes`, :func:`total_bytes`)."""
    if cfg.memory_budget_gb is not None:
        return Budget(cfg.memory_budget_gb * 1e9, "memory_budget_gb")
    avail = (available or available_bytes)()
    if avail is not None:
        return Budget(0.75 * avail, "75% of the available memory")
    tot = (total or total_bytes)()
    budget = (
        Budget(0.75 * tot, "75% of the physical memory (the available memory could not be read)")
        if tot is not None
        else Budget(
            FALLBACK_BUDGET_BYTES,
            f"{FALLBACK_BUDGET_BYTES / 1e9:.0f} GB (neither the available nor the physical memory could be read)",
        )
    )
    warnings.warn(
        f"the memory budget is {budget.bytes / 1e9:.1f} GB, {budget.source}; set memory_budget_gb to choose it",
        RuntimeWarning,
        stacklevel=2,
    )
    return budget


def budget_bytes(cfg: RunConfig) -> float:
    """The run's memory budget in bytes (:func:`memory_budget`)."""
    return memory_budget(cfg).bytes


def drivers(cfg: RunConfig, phase: str) -> str:
    """The configuration fields that drive a phase's memory, for the refusal message."""
    t = cfg.target
    geo = (
        f"target.levels={t.levels}, target.base_grid={t.base_grid} (top level {t.base_grid * 2 ** (t.levels - 1)}^2 "
        f"patches), target.patch={t.patch}, target.colours={t.colours}, target.channels={t.channels}, "
        f"target.latent_dim={t.latent_dim}"
    )
    if phase.startswith("stages."):
        idx = phase.split(".")[1]
        assert cfg.stages is not None  # resolved in RunConfig.__post_init__
        st = cfg.stages[int(idx)]
        fields = [f"stages.{idx}.{k}={getattr(st, k)}" for k in ("batch", "fake_batch", "n_samples") if hasattr(st, k)]
        if isinstance(st, SuperResolutionStage):
            fields.append(f"target.neighbourhood={t.neighbourhood!r}")
        return ", ".join(fields) + "; " + geo
    if phase == "evaluation":
        return f"eval.n_samples={cfg.eval.n_samples}, eval.n_fit={cfg.eval.n_fit}; " + geo
    if phase == "baseline":
        return (
            f"baseline.stage.hidden={cfg.baseline.stage.hidden}, baseline.stage.batch={cfg.baseline.stage.batch}; "
            + geo
        )
    return geo


def check_budget(cfg: RunConfig) -> tuple[float, dict[str, float]]:
    """Raise ConfigError if the predicted peak exceeds the budget; return the prediction."""
    from ganlearn.config import ConfigError

    peak, phases = predict_peak_bytes(cfg)
    budget, source = memory_budget(cfg)
    if peak > budget:
        worst = max(phases, key=lambda k: phases[k])
        raise ConfigError(
            f"predicted peak memory {peak / 1e9:.1f} GB exceeds the budget of {budget / 1e9:.1f} GB "
            f"({source}); "
            f"the largest phase is {worst} ({phases[worst] / 1e9:.1f} GB), driven by {drivers(cfg, worst)}. "
            f"Lower those, or raise memory_budget_gb"
        )
    return peak, phases


def format_prediction(peak: float, phases: dict[str, float], budget: float | None) -> str:
    worst = sorted(phases.items(), key=lambda kv: -kv[1])[:3]
    parts = ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in worst)
    b = f"; budget {budget / 1e9:.1f} GB" if budget is not None else ""
    return f"predicted peak memory: {peak / 1e9:.2f} GB (largest phases: {parts}; base {BASE_BYTES / 1e9:.2f} GB{b})"
