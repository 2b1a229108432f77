"""``sample-complexity``: real samples SGDA needs to learn phi(W* x) within TV epsilon, against
d and epsilon, compared with the O~(d^2 / eps^2) of Kontonis, Liu & Tzamos.

One cell = one (d, condition, seed) run of ``ganlearn.onelayer.train`` that records, for every
epsilon in ``eps``, the real samples consumed when the Gaussian TV upper bound of the averaged
Sigma first falls below it (the run stops at the smallest epsilon or at ``max_samples``).

Batch rule (a design choice, measured): ``batch="auto"`` is max(256, 4 d^2). With a fixed batch of
256, d = 32 had only reached TV 0.4 after 5.1M samples (20k steps, the decaying step size too
small by then), while batch 4096 reached 0.05 at 9.4M; at d = 16, batch 1024 reached 0.05 at 2.0M
where batch 256 had not after 5.1M. The batch sets how many samples one step's statistics average,
so at small eps (noise-bound) it does not enter N to first order; at large eps the run is
optimisation-bound (a few hundred steps x batch), where the rule adds its own d^2 -- the report
therefore fits the exponents both on all points and on the noise-bound points (eps <= 0.1).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Union

import numpy as np

from ganlearn.config import from_dict, setting
from ganlearn.onelayer import OneLayerConfig, train, train_batched
from ganlearn.onelayer.batched import batch_key as onelayer_batch_key
from ganlearn.onelayer.metrics import classifier_tv_lower
from ganlearn.onelayer.model import OneLayerGenerator
from ganlearn.plots import md_table, median, plt, save
from ganlearn.rng import make_generator
from ganlearn.sweep import Experiment

# eps: for the certificate (the run stops when it reaches the smallest); eps_gauss: for the Gaussian
# TV, 4-10x smaller than the certificate, so it reaches 0.4-0.1 within the first evaluation at small d.
BASE = {
    "eps": [0.4, 0.2, 0.1, 0.05],
    "eps_gauss": [0.1, 0.05, 0.025, 0.0125],
    "batch": "auto",
    "max_samples": "auto",
    "tv_lower_samples": 4000,
}
# Every activation the module offers, each with its truncated statistic (onelayer.discriminators):
# ReLU y y^T on the observed (positive) coordinates, leaky ReLU and sigmoid psi(y) psi(y)^T with
# psi = phi^{-1} (the full Gaussian second moment; sigmoid inverted on (1e-4, 1 - 1e-4)).
GRID = {"d": [2, 4, 8, 16, 32], "condition": [2.0, 10.0], "activation": ["relu", "leaky_relu", "sigmoid"]}


def batch_for(d: int, batch) -> int:
    return max(256, 4 * d * d) if batch == "auto" else int(batch)


def max_samples_for(d: int, max_samples) -> int:
    """The budget after which a run counts as not reaching eps. "auto": max(4M, 12000 d^2), about
    1.3x the most that a seed needed to reach eps = 0.05 at kappa 2 in the design runs (d = 32: 9.4M;
    d = 8: 0.97M), so that runs that stall (ill-conditioned W*) stop in bounded time."""
    return max(4_000_000, 12_000 * d * d) if max_samples == "auto" else int(max_samples)


@dataclass(frozen=True)
class SampleCell(OneLayerConfig):
    """One cell: a ``OneLayerConfig`` whose batch, step count and evaluation follow from d and the
    sample budget; eps and eps_gauss in (0, 1)."""

    eps: tuple[float, ...] = setting((0.4, 0.2, 0.1, 0.05), gt=0, lt=1, min_items=1)
    eps_gauss: tuple[float, ...] = setting((), gt=0, lt=1)
    # wider than the base class's int: "auto" derives it from d
    batch: Union[int, Literal["auto"]] = setting(  # type: ignore[assignment]
        "auto", ge=1, allowed='an integer >= 1 or "auto" (derived from d)'
    )
    max_samples: Union[int, Literal["auto"]] = setting(
        "auto", ge=1, allowed='an integer >= 1 or "auto" (derived from d)'
    )
    tv_lower_samples: int = setting(4000, ge=1)


def config(params: dict) -> tuple[OneLayerConfig, int, int, int]:
    """One cell's ``OneLayerConfig`` (and the budget fields it derives), without training: the
    sweep's ``check``."""
    cell = from_dict(SampleCell, params)
    batch = batch_for(cell.d, cell.batch)
    max_samples = max_samples_for(cell.d, cell.max_samples)
    p = {f.name: getattr(cell, f.name) for f in dataclasses.fields(OneLayerConfig)}
    cfg = OneLayerConfig(
        **{**p, "batch": batch, "stop_at_eps": True, "steps": math.ceil(max_samples / batch), "eval_every": 25}
    )
    return cfg, batch, max_samples, cell.tv_lower_samples


def run(params: dict) -> dict:
    cfg, batch, max_samples, n_tv = config(params)
    return _cell_result(cfg, batch, max_samples, n_tv, train(cfg))


def batch_key(params: dict):
    """Cells that can be trained as one replica batch (``ganlearn.onelayer.batched``)."""
    return onelayer_batch_key(config(params)[0])


def batch_limit(params: dict) -> int:
    """Replicas per batch: at most 2^20 numbers in one (replicas, batch, d) tensor (8 at d = 32,
    where one run's batch is 4096). Measured with ``benchmarks/bench_replicas.py`` (one thread,
    batched over sequential replica-steps/s, 2026-11-27, the samples-as-columns step): d = 4, batch
    256: 8.7x at 64 replicas, 9.0x at 256; d = 8, batch 512: 5.3x at 64 (2.9-4.3x in repeats on a
    drifting machine), 4.4x at 256; d = 16, batch 1024: 1.7x at 2 and 10, 2.0x at 64, 1.3x at 256
    (2^22 numbers); d = 32, batch 4096: 1.3x at 2, 1.2x at 10. (The earlier step, on (batch, d)
    rows, lost beyond 2^17: 0.8x at d = 16 and 64 replicas, 0.9x at d = 32 and 5.)"""
    cfg = config(params)[0]
    return max(1, 2**20 // (cfg.batch * cfg.d))


def cost(params: dict) -> float:
    """Relative time of a cell: its sample budget times d^2 (one sample's matrix products)."""
    cfg, _, max_samples, _ = config(params)
    return float(max_samples) * cfg.d**2


def run_batch(params_list: list[dict]) -> list[dict]:
    """The cells of one batch key trained together; each result as :func:`run` gives it (a
    diverged replica: ``{"diverged": true, "divergence": ...}``, what the sweep records when
    :func:`run` raises)."""
    cfgs = [config(p) for p in params_list]
    outs = train_batched([c[0] for c in cfgs])
    return [out if out.get("diverged") else _cell_result(*c, out) for c, out in zip(cfgs, outs)]


def _cell_result(cfg, batch: int, max_samples: int, n_tv: int, out: Mapping[str, Any]) -> dict:
    g = make_generator(cfg.seed, "sample_complexity.tv_samples")
    real = OneLayerGenerator(out["target_W"], cfg.activation).sample(n_tv, generator=g)
    fake = OneLayerGenerator(out["learner_W"], cfg.activation).sample(n_tv, generator=g)
    res = {
        "batch": batch,
        "max_samples": max_samples,
        "kappa": out["kappa"],
        "samples": out["samples"],
        "steps": out["steps"],
        "tv_upper_final": out["tv_upper"],
        "tv_gauss_final": out["tv_gauss"],
        "sigma_rel_error_final": out["sigma_rel_error"],
        "tv_lower_final": classifier_tv_lower(real, fake, seed=cfg.seed),
        "lr_g": out["resolved"]["lr_g"],
        "curvature_ratio": out["resolved"].get("curvature_ratio"),
    }
    res.update({f"N_eps={e}": n for e, n in out["samples_to_eps"].items()})
    res.update({f"N_gauss_eps={e}": n for e, n in out["samples_to_eps_gauss"].items()})
    res["curve"] = out["curve"][:: max(1, len(out["curve"]) // 200)] + out["curve"][-1:]
    return res


def fit_exponents(points: list[tuple[int, float, float]]) -> dict | None:
    """Least squares log N = a + alpha log d + beta log(1/eps) over (d, eps, N) points."""
    if len({p[0] for p in points}) < 2 or len({p[1] for p in points}) < 2 or len(points) < 4:
        return None
    X = np.array([[1.0, math.log(d), math.log(1 / e)] for d, e, _ in points])
    y = np.log([n for *_, n in points])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    return {
        "alpha_d": float(coef[1]),
        "beta_inv_eps": float(coef[2]),
        "C": float(math.exp(coef[0])),
        "rms_log_residual": float(np.sqrt(np.mean(resid**2))),
        "points": len(points),
    }


def _median_n(cs: list[dict], key: str):
    """Median of N over seeds, unreached counting as infinite (finite iff a majority reached);
    returns (median or None, seeds reaching, seeds)."""
    ns = [c["result"].get(key) for c in cs]
    med = float(np.median([n if n is not None else math.inf for n in ns]))
    return (None if math.isinf(med) else med), sum(n is not None for n in ns), len(ns)


def _fmt_n(med, k, n) -> str:
    return f"{med:.3g} ({k}/{n})" if med is not None else f"– ({k}/{n})"


def report(out: Path, cells: list[dict], spec: dict) -> str:
    eps = spec["base"]["eps"]
    eps_g = spec["base"].get("eps_gauss") or eps
    conds = sorted({c["params"]["condition"] for c in cells})
    acts = sorted({c["params"].get("activation", "relu") for c in cells}, key=lambda a: ACTIVATION_ORDER.index(a))
    ds = sorted({c["params"]["d"] for c in cells})
    lines = [
        "N(eps) = median real samples to reach TV <= eps (seeds reaching it / seeds; a median is shown when a "
        "majority reached it, unreached seeds counting as infinite), measured two ways: by the **certificate** "
        "(3/2)|Sigma*^-1/2 Sigma Sigma*^-1/2 - I|_F, an upper bound that can exceed the TV by up to 150x, and by "
        "the **Gaussian TV** TV(N(0, Sigma), N(0, Sigma*)) itself (Monte Carlo, standard error < 0.0025): the "
        "exact TV of the laws for leaky ReLU and sigmoid (invertible), an upper bound for ReLU. End-of-run "
        "columns (medians): both, the classifier two-sample lower bound (2 x held-out accuracy - 1) and "
        "|Sigma - Sigma*|_F / |Sigma*|_F.",
        "",
    ]
    fit_rows = []
    fig, axes = plt.subplots(len(acts), len(conds), figsize=(5.5 * len(conds), 4 * len(acts)), squeeze=False)
    for ai, act in enumerate(acts):
        for ci, cond in enumerate(conds):
            rows: list = []
            pts: dict[str, list] = {"certificate": [], "Gaussian TV": []}
            for d in ds:
                cs = [
                    c
                    for c in cells
                    if c["params"]["d"] == d
                    and c["params"]["condition"] == cond
                    and c["params"].get("activation", "relu") == act
                    and "samples" in c["result"]
                ]
                if not cs:
                    continue
                row = [d, cs[0]["result"]["batch"]]
                for name, key, es in (("certificate", "N_eps", eps), ("Gaussian TV", "N_gauss_eps", eps_g)):
                    for e in es:
                        med, k, n = _median_n(cs, f"{key}={e}")
                        row.append(_fmt_n(med, k, n))
                        if med is not None:
                            pts[name].append((d, e, med))
                row += [
                    median([c["result"].get(k) for c in cs if c["result"].get(k) is not None] or [math.nan])
                    for k in ("tv_upper_final", "tv_gauss_final", "tv_lower_final", "sigma_rel_error_final")
                ]
                rows.append(row)
            if not rows:
                continue
            lines += [
                f"## {act}, condition number {cond:g}",
                "",
                md_table(
                    ["d", "batch"]
                    + [f"certificate N({e})" for e in eps]
                    + [f"Gaussian TV N({e})" for e in eps_g]
                    + ["TV certificate (end)", "Gaussian TV (end)", "TV lower (end)", "Sigma rel. error (end)"],
                    rows,
                ),
                "",
            ]
            for name, p in pts.items():
                cut = 0.1 if name == "certificate" else 0.05  # the noise-bound points of each measure
                for label, sel in (("all points", p), (f"eps <= {cut}", [q for q in p if q[1] <= cut])):
                    f = fit_exponents(sel)
                    fit_rows.append(
                        [act, cond, name, label]
                        + (
                            [f["alpha_d"], f["beta_inv_eps"], f["rms_log_residual"], f["points"]]
                            if f
                            else ["not enough points", None, None, len(sel)]
                        )
                    )
            ax = axes[ai][ci]
            for d in ds:
                sel = [(dd, e, n) for dd, e, n in pts["Gaussian TV"] if dd == d]
                if sel:
                    ax.loglog([dd**2 / e**2 for dd, e, _ in sel], [n for *_, n in sel], "o-", label=f"d={d}")
            allp = pts["Gaussian TV"]
            if allp:
                x = np.array([d**2 / e**2 for d, e, _ in allp])
                c0 = np.median([n / (d**2 / e**2) for d, e, n in allp])
                xs = np.array([x.min(), x.max()])
                ax.loglog(xs, c0 * xs, "k--", alpha=0.5, label="N ∝ d²/ε²")
            ax.set_xlabel("d² / ε²")
            ax.set_ylabel("median real samples N (Gaussian TV)")
            ax.set_title(f"{act}, condition {cond:g}")
            ax.legend(fontsize=7)
    lines += [
        "## Fitted exponents",
        "",
        "log N = log C + alpha log d + beta log(1/eps) on the medians, per activation, condition number and "
        "TV measure; the paper's rate O~(d^2/eps^2) is alpha = beta = 2 up to logarithms (an upper bound: "
        "smaller exponents are consistent with it). At large eps the runs are optimisation-bound, so the "
        "fits on the small eps are the statistical ones.",
        "",
        md_table(
            [
                "activation",
                "condition",
                "TV measure",
                "points used",
                "alpha (d)",
                "beta (1/eps)",
                "rms log residual",
                "points",
            ],
            fit_rows,
        ),
        "",
    ]
    name = save(fig, out / "samples_vs_d2_eps2.png")
    lines += [f"![N against d^2/eps^2]({name})", ""]
    return "\n".join(lines)


ACTIVATION_ORDER = ("relu", "leaky_relu", "sigmoid")


EXPERIMENT = Experiment(
    name="sample-complexity",
    doc=(
        "One-layer generator phi(W* x) (ReLU, leaky ReLU, sigmoid) learned by single-loop SGDA against the "
        "truncated-moment discriminator with fresh samples each step: real samples needed to reach TV eps (the "
        "certificate and the Gaussian TV), for several d, eps and condition numbers of W*, against the paper's "
        "O~(d^2/eps^2)."
    ),
    base=BASE,
    grid=GRID,
    seeds=5,
    run=run,
    params=SampleCell,
    report=report,
    check=config,
    run_batch=run_batch,
    batch_key=batch_key,
    batch_limit=batch_limit,
    cost=cost,
)
