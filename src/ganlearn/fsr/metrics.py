"""Evaluation of a learner against the target: one flat dict of metrics per call."""

from __future__ import annotations

import contextlib
import copy

import torch

from ganlearn.fsr.config import EvalConfig
from ganlearn.fsr.model import FSRNet
from ganlearn.fsr.target import FSRTarget
from ganlearn.metrics.distances import sliced_w2
from ganlearn.metrics.recovery import coupled_error, error_split, feature_recovery, procrustes_latent_map
from ganlearn.metrics.sparsity import coactivation_stats
from ganlearn.rng import make_generator

__all__ = ["deterministic", "sliced_w2_floor", "evaluate", "is_finite_module"]


@contextlib.contextmanager
def deterministic(device: str | torch.device = "cpu"):
    """One intra-op thread while evaluating: a multi-threaded float reduction sums in an order
    that changes from call to call, and the rotation fit of the coupled error amplifies that
    (measured: the same learner evaluated four times in one process gave coupled error 0.93988,
    0.93921, 0.93948, 0.93921 on 2 threads, 0.9392108 every time on one). On a GPU, PyTorch's
    deterministic algorithms instead (the gathers' backward sums by sorting, not by atomics);
    ``warn_only``: an operation without a deterministic version warns rather than fails."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    gpu = torch.device(device).type != "cpu"
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if gpu:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(n)
        if gpu:
            torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def _eval_device(cfg: EvalConfig, net: FSRNet) -> torch.device:
    return torch.device("cpu") if cfg.device == "cpu" else next(net.parameters()).device


def _float64(net: FSRNet, device: str | torch.device = "cpu") -> FSRNet:
    """A float64 copy on ``device``: metrics are computed in float64 whatever the training dtype
    (on the device EvalConfig.device names)."""
    return copy.deepcopy(net).to(device=device, dtype=torch.float64).requires_grad_(False)


def _codes(net: FSRNet, z: torch.Tensor) -> list[torch.Tensor]:
    """The codes of every level from latents ``z``, without the images."""
    out, s = [], z
    for level in range(1, net.n_levels + 1):
        s = net.hidden(level, s)
        out.append(s)
    return out


@torch.no_grad()
def _samples(net: FSRNet, n: int, g: torch.Generator):
    return net(net.sample_latent(n, generator=g))


def sliced_w2_floor(target: FSRTarget, cfg: EvalConfig) -> dict[str, float]:
    """The sliced-W2 estimator on two independent target samples of the evaluation size: the
    value a perfect learner would get (the estimator's bias at this n)."""
    dev = _eval_device(cfg, target.net)
    with deterministic(dev):
        tnet = _float64(target.net, dev)
        g = make_generator(cfg.seed, "fsr.eval.floor")
        a, _ = _samples(tnet, cfg.n_samples, g)
        b, _ = _samples(tnet, cfg.n_samples, g)
        return {
            f"sliced_w2_floor_level{i + 1}": sliced_w2(
                x.flatten(1), y.flatten(1), n_projections=cfg.n_projections, seed=cfg.seed
            )
            for i, (x, y) in enumerate(zip(a, b))
        }


def evaluate(learner: FSRNet, target: FSRTarget, cfg: EvalConfig, *, final: bool) -> dict:
    """Metrics of ``learner`` against ``target``: a deterministic function of the two networks'
    parameters and ``cfg`` (float64 copies, a fixed evaluation RNG; on the CPU one thread, on a GPU
    deterministic algorithms), so a resumed run, a second evaluation and ``ganlearn report`` give
    the same numbers. Computed on the training device unless ``cfg.device="cpu"``; a GPU's
    numbers equal the CPU's to ~1e-6 relative (see :class:`~ganlearn.fsr.config.EvalConfig`).

    In-loop evaluations (``final=False``) use the Procrustes rotation only and the top level's
    sliced W2; the final one refines U (at most ``cfg.fit_steps`` L-BFGS evaluations) and adds every
    level's sliced W2 and the learner's sparsity / co-activation statistics.
    """
    dev = _eval_device(cfg, learner)
    with deterministic(dev):
        return _evaluate(_float64(learner, dev), _float64(target.net, dev), cfg, final=final)


def _evaluate(learner: FSRNet, tnet: FSRNet, cfg: EvalConfig, *, final: bool) -> dict:
    g = make_generator(cfg.seed, "fsr.eval")
    fr = feature_recovery(learner.W, tnet.W)
    out: dict = {}
    L = tnet.n_levels
    for level in range(1, L + 1):
        out[f"feature_cosine_mean_level{level}"] = fr[f"level{level}"]["cos_mean"]
        out[f"feature_cosine_min_level{level}"] = fr[f"level{level}"]["cos_min"]
    out["feature_cosine_min"] = min(out[f"feature_cosine_min_level{lv}"] for lv in range(1, L + 1))
    out["feature_cosine_mean"] = sum(out[f"feature_cosine_mean_level{lv}"] for lv in range(1, L + 1)) / L
    ut0 = procrustes_latent_map(learner.V[0], tnet.V[0], fr["perms"][0]).to(
        device=tnet.W[0].device, dtype=tnet.W[0].dtype
    )
    ce, ut = coupled_error(
        learner,
        tnet,
        ut0=ut0,
        perms=fr["perms"],
        n_fit=cfg.n_fit,
        n_eval=cfg.n_samples,
        fit_steps=cfg.fit_steps if final else 0,
        generator=g,
        select_generator=make_generator(cfg.seed, "fsr.eval.select"),
        target_codes=lambda z: _codes(tnet, z),
        output_layers=list(tnet.W),
    )
    out |= ce
    if final and L > 1:  # own vs inherited error per level, on fresh coupled latents
        z = torch.randn(
            cfg.n_samples, ut.shape[1], generator=make_generator(cfg.seed, "fsr.eval.split"), dtype=ut.dtype
        ).to(ut.device)
        with torch.no_grad():
            _, s_l = learner(z)
            x_t, s_t = tnet(z @ ut.T)
            out |= error_split(
                lambda lv, s: learner.decode(lv, learner.hidden(lv, s)),
                lambda lv, s: tnet.decode(lv, tnet.hidden(lv, s)),
                s_l,
                s_t,
                x_t,
                fr["perms"],
                learner.shape.channels,
                generator=make_generator(cfg.seed, "fsr.eval.amplification"),
            )
    x_t, _ = _samples(tnet, cfg.n_samples, g)
    x_l, s_l = _samples(learner, cfg.n_samples, g)
    levels = range(1, L + 1) if final else [L]
    for level in levels:
        out[f"sliced_w2_level{level}"] = sliced_w2(
            x_l[level - 1].flatten(1), x_t[level - 1].flatten(1), n_projections=cfg.n_projections, seed=cfg.seed
        )
    out["sliced_w2_top"] = out[f"sliced_w2_level{L}"]
    if final:
        for level, s in enumerate(s_l, start=1):
            for key, v in coactivation_stats(s).items():
                out[f"learner_{key}_level{level}"] = v
    return out


def is_finite_module(net: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in net.parameters())
