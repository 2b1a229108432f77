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

__all__ = ["plt", "save", "log_ticks", "md_table", "median", "tile", "save_png"]


def _tick_label(v: float, _pos=None) -> str:
    """A log-axis label: plain digits between 1e-3 and 1e4, else m×10^e in mathtext."""
    if v <= 0:
        return ""
    if 1e-3 <= v < 1e4:
        return f"{v:g}"
    e = math.floor(math.log10(v) + 1e-9)
    m = v / 10**e
    return f"$10^{{{e}}}$" if abs(m - 1) < 1e-6 else f"${m:g}{{\\times}}10^{{{e}}}$"


def log_ticks(ax) -> None:
    """Readable ticks on the log axes of ``ax``: labelled ticks at 1..9, 1-2-5, 1-3 or powers of
    ten (by how many decades the axis spans, so labels never crowd), no labels on minor ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(abs(v) for v in lim)
        decades = math.log10(hi / lo) if lo > 0 and hi > 0 else 10.0
        subs = (
            tuple(range(1, 10))
            if decades < 1
            else (1.0, 2.0, 5.0)
            if decades <= 2
            else (1.0, 3.0)
            if decades <= 4
            else (1.0,)
        )
        axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
        axis.set_major_formatter(FuncFormatter(_tick_label))
        axis.set_minor_formatter(NullFormatter())


def save(fig, path: Path) -> str:
    """Save and close ``fig`` (log axes made readable by :func:`log_ticks`); returns the file
    name (for a Markdown link beside it)."""
    path = Path(path)
    for ax in fig.axes:
        log_ticks(ax)
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
        out[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = x[i].transpose(1, 2, 0)
    return out


def save_png(path: Path, array) -> None:
    """An (H, W, C) uint8 array as a PNG (grey if C = 1), written atomically."""
    from PIL import Image

    path = Path(path)
    arr = array[..., 0] if array.shape[-1] == 1 else array
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(arr).save(tmp, format="PNG")
    os.replace(tmp, path)
