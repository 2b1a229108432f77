"""A sweep's report.md: what ran (cells finished, diverged, failed; times; grid and base) and the
experiment's own report of the finished cells (partial sweeps give partial reports)."""

from __future__ import annotations

import json
from pathlib import Path

from ganlearn.io import atomic_write_text
from ganlearn.sweep.spec import Experiment, cells
from ganlearn.sweep.storage import failed_ids, load_cells, only_divergence, read_history, read_spec, status

__all__ = ["write_sweep_report"]


def _listed(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def write_sweep_report(exp: Experiment, out: Path, recs: list[dict] | None = None) -> Path:
    """report.md from the finished cells ``recs`` (default: those on disk in ``out``)."""
    out = Path(out)
    spec = read_spec(out)
    all_recs = load_cells(out) if recs is None else recs
    recs = [r for r in all_recs if not only_divergence(r["result"])]
    diverged = [r["cell"] for r in all_recs if status(r["result"]) == "diverged"]
    failed = failed_ids(out)
    walls = ", ".join(
        f"{h['wall_seconds'] / 60:.1f} min ({h['ran']} cells, {h['workers']} workers)" for h in read_history(out)
    )
    finished = f"Cells finished: {len(all_recs)} of {len(cells(exp, spec))}"
    if diverged:
        finished += (
            f"; diverged: {len(diverged)} ({_listed(diverged)}: training blew up, see `status` and "
            f"`divergence` in results.csv)"
        )
    if failed:
        finished += f"; failed: {len(failed)} ({_listed(failed)})"
    times = (
        f"Total cell time: {sum(r['wall_seconds'] for r in all_recs) / 60:.1f} min"
        + (f"; wall time per invocation: {walls}" if walls else "")
        + ". "
        f"Grid: `{json.dumps(spec['grid'])}`, seeds: {spec['seeds']}. Base: `{json.dumps(spec['base'])}`."
    )
    head = [
        f"# Sweep `{exp.name}`",
        "",
        exp.doc,
        "",
        finished + ".",
        times,
        "",
        "The tidy table of every cell is `results.csv`.",
        "",
    ]
    body = exp.report(out, recs, spec) if exp.report is not None and recs else ""
    atomic_write_text(out / "report.md", "\n".join(head) + "\n" + body + "\n")
    return out / "report.md"
