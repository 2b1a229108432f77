"""Figures and tables for reports: matplotlib without a display, image tiles and PNGs written
atomically, Markdown tables. The bottom layer of the package, with :mod:`ganlearn.io`."""
from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = ["plt", "save", "md_table", "median", "tile", "save_png"]


def save(fig, path: Path) -> str:
    """Save and close ``fig``; returns the file name (for a Markdown link beside it)."""
    path = Path(path)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    plt.close(fig)
    return path.name


def md_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats to 3 significant digits, None as an en dash."""
    def fmt(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def median(xs):
    """Median of the values that are not None or NaN (None if there are none)."""
    xs = sorted(x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x)))
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])


def tile(images: torch.Tensor, nrow: int, gap=255) -> np.ndarray:
    """(n, C, h, w) in [-1, 1] -> an (H, W, C) uint8 grid with 1-px gaps of colour ``gap``."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    out = np.empty((rows * (h + 1) + 1, nrow * (w + 1) + 1, c), dtype=np.uint8)
    out[...] = np.asarray(gap, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        out[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = x[i].transpose(1, 2, 0)
    return out


def save_png(path: Path, array) -> None:
    """An (H, W, C) uint8 array as a PNG (grey if C = 1), written atomically."""
    from PIL import Image

    path = Path(path)
    arr = array[..., 0] if array.shape[-1] == 1 else array
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(arr).save(tmp, format="PNG")
    os.replace(tmp, path)
