"""Learn a forward-super-resolution target of your own shape, stage by stage, and print every
level's coupled error (min over rotations U of E|G(z) - G*(U^T z)|^2 / E|G*|^2) after each stage.

    python examples/fsr_stage_by_stage.py [--levels 3] [--small]

--small: 2 levels and shorter stages (what the tests run).
"""

import argparse

import torch

from ganlearn import fsr

ap = argparse.ArgumentParser()
ap.add_argument("--levels", type=int, default=3)
ap.add_argument("--small", action="store_true", help="2 levels, short stages (what the tests run)")
a = ap.parse_args()

levels = 2 if a.small else a.levels
# 4 patches of 3x3 RGB pixels at level 1, doubling per side each level; 10 channels, 2 firing on average
cfg = fsr.TargetConfig(
    levels=levels, base_grid=2, patch=3, channels=10, sparsity=2.0, latent_dim=16, neighbourhood="parent"
)
target = fsr.FSRTarget(cfg, seed=0)
learner = fsr.make_learner(cfg, fsr.LearnerConfig(), seed=1)
g = torch.Generator().manual_seed(2)

# The default algorithm, shortened: warm start -> GAN_FirstHidden -> GAN_ForwardSuperResolution per level
stages = [
    fsr.WarmStartStage(n_samples=4096),
    fsr.FirstHiddenStage(steps=60 if a.small else 120, batch=2048, fake_batch=4096),
]
stages += [
    fsr.SuperResolutionStage(level=lv, steps=150 if a.small else 300, batch=512, lr_half_life=100)
    for lv in range(2, levels + 1)
]
print("before training:", fsr.level_errors(learner, target))
for stage in stages:
    samples = fsr.run_stage(stage, learner, target.images, g)
    print(f"after {stage.kind:<17} ({samples:>9,} real samples):", fsr.level_errors(learner, target))
