"""The sweep runner: resolve and check the spec, open (or resume) the sweep directory, plan the
units of the cells not yet finished, run them on a backend, record each cell as its unit ends,
then write the table, the report and meta.json.

Re-running the same command after a crash or Ctrl-C runs only the cells without a ``.json``.
"""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from ganlearn.config import ConfigError
from ganlearn.io import RunLock
from ganlearn.sweep.backends import Failure, make_backend
from ganlearn.sweep.report import write_sweep_report
from ganlearn.sweep.spec import Experiment, cells, check_cells, resolve_spec
from ganlearn.sweep.storage import (
    append_history,
    finished_ids,
    load_cells,
    open_sweep,
    record_cell,
    record_failure,
    write_sweep_meta,
    write_table,
)
from ganlearn.sweep.units import plan_units

__all__ = ["run_sweep"]


def _check_options(
    backend: str,
    address: str | None,
    gpus_per_task: float,
    cpus_per_task: float,
    workers: int,
    batch: int,
    max_failures: int | None,
) -> None:
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend {backend!r} is not allowed: must be local or ray")
    for flag, value, default in (
        ("--address", address, None),
        ("--gpus-per-task", gpus_per_task, 0.0),
        ("--cpus-per-task", cpus_per_task, 1.0),
    ):
        if value != default and backend != "ray":
            raise ConfigError(f"{flag} {value!r} needs --backend ray")
    if isinstance(gpus_per_task, bool) or not isinstance(gpus_per_task, (int, float)) or not gpus_per_task >= 0:
        raise ConfigError(f"--gpus-per-task {gpus_per_task!r} is not allowed: must be a number >= 0")
    if isinstance(cpus_per_task, bool) or not isinstance(cpus_per_task, (int, float)) or not cpus_per_task > 0:
        raise ConfigError(f"--cpus-per-task {cpus_per_task!r} is not allowed: must be a number > 0")
    if max_failures is not None and (
        isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 1
    ):
        raise ConfigError(f"--max-failures {max_failures!r} is not allowed: must be an integer >= 1")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers {workers!r} is not allowed: must be an integer >= 1")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"--batch {batch!r} is not allowed: must be an integer >= 1")


def run_sweep(
    exp: Experiment,
    out: str | Path,
    *,
    overrides: list[str] | None = None,
    seeds: int | None = None,
    workers: int = 2,
    progress: bool = True,
    log: Callable[[str], None] = print,
    batch: int = 64,
    backend: str = "local",
    address: str | None = None,
    gpus_per_task: float = 0.0,
    cpus_per_task: float = 1.0,
    max_failures: int | None = None,
) -> dict:
    """Run every cell of ``exp`` not yet finished in ``out``; write results.csv and the report.
    Returns {"finished": n, "failed": n, "ran": n, "skipped": n, "stopped": bool}: ``stopped`` when
    ``max_failures`` cells failed in this invocation and the rest were not run (a re-run goes on
    from there, failed cells included). A KeyboardInterrupt stops the
    pending cells and propagates; what finished is on disk. One sweep process per ``out`` at a
    time (:class:`~ganlearn.io.RunLock`). ``batch``: at most this many compatible cells trained as
    one replica-batched computation, where the experiment supports it (1: every cell on its own).
    ``backend="ray"``: every unit of work is a Ray task on a local Ray instance with ``workers``
    CPUs, or on the cluster at ``address`` (default ``$RAY_ADDRESS``), each asking for ``cpus_per_task``
    CPUs and ``gpus_per_task`` GPUs; same files, same resume (:class:`~ganlearn.sweep.backends.Ray`)."""
    _check_options(backend, address, gpus_per_task, cpus_per_task, workers, batch, max_failures)
    out = Path(out)
    spec = resolve_spec(exp, overrides, seeds)
    check_cells(exp, spec)
    with RunLock(out):
        t_start = time.time()
        open_sweep(out, spec)
        all_cells = cells(exp, spec)
        done = finished_ids(out)
        todo = [(cid, p) for cid, p in all_cells if cid not in done]
        stats = {"skipped": len(all_cells) - len(todo), "ran": 0, "failed": 0, "stopped": False}
        if stats["skipped"]:
            log(
                f"ganlearn sweep: {stats['skipped']} of {len(all_cells)} cells already finished in {out}; "
                f"running the other {len(todo)}"
            )
        units = plan_units(exp, todo, batch, workers)
        bar = tqdm(total=len(todo), desc=f"sweep {exp.name}", unit="cell") if progress and todo else None
        runner = make_backend(
            backend, workers, address, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task, storage=out
        )
        try:
            with closing(runner.run(exp, units)) as outcomes:  # closing it cancels what is still pending
                _record(outcomes, out, stats, bar, log, max_failures)
        finally:
            if bar is not None:
                bar.close()
            write_table(out)
        recs = load_cells(out)
        stats["finished"] = len(recs)
        append_history(
            out, t_start, workers=workers, batch=batch if exp.run_batch is not None else 1, backend=backend, **stats
        )
        write_sweep_report(exp, out, recs)
        write_sweep_meta(out, recs)
    return stats


def _record(outcomes, out: Path, stats: dict, bar, log: Callable[[str], None], max_failures: int | None) -> None:
    """Record each unit's cells as the unit ends; stop after ``max_failures`` failed cells."""
    for unit, outcome in outcomes:
        for i, (cid, params) in enumerate(unit.cells):  # a unit's cells are done or failed together
            if isinstance(outcome, Failure):
                record_failure(out, cid, params, outcome.error, outcome.traceback)
                stats["failed"] += 1
                log(f"ganlearn sweep: cell {cid} failed: {outcome.error}")
            else:
                record_cell(out, cid, params, *outcome[i])
                stats["ran"] += 1
        if bar is not None:
            bar.update(len(unit))
        if max_failures is not None and stats["failed"] >= max_failures:
            stats["stopped"] = True
            log(
                f"ganlearn sweep: {stats['failed']} cells failed (--max-failures {max_failures}): stopping; "
                f"the cells not run are left for a re-run"
            )
            return
