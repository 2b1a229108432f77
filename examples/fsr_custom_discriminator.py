"""Plug your own discriminator into GAN_FirstHidden: a stage is any object with ``n_steps``,
``samples_per_step`` and ``step(t, generator)``, so a script can define one and run it with
``fsr.run_steps``. Here D is a small MLP on the decoded level-1 codes (W_1^T X_1 for real images,
ReLU(V_1 z - b_1) for generated ones), trained against V_1, b_1 by SGDA with the non-saturating
GAN loss; the built-in moment discriminator (Gauss-Newton) is run beside it for comparison.

    python examples/fsr_custom_discriminator.py [--small]

--small: shorter stages (what the tests run).
"""

import argparse
import copy

import torch
import torch.nn.functional as F

from ganlearn import fsr
from ganlearn.sgda import SGDA, SGDAConfig

ap = argparse.ArgumentParser()
ap.add_argument("--small", action="store_true")
a = ap.parse_args()


class MLPFirstHidden:
    """GAN_FirstHidden with an MLP discriminator on the level-1 codes of all patches."""

    def __init__(self, learner, data, steps, batch=512):
        self.learner, self.data, self.n_steps, self.batch = learner, data, steps, batch
        self.samples_per_step = 2 * batch  # one real batch per D and per G evaluation
        width = learner.V[0].shape[0] * learner.V[0].shape[1]  # patches x channels
        self.D = torch.nn.Sequential(torch.nn.Linear(width, 128), torch.nn.LeakyReLU(0.2), torch.nn.Linear(128, 1))
        self.sgda = SGDA(
            [learner.V[0], learner.b[0]],
            list(self.D.parameters()),
            SGDAConfig(lr_g=2e-3, lr_d=2e-3, n_d=2, optimizer="adam", beta1=0.5, beta2=0.9),
        )

    def step(self, t, g):
        L = self.learner

        def losses(gen):
            with torch.no_grad():
                real = L.encode(1, self.data(self.batch, generator=gen, upto=1)[0]).flatten(1)
            fake = L.hidden(1, L.sample_latent(self.batch, generator=gen)).flatten(1)
            d_real, d_fake = self.D(real), self.D(fake)
            d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            return d_loss, F.softplus(-d_fake).mean()  # non-saturating G loss

        return self.sgda.step(losses, g)


cfg = fsr.TargetConfig(levels=2, base_grid=2, patch=2, channels=8, sparsity=1.5, latent_dim=12)
target = fsr.FSRTarget(cfg, seed=0)
learner = fsr.make_learner(cfg, fsr.LearnerConfig(), seed=1)
g = torch.Generator().manual_seed(0)
fsr.run_stage(fsr.WarmStartStage(n_samples=4096), learner, target.images, g)  # W_1, W_2 from the data
start = copy.deepcopy(learner)
print("level-1 error after the warm start:", fsr.level_errors(learner, target)[1])

fsr.run_steps(MLPFirstHidden(learner, target.images, steps=300 if a.small else 1500), g)
print("level-1 error, MLP discriminator:  ", fsr.level_errors(learner, target)[1])

moments = fsr.FirstHiddenStage(steps=40 if a.small else 100, batch=2048, fake_batch=4096)
fsr.run_stage(moments, start, target.images, torch.Generator().manual_seed(0))
print("level-1 error, moment discriminator:", fsr.level_errors(start, target)[1])
