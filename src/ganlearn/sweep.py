"""Sweeps: an experiment = base parameters x a grid of overrides x seeds, declared in code
(``ganlearn.experiments``). Each cell is one call ``experiment.run(params) -> dict``.

Layout of a sweep directory::

    sweep.json             the experiment name, its resolved base, grid and seeds, and provenance
    meta.json              the latest command, ganlearn version, commit, machine, total wall time
    cells/<cell>.json      one finished cell: params, result, wall seconds (written atomically);
                           a cell whose training diverged (DivergenceError) is finished with
                           result {"diverged": true, "divergence": message} and status "diverged"
    cells/<cell>.error.json  a failed cell: params, error, traceback (retried on the next run)
    results.csv            the tidy table: one row per cell, grid keys + seed + scalar results
    report.md, *.png       the experiment's report (``ganlearn report SWEEP_DIR`` rewrites it)

Re-running the same command after a crash or Ctrl-C runs only the cells without a ``.json``.
Cells run in parallel in spawned processes with one torch thread each (no oversubscription of the
cores); ``workers=1`` runs them in this process.
"""
from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import re
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ganlearn.config import ConfigError, parse_value
from ganlearn.io import RunLock, write_json
from ganlearn.provenance import provenance
from ganlearn.sweep_results import load_cells, write_sweep_meta, write_sweep_report, write_table
from ganlearn.sweep_units import _run_batch_of, _timed, _timed_unit, _units

__all__ = [
    "Experiment", "resolve_spec", "check_cells", "cells", "pairwise_design", "run_sweep", "run_each", "load_cells",
    "write_table", "write_sweep_report",
]


@dataclass(frozen=True)
class Experiment:
    """A sweep declared in code.

    Args:
        name: the CLI name (``ganlearn sweep NAME``).
        doc: one paragraph for ``ganlearn sweep --list`` and the report.
        base: parameters shared by every cell (``--set key=value`` replaces one).
        grid: key -> list of values; the cells are the cartesian product (``--set key=[..]`` replaces an axis).
        seeds: seeds per grid point by default (``--seeds N``); the cell gets ``seed`` in 0..N-1.
        run: ``run(params) -> dict`` for one cell; a top-level function (it is pickled by name).
            Scalars in the result go to results.csv; lists (curves) stay in the cell's JSON.
        report: ``report(sweep_dir, cells, spec) -> markdown`` where ``cells`` are the finished
            cell records; it may write PNGs into ``sweep_dir``.
    """
    name: str
    doc: str
    base: dict
    grid: dict
    seeds: int
    run: Callable[[dict], dict]
    report: Callable[[Path, list, dict], str] | None = None
    # design(spec) -> the grid points to run (dicts of grid key -> value), a subset of the
    # product, e.g. a covering array; None runs the full product.
    design: Callable[[dict], list] | None = None
    # check(params) builds one cell's configuration without running it and raises ConfigError
    # naming the key when a value is not allowed; every grid point is checked before any cell runs.
    check: Callable[[dict], object] | None = None
    # Replica batching: run_batch(list of params) -> list of results trains compatible cells as one
    # batched computation (each result as ``run`` would give it, up to float round-off);
    # batch_key(params) -> a hashable key, equal for cells that can share a batch (None: never).
    run_batch: Callable[[list], list] | None = None
    batch_key: Callable[[dict], object] | None = None
    # batch_limit(params) -> the most cells of this one's key worth batching (where the replicas'
    # tensors outgrow the cache, a batched step costs more than the runs one after another).
    batch_limit: Callable[[dict], int] | None = None
    # cost(params) -> a relative estimate of one cell's time: units start longest first, so that
    # the long ones do not end up alone at the tail of a sweep (None: grid order).
    cost: Callable[[dict], float] | None = None


def run_each(run: Callable[[dict], dict], params_list: list[dict]) -> list[dict]:
    """Each cell by ``run`` on its own, a divergence recorded as that cell's outcome (as the sweep
    records it): what an experiment's ``run_batch`` falls back to when one replica of its batch
    diverges, so that every cell still gets its own result."""
    return [_timed(run, p)[0] for p in params_list]


def resolve_spec(exp: Experiment, overrides: list[str] | None = None, seeds: int | None = None) -> dict:
    """The experiment's base, grid and seeds with ``KEY=VALUE`` overrides applied."""
    base, grid = dict(exp.base), {k: list(v) for k, v in exp.grid.items()}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not allowed: must be KEY=VALUE")
        key, text = item.split("=", 1)
        value = parse_value(text)
        if key in grid:
            grid[key] = value if isinstance(value, list) else [value]
            if not grid[key]:
                raise ConfigError(f"--set {key}=[] is not allowed: a grid axis needs at least one value")
        elif key in base:
            base[key] = value
        else:
            raise ConfigError(f"--set {key}=... is not allowed: {exp.name!r} has grid keys "
                              f"{sorted(grid)} and base keys {sorted(base)}")
        _check_type(exp, key, value)
    seeds = exp.seeds if seeds is None else seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds={seeds!r} is not allowed: must be an integer >= 1")
    return {"experiment": exp.name, "base": base, "grid": grid, "seeds": seeds}


def _kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "int" if isinstance(v, int) else "number"
    return {str: "string", list: "list", dict: "table"}.get(type(v), type(v).__name__)


_ALLOWED = {"int": "an integer", "number": "a finite number", "bool": "true or false", "string": "a string",
            "list": "a list", "table": "a table"}


def _check_type(exp: Experiment, key: str, value) -> None:
    """An override must have the type of the experiment's declared value(s) for ``key`` (an int
    where the experiment has ints, a number where it has floats, ...); a key declared null or as a
    string takes anything (the cell's own check decides). NaN and infinities are never allowed."""
    declared = exp.grid[key] if key in exp.grid else [exp.base[key]]
    kinds = {_kind(v) for v in declared} - {"null"}
    if kinds == {"string"}:  # a name or a sentinel such as "auto" that may stand for a number: the
        kinds = set()        # experiment's own check (check_cells) decides
    if "number" in kinds:
        kinds = (kinds - {"int"}) | {"number"}
    values = value if key in exp.grid and isinstance(value, list) else [value]
    for v in values:
        k = _kind(v)
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"--set {key}={v!r} is not allowed: must be a finite number")
        ok = not kinds or k in kinds or (k == "int" and "number" in kinds) or (k == "null" and "null" in
                                                                                {_kind(d) for d in declared})
        if not ok:
            allowed = " or ".join(sorted(_ALLOWED.get(x, x) for x in kinds))
            raise ConfigError(f"--set {key}={v!r} has the wrong type: {exp.name!r} takes {allowed} for {key!r} "
                              f"(declared: {json.dumps(exp.grid.get(key, exp.base.get(key)))})")


def check_cells(exp: Experiment, spec: dict) -> None:
    """Build every grid point's configuration with ``exp.check`` (seed 0) before anything runs, so
    a value that the experiment's settings refuse is reported up front, naming the key and the
    grid point, instead of as failed cells."""
    if exp.check is None:
        return
    seen = set()
    for cid, params in cells(spec):
        point = cid.rsplit("__seed=", 1)[0]
        if point in seen:
            continue
        seen.add(point)
        try:
            exp.check(params)
        except ConfigError as e:
            raise ConfigError(f"{e} (grid point {point}; set by --set or the experiment's grid)") from None


def _slug(value) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", json.dumps(value) if not isinstance(value, str) else value)


def cells(spec: dict) -> list[tuple[str, dict]]:
    """(cell id, params) for every grid point x seed, in a fixed order. An experiment with a
    ``design`` runs only the points it selects (the spec names the experiment)."""
    keys = list(spec["grid"])
    out = []
    points = list(itertools.product(*(spec["grid"][k] for k in keys)))
    design = _design_of(spec)
    if design is not None:
        chosen = [tuple(p[k] for k in keys) for p in design(spec)]
        points = [pt for pt in points if pt in chosen]
    for point in points:
        for seed in range(spec["seeds"]):
            params = {**spec["base"], **dict(zip(keys, point)), "seed": seed}
            cid = "__".join([f"{k}={_slug(v)}" for k, v in zip(keys, point)] + [f"seed={seed}"])
            out.append((cid, params))
    return out


def _design_of(spec: dict):
    if "experiment" not in spec:
        return None
    from ganlearn.experiments import registry

    exp = registry().get(spec["experiment"])
    return None if exp is None else exp.design


def pairwise_design(grid: dict) -> list[dict]:
    """A covering array of strength 2: grid points such that every value of every axis and every
    pair of values of every two axes occurs in at least one point. Greedy and deterministic (each
    new point covers the most uncovered pairs; ties go to the earliest point of the product)."""
    keys = list(grid)
    pairs = {(a, va, b, vb) for i, a in enumerate(keys) for b in keys[i + 1:]
             for va in map(json.dumps, grid[a]) for vb in map(json.dumps, grid[b])}
    singles = {(a, json.dumps(v)) for a in keys for v in grid[a]}
    points = list(itertools.product(*(grid[k] for k in keys)))
    chosen: list[tuple] = []

    def covers(pt):
        enc = [json.dumps(v) for v in pt]
        ps = {(keys[i], enc[i], keys[j], enc[j]) for i in range(len(keys)) for j in range(i + 1, len(keys))}
        return ps, {(keys[i], enc[i]) for i in range(len(keys))}

    while pairs or singles:
        best = max(points, key=lambda pt: (len(covers(pt)[0] & pairs), len(covers(pt)[1] & singles)))
        ps, ss = covers(best)
        pairs -= ps
        singles -= ss
        chosen.append(best)
        points.remove(best)
    return [dict(zip(keys, pt)) for pt in chosen]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_sweep(exp: Experiment, out: str | Path, *, overrides: list[str] | None = None, seeds: int | None = None,
              workers: int = 2, progress: bool = True, log: Callable[[str], None] = print, batch: int = 64,
              backend: str = "local", address: str | None = None, gpus_per_task: float = 0.0) -> dict:
    """Run every cell of ``exp`` not yet finished in ``out``; write results.csv and the report.
    Returns {"finished": n, "failed": n, "ran": n, "skipped": n}. A KeyboardInterrupt stops the
    pending cells and propagates; what finished is on disk. One sweep process per ``out`` at a
    time (:class:`~ganlearn.io.RunLock`). ``batch``: at most this many compatible cells trained as
    one replica-batched computation, where the experiment supports it (1: every cell on its own).
    ``backend="ray"``: every unit of work is a Ray task (:mod:`ganlearn.sweep_ray`) on a local Ray
    instance with ``workers`` CPUs, or on the cluster at ``address``; same files, same resume."""
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend {backend!r} is not allowed: must be local or ray")
    if address is not None and backend != "ray":
        raise ConfigError(f"--address {address!r} needs --backend ray")
    if not gpus_per_task >= 0:
        raise ConfigError(f"--gpus-per-task {gpus_per_task!r} is not allowed: must be a number >= 0")
    out = Path(out)
    spec = resolve_spec(exp, overrides, seeds)
    check_cells(exp, spec)
    with RunLock(out):
        return _run_sweep(exp, out, spec, workers, progress, log, batch,
                          ray=(address, gpus_per_task) if backend == "ray" else None)


def _run_sweep(exp: Experiment, out: Path, spec: dict, workers: int, progress: bool, log, batch: int,
               ray: tuple | None = None) -> dict:
    cell_dir = out / "cells"
    cell_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    spec_file = out / "sweep.json"
    if spec_file.exists():
        old = json.loads(spec_file.read_text())
        old.pop("ganlearn", None)  # provenance of the invocation that started the sweep
        if old != json.loads(json.dumps(spec)):
            raise ConfigError(f"--out {str(out)!r} holds a sweep with other settings ({old}); re-run with "
                              f"the same settings to finish it, or choose another --out")
    else:
        write_json(spec_file, {**spec, "ganlearn": provenance()}, indent=1)
    all_cells = cells(spec)
    todo = [(cid, p) for cid, p in all_cells if not (cell_dir / f"{cid}.json").exists()]
    stats = {"skipped": len(all_cells) - len(todo), "ran": 0, "failed": 0}
    if stats["skipped"]:
        log(f"ganlearn sweep: {stats['skipped']} of {len(all_cells)} cells already finished in {out}; "
            f"running the other {len(todo)}")

    def done(cid, params, result=None, seconds=None, error=None):
        err_file = cell_dir / f"{cid}.error.json"
        if error is None:
            write_json(cell_dir / f"{cid}.json", {"cell": cid, "params": params, "result": result,
                                                  "wall_seconds": seconds}, indent=1)
            err_file.unlink(missing_ok=True)
            stats["ran"] += 1
        else:
            write_json(err_file, {"cell": cid, "params": params, "error": error[0], "traceback": error[1]}, indent=1)
            stats["failed"] += 1
            log(f"ganlearn sweep: cell {cid} failed: {error[0]}")

    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"sweep {exp.name}", unit="cell")
    units = _units(exp, todo, batch, workers)

    def finish(unit, outcome=None, error=None):  # a unit's cells, done or failed together
        for i, (cid, params) in enumerate(unit):
            if error is None:
                done(cid, params, *outcome[i])
            else:
                done(cid, params, error=error)
        if bar is not None:
            bar.update(len(unit))

    try:
        if ray is not None and units:
            from ganlearn.sweep_ray import run_units

            run_units(units, exp, finish, workers=workers, address=ray[0], gpus_per_task=ray[1])
        elif workers <= 1:
            for unit in units:
                try:
                    outcome = _timed_unit(exp.run, _run_batch_of(exp, unit), [p for _, p in unit])
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # a failed cell is recorded; the others go on
                    finish(unit, error=(f"{type(e).__name__}: {e}", traceback.format_exc()))
                else:
                    finish(unit, outcome)
        elif units:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
                futures = {pool.submit(_timed_unit, exp.run, _run_batch_of(exp, unit), [p for _, p in unit]): unit
                           for unit in units}
                try:
                    for fut in as_completed(futures):
                        unit = futures[fut]
                        try:
                            outcome = fut.result()
                        except BrokenProcessPool as e:
                            finish(unit, error=(f"worker process died: {e}", ""))
                        except Exception as e:
                            tb = "".join(traceback.format_exception(e))
                            finish(unit, error=(f"{type(e).__name__}: {e}", tb))
                        else:
                            finish(unit, outcome)
                except KeyboardInterrupt:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        if bar is not None:
            bar.close()
        write_table(out)
    stats["finished"] = len(load_cells(out))
    with open(out / "history.jsonl", "a") as f:  # one line per invocation: wall time of the sweep itself
        f.write(json.dumps({"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t_start)),
                            "wall_seconds": round(time.time() - t_start, 1), "workers": workers,
                            "batch": batch if exp.run_batch is not None else 1,
                            "backend": "ray" if ray is not None else "local", **stats}) + "\n")
    write_sweep_report(exp, out)
    write_sweep_meta(out)
    return stats

