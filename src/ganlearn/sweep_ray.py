"""The Ray backend of the sweep runner (``ganlearn sweep EXP --backend ray [--address ADDR]``):
the same units of work as the local backend -- one cell, or a replica batch of compatible cells
-- each run as one Ray task, on a local Ray instance or the cluster at ``address``. Results come
back to the driver, which writes the same ``cells/`` files, so a stopped sweep resumes the same
way whichever backend ran it. Ray is an optional extra: ``pip install 'ganlearn[ray]'``.

Each task asks Ray for ``cpus_per_task`` CPUs (and ``gpus_per_task`` GPUs, a fraction allowed)
and runs torch with that many threads. A failing cell is recorded as failed (``.error.json``)
and the others go on; Ray does not retry a task (``max_retries=0``): a cell that raised would
raise again.
"""
from __future__ import annotations

import traceback
from typing import Callable

from ganlearn.errors import UserError
from ganlearn.sweep_units import _run_batch_of, _timed_unit

__all__ = ["run_units"]


def _unit(run, run_batch, params_list: list, threads: int) -> list:
    import torch

    torch.set_num_threads(max(1, threads))
    return _timed_unit(run, run_batch, params_list)


def run_units(units: list[list], exp, finish: Callable, *, workers: int, address: str | None = None,
              cpus_per_task: float = 1.0, gpus_per_task: float = 0.0) -> None:
    """Run ``units`` as Ray tasks; ``finish(unit, outcome)`` or ``finish(unit, error=(msg, tb))``
    as each completes. Starts a local Ray instance with ``workers`` CPUs when ``address`` is None
    (and shuts it down at the end), else connects to the cluster at ``address``."""
    try:
        import ray
    except ImportError as e:
        raise UserError("--backend ray needs Ray: pip install 'ganlearn[ray]'") from e
    started = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False}
        ray.init(address=address, **kwargs) if address else ray.init(num_cpus=workers, **kwargs)
        started = True
    try:
        task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)(_unit)
        threads = max(1, int(cpus_per_task))
        pending = {task.remote(exp.run, _run_batch_of(exp, unit), [p for _, p in unit], threads): unit
                   for unit in units}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    unit = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:
                        cause = e.cause if getattr(e, "cause", None) is not None else e
                        finish(unit, error=(f"{type(cause).__name__}: {cause}", str(e)))
                    except ray.exceptions.RayError as e:  # a worker died, a node was lost, ...
                        finish(unit, error=(f"{type(e).__name__}: {e}", traceback.format_exc()))
                    else:
                        finish(unit, outcome)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()
