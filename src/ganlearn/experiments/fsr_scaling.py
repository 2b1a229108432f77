"""``fsr-scaling``: the staged forward-super-resolution algorithm's error against its sample
budget and against the learner's width (channels m_learner >= the target's m).

One cell = one ``ganlearn.fsr.train.train`` run of a preset (``default``: 3 levels, m = 16)
with every stage's real batch, its generated batch (``scale_fake``, default true) and the warm
start's samples multiplied by ``budget``, the learner's
channels set to ceil(``width`` * m) (at most the patch dimension: 48 for ``default``, 12 for ``tiny``),
``whiten_ridge`` for the super-resolution stages, the end-to-end
baseline off, and any further ``set`` overrides. Metrics come from the run's
summary: the coupled error min_U E|G(z) - G*(U^T z)|^2 / E|G*|^2 (an upper bound on W2^2 / E|G*|^2),
worst and mean output-feature cosine, sliced W2 at the top level, real samples consumed.
The budget scales the batches, not the steps: the stages' schedules (threshold decay, step-size
half-lives, resets) are counted in steps, and at 0.25x / 0.5x the steps the output layer was not
recovered (worst feature cosine -0.24 / 0.27, coupled error 1.34 / 1.37, default preset, seed 0),
so scaling steps measured truncated schedules rather than samples. The generated batches scale
too (``scale_fake``; the generator's samples cost no real samples, but their noise enters every
moment gap). Where the error stops falling (default preset, seed 0, scale_fake off): with the generated
batches fixed, 0.083 / 0.038 / 0.039 / 0.027 / 0.031 at 0.25x / 0.5x / 1x / 2x / 4x the real
batches; at 1x, 4x the generated batches gave 0.037 and 2x every stage's steps 0.039 -- neither
the real nor the generated sample noise nor the step count moves the floor of about 0.03, so it is
a bias of the staged estimator (level 1 at 0.006-0.010, doubled at each level above). A wider learner has more output
features than the target; the feature cosines then score the
target's features against the best-matching learned ones.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ganlearn.config import from_dict, setting, to_dict
from ganlearn.fsr.batched import batch_key as fsr_batch_key
from ganlearn.fsr.batched import train_replicas
from ganlearn.fsr.config import resolve
from ganlearn.fsr.memory import BASE_BYTES, budget_bytes, check_budget, predict_peak_bytes
from ganlearn.fsr.train import train
from ganlearn.plots import md_table, median, plt, save
from ganlearn.sweep import Experiment


@dataclass(frozen=True)
class ScalingCell:
    """One cell: the preset's run with every stage's batch (and sample count) x ``budget`` and a
    learner ``width`` x the target's channels; ``set``: further ``key=value`` overrides."""

    preset: str = "default"
    width: float = setting(1.0, gt=0, le=1000)
    budget: float = setting(1.0, gt=0, le=1000)
    whiten_ridge: Optional[float] = setting(None, ge=0)  # null: the stages' own
    set: list[str] = dataclasses.field(default_factory=list)
    scale_fake: bool = True  # scale the generated batches with the budget too
    seed: int = setting(0, ge=0)


def config(params: dict):
    """One cell's ``RunConfig``, without training (the sweep's ``check``)."""
    from_dict(ScalingCell, params)
    base = to_dict(resolve(params["preset"]))
    m = base["target"]["channels"]
    sets = [f"learner.channels={math.ceil(params['width'] * m)}", "baseline.enabled=false", f"seed={params['seed']}"]
    for i, st in enumerate(base["stages"]):
        if st["kind"] == "super_resolution" and params.get("whiten_ridge") is not None:
            sets.append(f"stages.{i}.whiten_ridge={params['whiten_ridge']}")
        if "batch" in st:
            sets.append(f"stages.{i}.batch={max(1, round(st['batch'] * params['budget']))}")
        if "fake_batch" in st and params.get("scale_fake", True):
            sets.append(f"stages.{i}.fake_batch={max(1, round(st['fake_batch'] * params['budget']))}")
        if "n_samples" in st:
            sets.append(f"stages.{i}.n_samples={max(2, round(st['n_samples'] * params['budget']))}")
    cfg = resolve(params["preset"], None, sets + list(params.get("set", [])))
    check_budget(cfg)  # a cell predicted above this machine's memory is refused before any runs
    return cfg, m


def _result(cfg, m: int, s: Mapping[str, Any]) -> dict:
    fin = s["final"]
    return {
        "learner_channels": cfg.learner.channels,
        "target_channels": m,
        "levels": cfg.target.levels,
        "wall_seconds": s["wall_seconds"],
        **{
            k: s[k]
            for k in (
                "coupled_rel_error",
                "feature_cosine_min",
                "feature_cosine_mean",
                "sliced_w2_top",
                "sliced_w2_floor_top",
                "samples_seen",
            )
        },
        **{
            f"coupled_rel_error_level{lv}": fin[f"coupled_rel_error_level{lv}"]
            for lv in range(1, cfg.target.levels + 1)
        },
    }


def run(params: dict) -> dict:
    cfg, m = config(params)
    with tempfile.TemporaryDirectory(prefix="ganlearn-fsr-cell-") as tmp:
        s = train(cfg, Path(tmp), progress=False)
    return _result(cfg, m, s)


def batch_key(params: dict):
    """Cells that differ only in their seed train as replicas of one batch (``fsr.batched``) on a
    GPU, where a step is per-operation overhead; never on the CPU, where the step is arithmetic and
    R replicas cost what R runs cost (``benchmarks/results/bench_replicas_fsr/``)."""
    cfg, _ = config(params)
    return None if cfg.device == "cpu" else fsr_batch_key(cfg)


def batch_limit(params: dict) -> int:
    """As many replicas as the memory budget holds (the stages' tensors grow with R; the evaluation
    runs replica by replica), at most 16."""
    cfg, _ = config(params)
    peak, _ = predict_peak_bytes(cfg)
    budget = budget_bytes(cfg)
    return max(1, min(16, int((budget - BASE_BYTES) // max(peak - BASE_BYTES, 1.0))))


def run_batch(params_list: list[dict]) -> list[dict]:
    """The cells as replicas of one batch (if one diverges, the sweep runs each on its own, so
    each gets its own outcome: a result, or the record of its divergence)."""
    built = [config(p) for p in params_list]
    with tempfile.TemporaryDirectory(prefix="ganlearn-fsr-batch-") as tmp:
        sums = train_replicas([c for c, _ in built], [Path(tmp) / f"r{i}" for i in range(len(built))], progress=False)
    return [_result(c, m, s) for (c, m), s in zip(built, sums)]


def fit_power_law(samples, errors) -> tuple[float, float]:
    """Least-squares fit of log error = log c - alpha log samples; returns (alpha, c)."""
    slope, intercept = np.polyfit(np.log(samples), np.log(errors), 1)
    return float(-slope), float(np.exp(intercept))


def _level_fits(out: Path, cells: list[dict], width: float) -> tuple[str, list]:
    """Per-level coupled error against real samples (medians over seeds) on log-log axes, with
    the fitted error ~ c * samples^-alpha per level; returns (figure markdown, table rows)."""
    cs = [c for c in cells if c["params"]["width"] == width and "levels" in c["result"]]
    if not cs:
        return "", []
    L = cs[0]["result"]["levels"]
    budgets = sorted({c["params"]["budget"] for c in cs})
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    rows = []
    for lv in range(1, L + 1):
        xs = [median([c["result"]["samples_seen"] for c in cs if c["params"]["budget"] == b]) for b in budgets]
        ys = [
            median([c["result"][f"coupled_rel_error_level{lv}"] for c in cs if c["params"]["budget"] == b])
            for b in budgets
        ]
        line = ax.plot(xs, ys, "o", label=f"level {lv}")[0]
        if len(xs) >= 2:
            alpha, c0 = fit_power_law(xs, ys)
            grid = np.geomspace(min(xs), max(xs), 50)
            ax.plot(grid, c0 * grid**-alpha, "-", color=line.get_color(), alpha=0.6)
            # The last two budgets' local slope: near 0 where the error has stopped falling.
            tail = fit_power_law(xs[-2:], ys[-2:])[0]
            rows.append([lv, f"{alpha:.2f}", f"{tail:.2f}"] + [f"{y:.4f}" for y in ys])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("real samples")
    ax.set_ylabel("coupled error of the level")
    ax.set_title(f"width {width:g}x m: error ~ samples^-alpha")
    ax.legend(fontsize=7)
    table = md_table(["level", "alpha (all budgets)", "alpha (last two)"] + [f"budget {b:g}" for b in budgets], rows)
    return (
        f"![per-level error against samples]({save(fig, out / f'fsr_scaling_levels_w{width:g}.png')})\n\n{table}",
        rows,
    )


def report(out: Path, cells: list[dict], spec: dict) -> str:
    widths = sorted({c["params"]["width"] for c in cells})
    budgets = sorted({c["params"]["budget"] for c in cells})
    keys = [
        ("coupled_rel_error", "coupled error (≥ W2²/E|G*|²)"),
        ("feature_cosine_min", "worst feature cosine"),
        ("sliced_w2_top", "sliced W2, top level"),
    ]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.8))
    rows = []
    for w in widths:
        xs: list = []
        ys: dict[str, list] = {k: [] for k, _ in keys}
        for b in budgets:
            cs = [c for c in cells if c["params"]["width"] == w and c["params"]["budget"] == b]
            if not cs:
                continue
            xs.append(median([c["result"]["samples_seen"] for c in cs]))
            for k, _ in keys:
                ys[k].append(median([c["result"][k] for c in cs]))
            r = cs[0]["result"]
            rows.append(
                [w, r["learner_channels"], b, xs[-1], len(cs)]
                + [ys[k][-1] for k, _ in keys]
                + [max(c["result"]["coupled_rel_error"] for c in cs)]
            )
        for ax, (k, t) in zip(axes, keys):
            ax.plot(xs, ys[k], "o-", label=f"width {w:g}×m")
            ax.set_xscale("log")
            ax.set_title(t)
            ax.set_xlabel("real samples (median)")
            if k != "feature_cosine_min":
                ax.set_yscale("log")
    floor = median([c["result"]["sliced_w2_floor_top"] for c in cells])
    axes[2].axhline(floor, color="gray", ls=":", label="floor (target vs target)")
    for ax in axes:
        ax.legend(fontsize=7)
    level_parts = [_level_fits(out, cells, w)[0] for w in widths]
    return "\n".join(
        [
            f"![FSR error against samples and width]({save(fig, out / 'fsr_scaling.png')})",
            "",
            "Medians over seeds (the last column is the worst seed):",
            "",
            md_table(
                ["width", "learner m", "budget", "real samples", "seeds"]
                + [t for _, t in keys]
                + ["worst coupled error"],
                rows,
            ),
            "",
            "## Per level: error against samples, fitted error ∝ samples^-α",
            "",
        ]
        + [p for p in level_parts if p]
        + [""]
    )


EXPERIMENT = Experiment(
    name="fsr-scaling",
    doc=(
        "Forward super-resolution (Allen-Zhu & Li): the staged algorithm on the `default` preset target, "
        "error against the sample budget (every stage's batch x budget) and the learner's width."
    ),
    # The default preset, not tiny: tiny's stages are short (coupled error 0.18 at 1x, seed 0), a
    # preset for tests, not for measuring scaling. whiten_ridge null: the stages' default (1e-4),
    # safe for a wider learner because the warm start switches off its channels that decode nothing.
    base={"preset": "default", "whiten_ridge": None, "set": [], "scale_fake": True},
    grid={"width": [1.0, 1.5], "budget": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]},
    seeds=1,
    run=run,
    params=ScalingCell,
    report=report,
    check=config,
    run_batch=run_batch,
    batch_key=batch_key,
    batch_limit=batch_limit,
)
