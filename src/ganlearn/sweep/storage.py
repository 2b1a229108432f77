"""A sweep directory on disk::

    sweep.json             the experiment name, its resolved base, grid and seeds, and provenance
    meta.json              the latest command, ganlearn version, commit, machine, total wall time
    cells/<cell>.json      one finished cell: params, result, wall seconds (written atomically);
                           a cell whose training diverged is finished with result
                           {"diverged": true, "divergence": message} and status "diverged"
    cells/<cell>.error.json  a failed cell: params, error, traceback (retried on the next run)
    history.jsonl          one line per invocation that ran cells: wall time, workers, counts
    results.csv            the tidy table: one row per cell, grid keys + seed + scalar results

Everything here reads the directory alone (no experiment needed): the cells on disk are listed in
the order of the grid's product, which holds every design's points in the order they run.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from ganlearn.config import ConfigError
from ganlearn.io import append_jsonl, atomic_write_text, read_jsonl, write_json, write_meta
from ganlearn.provenance import command_line, provenance
from ganlearn.sweep.spec import grid_cells

__all__ = [
    "open_sweep",
    "read_spec",
    "finished_ids",
    "record_cell",
    "record_failure",
    "load_cells",
    "status",
    "only_divergence",
    "failed_ids",
    "read_history",
    "append_history",
    "write_table",
    "write_sweep_meta",
    "note_rendering",
]


def read_spec(out: Path) -> dict:
    """The spec of the sweep in ``out`` (without the provenance of the invocation that started it)."""
    spec = json.loads((Path(out) / "sweep.json").read_text())
    spec.pop("ganlearn", None)
    return spec


def open_sweep(out: Path, spec: dict) -> None:
    """Start the sweep directory ``out`` for ``spec``, or check that the one there is the same
    sweep (then it is resumed)."""
    out = Path(out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    if (out / "sweep.json").exists():
        old = read_spec(out)
        if old != json.loads(json.dumps(spec)):
            raise ConfigError(
                f"--out {str(out)!r} holds a sweep with other settings ({old}); re-run with "
                f"the same settings to finish it, or choose another --out"
            )
    else:
        write_json(out / "sweep.json", {**spec, "ganlearn": provenance()}, indent=1)


def finished_ids(out: Path) -> set[str]:
    return {p.name[: -len(".json")] for p in (Path(out) / "cells").glob("*.json") if not p.name.endswith(".error.json")}


def failed_ids(out: Path) -> list[str]:
    return sorted(p.name[: -len(".error.json")] for p in (Path(out) / "cells").glob("*.error.json"))


def record_cell(out: Path, cid: str, params: dict, result: dict, seconds: float) -> None:
    """A finished cell (its earlier failure, if any, removed)."""
    cell_dir = Path(out) / "cells"
    write_json(
        cell_dir / f"{cid}.json", {"cell": cid, "params": params, "result": result, "wall_seconds": seconds}, indent=1
    )
    (cell_dir / f"{cid}.error.json").unlink(missing_ok=True)


def record_failure(out: Path, cid: str, params: dict, error: str, tb: str) -> None:
    write_json(
        Path(out) / "cells" / f"{cid}.error.json",
        {"cell": cid, "params": params, "error": error, "traceback": tb},
        indent=1,
    )


def status(result: dict) -> str:
    """ "diverged" for a cell whose training blew up (it raised DivergenceError: the sweep recorded
    ``diverged: true``), else "ok"."""
    return "diverged" if result.get("diverged") is True else "ok"


def only_divergence(result: dict) -> bool:
    """A cell that raised DivergenceError has no other results: an experiment's report skips it."""
    return set(result) == {"diverged", "divergence"}


def load_cells(out: Path) -> list[dict]:
    """Finished cell records, in the sweep's cell order."""
    out = Path(out)
    recs = []
    for cid, _ in grid_cells(read_spec(out)):
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
    spec = read_spec(out)
    rows = []
    for cid, params in grid_cells(spec):
        row = {"cell": cid, **{k: params[k] for k in spec["grid"]}, "seed": params["seed"]}
        f, ef = out / "cells" / f"{cid}.json", out / "cells" / f"{cid}.error.json"
        if f.exists():
            rec = json.loads(f.read_text())
            row.update(status=status(rec["result"]), wall_seconds=rec["wall_seconds"])
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


def read_history(out: Path) -> list[dict]:
    path = Path(out) / "history.jsonl"
    return read_jsonl(path) if path.exists() else []


def append_history(out: Path, started: float, **fields) -> None:
    """One line per invocation: when it started, its wall time and what it ran."""
    append_jsonl(
        Path(out) / "history.jsonl",
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "wall_seconds": round(time.time() - started, 1),
            **fields,
        },
    )


def write_sweep_meta(out: Path, recs: list[dict] | None = None) -> None:
    """meta.json: the command and provenance of the latest invocation, the wall time summed over
    every invocation that ran cells (history.jsonl), and the cells' own time."""
    history = read_history(out)
    recs = load_cells(out) if recs is None else recs
    write_meta(
        out,
        wall_seconds=sum(h["wall_seconds"] for h in history),
        extra={
            "invocations": len(history),
            "cells_finished": len(recs),
            "cell_seconds": round(sum(r["wall_seconds"] or 0 for r in recs), 1),
        },
    )


def note_rendering(out: Path) -> None:
    """Record in meta.json (if there is one) that report.md and its figures were re-rendered from
    the cells by this command and commit: the numbers are the cells', the presentation this code's."""
    path = Path(out) / "meta.json"
    if path.exists():
        meta = json.loads(path.read_text())
        meta["report_rendered"] = {"command": command_line(), **provenance()}
        write_json(path, meta, indent=1)
