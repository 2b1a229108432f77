"""The image-GAN run configuration (``ganlearn train-images``): a frozen dataclass built through
:mod:`ganlearn.config` like every other setting's."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Optional

from ganlearn.config import Settings, check, check_fields, from_dict, setting
from ganlearn.images import data as datamod

__all__ = ["DEFAULT_RESOLUTION", "ImageGANConfig", "make_config"]

DEFAULT_RESOLUTION = {"digits": 8}


@dataclass(frozen=True)
class ImageGANConfig(Settings):
    # see ganlearn.images.data (built-in names, cifar10:DIR, folder:DIR)
    data: str = setting("fashion-mnist", allowed=f"one of {', '.join(datamod.BUILTIN)} or cifar10:DIR, folder:DIR")
    # 0 = the dataset's own (8 for digits, 32 otherwise)
    resolution: int = setting(0, ge=0, allowed="0 (the dataset's) or 4*2^n >= 8")
    channels: Literal[0, 1, 3] = 0  # 0 = the dataset's own; 1 = luminance, 3 = RGB
    limit: int = setting(0, ge=0)  # use only the first `limit` images (0 = all)
    arch: Literal["dcgan", "fsr"] = "dcgan"
    width: int = setting(32, ge=1)  # k: channels scale with it in every layer of G (and D unless d_width)
    d_width: int = setting(0, ge=0)  # 0 = width
    z_dim: int = setting(64, ge=1)
    d_norm: Literal["sn", "bn", "none"] = "sn"
    g_norm: Literal["bn", "none"] = "bn"  # "none": biases set the firing rate (see ganlearn.images.model)
    loss: Literal["ns", "hinge"] = "ns"  # non-saturating logistic (Goodfellow) or hinge
    steps: int = setting(3000, ge=1)  # generator steps
    batch: int = setting(64, ge=1)  # global batch (split over DDP ranks)
    n_dis: int = setting(1, ge=1)  # D ascent steps per G step
    lr_g: float = setting(2e-4, gt=0)
    lr_d: float = setting(2e-4, gt=0)
    beta1: float = setting(0.5, ge=0, lt=1)  # Adam betas as in DCGAN; optimizer="sgd" gives plain SGDA
    beta2: float = setting(0.999, ge=0, lt=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    # EMA half-life in images, ramped up as in StyleGAN2-ADA
    ema_halflife_images: float = setting(10000.0, gt=0)
    ema_rampup: float = 0.05  # half-life <= rampup * images seen so far
    eval_every: int = setting(500, ge=0)  # 0 = only at the end
    # samples per side for SWD / Frechet / PRDC; the Frechet distance in randconv128-v1 needs more
    # samples than its 128 features
    eval_n: int = setting(2000, gt=128)
    # SWD patches per image (ProGAN: 128; 32 keeps an eval ~5 s on CPU)
    eval_patches: int = setting(32, ge=1)
    grid_every: int = setting(500, ge=0)
    ckpt_every: int = setting(500, ge=0)
    log_every: int = setting(50, ge=0)
    seed: int = 0
    device: str = setting("cpu", allowed="cpu, cuda or cuda:<index>")
    # Stop (DivergenceError) when G's parameter norm exceeds this factor times its start (checked
    # when losses are logged); null: NaN/inf only. Not part of a run's identity on resume.
    divergence_factor: Optional[float] = setting(100.0, gt=1)

    def __post_init__(self) -> None:
        check_fields(self)
        # the two string fields' patterns (a range check for strings)
        check(
            self.data.partition(":")[0] in datamod.BUILTIN + datamod.USER,
            "data",
            self.data,
            f"one of {', '.join(datamod.BUILTIN)} or cifar10:DIR, folder:DIR",
        )
        check(
            re.fullmatch(r"cpu|cuda(:[0-9]+)?", self.device) is not None,
            "device",
            self.device,
            "cpu, cuda or cuda:<index>",
        )
        check(
            self.resolution == 0 or (self.resolution >= 8 and math.log2(self.resolution / 4).is_integer()),
            "resolution",
            self.resolution,
            "0 (the dataset's) or 4*2^n >= 8",
        )

    def validate(self) -> "ImageGANConfig":
        """Every rule is a single field's, declared above and checked at construction."""
        return self

    @property
    def res(self) -> int:
        return self.resolution or DEFAULT_RESOLUTION.get(self.data.partition(":")[0], 32)


def make_config(overrides: dict | None = None) -> ImageGANConfig:
    return from_dict(ImageGANConfig, overrides or {}).validate()
