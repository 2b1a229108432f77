"""Markdown report with PNG figures, built only from what a run directory holds (never re-trains)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from ganlearn.fsr.config import load_json  # noqa: E402
from ganlearn.io import atomic_write_text  # noqa: E402
from ganlearn.metrics.alignment import match_columns  # noqa: E402
from ganlearn.metrics.recovery import feature_recovery, procrustes_latent_map  # noqa: E402
from ganlearn.plots import save  # noqa: E402
from ganlearn.rng import make_generator  # noqa: E402

__all__ = ["write_report"]


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


def _curves(records: list[dict], base: list[dict], out: Path) -> None:
    keys = [("coupled_rel_error", True), ("feature_cosine_min", False), ("sliced_w2_top", True)]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6))
    for ax, (k, logy) in zip(axes, keys):
        for recs, name, style in ((records, "staged", "-o"), (base, "baseline (end-to-end)", "--s")):
            if recs:
                ax.plot([r["samples_seen"] for r in recs], [r[k] for r in recs], style, ms=3, label=name)
        if k == "sliced_w2_top" and records:
            ax.axhline(records[-1]["sliced_w2_floor_top"], color="gray", ls=":", label="floor (target vs target)")
        seen = set()
        for r in records:  # stage boundaries
            if r["stage"] not in seen:
                seen.add(r["stage"])
                ax.axvline(r["samples_seen"], color="k", alpha=0.08)
        ax.set_xlabel("real samples seen")
        ax.set_title(k)
        if logy:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    save(fig, out)


def _tile(col: np.ndarray, colours: int, patch: int) -> np.ndarray:
    img = col.reshape(colours, patch, patch).transpose(1, 2, 0)
    img = img / (np.abs(img).max() + 1e-12) * 0.5 + 0.5
    return img if colours == 3 else img[..., 0]


def _features(learner_w: list[torch.Tensor], target_w: list[torch.Tensor], colours: int, patch: int, out: Path) -> None:
    """Learned vs true output features (first patch's W), matched by the best permutation."""

    L = len(target_w)
    m = target_w[0].shape[-1]
    fig, axes = plt.subplots(2 * L, m, figsize=(m * 0.8, 2 * L * 0.9))
    for i in range(L):
        wt, wl = target_w[i][0].double(), learner_w[i][0].double()
        perm, cos = match_columns(wl, wt)
        for r in range(m):
            for row, w, title in (
                (2 * i, wt[:, r], f"L{i + 1} true" if r == 0 else ""),
                (2 * i + 1, wl[:, perm[r]], f"L{i + 1} learned" if r == 0 else ""),
            ):
                ax = axes[row, r]
                ax.imshow(_tile(w.numpy(), colours, patch), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if title:
                    ax.set_ylabel(title, fontsize=6)
            axes[2 * i + 1, r].set_title(f"{cos[r]:.2f}", fontsize=6)
    fig.suptitle("output features W (edge-colour atoms): true row above, matched learned row below, cosine", fontsize=8)
    save(fig, out)


def _samples(target, learner, cfg, out: Path) -> None:
    """Sample grids per resolution: target G*(U^T z) next to learner G(z) on the same z."""

    geo = target.geometry
    g = make_generator(cfg.eval.seed, "fsr.report.samples")
    with torch.no_grad():
        fr = feature_recovery(learner.W, target.net.W)
        ut = procrustes_latent_map(learner.V[0], target.net.V[0], fr["perms"][0]).to(target.net.W[0].dtype)
        z = learner.sample_latent(8, generator=g)
        xl, _ = learner(z)
        xt, _ = target.net(z @ ut.T)
    L = geo.n_levels
    fig, axes = plt.subplots(2 * L, 8, figsize=(8 * 1.1, 2 * L * 1.15))
    for i in range(L):
        for row, xs, name in ((2 * i, xt, "target"), (2 * i + 1, xl, "learner")):
            imgs = geo.to_image(xs[i].float(), i + 1)
            lim = float(xt[i].abs().max()) + 1e-12
            for c in range(8):
                img = imgs[c].permute(1, 2, 0).numpy() / (2 * lim) + 0.5
                ax = axes[row, c]
                ax.imshow(np.clip(img if geo.colours == 3 else img[..., 0], 0, 1), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(f"{name}\n{geo.resolution(i + 1)}px", fontsize=6)
    fig.suptitle("same latent: target G*(U^T z) (upper row) vs learner G(z) (lower row), every resolution", fontsize=8)
    save(fig, out)


def _table(summary: dict) -> str:
    keys = [
        "coupled_rel_error",
        "feature_cosine_min",
        "feature_cosine_mean",
        "sliced_w2_top",
        "sliced_w2_floor_top",
        "samples_seen",
        "wall_seconds",
    ]
    final = summary["final"]
    extra = sorted(
        k
        for k in final
        if k.startswith(
            (
                "coupled_rel_error_level",
                "feature_cosine_min_level",
                "hidden_rel_error_level",
                "sliced_w2_level",
                "own_rel_error_level",
                "inherited_rel_error_level",
                "amplification_level",
                "amplification_iso_level",
                "amplification_support_level",
            )
        )
    )
    has_b = "baseline" in summary
    lines = [
        "| metric | staged (FSR algorithm) |" + (" end-to-end baseline |" if has_b else ""),
        "|---|---|" + ("---|" if has_b else ""),
    ]
    for k in keys + extra:
        v = summary[k] if k in summary else final.get(k)
        b = (
            (summary["baseline"][k] if k in summary["baseline"] else summary["baseline"]["final"].get(k))
            if has_b
            else None
        )

        def fmt(x):
            return "–" if x is None else (f"{x:.4g}" if isinstance(x, float) else str(x))

        lines.append(f"| {k} | {fmt(v)} |" + (f" {fmt(b)} |" if has_b else ""))
    return "\n".join(lines)


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.md`` and its figures into ``run_dir`` and return the report's path."""
    from ganlearn.fsr.train import build

    run_dir = Path(run_dir)
    cfg = load_json(run_dir / "config.json")
    summary = json.loads((run_dir / "summary.json").read_text())
    records = _read_jsonl(run_dir / "metrics.jsonl")
    base = _read_jsonl(run_dir / "baseline" / "metrics.jsonl")
    fig_dir = run_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    _curves(records, base, fig_dir / "curves.png")
    target, learner = build(cfg.__class__(**{**cfg.__dict__, "device": "cpu"}))
    learner.load_state_dict(load_file(str(run_dir / "learner.safetensors")))
    geo = target.geometry
    _features(
        [w.detach() for w in learner.W],
        [w.detach() for w in target.net.W],
        geo.colours,
        geo.patch,
        fig_dir / "features.png",
    )
    _samples(target, learner, cfg, fig_dir / "samples.png")
    assumptions = json.loads((run_dir / "target_assumptions.json").read_text())
    a_rows = [
        "| level | fire rate (configured) | active per patch | pair ratio mean / max | triple ratio mean / max |",
        "|---|---|---|---|---|",
    ]
    for lv, a in assumptions.items():
        a_rows.append(
            f"| {lv} | {a['fire_rate_mean']:.3f} ({a['fire_rate_configured']:.3f}) | "
            f"{a['active_per_patch']:.2f} | {a['pair_ratio_mean']:.2f} / {a['pair_ratio_max']:.2f} | "
            f"{a['triple_ratio_mean']:.2f} / {a['triple_ratio_max']:.2f} |"
        )
    assert cfg.stages is not None  # resolved in RunConfig.__post_init__
    stage_rows = ["| # | stage | steps |", "|---|---|---|"] + [
        f"| {i} | {s.kind}{' (level ' + str(s.level) + ')' if hasattr(s, 'level') else ''} | {getattr(s, 'steps', 1)} |"
        for i, s in enumerate(cfg.stages)
    ]
    resolutions = ", ".join(str(geo.resolution(lv)) + " px" for lv in range(1, geo.n_levels + 1))
    text = f"""# ganlearn report: forward super-resolution (Allen-Zhu & Li, ICLR 2023)

Run directory `{run_dir.name}`, seed {cfg.seed}, device {cfg.device}. Target: {cfg.target.levels} levels
({resolutions}), patches {geo.patch}x{geo.patch}x{geo.colours}
(d = {geo.d}), m = {cfg.target.channels} channels, k = {cfg.target.sparsity}, latent {cfg.target.latent_dim},
connection graph `{cfg.target.neighbourhood}`.

## Final metrics

`coupled_rel_error` is the theorem's quantity min_U E||G(z) - G*(U^T z)||^2 / E||G*(z)||^2 over all
resolutions (an upper bound on W2^2 relative to the target's second moment); `sliced_w2_floor_top`
is the same sliced-W2 estimator on two independent target samples of equal size.

{_table(summary)}

## Training curves

![curves](figures/curves.png)

## Output features (edge-colour atoms)

![features](figures/features.png)

## Samples at every resolution

![samples](figures/samples.png)

## Target: Assumption 2.2 (sparse, not-too-positively-correlated codes within a patch)

Ratios are Pr[both fire] / (Pr[one] Pr[other]) (1 = independent).

{chr(10).join(a_rows)}

## Stages

{chr(10).join(stage_rows)}
"""
    path = run_dir / "report.md"
    atomic_write_text(path, text)
    return path
