"""Replica-batched staged FSR training: R runs of one configuration that differ only in their seeds
(the run seed, and the target's) trained as one computation.

The R learners are one replica net (:meth:`FSRNet.stack`, every parameter with a leading dimension
R), the R targets another, and the R training RNGs one :class:`~ganlearn.rng.Generators`: each
replica draws exactly the numbers its own run draws, in the same order. Every SGDA stage runs once
on the stacked tensors: the game value is the sum of the replicas' values, so each replica's
gradient is its own run's; Adam and SGD act elementwise; the per-replica pieces (the moment
scales, the Gauss-Newton damping and conjugate-gradient steps, the output layer's thresholds) are
kept per replica. The warm start (a one-off eigendecomposition and rotation per patch) runs replica
by replica, as does the evaluation. So replica r's trajectory is its separate run's up to float
round-off (``tests/fsr/test_batched.py``: float64, every parameter within 1e-9 after the tiny
preset's stages).

What it writes into each replica's run directory is what :func:`ganlearn.fsr.train.train` writes
(``config.json``, ``target_assumptions.json``, ``metrics.jsonl``, ``learner.safetensors``,
``summary.json``), with two differences: the game values (``d_loss``, ``g_loss``) are the sum over
replicas and are left out of the per-replica records, and ``wall_seconds`` is the unit's time. A
batched unit takes no mid-run checkpoints: interrupted, it starts again (a sweep resumes cell by
cell, and a finished cell is never re-run).

When it pays: where a step is bound by per-operation overhead (a GPU: the default super-resolution
step there is ~100% overhead, ``benchmarks/results/bench_plain_fsr_cuda/``; the tiny preset on a
CPU). On a CPU the default preset's step is arithmetic (~3% overhead, ``bench_plain_fsr.md``) and the
stacked tensors leave the cache, so R replicas cost more than R runs one after another
(``benchmarks/results/bench_replicas_fsr/``: 0.4-1.0x at R = 1-16); ``fsr-scaling`` batches its
seeds on a GPU only.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ganlearn.config import ConfigError, to_dict
from ganlearn.errors import DivergenceError, check_finite_and_bounded
from ganlearn.fsr.config import RunConfig
from ganlearn.fsr.metrics import evaluate, is_finite_module, sliced_w2_floor
from ganlearn.fsr.model import FSRNet
from ganlearn.fsr.stages import make_runner
from ganlearn.fsr.train import SUMMARY_KEYS, build, run_baseline
from ganlearn.io import RunLock, append_jsonl, atomic_write_text, save_tensors
from ganlearn.provenance import provenance
from ganlearn.rng import Generators, make_generator

__all__ = ["batch_key", "train_replicas"]


def batch_key(cfg: RunConfig) -> str | None:
    """Equal for configurations that can train as replicas of one batch (all but ``seed`` and
    ``target.seed`` equal); None for one that cannot (an ``end_to_end`` stage: its MLP
    discriminator has no replica dimension)."""
    d = to_dict(cfg)
    if any(st["kind"] == "end_to_end" for st in d["stages"]):
        return None
    d.pop("seed")
    d["target"].pop("seed", None)
    return json.dumps(d, sort_keys=True, default=str)


def _images(tnet: FSRNet):
    """The data callable of the stacked targets: (n, R, J_l, d) patches per level."""

    @torch.no_grad()
    def data(n: int, *, generator: Generators, upto: int | None = None) -> list[torch.Tensor]:
        return tnet(tnet.sample_latent(n, generator=generator), upto=upto)[0]

    return data


def train_replicas(cfgs: list[RunConfig], run_dirs: list, *, progress: bool = True) -> list[dict]:
    """Train the runs ``cfgs`` (one :func:`batch_key`) as replicas of one batch, each into its run
    directory; returns their summaries (as :func:`ganlearn.fsr.train.train` would). A replica that
    diverges stops the batch with :class:`DivergenceError` naming its run directory."""
    if not cfgs or len(cfgs) != len(run_dirs):
        raise ConfigError(f"train_replicas needs one run directory per config, got {len(cfgs)} and {len(run_dirs)}")
    keys = [batch_key(c) for c in cfgs]
    if keys[0] is None or len(set(keys)) != 1:
        raise ConfigError(
            "train_replicas: the configs must differ only in seed and target.seed and have no "
            "end_to_end stage; train the others with ganlearn.fsr.train.train"
        )
    dirs = [Path(d) for d in run_dirs]
    with contextlib.ExitStack() as locks:
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
            locks.enter_context(RunLock(d))
        return _train_replicas(cfgs, dirs, progress)


def _train_replicas(cfgs: list[RunConfig], dirs: list[Path], progress: bool) -> list[dict]:
    t0 = time.time()
    cfg, R = cfgs[0], len(cfgs)
    targets, learners, floors = [], [], []
    for c, d in zip(cfgs, dirs):
        atomic_write_text(d / "config.json", json.dumps({**to_dict(c), "ganlearn": provenance()}, indent=2))
        atomic_write_text(d / "metrics.jsonl", "")  # a batch starts from scratch (no mid-run checkpoints)
        target, learner = build(c)
        targets.append(target)
        learners.append(learner)
        floors.append(sliced_w2_floor(target, c.eval))
        atomic_write_text(
            d / "target_assumptions.json",
            json.dumps(
                target.assumption_report(generator=make_generator(c.eval.seed, "fsr.eval.assumptions")), indent=2
            ),
        )
    learner = FSRNet.stack(learners)
    tnet = FSRNet.stack([t.net for t in targets]).requires_grad_(False)
    data = _images(tnet)
    rngs = Generators([make_generator(c.seed, "fsr.train.staged") for c in cfgs])
    samples_seen, eval_seconds = [0] * R, [0.0] * R
    metrics: list[dict] = [{} for _ in range(R)]
    stages = cfg.stages
    assert stages is not None  # resolved in RunConfig.__post_init__
    total = sum(int(getattr(s, "steps", 1)) for s in stages)
    bar = tqdm(total=total, desc=f"staged x{R}", disable=not progress, dynamic_ncols=True)
    for si, spec in enumerate(stages):
        bar.set_postfix_str(spec.kind)
        if spec.kind == "warm_start":  # a one-off eigendecomposition per patch: replica by replica
            outs = []
            for r in range(R):
                lr = learner.replica(r)
                runner = make_runner(spec, lr, targets[r].images, rngs[r])
                outs.append(runner.step(0, rngs[r]))
                learner.set_replica(r, lr)
            steps, per_step = 1, runner.samples_per_step
        else:
            runner = make_runner(spec, learner, data, rngs)
            steps, per_step = runner.n_steps, runner.samples_per_step
        for t in range(steps):
            if spec.kind != "warm_start":
                out = runner.step(t, rngs)
                outs = [{k: v for k, v in out.items() if k not in ("d_loss", "g_loss")}] * R
            samples_seen = [s + per_step for s in samples_seen]
            bar.update(1)
            if (t + 1) % cfg.eval.every and t + 1 < steps:
                continue
            final = t + 1 == steps and si == len(stages) - 1
            for r in range(R):
                lr = learner.replica(r)
                where = f"{dirs[r]}: stage {si} ({spec.kind}) step {t + 1}"
                if not (is_finite_module(lr) and all(bool(torch.isfinite(v).all()) for v in outs[r].values())):
                    bar.close()
                    raise DivergenceError(
                        f"{where}: non-finite values (NaN/inf); the replica batch stopped. "
                        f"Try smaller step sizes for this stage (stages.{si}.sgda.lr_g / lr_d)."
                    )
                t_eval = time.time()
                m = evaluate(lr, targets[r], cfgs[r].eval, final=final)
                eval_seconds[r] += time.time() - t_eval
                check_finite_and_bounded(
                    "coupled_rel_error", m["coupled_rel_error"], 1.0, cfgs[r].divergence_factor, where
                )
                m["sliced_w2_floor_top"] = floors[r][f"sliced_w2_floor_level{targets[r].n_levels}"]
                if final:
                    m |= floors[r]
                metrics[r] = m
                append_jsonl(
                    dirs[r] / "metrics.jsonl",
                    {
                        "stage": si,
                        "kind": spec.kind,
                        "step": t + 1,
                        "samples_seen": samples_seen[r],
                        "wall_seconds": time.time() - t0,
                        "eval_seconds": eval_seconds[r],
                        "replicas": R,
                        **{k: float(v) for k, v in outs[r].items()},
                        **m,
                    },
                )
    bar.close()
    summaries = []
    for r, (c, d) in enumerate(zip(cfgs, dirs)):
        staged = metrics[r] | {
            "samples_seen": samples_seen[r],
            "wall_seconds": time.time() - t0,
            "eval_seconds": eval_seconds[r],
        }
        summary = {k: staged[k] for k in SUMMARY_KEYS} | {"final": staged, "replicas": R}
        lr = learner.replica(r)
        save_tensors(d / "learner.safetensors", lr.state_dict())
        if c.baseline.enabled:  # the end-to-end baseline: on its own, as in train
            summary["baseline"] = run_baseline(c, targets[r], d, staged["samples_seen"], floors[r], progress=progress)
        atomic_write_text(d / "summary.json", json.dumps(summary, indent=2))
        summaries.append(summary)
    return summaries
