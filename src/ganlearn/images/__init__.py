"""Image GANs on real images (``ganlearn run images``): DCGAN-k or the multi-resolution FSR-shaped
generator, trained by SGDA (Adam by default) with an EMA generator, scored by SWD, Frechet distance
and PRDC; the FSR paper's probes of any image generator (:mod:`ganlearn.images.probe`).

Example::

    from ganlearn import images
    cfg = images.Config(data="digits", width=8, steps=200, eval_every=0)
    print(images.train(cfg, "runs/digits-k8", progress=False)["swd_avg"])
"""

from ganlearn.images.batched import train_replicas
from ganlearn.images.config import ImageGANConfig, make_config
from ganlearn.images.train import Result, load_generator, sample, train, write_report

Config = ImageGANConfig
train_batched = train_replicas

__all__ = [
    "Config",
    "ImageGANConfig",
    "Result",
    "make_config",
    "train",
    "train_batched",
    "train_replicas",
    "write_report",
    "load_generator",
    "sample",
]
