"""``ganlearn probe CHECKPOINT --data NAME``: run the FSR diagnostics and write probe.md + PNGs + probe.json.

CHECKPOINT is a ganlearn image run directory (or one of its checkpoint files), whose EMA generator and
discriminator are probed; or, with ``module="pkg.mod:factory"``, a safetensors state dict for the
module that ``factory()`` builds (then ``layers`` and ``z_dim`` are required and there is no D).

The random-init baseline is the same architecture freshly initialised (stream ``probe.random_init`` of the seed); its
batch-norm running statistics are first calibrated on 10 batches of its own samples (cumulative
average), since an untrained network's stored statistics (mean 0, variance 1) would not normalise.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ganlearn.config import ConfigError
from ganlearn.images import probe as P
from ganlearn.io import atomic_write_text, load_tensors, write_json
from ganlearn.plots import md_table, plt, save, save_png, tile
from ganlearn.rng import default_init_rng, make_generator

__all__ = ["calibrate_bn", "random_init", "run_probe"]


@torch.no_grad()
def calibrate_bn(g: nn.Module, z_dim: int, *, seed: int, batches: int = 10, batch: int = 256) -> nn.Module:
    bns = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    g.train()
    gen = make_generator(seed, "probe.calibrate_bn")
    for _ in range(batches if bns else 0):
        g(torch.randn(batch, z_dim, generator=gen))
    return g.eval()


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def load_factory(spec: str):
    """The generator factory named by ``--module pkg.module:factory`` (``factory`` defaults to
    ``build``), imported; every way the name can be wrong is a UserError naming it."""
    mod_name, _, fn = spec.partition(":")
    fn = fn or "build"
    if not _MODULE_NAME.fullmatch(mod_name) or not fn.isidentifier():
        raise ConfigError(
            f"--module {spec!r} is not allowed: must be pkg.module:factory (a dotted module name, "
            f"then a function name; the factory defaults to build)"
        )
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ConfigError(
            f"--module {spec!r}: no module named {e.name!r} (is it installed, or on PYTHONPATH?)"
        ) from None
    except Exception as e:  # the user's module raised while importing (a syntax error, a failed import, ...)
        raise ConfigError(f"--module {spec!r}: importing {mod_name} raised {type(e).__name__}: {e}") from None
    factory = getattr(mod, fn, None)
    if not callable(factory):
        raise ConfigError(f"--module {spec!r}: {mod_name} has no function {fn!r}")
    return factory


def _build(factory, spec: str):
    try:
        return factory()
    except Exception as e:  # the user's factory: its error, in one line (GANLEARN_DEBUG=1 shows the traceback)
        raise ConfigError(f"--module {spec!r}: calling the factory raised {type(e).__name__}: {e}") from e


def _load(checkpoint: str, *, module: str | None, layers: list[str] | None, z_dim: int | None, seed: int):
    if module:
        if not layers or not z_dim:
            raise ConfigError("--module needs --layers and --z-dim")
        factory = load_factory(module)
        g = _build(factory, module)
        if not isinstance(g, nn.Module):
            raise ConfigError(f"--module {module!r}: the factory returned a {type(g).__name__}, not a torch.nn.Module")
        try:
            g.load_state_dict(load_tensors(checkpoint)[0])
        except RuntimeError as e:  # missing / unexpected keys, shape mismatches
            raise ConfigError(
                f"CHECKPOINT {checkpoint!r} does not fit the --module {module!r} generator: {str(e).splitlines()[0]}"
            ) from None
        with default_init_rng(seed, "probe.random_init"):
            g0 = _build(factory, module)
        return g.eval(), g0, None, None, layers, z_dim, None
    from ganlearn.images.train import load_generator

    g, d, cfg, meta = load_generator(checkpoint)
    g0, d0 = random_init(cfg, meta["data_shape"], seed=seed)
    return g, g0, d, d0.eval(), layers or g.hidden_layers(), cfg.z_dim, (cfg, meta)


def random_init(cfg, shape, *, seed: int):
    """(G, D) of the run's architecture freshly initialised (stream ``probe.random_init`` of
    ``seed``): the baseline every probe compares with. ``shape``: the data shape (n, C, R, R)."""
    from ganlearn.images.model import build

    with default_init_rng(seed, "probe.random_init"):
        return build(
            cfg.arch,
            resolution=shape[-1],
            channels=shape[1],
            width=cfg.width,
            d_width=cfg.d_width or None,
            z_dim=cfg.z_dim,
            d_norm=cfg.d_norm,
            g_norm=cfg.g_norm,
        )


def run_probe(
    checkpoint: str,
    data: str | None,
    out: str | Path,
    *,
    n: int = 2000,
    seed: int = 0,
    layers: list[str] | None = None,
    module: str | None = None,
    z_dim: int | None = None,
) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    g, g0, d, d0, layers, z_dim, info = _load(checkpoint, module=module, layers=layers, z_dim=z_dim, seed=seed)
    calibrate_bn(g0, z_dim, seed=seed)
    res = P.probe_generator(g, g0, z_dim=z_dim, layers=layers, n=n, seed=seed)
    res["checkpoint"], res["data"] = str(checkpoint), data
    if info:
        res["config"], res["step"] = info[1]["config"], info[1].get("step")
    if hasattr(g, "output_filters"):
        res["g_filters"] = {
            "trained": P.filter_stats(g.output_filters()),
            "random": P.filter_stats(g0.output_filters()),
        }
    real = None
    if data:
        from ganlearn.images.data import load

        z = torch.randn(8, z_dim, generator=make_generator(seed, "probe.shape_check"))
        ref = g(z)
        ref = ref[-1] if isinstance(ref, (list, tuple)) else ref
        real = load(data, resolution=ref.shape[-1], channels=ref.shape[1])
        real = real[torch.randperm(len(real), generator=make_generator(seed, "probe.real"))[:n]]
    if d is not None:
        res["d_filters"] = {"trained": P.filter_stats(d.first_filters()), "random": P.filter_stats(d0.first_filters())}
        if real is not None:
            res["d_filters"]["trained"]["fire_rate_on_real"] = P.d_first_layer_rate(d.first_layer(), real)
            res["d_filters"]["random"]["fire_rate_on_real"] = P.d_first_layer_rate(d0.first_layer(), real)
    res["verdicts"] = P.verdicts(res)
    res["thresholds"] = P.THRESHOLDS
    figures = _figures(out, g, g0, d, d0, res, real, z_dim, seed)
    write_json(out / "probe.json", res)
    atomic_write_text(out / "probe.md", _markdown(res, figures))
    return res


@torch.no_grad()
def _figures(out: Path, g, g0, d, d0, res: dict, real, z_dim: int, seed: int) -> dict:
    figs = {}
    z = torch.randn(64, z_dim, generator=make_generator(seed, "probe.figures"))
    for label, net in (("samples", g), ("samples_random", g0)):
        x = net(z)
        x = x[-1] if isinstance(x, (list, tuple)) else x
        save_png(out / f"{label}.png", tile(x.clamp(-1, 1), 8))
        figs[label] = f"{label}.png"
    if real is not None:
        save_png(out / "real.png", tile(real[:64], 8))
        figs["real"] = "real.png"
    for key, net, net0, fn in (("g_filters", g, g0, "output_filters"), ("d_filters", d, d0, "first_filters")):
        if key in res:
            for label, m in (("trained", net), ("random", net0)):
                save_png(out / f"{key}_{label}.png", P.filter_tiles(getattr(m, fn)()))
                figs[f"{key}_{label}"] = f"{key}_{label}.png"
    names = list(res["layers"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
    xs = np.arange(len(names))
    for i, (ax, metric) in enumerate(zip(axes, ("1x1", "2x2", "3x3"))):
        for j, label in enumerate(("trained", "random")):
            vals = [res["layers"][nm][label]["r2"].get(metric, np.nan) for nm in names]
            ax.bar(xs + (j - 0.5) * 0.38, vals, 0.38, label=label + (" init" if label == "random" else ""))
        ax.axhline(P.THRESHOLDS["r2"], color="k", lw=0.8, ls="--")
        ax.set_xticks(xs, [f"{nm}\n{res['layers'][nm]['shape'][-1]}px" for nm in names], fontsize=8)
        ax.set_ylim(min(0, ax.get_ylim()[0]), 1.02)
        ax.set_title(f"Fig. 1: held-out R², {metric} map", fontsize=10)
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figs["r2"] = save(fig, out / "fsr_r2.png")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key, title, thr in zip(
        axes,
        ("fire_rate_mean", "pair_ratio_mean", "triple_ratio_mean"),
        ("firing rate", "pair co-activation ratio", "triple co-activation ratio"),
        (P.THRESHOLDS["fire_rate"], P.THRESHOLDS["pair_ratio"], P.THRESHOLDS["triple_ratio"]),
    ):
        for j, label in enumerate(("trained", "random")):
            vals = [res["layers"][nm][label]["codes"][key] for nm in names]
            ax.bar(xs + (j - 0.5) * 0.38, vals, 0.38, label=label + (" init" if label == "random" else ""))
        ax.axhline(thr, color="k", lw=0.8, ls="--")
        if key != "fire_rate_mean":
            ax.axhline(1.0, color="gray", lw=0.8, ls=":")
        ax.set_xticks(xs, names, fontsize=8)
        ax.set_title(f"Fig. 3: {title}")
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figs["codes"] = save(fig, out / "codes.png")
    return figs


def _markdown(res: dict, figs: dict) -> str:
    def fmt(v):
        if isinstance(v, tuple) or isinstance(v, list):
            return " / ".join(f"{x:.3g}" for x in v)
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    cfg = res.get("config", {})
    lines = [
        f"# FSR probe: {res['checkpoint']}",
        "",
        f"Data: `{res['data']}`. Generator samples: n = {res['n']} (first 80% fit, last 20% score), seed {res['seed']}."
        + (
            f" Model: {cfg.get('arch')} width k = {cfg.get('width')}, checkpoint at step {res.get('step')} of "
            f"{cfg.get('steps')}, data `{cfg.get('data')}`."
            if cfg
            else ""
        ),
        "",
        "## Verdicts (thresholds are ganlearn's; the paper states none)",
        "",
        md_table(
            ["claim", "trained", "random init", "threshold", "pass"],
            [
                [
                    v["claim"],
                    fmt(v["value"]),
                    fmt(v["random_init"]),
                    v["threshold"],
                    "n/a" if v["pass"] is None else ("yes" if v["pass"] else "**no**"),
                ]
                for v in res["verdicts"]
            ],
        ),
        "",
        "## Fig. 1: hidden layers map linearly to low-resolution images",
        "",
        "Ridge map from each hidden location's code to the generator's own output average-pooled to the "
        "layer's grid (1x1) or to twice it (2x2: one code -> its 2x2 patch; 3x3: the code and its 8 neighbours -> "
        "the 2x2 patch, a small stride-2 deconvolution); held-out R² (the 3x3 map needs 2x more rows than features).",
        "",
        md_table(
            ["layer", "code shape", "R² 1x1", "1x1 random", "R² 2x2", "2x2 random", "R² 3x3", "3x3 random"],
            [
                [nm, "x".join(map(str, r["shape"]))]
                + [r[lab]["r2"].get(m) for m in ("1x1", "2x2", "3x3") for lab in ("trained", "random")]
                for nm, r in res["layers"].items()
            ],
        ),
        "",
        f"![R2]({figs['r2']})",
        "",
        "## Fig. 3: sparse, not-too-positively-correlated codes",
        "",
        "Per patch (a location of the layer) and channel; ratios are Pr[both fire] / (product of rates), "
        "1 = independent; computed on up to 16 random patches x 48 random channels.",
        "",
        md_table(
            [
                "layer",
                "fire rate",
                "fire rate random",
                "active / patch",
                "pair ratio mean",
                "pair ratio max",
                "triple ratio mean",
                "pair random",
                "triple random",
            ],
            [
                [
                    nm,
                    r["trained"]["codes"]["fire_rate_mean"],
                    r["random"]["codes"]["fire_rate_mean"],
                    r["trained"]["codes"]["active_per_patch"],
                    r["trained"]["codes"]["pair_ratio_mean"],
                    r["trained"]["codes"]["pair_ratio_max"],
                    r["trained"]["codes"]["triple_ratio_mean"],
                    r["random"]["codes"]["pair_ratio_mean"],
                    r["random"]["codes"]["triple_ratio_mean"],
                ]
                for nm, r in res["layers"].items()
            ],
        ),
        "",
        f"![codes]({figs['codes']})",
        "",
    ]
    for key, title in (
        ("g_filters", "Fig. 2: generator output-layer filters"),
        ("d_filters", "Fig. 4: discriminator first-layer filters"),
    ):
        if key not in res:
            continue
        s, r = res[key]["trained"], res[key]["random"]
        rows = [
            [k, s[k], r.get(k)]
            for k in (
                "edge_colour_fraction",
                "edge_colour_random",
                "dc_fraction",
                "chroma_fraction",
                "mean_abs_cosine",
                "mean_abs_cosine_random",
                "fire_rate_on_real",
            )
            if k in s
        ]
        lines += [
            f"## {title}",
            "",
            f"{s['filters']} filters of size {s['size']}x{s['size']}; each tile scaled to its own max.",
            "",
            md_table(["measure", "trained", "random init"], rows),
            "",
            f"trained: ![{key}]({figs[key + '_trained']})  random init: ![{key}]({figs[key + '_random']})",
            "",
        ]
    lines += [
        "## Samples",
        "",
        f"trained: ![samples]({figs['samples']})  random init: ![random]({figs['samples_random']})"
        + (f"  real: ![real]({figs['real']})" if "real" in figs else ""),
        "",
    ]
    return "\n".join(lines)
