"""``sparsity-claims``: are the hidden codes of trained image generators sparse and not too
positively correlated (Allen-Zhu & Li, Fig. 3), and is that *created by training*?

One cell = one ``ganlearn.images.train.train`` run of (arch, g_norm, seed), then
``ganlearn.images.probe`` on its EMA generator and on a random-init generator of the same
architecture (batch-norm statistics calibrated), n = ``probe_n`` latents. The cell keeps, per hidden
layer, the trained and the random-init values of: the firing rate Pr[h > 0]; the magnitude measures
(Hoyer sparsity, top-k energy fraction with k = ceil(c / 8), the clearly-active fraction: above 0.1 x
the channel's typical active value), which many tiny activations do not fool; the pair and triple
co-activation ratios (1 = independent); the best held-out R^2 of the layer -> low-resolution image map
(Fig. 1); and the measures over training time (logged at every evaluation, ``codes`` in
``metrics.jsonl``).

Why these runs: batch norm centres every pre-activation, so about half of the ReLUs fire whatever is
learned (the probe's firing rate is pinned near 0.5); ``g_norm="none"`` (biases, i.e. trainable
thresholds, instead of batch norm) lets training set the firing rate. ``arch="fsr"`` is the paper's
generator shape (a linear head per resolution). The verdict per measure separates "holds" from
"created by training": it reports trained - random per seed, and counts it as created by training
only when every seed moves the same way by more than the spread of the random-init value over seeds.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganlearn.config import setting
from ganlearn.images.config import ImageGANConfig, make_config
from ganlearn.images.probe import code_sparsity
from ganlearn.images.probe_report import calibrate_bn, random_init, run_probe
from ganlearn.images.train import load_generator, train
from ganlearn.io import read_jsonl
from ganlearn.plots import md_table, plt, save
from ganlearn.sweep import Experiment

BASE = {
    "data": "mnist-5k",
    "resolution": 16,
    "width": 16,
    "steps": 1500,
    "batch": 64,
    "z_dim": 32,
    "eval_every": 150,
    "eval_n": 500,
    "eval_patches": 8,
    "lr_g": 2e-4,
    "lr_d": 2e-4,
    "d_norm": "sn",
    "device": "cpu",
    "probe_n": 1000,
}
GRID = {"arch": ["dcgan", "fsr"], "g_norm": ["bn", "none"]}
# (key in the cell, label, which direction is "sparser / less correlated")
MEASURES = [
    ("fire_rate", "firing rate Pr[h > 0]", -1),
    ("hoyer", "Hoyer sparsity", +1),
    ("topk_energy", "top-k energy fraction", +1),
    ("active_rel", "clearly-active fraction", -1),
    ("pair_ratio", "pair co-activation ratio", -1),
    ("r2", "best R^2 to the low-res image", +1),
]


@dataclass(frozen=True)
class ProbeCell(ImageGANConfig):
    """One cell: an image run, then ``probe_n`` generator samples for the probes."""

    probe_n: int = setting(1000, ge=100)


def config(params: dict):
    """One cell's ``ImageGANConfig`` and probe size, without training (the sweep's ``check``)."""
    p = dict(params)
    n = p.pop("probe_n")
    return make_config({**p, "grid_every": 0, "ckpt_every": 0, "log_every": 50}), n


def check(params: dict):
    return config(params)[0]


def _layer_values(rec: dict) -> dict:
    c = rec["codes"]
    r2 = [v for v in rec["r2"].values() if v == v]
    return {
        "fire_rate": c["fire_rate_all"],
        "hoyer": c["hoyer_mean"],
        "topk_energy": c["topk_energy_mean"],
        "active_rel": c["active_rel_mean"],
        "pair_ratio": c["pair_ratio_mean"],
        "triple_ratio": c["triple_ratio_mean"],
        "r2": max(r2) if r2 else float("nan"),
    }


def run(params: dict) -> dict:
    cfg, n = config(params)
    with tempfile.TemporaryDirectory(prefix="ganlearn-sparsity-") as tmp:
        res = train(cfg, tmp, progress=False)
        curve = read_jsonl(Path(tmp) / "metrics.jsonl")
        probe = run_probe(tmp, None, Path(tmp) / "probe", n=n, seed=cfg.seed)
        shape = load_generator(tmp)[3]["data_shape"]
    layers = {
        name: {"trained": _layer_values(rec["trained"]), "random": _layer_values(rec["random"]), "shape": rec["shape"]}
        for name, rec in probe["layers"].items()
    }
    # step 0 of the curve: the probe's random-init network, measured as training measures its EMA generator
    g0 = calibrate_bn(random_init(cfg, shape, seed=cfg.seed)[0], cfg.z_dim, seed=cfg.seed)
    start = {"step": 0, "codes": code_sparsity(g0, cfg.z_dim, seed=cfg.seed)}
    return {
        "swd_avg": res["swd_avg"],
        "swd_avg_real": res.get("swd_avg_real"),
        "layers": layers,
        "over_time": [start] + [{"step": c["step"], "codes": c["codes"]} for c in curve if "codes" in c],
    }


def _verdict(diffs: list[float], random_vals: list[float], sign: int) -> str:
    """'created by training' when every seed moves in the claim's direction by more than twice the
    spread (standard deviation over seeds) of the random-init value and by more than 0.01;
    'reversed by training' when every seed moves the other way by that much."""
    spread = max(2 * float(np.std(random_vals)) if len(random_vals) > 1 else 0.0, 0.01)
    if len(diffs) >= 2 and all(sign * d > spread for d in diffs):
        return "created by training"
    if len(diffs) >= 2 and all(-sign * d > spread for d in diffs):
        return "**reversed** by training"
    return "not distinguishable from init"


def report(out: Path, cells: list[dict], spec: dict) -> str:
    groups = sorted({(c["params"]["arch"], c["params"]["g_norm"]) for c in cells})
    lines = [
        "Per (generator, normalisation, hidden layer): the trained value and trained - random init (mean ± "
        "standard deviation over seeds, each seed against its own random-init network). Sparser means: lower "
        "firing rate and clearly-active fraction, higher Hoyer and top-k energy; less positively correlated "
        "means a lower pair ratio (1 = independent; the paper asks for 'not too positive'). The verdict: "
        "created by training when every seed moves the claim's way by more than max(0.01, twice the random-init "
        "value's standard deviation over seeds).",
        "",
    ]
    rows = []
    for arch, norm in groups:
        cs = [c for c in cells if c["params"]["arch"] == arch and c["params"]["g_norm"] == norm]
        for layer in cs[0]["result"]["layers"]:
            for key, label, sign in MEASURES:
                tr = [c["result"]["layers"][layer]["trained"][key] for c in cs]
                rd = [c["result"]["layers"][layer]["random"][key] for c in cs]
                df = [a - b for a, b in zip(tr, rd)]
                rows.append(
                    [
                        arch,
                        norm,
                        layer,
                        label,
                        f"{np.mean(tr):.3f}",
                        f"{np.mean(rd):.3f}",
                        f"{np.mean(df):+.3f} ± {np.std(df):.3f}",
                        len(cs),
                        _verdict(df, rd, sign),
                    ]
                )
    lines += [
        md_table(
            ["G", "norm", "layer", "measure", "trained", "random init", "trained - random", "seeds", "verdict"], rows
        ),
        "",
    ]
    # over training time: Hoyer and firing rate of every layer, median over seeds
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
    for arch, norm in groups:
        cs = [c for c in cells if c["params"]["arch"] == arch and c["params"]["g_norm"] == norm]
        for layer in cs[0]["result"]["layers"]:
            steps = [p["step"] for p in cs[0]["result"]["over_time"]]
            for ax, key in zip(axes, ("hoyer", "fire_rate")):
                ys = [
                    np.median(
                        [
                            c["result"]["over_time"][i]["codes"][layer][key]
                            for c in cs
                            if i < len(c["result"]["over_time"])
                        ]
                    )
                    for i in range(len(steps))
                ]
                r0 = np.median([c["result"]["layers"][layer]["random"][key] for c in cs])
                ax.plot([0] + steps, [r0] + ys, "-", label=f"{arch}/{norm} {layer}")
    for ax, t in zip(axes, ("Hoyer sparsity (1 = one active channel)", "firing rate Pr[h > 0]")):
        ax.set_xlabel("generator step (0: random init)")
        ax.set_title(t)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))  # one legend, beside the plots
    lines += [f"![sparsity over training]({save(fig, out / 'sparsity_over_time.png')})", ""]
    return "\n".join(lines)


EXPERIMENT = Experiment(
    name="sparsity-claims",
    doc=(
        "FSR paper Fig. 3 under stress: sparsity (firing rate, Hoyer, top-k energy, clearly-active fraction) and "
        "co-activation of the hidden codes of DCGAN and FSR-shaped image generators, with and without batch norm, "
        "trained vs random init over seeds, and over training time."
    ),
    base=BASE,
    grid=GRID,
    seeds=3,
    run=run,
    params=ProbeCell,
    report=report,
    check=check,
)
