"""Sweep results: the finished cells, the tidy table (results.csv) and the report (report.md).

Split from :mod:`ganlearn.sweep` (which runs the cells) so that each file stays small; both are
re-exported there.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typing import TYPE_CHECKING

from ganlearn.io import atomic_write_text
from ganlearn.provenance import write_meta

if TYPE_CHECKING:
    from ganlearn.sweep import Experiment


def cells(spec: dict) -> list:
    from ganlearn.sweep import cells as _cells  # (ganlearn.sweep imports this module)

    return _cells(spec)

__all__ = ["load_cells", "write_table", "write_sweep_report", "write_sweep_meta", "note_rendering"]


def _status(result: dict) -> str:
    """"diverged" for a cell whose training blew up (raised DivergenceError, or a result that says
    ``diverged: true`` itself, as the overparameterized GDA does for its fixed-step control)."""
    return "diverged" if result.get("diverged") is True else "ok"


def _only_divergence(result: dict) -> bool:
    """A cell that raised DivergenceError has no other results: the experiment's report skips it."""
    return set(result) == {"diverged", "divergence"}



def load_cells(out: Path) -> list[dict]:
    """Finished cell records, in the sweep's cell order."""
    out = Path(out)
    spec = json.loads((out / "sweep.json").read_text())
    recs = []
    for cid, _ in cells(spec):
        f = out / "cells" / f"{cid}.json"
        if f.exists():
            recs.append(json.loads(f.read_text()))
    return recs


def _scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def write_table(out: Path) -> Path:
    """results.csv: one row per cell (finished or failed) with the grid keys, seed and every
    scalar of the result; failed cells have status=failed and the error."""
    out = Path(out)
    spec = json.loads((out / "sweep.json").read_text())
    rows = []
    for cid, params in cells(spec):
        row = {"cell": cid, **{k: params[k] for k in spec["grid"]}, "seed": params["seed"]}
        f, ef = out / "cells" / f"{cid}.json", out / "cells" / f"{cid}.error.json"
        if f.exists():
            rec = json.loads(f.read_text())
            row.update(status=_status(rec["result"]), wall_seconds=rec["wall_seconds"])
            row.update({k: v for k, v in rec["result"].items() if _scalar(v)})
        elif ef.exists():
            row.update(status="failed", error=json.loads(ef.read_text())["error"])
        else:
            continue
        rows.append({k: (json.dumps(v) if isinstance(v, list) else v) for k, v in row.items()})
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "results.csv", buf.getvalue())
    return out / "results.csv"


def write_sweep_report(exp: Experiment, out: Path) -> Path:
    """report.md from the finished cells (partial sweeps give partial reports)."""
    out = Path(out)
    spec = json.loads((out / "sweep.json").read_text())
    all_recs = load_cells(out)
    recs = [r for r in all_recs if not _only_divergence(r["result"])]
    diverged = [r["cell"] for r in all_recs if _status(r["result"]) == "diverged"]
    n_cells = len(cells(spec))
    failed = sorted(p.name[:-len(".error.json")] for p in (out / "cells").glob("*.error.json"))
    history = [json.loads(ln) for ln in (out / "history.jsonl").read_text().splitlines()] \
        if (out / "history.jsonl").exists() else []
    walls = ", ".join(f"{h['wall_seconds'] / 60:.1f} min ({h['ran']} cells, {h['workers']} workers)" for h in history)
    head = [f"# Sweep `{exp.name}`", "", exp.doc, "",
            f"Cells finished: {len(all_recs)} of {n_cells}"
            + (f"; diverged: {len(diverged)} ({', '.join(diverged[:5])}{', ...' if len(diverged) > 5 else ''}: "
               f"training blew up, see `status` and `divergence` in results.csv)"
               if diverged else "")
            + (f"; failed: {len(failed)} ({', '.join(failed[:5])})" if failed else "") + ".",
            f"Total cell time: {sum(r['wall_seconds'] for r in all_recs) / 60:.1f} min"
            + (f"; wall time per invocation: {walls}" if walls else "") + ". "
            f"Grid: `{json.dumps(spec['grid'])}`, seeds: {spec['seeds']}. Base: `{json.dumps(spec['base'])}`.",
            "", "The tidy table of every cell is `results.csv`.", ""]
    body = exp.report(out, recs, spec) if exp.report is not None and recs else ""
    atomic_write_text(out / "report.md", "\n".join(head) + "\n" + body + "\n")
    return out / "report.md"


def write_sweep_meta(out: Path) -> None:
    """meta.json: the command and provenance of the latest invocation, the wall time summed over
    every invocation that ran cells (history.jsonl), and the cells' own time."""
    history = [json.loads(ln) for ln in (out / "history.jsonl").read_text().splitlines() if ln.strip()]
    recs = load_cells(out)
    write_meta(out, wall_seconds=sum(h["wall_seconds"] for h in history),
               extra={"invocations": len(history), "cells_finished": len(recs),
                      "cell_seconds": round(sum(r["wall_seconds"] or 0 for r in recs), 1)})


def note_rendering(out: Path) -> None:
    """Record in meta.json (if there is one) that report.md and its figures were re-rendered from
    the cells by this command and commit: the numbers are the cells', the presentation this code's."""
    from ganlearn.io import write_json
    from ganlearn.provenance import command_line, provenance

    path = Path(out) / "meta.json"
    if path.exists():
        meta = json.loads(path.read_text())
        meta["report_rendered"] = {"command": command_line(), **provenance()}
        write_json(path, meta, indent=1)
