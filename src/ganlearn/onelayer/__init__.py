"""One-layer generators phi(W* x), x ~ N(0, I_d) (Kontonis, Liu & Tzamos), learned by SGDA against
a discriminator built on truncated statistics, as a Python API.

The law of phi(W x) is fixed by Sigma = W W^T; the learner's error is |Sigma - Sigma*| / |Sigma*|
and the TV distance is bounded above by the Gaussian pushforward bound ``gaussian_tv_upper``.
``train(OneLayerConfig(d=8))`` is one run; ``train_batched([cfg, ...])`` trains R runs of one shape
as one batched computation (each equal to its separate run).

Example::

    from ganlearn.onelayer import OneLayerConfig, train
    res = train(OneLayerConfig(d=8, activation="relu", steps=2000, seed=0))
    print(res["sigma_rel_error"], res["tv_upper"], res["samples"])
"""

from ganlearn.onelayer.batched import train_batched
from ganlearn.onelayer.config import OneLayerConfig
from ganlearn.onelayer.metrics import classifier_tv_lower, gaussian_tv_upper, sigma_rel_error
from ganlearn.onelayer.model import activation
from ganlearn.onelayer.train import Result, run, train, write_report

Config = OneLayerConfig

__all__ = [
    "Config",
    "OneLayerConfig",
    "Result",
    "train",
    "train_batched",
    "run",
    "write_report",
    "activation",
    "sigma_rel_error",
    "gaussian_tv_upper",
    "classifier_tv_lower",
]
