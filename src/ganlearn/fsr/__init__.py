"""Forward super-resolution (Allen-Zhu & Li, ICLR 2023) as a Python API: the target distributions,
the learner, the staged learning algorithm and its error against the ground truth.

The model (paper §2): level l has d_l patches; a patch's code S_{l,j} in R^m is sparse and its
image patch is linear in it, X_{l,j} = W_{l,j} S_{l,j} (W column-orthonormal), with

    S_1 = ReLU(V_1 z - b_1),   S_{l,j} = ReLU(V_{l,j} S_{l-1, P(j)} - b_{l,j}),   z ~ N(0, I).

The algorithm (paper §3): a warm start of every W_l from truncated patch covariances, then
GAN_FirstHidden (V_1, b_1) and GAN_ForwardSuperResolution (V_l, b_l, level by level), each an
SGDA game against its own discriminator. The guarantee is up to a rotation U of the latent:
``coupled_rel_error`` = min_U E|G(z) - G*(U^T z)|^2 / E|G*|^2, an upper bound on W2^2 / E|G*|^2.

Stage by stage, with the error of every level after each stage (seconds on 2 CPU cores)::

    from ganlearn import fsr
    from ganlearn.rng import make_generator

    cfg = fsr.TargetConfig(levels=2, base_grid=2, patch=2, channels=8, sparsity=1.5, latent_dim=12)
    target = fsr.FSRTarget(cfg, seed=0)
    learner = fsr.make_learner(cfg, fsr.LearnerConfig(), seed=0)
    g = make_generator(0, "my.training")  # a named stream: any torch.Generator works
    for stage in fsr.tiny_stages(cfg.levels):
        fsr.run_stage(stage, learner, target.images, g)
        print(stage.kind, fsr.level_errors(learner, target))

``fsr.train(fsr.resolve("default"), "runs/x")`` is the whole resumable run that ``ganlearn run``
makes (checkpoints, metrics.jsonl, summary, report); ``fsr.train_replicas([cfg_seed0, cfg_seed1, ...],
[dir0, dir1, ...])`` trains runs that differ only in their seeds as one replica-batched computation
(worth it on a GPU; see :mod:`ganlearn.fsr.batched`). Everything not listed in ``__all__`` is
internal and may change.
"""

from __future__ import annotations

from ganlearn.fsr.batched import train_replicas
from ganlearn.fsr.config import EvalConfig, LearnerConfig, RunConfig, TargetConfig, default_stages, resolve, tiny_stages
from ganlearn.fsr.metrics import evaluate, sliced_w2_floor
from ganlearn.fsr.model import FSRNet
from ganlearn.fsr.stages import (
    EndToEndStage,
    FirstHiddenStage,
    OutputLayerStage,
    SuperResolutionStage,
    WarmStartStage,
    make_runner,
    run_stage,
    run_steps,
)
from ganlearn.fsr.target import FSRTarget, make_learner
from ganlearn.fsr.train import Summary, train

__all__ = [
    "TargetConfig",
    "LearnerConfig",
    "EvalConfig",
    "RunConfig",
    "resolve",
    "default_stages",
    "tiny_stages",
    "FSRTarget",
    "FSRNet",
    "make_learner",
    "WarmStartStage",
    "OutputLayerStage",
    "FirstHiddenStage",
    "SuperResolutionStage",
    "EndToEndStage",
    "make_runner",
    "run_stage",
    "run_steps",
    "evaluate",
    "sliced_w2_floor",
    "level_errors",
    "Config",
    "Summary",
    "train",
    "train_replicas",
    "train_batched",
]

Config = RunConfig
train_batched = train_replicas


def level_errors(learner: FSRNet, target: FSRTarget, cfg: EvalConfig = EvalConfig(fit_steps=0)) -> dict:
    """The coupled error, all levels together (``"all"``) and per level (1, 2, ...), of ``learner``
    against ``target``, rounded to 4 digits: a deterministic function of the two networks (see
    :func:`evaluate`; ``fit_steps=0``: the Procrustes rotation U, as in-run evaluations use)."""
    m = evaluate(learner, target, cfg, final=False)
    return {"all": round(m["coupled_rel_error"], 4)} | {
        lv: round(m[f"coupled_rel_error_level{lv}"], 4) for lv in range(1, target.n_levels + 1)
    }
