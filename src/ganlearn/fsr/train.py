"""The training loop: one readable function that runs a list of stages, evaluates, checkpoints,
resumes exactly, and stops cleanly on divergence."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import TypedDict, cast

import torch
from tqdm.auto import tqdm

from ganlearn.config import to_dict
from ganlearn.errors import DivergenceError, check_finite_and_bounded
from ganlearn.fsr.config import RunConfig
from ganlearn.fsr.metrics import evaluate, is_finite_module, sliced_w2_floor
from ganlearn.fsr.model import FSRNet
from ganlearn.fsr.stages import make_runner
from ganlearn.fsr.target import FSRTarget, make_learner
from ganlearn.io import RunLock, append_jsonl, atomic_write_text, load_latest_checkpoint, save_checkpoint, save_tensors
from ganlearn.provenance import provenance
from ganlearn.rng import make_generator

__all__ = ["SUMMARY_KEYS", "Summary", "DivergenceError", "build", "run_baseline", "run_stages", "train"]

SUMMARY_KEYS = (
    "coupled_rel_error",
    "feature_cosine_min",
    "feature_cosine_mean",
    "sliced_w2_top",
    "sliced_w2_floor_top",
    "wall_seconds",
    "samples_seen",
)


def build(cfg: RunConfig) -> tuple[FSRTarget, FSRNet]:
    """Target (stream ``fsr.target`` of ``target.seed``, or of the run seed when unset) and learner
    (stream ``fsr.learner`` of the run seed)."""
    dtype = getattr(torch, cfg.dtype)
    target = FSRTarget(
        cfg.target, seed=cfg.seed if cfg.target.seed is None else cfg.target.seed, dtype=dtype, device=cfg.device
    )
    learner = make_learner(cfg.target, cfg.learner, seed=cfg.seed, dtype=dtype, device=cfg.device)
    return target, learner


def run_stages(
    stages: list,
    target: FSRTarget,
    learner: FSRNet,
    cfg: RunConfig,
    run_dir: Path,
    *,
    label: str,
    floor: dict,
    progress: bool = True,
) -> dict:
    """Run ``stages`` on ``learner`` in ``run_dir`` and return the final metrics.

    Resumes from the newest checkpoint in ``run_dir/checkpoints`` if there is one: learner,
    the current stage's discriminator and optimizer state, the training RNG, the stage index and
    the step within it are restored, so the result equals an uninterrupted run.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = make_generator(cfg.seed, f"fsr.train.{label}")  # data, latents, minibatches
    run = _StageRun(stages, target, learner, cfg, run_dir, label, floor, rng)
    total = sum(getattr(s, "steps", 1) for s in stages)
    done = sum(getattr(s, "steps", 1) for s in stages[: run.start_stage]) + run.start_step
    with tqdm(total=total, initial=done, desc=label, disable=not progress, dynamic_ncols=True) as bar:
        for si in range(run.start_stage, len(stages)):
            run.stage(si, bar)
    metrics = run.metrics
    if not metrics:  # resumed after the last stage had finished: evaluate once more
        metrics = evaluate(learner, target, cfg.eval, final=True) | floor
        metrics["sliced_w2_floor_top"] = floor[f"sliced_w2_floor_level{target.n_levels}"]
    metrics["samples_seen"] = run.samples_seen
    metrics["wall_seconds"] = run.wall()
    metrics["eval_seconds"] = run.eval_seconds
    return metrics


class _StageRun:
    """The state of :func:`run_stages` between steps: where it stands (restored from the newest
    checkpoint), the samples seen, the wall and evaluation time, the last metrics."""

    def __init__(self, stages, target, learner, cfg, run_dir, label, floor, rng):
        self.stages, self.target, self.learner, self.cfg = stages, target, learner, cfg
        self.run_dir, self.label, self.floor, self.rng = run_dir, label, floor, rng
        self.metrics_path = run_dir / "metrics.jsonl"
        self.data = lambda n, generator, upto=None: target.sample(n, generator=generator, upto=upto)[0]
        self.start_stage, self.start_step, self.samples_seen, self.wall_before = 0, 0, 0, 0.0
        self.eval_seconds = 0.0  # of the wall time, the part spent evaluating (the rest: training, checkpoints)
        self.runner_state, self.last_good, self.metrics = None, None, {}
        self._resume()
        self.t0 = time.time()

    def wall(self) -> float:
        return self.wall_before + time.time() - self.t0

    def _resume(self) -> None:
        found = load_latest_checkpoint(self.run_dir, device=self.cfg.device)  # a corrupt newest: the one before
        if found is None:
            return
        self.last_good, tensors, meta = found
        self.learner.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("learner.")})
        self.rng.set_state(tensors["rng"].cpu())
        self.start_stage, self.start_step = meta["stage"], meta["step"]
        self.samples_seen, self.wall_before = meta["samples_seen"], meta["wall_seconds"]
        self.eval_seconds = meta.get("eval_seconds", 0.0)
        self.runner_state = {k[7:]: v for k, v in tensors.items() if k.startswith("runner.")}
        if self.start_step >= getattr(self.stages[self.start_stage], "steps", 1):  # that stage had finished
            self.start_stage, self.start_step, self.runner_state = self.start_stage + 1, 0, None
        if self.metrics_path.exists():  # drop log lines written after the checkpoint (written again)
            keep = [
                ln
                for ln in self.metrics_path.read_text().splitlines()
                if json.loads(ln)["samples_seen"] <= self.samples_seen
            ]
            atomic_write_text(self.metrics_path, "".join(ln + "\n" for ln in keep))

    def stage(self, si: int, bar) -> None:
        spec, rng = self.stages[si], self.rng
        saved_rng = rng.get_state()
        runner = make_runner(spec, self.learner, self.data, rng)
        t_start = 0
        if self.runner_state is not None:  # mid-stage resume: restore the stage, then the RNG
            runner.load_state_dict(self.runner_state)
            rng.set_state(saved_rng)
            t_start, self.runner_state = self.start_step, None
        bar.set_postfix_str(spec.kind)
        for t in range(t_start, runner.n_steps):
            out = runner.step(t, rng)
            self.samples_seen += runner.samples_per_step
            bar.update(1)
            end_of_stage = t + 1 == runner.n_steps
            if (t + 1) % self.cfg.eval.every == 0 or end_of_stage:
                self._evaluate(si, spec, t, out, final=end_of_stage and si == len(self.stages) - 1)
            if (t + 1) % self.cfg.checkpoint_every == 0 or end_of_stage:
                self._checkpoint(si, spec, t, runner)

    def _evaluate(self, si: int, spec, t: int, out: dict, *, final: bool) -> None:
        """Evaluate, stop on a divergence (NaN/inf, or the coupled error beyond the config's
        ``divergence_factor``), and log the record."""
        learner, label, cfg, floor = self.learner, self.label, self.cfg, self.floor
        if not (is_finite_module(learner) and all(bool(torch.isfinite(v).all()) for v in out.values())):
            raise DivergenceError(
                f"{label}: non-finite values (NaN/inf) in stage {si} ({spec.kind}) at step {t + 1}; "
                f"training stopped. Last good checkpoint: {self.last_good or 'none'}. "
                f"Try smaller step sizes for this stage (stages.{si}.sgda.lr_g / lr_d)."
            )
        where = f"{label}: stage {si} ({spec.kind}) step {t + 1} (last good checkpoint: {self.last_good or 'none'})"
        # The blow-up test is on the function (the coupled error), not on the parameter norm: with a
        # learner wider than the target, the preconditioned super-resolution step moves V freely
        # along inputs that are exactly 0 (switched-off parent channels), which changes nothing
        # (measured: learner m = 32 for 16, seed 0, norm 140 -> 14360 in 200 steps while the run
        # went on to learn the target).
        t_eval = time.time()
        metrics = evaluate(learner, self.target, cfg.eval, final=final)
        self.eval_seconds += time.time() - t_eval
        # a random learner's coupled error is ~1; one far above is a blown-up learner
        check_finite_and_bounded("coupled_rel_error", metrics["coupled_rel_error"], 1.0, cfg.divergence_factor, where)
        metrics |= {"sliced_w2_floor_top": floor[f"sliced_w2_floor_level{self.target.n_levels}"]}
        if final:
            metrics |= floor
        self.metrics = metrics
        append_jsonl(
            self.metrics_path,
            {
                "stage": si,
                "kind": spec.kind,
                "step": t + 1,
                "samples_seen": self.samples_seen,
                "wall_seconds": self.wall(),
                "eval_seconds": self.eval_seconds,
                **{k: float(v) for k, v in out.items()},
                **metrics,
            },
        )

    def _checkpoint(self, si: int, spec, t: int, runner) -> None:
        tensors = {f"learner.{k}": v for k, v in self.learner.state_dict().items()}
        tensors |= {f"runner.{k}": v for k, v in runner.state_dict().items()}
        tensors["rng"] = self.rng.get_state()
        meta = {
            "stage": si,
            "kind": spec.kind,
            "step": t + 1,
            "samples_seen": self.samples_seen,
            "wall_seconds": self.wall(),
            "eval_seconds": self.eval_seconds,
            "label": self.label,
        }
        global_index = sum(getattr(s, "steps", 1) for s in self.stages[:si]) + t + 1
        self.last_good = save_checkpoint(self.run_dir, global_index, tensors, meta)


class Summary(TypedDict, total=False):
    """What an FSR run returns (and writes to ``summary.json``): the staged run's final numbers,
    its whole final evaluation (``final``) and, if enabled, the baseline's (``baseline``)."""

    coupled_rel_error: float
    feature_cosine_min: float
    feature_cosine_mean: float
    sliced_w2_top: float
    sliced_w2_floor_top: float
    wall_seconds: float
    samples_seen: int
    final: dict
    baseline: dict


def train(cfg: RunConfig, run_dir: str | Path, *, progress: bool = True) -> Summary:
    """Run (or resume) the configured staged algorithm and, if enabled, the end-to-end baseline
    on the same sample budget; write ``summary.json`` and return it. One process at a time per
    ``run_dir`` (a second one gets :class:`~ganlearn.io.RunDirBusy`)."""
    run_dir = Path(run_dir)
    with RunLock(run_dir):
        return _train(cfg, run_dir, progress=progress)


def _train(cfg: RunConfig, run_dir: Path, *, progress: bool) -> Summary:
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        atomic_write_text(cfg_path, json.dumps({**to_dict(cfg), "ganlearn": provenance()}, indent=2))
    target, learner = build(cfg)
    floor = sliced_w2_floor(target, cfg.eval)
    atomic_write_text(
        run_dir / "target_assumptions.json",
        json.dumps(target.assumption_report(generator=make_generator(cfg.eval.seed, "fsr.eval.assumptions")), indent=2),
    )
    assert cfg.stages is not None  # resolved in RunConfig.__post_init__
    staged = run_stages(cfg.stages, target, learner, cfg, run_dir, label="staged", floor=floor, progress=progress)
    summary = {k: staged[k] for k in SUMMARY_KEYS} | {"final": staged}
    save_tensors(run_dir / "learner.safetensors", learner.state_dict())
    if cfg.baseline.enabled:
        summary["baseline"] = run_baseline(cfg, target, run_dir, staged["samples_seen"], floor, progress=progress)
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    return cast(Summary, summary)


def run_baseline(
    cfg: RunConfig, target: FSRTarget, run_dir: Path, samples_seen: int, floor: dict, *, progress: bool = True
) -> dict:
    """The end-to-end baseline on the staged run's sample budget (at most ``baseline.max_steps``
    steps), in ``run_dir/baseline``; returns its summary entry."""
    b_learner = make_learner(cfg.target, cfg.learner, seed=cfg.seed, dtype=getattr(torch, cfg.dtype), device=cfg.device)
    spec = cfg.baseline.stage
    steps = min(cfg.baseline.max_steps, max(1, math.ceil(samples_seen / (spec.batch * spec.sgda.n_d))))
    spec = dataclasses.replace(spec, steps=steps)
    base = run_stages(
        [spec], target, b_learner, cfg, run_dir / "baseline", label="baseline", floor=floor, progress=progress
    )
    save_tensors(run_dir / "baseline" / "learner.safetensors", b_learner.state_dict())
    return {k: base[k] for k in SUMMARY_KEYS} | {"final": base}
