"""``fsr-shapes``: the staged forward-super-resolution algorithm on targets of many shapes.

Axes (Allen-Zhu & Li §2.1 leave all of them free): the number of levels L, the patch side p
(d = 3p^2), shared or per-patch output layers W*_{l,j}, the connection graph P(l, j) (the parent
only, the parent and its 4-neighbours, its 3x3 neighbourhood) and the sparsity k (each channel
fires with probability k/m; m = 16). Everything else is the ``default`` preset, and the stage
list is derived from the target (one GAN_ForwardSuperResolution stage per level >= 2).

The full product is 72 cells. By default (``design="pairwise"``) the sweep runs a covering array
of strength 2 (:func:`ganlearn.sweep.pairwise_design`): every value of every axis and every pair of
values of any two axes occurs in at least one cell -- 11 cells for the default grid.
``--set design=full`` runs the product; ``--set max_steps=N`` cuts every stage to N steps (a
quick look, not a result); ``--set preset=tiny`` starts from the tiny preset instead.

Each cell trains in a child process, so its peak resident memory (``peak_rss_gb``) is that
cell's alone. Reported per cell: the coupled error (all levels and per level), worst and mean
feature cosine per level, sliced W2 per level against its floor (two target samples), the
target's Assumption 2.2 statistics, the levels the stage list trains, wall time and peak memory.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import torch

from ganlearn.config import from_dict, setting
from ganlearn.fsr.config import resolve, untrained_levels
from ganlearn.fsr.memory import check_budget
from ganlearn.fsr.train import train
from ganlearn.plots import md_table, plt, save
from ganlearn.sweep import Experiment, pairwise_design

SPARSITY_NAMES = {2.0: "k=2 (1/8 fire)", 4.0: "k=4 (1/4 fire)"}


def overrides(params: dict) -> list[str]:
    return [
        f"target.levels={params['levels']}",
        f"target.patch={params['patch']}",
        f"target.shared_output={json.dumps(params['shared_output'])}",
        f"target.neighbourhood={json.dumps(params['neighbourhood'])}",
        f"target.sparsity={params['sparsity']}",
        "baseline.enabled=false",
        f"seed={params['seed']}",
    ] + list(params.get("set", []))


@dataclass(frozen=True)
class ShapeCell:
    """One cell: the target's shape (the grid axes, ``TargetConfig``'s fields, checked by the run's
    configuration) on a preset; how the sweep runs it."""

    levels: int = 3
    patch: int = 4
    shared_output: bool = True
    neighbourhood: str = "cross"
    sparsity: float = 2.0
    preset: str = "default"
    design: Literal["pairwise", "full"] = "pairwise"
    threads: int = setting(1, ge=1)  # torch threads of the cell's child process
    max_steps: Optional[int] = setting(None, ge=1, allowed="null (the stages' own) or an integer >= 1")
    set: list[str] = dataclasses.field(default_factory=list)  # further key=value overrides of the run
    seed: int = setting(0, ge=0)


def config(params: dict):
    """One cell's ``RunConfig``, without training (the sweep's ``check``)."""
    from_dict(ShapeCell, params)
    cfg = resolve(params.get("preset", "default"), None, overrides(params))
    check_budget(cfg)  # a cell predicted above this machine's memory is refused before any runs
    return cfg


def _train_cell(params: dict, out_file: str) -> None:
    """Child-process body: train one cell and write its result JSON (with this process's peak RSS)."""
    torch.set_num_threads(int(params.get("threads", 1)))
    cfg = resolve(params.get("preset", "default"), None, overrides(params))
    if params.get("max_steps") is not None:  # a quick look: every stage cut to at most this many steps
        cap = int(params["max_steps"])
        assert cfg.stages is not None  # resolved in RunConfig.__post_init__
        cfg = dataclasses.replace(
            cfg,
            stages=[dataclasses.replace(s, steps=min(s.steps, cap)) if hasattr(s, "steps") else s for s in cfg.stages],
        )
    with tempfile.TemporaryDirectory(prefix="ganlearn-shape-cell-") as tmp:
        s = train(cfg, Path(tmp), progress=False)
        assumptions = json.loads((Path(tmp) / "target_assumptions.json").read_text())
    L = cfg.target.levels
    fin = s["final"]
    res: dict[str, Any] = {
        k: s[k]
        for k in (
            "coupled_rel_error",
            "feature_cosine_min",
            "feature_cosine_mean",
            "sliced_w2_top",
            "sliced_w2_floor_top",
            "samples_seen",
            "wall_seconds",
        )
    }
    assert cfg.stages is not None  # resolved in RunConfig.__post_init__
    untrained = untrained_levels(cfg.stages, L)
    res["levels_trained"] = [lv for lv in range(1, L + 1) if lv not in untrained]
    res["n_levels_trained"] = len(res["levels_trained"])
    res["n_stages"] = len(cfg.stages)
    for lv in range(1, L + 1):
        for key in ("coupled_rel_error", "feature_cosine_min", "feature_cosine_mean", "sliced_w2", "sliced_w2_floor"):
            res[f"{key}_level{lv}"] = fin[f"{key}_level{lv}"]
        a = assumptions[f"level{lv}"]
        for key in ("fire_rate_mean", "pair_ratio_mean", "pair_ratio_max", "triple_ratio_max"):
            res[f"target_{key}_level{lv}"] = a[key]
    res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux
    Path(out_file).write_text(json.dumps(res))


def run(params: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="ganlearn-shape-") as tmp:
        out = Path(tmp) / "result.json"
        code = (
            "import json, sys; from ganlearn.experiments.fsr_shapes import _train_cell; "
            "_train_cell(json.loads(sys.argv[1]), sys.argv[2])"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, json.dumps(params), str(out)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cell process exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        return json.loads(out.read_text())


def design(spec: dict) -> list[dict]:
    grid = spec["grid"]
    if spec["base"].get("design", "pairwise") == "full":
        return [dict(zip(grid, pt)) for pt in itertools.product(*grid.values())]
    return pairwise_design(grid)


def report(out: Path, cells: list[dict], spec: dict) -> str:
    rows = []
    for c in sorted(cells, key=lambda c: (c["params"]["levels"], c["params"]["patch"])):
        p, r = c["params"], c["result"]
        L = p["levels"]
        rows.append(
            [
                L,
                p["patch"],
                "shared" if p["shared_output"] else "per-patch",
                p["neighbourhood"],
                SPARSITY_NAMES.get(float(p["sparsity"]), p["sparsity"]),
                f"{len(r['levels_trained'])}/{L}",
                r["coupled_rel_error"],
                " / ".join(f"{r[f'coupled_rel_error_level{lv}']:.3f}" for lv in range(1, L + 1)),
                r["feature_cosine_min"],
                " / ".join(
                    f"{r[f'sliced_w2_level{lv}']:.3f} ({r[f'sliced_w2_floor_level{lv}']:.3f})" for lv in range(1, L + 1)
                ),
                f"{r[f'target_pair_ratio_mean_level{L}']:.2f} / {r[f'target_pair_ratio_max_level{L}']:.1f}",
                r["wall_seconds"] / 60,
                r["peak_rss_gb"],
            ]
        )
    n = len(cells)
    ok_cos = sum(c["result"]["feature_cosine_min"] >= 0.95 for c in cells)
    ok_err = sum(c["result"]["coupled_rel_error"] <= 0.1 for c in cells)
    all_trained = all(len(c["result"]["levels_trained"]) == c["params"]["levels"] for c in cells)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for c in cells:
        p, r = c["params"], c["result"]
        ys = [r[f"coupled_rel_error_level{lv}"] for lv in range(1, p["levels"] + 1)]
        ax.plot(
            range(1, p["levels"] + 1),
            ys,
            "o-" if p["shared_output"] else "s--",
            alpha=0.8,
            label=f"L{p['levels']} p{p['patch']} {'sh' if p['shared_output'] else 'pp'} "
            f"{p['neighbourhood'][:3]} k{p['sparsity']:g}",
        )
    ax.axhline(0.1, color="gray", ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("level")
    ax.set_ylabel("coupled error of the level")
    ax.set_xticks([1, 2, 3, 4])
    ax.legend(fontsize=6, bbox_to_anchor=(1.02, 1), loc="upper left")
    return "\n".join(
        [
            f"![coupled error per level, every cell]({save(fig, out / 'fsr_shapes.png')})",
            "",
            f"Every level trained in every cell: **{'yes' if all_trained else 'NO'}**. "
            f"Cells with worst feature cosine ≥ 0.95: **{ok_cos} of {n}**; "
            f"with coupled error ≤ 0.1: **{ok_err} of {n}**.",
            "",
            md_table(
                [
                    "L",
                    "patch",
                    "W*",
                    "graph P",
                    "sparsity",
                    "levels trained",
                    "coupled error",
                    "per level",
                    "worst feature cos",
                    "sliced W2 per level (floor)",
                    "target pair ratio mean / max (top level)",
                    "wall min",
                    "peak GB",
                ],
                rows,
            ),
            "",
        ]
    )


EXPERIMENT = Experiment(
    name="fsr-shapes",
    doc=(
        "Forward super-resolution (Allen-Zhu & Li) on targets of many shapes: levels x patch x shared or "
        "per-patch W* x connection graph x sparsity; a pairwise covering design by default "
        "(`--set design=full` for the 72-cell product)."
    ),
    base={"preset": "default", "design": "pairwise", "threads": 1, "max_steps": None, "set": []},
    grid={
        "levels": [2, 3, 4],
        "patch": [3, 4],
        "shared_output": [True, False],
        "neighbourhood": ["parent", "cross", "square"],
        "sparsity": [2.0, 4.0],
    },
    seeds=1,
    run=run,
    params=ShapeCell,
    report=report,
    design=design,
    check=config,
)
