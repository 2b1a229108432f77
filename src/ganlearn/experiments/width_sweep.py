"""``width-sweep`` (and ``width-sweep-general``): GDA on the overparameterized one-hidden-layer GAN
of Balaji et al. against the hidden width k, from below the data dimension m to 100 m.

One cell = one ``ganlearn.overparam.train.train`` run with k = ceil(width_factor * m), the step size
from the LTV stability rule (``step_rule="ltv"``: eta = 1/(4 lambda_max(J_0 J_0^T))) or fixed
(``step_rule="fixed"``: eta = ``fixed_eta``, the control). ``model`` picks the paper's model
("linear": linear discriminator, G = V relu(W z)) or the broader class ("random_features":
D(x) = <d, relu(B x)>; "deep": a generator with two hidden layers).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ganlearn.config import from_dict, setting
from ganlearn.overparam import OverparamConfig, train, train_batched
from ganlearn.overparam import batch_key as overparam_batch_key
from ganlearn.plots import md_table, median, plt, save
from ganlearn.sweep import Experiment

MODELS: dict[str, dict[str, Any]] = {
    "linear": {},
    "random_features": {"discriminator": "random_features"},
    "deep": {"depth": 2},
}
_OWN = ("width_factor", "step_rule", "model", "fixed_eta")


@dataclass(frozen=True)
class WidthCell(OverparamConfig):
    """One cell: an ``OverparamConfig`` (all its fields may be set) whose width k is
    ceil(width_factor * m) and whose step is the LTV rule's or ``fixed_eta``."""

    width_factor: float = setting(1.0, gt=0, lt=1e6)
    step_rule: Literal["ltv", "fixed"] = "ltv"
    model: Literal["linear", "random_features", "deep"] = "linear"
    fixed_eta: float = setting(0.5, gt=0)


def config(params: dict) -> OverparamConfig:
    """One cell's ``OverparamConfig``, without training (the sweep's ``check``)."""
    cell = from_dict(WidthCell, {k: v for k, v in params.items()})
    p: dict[str, Any] = {f.name: getattr(cell, f.name) for f in dataclasses.fields(OverparamConfig)}
    p.update(
        MODELS[cell.model],
        k=max(1, math.ceil(cell.width_factor * cell.m)),
        eta=cell.fixed_eta if cell.step_rule == "fixed" else None,
    )
    cfg = OverparamConfig(**p)
    cfg.validate()
    return cfg


def run(params: dict) -> dict:
    cfg = config(params)
    return _cell_result(cfg, dict(train(cfg)))


def batch_key(params: dict):
    """Cells that can be trained as one replica batch (``ganlearn.overparam.batched``): same shape
    but the seed, the width (padded, within a power of two) and the step size."""
    return overparam_batch_key(config(params))


def run_batch(params_list: list[dict]) -> list[dict]:
    """The cells of one batch key trained together; each result as :func:`run` gives it."""
    cfgs = [config(p) for p in params_list]
    return [_cell_result(c, out) for c, out in zip(cfgs, train_batched(cfgs))]


def _cell_result(cfg, out: dict) -> dict:
    r = out.pop("residual")
    every = max(1, len(r) // 300)
    out["curve"] = [[t, r[t]] for t in range(0, len(r), every)] + [[len(r) - 1, r[-1]]]
    out.pop("d_norm")
    out.pop("config")
    out["k"] = cfg.k
    return out


def _group(cells, **match):
    return [c for c in cells if all(c["params"][k] == v for k, v in match.items())]


def threshold(cells: list[dict], **match) -> int | None:
    """Smallest k such that every seed at k and at every larger k of the grid succeeded."""
    ks = sorted({c["result"]["k"] for c in _group(cells, **match)})
    best = None
    for k in reversed(ks):
        if all(c["result"]["success"] for c in _group(cells, **match) if c["result"]["k"] == k):
            best = k
        else:
            break
    return best


def report(out: Path, cells: list[dict], spec: dict) -> str:
    models = sorted({c["params"]["model"] for c in cells})
    ms = sorted({c["params"]["m"] for c in cells})
    rules = sorted({c["params"]["step_rule"] for c in cells})
    lines = []
    for model in models:
        lines += [f"## model: {model}", ""]
        # convergence curves: one panel per m, ltv rule (or the first rule), one line per width (median)
        rule0 = "ltv" if "ltv" in rules else rules[0]
        fig, axes = plt.subplots(1, len(ms), figsize=(5 * len(ms), 3.8), squeeze=False)
        for ax, m in zip(axes[0], ms):
            for f in sorted({c["params"]["width_factor"] for c in _group(cells, model=model, m=m)}):
                cs = _group(cells, model=model, m=m, width_factor=f, step_rule=rule0)
                if not cs:
                    continue
                for i, c in enumerate(cs):
                    t, r = zip(*c["result"]["curve"])
                    ax.semilogy(
                        t,
                        np.maximum(r, 1e-16),
                        color=plt.cm.viridis(math.log(f * 2) / math.log(250)),
                        alpha=0.6,
                        lw=1,
                        label=f"k={c['result']['k']}" if i == 0 else None,
                    )
            ax.set_title(f"m={m}, step rule {rule0}")
            ax.set_xlabel("GDA step")
            ax.set_ylabel("residual |mean psi(G) - mean psi(x)|")
            ax.legend(fontsize=6, ncol=2)
        lines += [f"![curves]({save(fig, out / f'curves_{model}.png')})", ""]
        fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
        rows = []
        for m in ms:
            for rule in rules:
                ks, rates, preds, succ, moves = [], [], [], [], []
                for f in sorted({c["params"]["width_factor"] for c in _group(cells, model=model, m=m)}):
                    cs = _group(cells, model=model, m=m, width_factor=f, step_rule=rule)
                    if not cs:
                        continue
                    k = cs[0]["result"]["k"]
                    fr = median([c["result"]["rate_fitted"] for c in cs])
                    pr = median([c["result"]["rate_predicted"] for c in cs])
                    sf = sum(c["result"]["success"] for c in cs) / len(cs)
                    mv = median([c["result"]["relative_movement"] for c in cs])
                    # 1 - rate below 1e-6 is "no convergence" (noise around 1): left off the log plot
                    ks.append(k)
                    rates.append(1 - fr if fr is not None and fr < 1 - 1e-6 else np.nan)
                    preds.append(1 - pr if pr < 1 - 1e-6 else np.nan)
                    succ.append(sf)
                    moves.append(mv)
                    rows.append(
                        [
                            m,
                            rule,
                            k,
                            f"{k / m:.3g}",
                            sf,
                            fr,
                            pr,
                            median([c["result"]["steps_to_tol"] for c in cs]),
                            median([c["result"]["residual_final"] for c in cs]),
                            mv,
                            median([c["result"]["s_min0"] for c in cs]),
                            median([c["result"]["eta"] for c in cs]),
                        ]
                    )
                style = "-o" if rule == "ltv" else "--s"
                axes[0].semilogx(np.array(ks) / m, succ, style, label=f"m={m}, {rule}")
                axes[1].loglog(np.array(ks) / m, rates, style, label=f"m={m}, {rule} fitted")
                if rule == "ltv":
                    axes[1].loglog(
                        np.array(ks) / m, preds, ":", color=axes[1].lines[-1].get_color(), label=f"m={m} predicted"
                    )
                axes[2].loglog(np.array(ks) / m, moves, style, label=f"m={m}, {rule}")
        titles = ["success fraction", "1 - rate (per-step contraction)", "|theta_T - theta_0| / |theta_0|"]
        for ax, title in zip(axes, titles):
            ax.set_xlabel("width k / m")
            ax.set_title(title)
            ax.legend(fontsize=6)
        lines += [
            f"![rates]({save(fig, out / f'rate_success_{model}.png')})",
            "",
            "Per width (medians over seeds): success = residual < tol at the end; rate = fitted per-step "
            "contraction of the residual (1 = no convergence); predicted = the LTV rule's spectral radius at "
            "t = 0; movement = relative change of the trained weights (the lazy regime shrinks it).",
            "",
            md_table(
                [
                    "m",
                    "step rule",
                    "k",
                    "k/m",
                    "success",
                    "rate fitted",
                    "rate predicted",
                    "steps to tol",
                    "final residual",
                    "movement",
                    "s_min(J0J0^T)",
                    "eta",
                ],
                rows,
            ),
            "",
        ]
        trows = []
        for m in ms:
            for rule in rules:
                k = threshold(cells, model=model, m=m, step_rule=rule)
                trows.append([m, rule, k, f"{k / m:.3g}" if k else None])
        lines += [
            "Smallest width that converges reliably (every seed, at that width and every larger one):",
            "",
            md_table(["m", "step rule", "k_min", "k_min / m"], trows),
            "",
        ]
    return "\n".join(lines)


BASE = {"d": 5, "n": 200, "steps": 3000, "tol": 1e-6, "mu": 1.0, "fixed_eta": 0.5, "model": "linear"}
EXPERIMENT = Experiment(
    name="width-sweep",
    doc=(
        "Overparameterized one-hidden-layer GAN G = V relu(W z), linear discriminator with the -1/2|d|^2 term, "
        "simultaneous GDA on n fixed latents and data points: convergence against the width k, for data "
        "dimensions m, with the LTV stability-rule step size and a fixed step (control)."
    ),
    base=BASE,
    grid={"m": [5, 10, 20], "width_factor": [0.5, 1, 1.5, 2, 3, 5, 10, 30, 100], "step_rule": ["ltv", "fixed"]},
    seeds=5,
    run=run,
    params=WidthCell,
    report=report,
    check=config,
    run_batch=run_batch,
    batch_key=batch_key,
)
GENERAL = Experiment(
    name="width-sweep-general",
    doc=(
        "The broader class of Balaji et al.: a random-feature discriminator D(x) = <d, relu(B x)> (20 features) "
        "and a generator with two hidden layers, against the width, LTV step rule."
    ),
    base={**BASE, "m": 10, "step_rule": "ltv"},
    grid={"model": ["random_features", "deep"], "width_factor": [1, 2, 3, 5, 10, 30, 100]},
    seeds=3,
    run=run,
    params=WidthCell,
    report=report,
    check=config,
    run_batch=run_batch,
    batch_key=batch_key,
)


def report_features(out: Path, cells: list[dict], spec: dict) -> str:
    """Per feature map f and number of features p: success, rate and s_min(J J^T) at the start and
    the end against the width (the assumptions of the general theorem, measured)."""
    acts = [a for a in ("relu", "tanh", "softplus") if any(c["params"]["feature_act"] == a for c in cells)]
    ps = sorted({c["params"]["features"] for c in cells})
    scales = sorted({c["params"].get("feature_scale", 1.0) for c in cells})
    # one row of panels per feature map, one line per (scale of B, p)
    fig, grid = plt.subplots(len(acts), 3, figsize=(15, 3.6 * len(acts)), squeeze=False)
    rows, verdict = [], []
    for a, sc, p in [(a, sc, p) for a in acts for sc in scales for p in ps]:
        axes = grid[acts.index(a)]
        if True:
            ks, succ, smin0, smin_end = [], [], [], []
            for f in sorted({c["params"]["width_factor"] for c in cells}):
                cs = [
                    c
                    for c in cells
                    if c["params"]["feature_act"] == a
                    and c["params"]["features"] == p
                    and c["params"].get("feature_scale", 1.0) == sc
                    and c["params"]["width_factor"] == f
                ]
                if not cs:
                    continue
                k = cs[0]["result"]["k"]
                sf = sum(c["result"]["success"] for c in cs) / len(cs)
                s0, se = median([c["result"]["s_min0"] for c in cs]), median([c["result"]["s_min_end"] for c in cs])
                ks.append(k)
                succ.append(sf)
                smin0.append(s0)
                smin_end.append(se)
                rows.append(
                    [
                        a,
                        sc,
                        p,
                        k,
                        sf,
                        median([c["result"]["rate_fitted"] for c in cs]),
                        median([c["result"]["residual_final"] for c in cs]),
                        s0,
                        median([c["result"]["s_max0"] / max(c["result"]["s_min0"], 1e-300) for c in cs]),
                        se,
                        median([c["result"]["s_min_end"] / max(c["result"]["s_min0"], 1e-300) for c in cs]),
                        median([c["result"]["relative_movement"] for c in cs]),
                    ]
                )
            if not ks:
                continue
            m = cells[0]["params"]["m"]
            style = "-o" if sc == scales[0] else "--s"
            lab = f"scale {sc:g}, p={p}"
            axes[0].semilogx(np.array(ks) / m, succ, style, label=lab)
            axes[1].loglog(np.array(ks) / m, np.maximum(smin0, 1e-16), style, label=lab)
            axes[2].loglog(
                np.array(ks) / m, np.maximum(np.array(smin_end) / np.maximum(smin0, 1e-300), 1e-6), style, label=lab
            )
            # "wider converges": every seed converges at the widest widths, and success does not fall with width
            holds = succ[-1] == 1 and all(b >= a_ - 1e-9 for a_, b in zip(succ, succ[1:]))
            first = next((k for k, sc in zip(ks, succ) if sc == 1), None)
            verdict.append([a, sc, p, "yes" if holds else "no", first])
    for a, axes in zip(acts, grid):
        for ax, t in zip(axes, ["success fraction", "s_min(J0 J0^T)", "s_min(J_T J_T^T) / s_min(J0 J0^T)"]):
            ax.set_xlabel("width k / m")
            ax.set_title(f"f = {a}: {t}")
            ax.legend(fontsize=6, ncol=2)
    return "\n".join(
        [
            f"![features]({save(fig, out / 'features.png')})",
            "",
            "Medians over seeds per feature map f, number of features p and width k: success = residual < tol at the "
            "end; rate = fitted per-step contraction (1 = none); s_min of J J^T at the start and at the end of the run "
            "(J = d mean f(B G(z_i)) / d theta; the general theorem needs it bounded below along the path) and the "
            "condition number s_max / s_min at t = 0, which sets the LTV rule's rate 1 - s_min / (4 s_max).",
            "",
            md_table(
                [
                    "f",
                    "scale of B",
                    "features p",
                    "k",
                    "success",
                    "rate fitted",
                    "final residual",
                    "s_min(J0J0^T)",
                    "s_max / s_min at t = 0",
                    "s_min(J_T J_T^T)",
                    "end / start",
                    "movement",
                ],
                rows,
            ),
            "",
            "Does wider converge? (every seed converges at the largest width, and the success fraction never falls "
            "as k grows); the smallest width at which every seed converges:",
            "",
            md_table(["f", "scale of B", "features p", "wider converges", "first k with all seeds"], verdict),
            "",
        ]
    )


FEATURES = Experiment(
    name="width-sweep-features",
    doc=(
        "Balaji et al.'s random-feature discriminator D(x) = <d, f(B x)> under the theorem's conditions: the "
        "feature map f (ReLU, not smooth; tanh and softplus, smooth), the number of features p against the data "
        "dimension m = 10, the scale of B (B x reaching 1x or 3x further into f), and the width k, with "
        "s_min(J J^T) at the start and the end of GDA (LTV step rule)."
    ),
    base={**BASE, "m": 10, "step_rule": "ltv", "model": "random_features"},
    grid={
        "feature_act": ["relu", "tanh", "softplus"],
        "features": [5, 10, 20, 40],
        "feature_scale": [1.0, 3.0],
        "width_factor": [2, 5, 10, 30, 100],
    },
    seeds=3,
    run=run,
    params=WidthCell,
    report=report_features,
    check=config,
    run_batch=run_batch,
    batch_key=batch_key,
)
