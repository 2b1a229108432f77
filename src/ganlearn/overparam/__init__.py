"""Overparameterized GANs (Balaji et al., ICLR 2021) as a Python API: a one-hidden-layer generator
G(z) = V relu(W z) on n fixed latents against a linear (or random-feature) discriminator, trained
by gradient descent-ascent with the step size of the linear-time-varying stability rule.

``train(OverparamConfig(k=...))`` returns the residual |mean psi(G(z)) - mean psi(x)| per step, the
spectrum of J J^T at the start and end, the predicted and fitted linear rates and whether it
converged; ``train_batched([cfg, ...])`` trains R runs (seeds, widths, step sizes) as one batched
computation, each equal to its separate run.

Example::

    from ganlearn.overparam import OverparamConfig, train
    for k in (5, 50, 500):
        out = train(OverparamConfig(m=10, k=k, steps=2000))
        print(k, out["success"], out["rate_fitted"], out["rate_predicted"])
"""

from ganlearn.overparam.batched import batch_key, train_batched
from ganlearn.overparam.config import OverparamConfig
from ganlearn.overparam.metrics import spectrum
from ganlearn.overparam.model import OneHiddenGenerator, Problem
from ganlearn.overparam.train import Result, run, train, write_report

Config = OverparamConfig

__all__ = [
    "Config",
    "OverparamConfig",
    "Result",
    "Problem",
    "OneHiddenGenerator",
    "train",
    "train_batched",
    "run",
    "write_report",
    "batch_key",
    "spectrum",
]
