"""The image-GAN run configuration (``ganlearn train-images``): a frozen dataclass built through
:mod:`ganlearn.config` like every other setting's."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Optional

from ganlearn.config import check, from_dict
from ganlearn.images import data as datamod

__all__ = ["DEFAULT_RESOLUTION", "ImageGANConfig", "make_config"]

DEFAULT_RESOLUTION = {"digits": 8}


@dataclass(frozen=True)
class ImageGANConfig:
    data: str = "fashion-mnist"            # see ganlearn.images.data (built-in names, cifar10:DIR, folder:DIR)
    resolution: int = 0                    # 0 = the dataset's own (8 for digits, 32 otherwise)
    channels: int = 0                      # 0 = the dataset's own; 1 = luminance, 3 = RGB
    limit: int = 0                         # use only the first `limit` images (0 = all)
    arch: Literal["dcgan", "fsr"] = "dcgan"
    width: int = 32                        # k: channels scale with it in every layer of G (and D unless d_width)
    d_width: int = 0                       # 0 = width
    z_dim: int = 64
    d_norm: Literal["sn", "bn", "none"] = "sn"
    g_norm: Literal["bn", "none"] = "bn"    # "none": biases set the firing rate (see ganlearn.images.nets)
    loss: Literal["ns", "hinge"] = "ns"    # non-saturating logistic (Goodfellow) or hinge
    steps: int = 3000                      # generator steps
    batch: int = 64                        # global batch (split over DDP ranks)
    n_dis: int = 1                         # D ascent steps per G step
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5                     # Adam betas as in DCGAN; optimizer="sgd" gives plain SGDA
    beta2: float = 0.999
    optimizer: Literal["adam", "sgd"] = "adam"
    ema_halflife_images: float = 10000.0   # EMA half-life in images, ramped up as in StyleGAN2-ADA
    ema_rampup: float = 0.05               # half-life <= rampup * images seen so far
    eval_every: int = 500                  # 0 = only at the end
    eval_n: int = 2000                     # samples per side for SWD / Frechet / PRDC
    eval_patches: int = 32                 # SWD patches per image (ProGAN: 128; 32 keeps an eval ~5 s on CPU)
    grid_every: int = 500
    ckpt_every: int = 500
    log_every: int = 50
    seed: int = 0
    device: str = "cpu"
    # Stop (DivergenceError) when G's parameter norm exceeds this factor times its start (checked
    # when losses are logged); null: NaN/inf only. Not part of a run's identity on resume.
    divergence_factor: Optional[float] = 100.0

    def validate(self) -> "ImageGANConfig":
        name = self.data.partition(":")[0]
        check(name in datamod.BUILTIN + datamod.USER, "data", self.data,
               f"one of {', '.join(datamod.BUILTIN)} or cifar10:DIR, folder:DIR")
        check(self.resolution == 0 or (self.resolution >= 8 and math.log2(self.resolution / 4).is_integer()),
               "resolution", self.resolution, "0 (the dataset's) or 4*2^n >= 8")
        check(self.channels in (0, 1, 3), "channels", self.channels, "0, 1 or 3")
        for key in ("width", "z_dim", "steps", "batch", "n_dis", "eval_n", "eval_patches"):
            check(getattr(self, key) >= 1, key, getattr(self, key), "an int >= 1")
        check(self.eval_n > 128, "eval_n", self.eval_n, "> 128 (the Frechet distance in randconv128-v1 needs more samples than its 128 features)")
        for key in ("limit", "d_width", "eval_every", "grid_every", "ckpt_every", "log_every"):
            check(getattr(self, key) >= 0, key, getattr(self, key), "an int >= 0")
        for key in ("lr_g", "lr_d", "ema_halflife_images"):
            check(getattr(self, key) > 0, key, getattr(self, key), "> 0")
        check(self.divergence_factor is None or self.divergence_factor > 1, "divergence_factor",
              self.divergence_factor, "null (off) or > 1")
        check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1/beta2", (self.beta1, self.beta2), "in [0, 1)")
        check(re.fullmatch(r"cpu|cuda(:[0-9]+)?", self.device) is not None, "device", self.device, "cpu, cuda or cuda:<index>")
        return self

    @property
    def res(self) -> int:
        return self.resolution or DEFAULT_RESOLUTION.get(self.data.partition(":")[0], 32)


def make_config(overrides: dict | None = None) -> ImageGANConfig:
    return from_dict(ImageGANConfig, overrides or {}).validate()
