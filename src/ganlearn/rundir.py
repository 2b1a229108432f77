"""The run directory of a single run, the same files for every problem::

    config.json     {"problem": NAME, ...the configuration..., "ganlearn": provenance}
    metrics.jsonl   one record per evaluation (the curve)
    summary.json    the final scalars (written last: a run without it has not finished)
    report.md, *.png

This module writes it for the problems whose runs take seconds to minutes and keep no
checkpoints (one-layer, overparameterized): resuming a run that has no ``summary.json`` runs it
again from the start, which gives the same numbers (every random draw comes from the run's seed).
The FSR and image trainers write the same three files themselves, with mid-run checkpoints.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from ganlearn.config import ConfigError, to_dict
from ganlearn.io import RunLock, atomic_write_text, read_jsonl, write_json
from ganlearn.plots import md_table, plt, save
from ganlearn.provenance import provenance

__all__ = ["run_in_dir", "read_config", "problem_of", "write_simple_report", "scalars"]


def read_config(run_dir: Path) -> dict:
    """config.json of ``run_dir`` without its provenance (ConfigError if there is none)."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise ConfigError(f"RUN_DIR {str(run_dir)!r} has no config.json: not a ganlearn run directory")
    d = json.loads(path.read_text())
    d.pop("ganlearn", None)
    return d


def problem_of(run_dir: Path) -> str:
    """Which problem's run ``run_dir`` holds: its config's ``problem``; an image run's config.json
    holds ``data_shape``, an FSR run's neither."""
    d = read_config(run_dir)
    return d.get("problem") or ("images" if "data_shape" in d else "fsr")


def scalars(d: dict) -> dict:
    """The scalar entries of a result (numbers, strings, booleans, null), in order."""
    return {k: v for k, v in d.items() if v is None or isinstance(v, (bool, int, float, str))}


def run_in_dir(run_dir: str | Path, problem: str, cfg: Any, run: Callable[[], tuple[dict, list[dict]]]) -> dict:
    """Run ``run() -> (summary, metrics records)`` into ``run_dir``, or return the summary of the
    finished run there. A directory holding another configuration is refused, naming the keys."""
    run_dir = Path(run_dir)
    with RunLock(run_dir):
        cfg_path = run_dir / "config.json"
        want = {"problem": problem, **to_dict(cfg)}
        if cfg_path.exists():
            have = read_config(run_dir)
            if have != json.loads(json.dumps(want)):
                diff = sorted(k for k in set(have) | set(want) if have.get(k) != json.loads(json.dumps(want)).get(k))
                raise ConfigError(
                    f"--out {str(run_dir)!r} holds a run with another configuration (keys {diff}); choose another --out"
                )
            if (run_dir / "summary.json").exists():
                return json.loads((run_dir / "summary.json").read_text())
        else:
            write_json(cfg_path, {**want, "ganlearn": provenance()})
        summary, records = run()
        atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        write_json(run_dir / "summary.json", summary)
    return summary


def write_simple_report(
    run_dir: str | Path, title: str, x: str, ys: list[str], *, logx: bool = False, logy: bool = True
) -> Path:
    """report.md: the summary's scalars as a table and metrics.jsonl's ``ys`` against ``x``."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    records = read_jsonl(run_dir / "metrics.jsonl")
    fig, axes = plt.subplots(1, len(ys), figsize=(4.6 * len(ys), 3.6), squeeze=False)
    for ax, y in zip(axes[0], ys):
        pts = [(r[x], r[y]) for r in records if r.get(y) is not None and math.isfinite(r[y])]
        if pts:
            ax.plot(*zip(*pts), "-")
        ax.set_xlabel(x)
        ax.set_title(y)
        if logx and pts and min(p[0] for p in pts) > 0:
            ax.set_xscale("log")
        if logy and pts and min(p[1] for p in pts) > 0:
            ax.set_yscale("log")
    cfg = read_config(run_dir)
    rows = [[k, v] for k, v in scalars(summary).items()]
    text = "\n".join(
        [
            f"# {title}",
            "",
            f"Configuration: `{json.dumps(cfg)}`",
            "",
            f"![curves]({save(fig, run_dir / 'curves.png')})",
            "",
            md_table(["result", "value"], rows),
            "",
        ]
    )
    atomic_write_text(run_dir / "report.md", text)
    return run_dir / "report.md"
