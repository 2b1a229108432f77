"""Where units of work run, behind one small interface: ``backend.run(exp, units)`` yields
``(unit, outcome)`` as each unit ends, the outcome being ``[(result, seconds)]`` per cell
(:func:`ganlearn.sweep.units.run_unit`) or a :class:`Failure`. The runner records both the same
way whichever backend ran them.

* :class:`Serial` -- in this process, one unit after the other (``--workers 1``).
* :class:`ProcessPool` -- spawned processes with one torch thread each (no oversubscription).
* :class:`Ray` -- one Ray task per unit, on a local Ray instance or the cluster at ``address``
  (``pip install 'ganlearn[ray]'``; imported only when used). Each task asks Ray for
  ``cpus_per_task`` CPUs and ``gpus_per_task`` GPUs (a fraction allowed) and runs torch with that
  many threads. Ray does not retry a task (``max_retries=0``): a cell that raised would raise again.
"""
from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import torch

from ganlearn.errors import UserError
from ganlearn.sweep.spec import Experiment
from ganlearn.sweep.units import Unit, run_unit

__all__ = ["Failure", "Serial", "ProcessPool", "Ray", "make_backend"]


@dataclass(frozen=True)
class Failure:
    """A unit that raised (or whose worker died): the one-line error and the traceback."""
    error: str
    traceback: str = ""

    @classmethod
    def of(cls, e: BaseException) -> Failure:
        return cls(f"{type(e).__name__}: {e}", "".join(traceback.format_exception(e)))


def _args(exp: Experiment, unit: Unit) -> tuple:
    return exp.run, exp.run_batch if unit.batched else None, unit.params


class Serial:
    """Each unit in this process, in order."""

    def run(self, exp: Experiment, units: list[Unit]) -> Iterator[tuple[Unit, list | Failure]]:
        for unit in units:
            try:
                outcome = run_unit(*_args(exp, unit))
            except Exception as e:  # a failed cell is recorded; the others go on
                yield unit, Failure.of(e)
            else:
                yield unit, outcome


def _init_worker() -> None:
    torch.set_num_threads(1)


class ProcessPool:
    """Units in ``workers`` spawned processes (one torch thread each)."""

    def __init__(self, workers: int):
        self.workers = workers

    def run(self, exp: Experiment, units: list[Unit]) -> Iterator[tuple[Unit, list | Failure]]:
        if not units:
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker) as pool:
            futures = {pool.submit(run_unit, *_args(exp, unit)): unit for unit in units}
            try:
                for fut in as_completed(futures):
                    try:
                        outcome = fut.result()
                    except BrokenProcessPool as e:
                        yield futures[fut], Failure(f"worker process died: {e}")
                    except Exception as e:
                        yield futures[fut], Failure.of(e)
                    else:
                        yield futures[fut], outcome
            except (KeyboardInterrupt, GeneratorExit):
                pool.shutdown(wait=False, cancel_futures=True)
                raise


def _ray_unit(run, run_batch, params_list: list, threads: int) -> list:
    torch.set_num_threads(max(1, threads))
    return run_unit(run, run_batch, params_list)


class Ray:
    """One Ray task per unit; starts a local Ray instance with ``workers`` CPUs when ``address``
    is None and none is running (and shuts it down at the end), else connects to ``address``."""

    def __init__(self, workers: int, address: str | None = None, cpus_per_task: float = 1.0,
                 gpus_per_task: float = 0.0):
        self.workers, self.address = workers, address
        self.cpus_per_task, self.gpus_per_task = cpus_per_task, gpus_per_task

    def run(self, exp: Experiment, units: list[Unit]) -> Iterator[tuple[Unit, list | Failure]]:
        if not units:
            return
        try:
            import ray  # optional extra: imported only when this backend runs
        except ImportError as e:
            raise UserError("--backend ray needs Ray: pip install 'ganlearn[ray]'") from e
        started = not ray.is_initialized()
        if started:
            kwargs = {"include_dashboard": False, "log_to_driver": False}
            ray.init(address=self.address, **kwargs) if self.address else ray.init(num_cpus=self.workers, **kwargs)
        try:
            task = ray.remote(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=0)(_ray_unit)
            threads = max(1, int(self.cpus_per_task))
            pending = {task.remote(*_args(exp, unit), threads): unit for unit in units}
            try:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    for ref in ready:
                        unit = pending.pop(ref)
                        try:
                            outcome = ray.get(ref)
                        except ray.exceptions.RayTaskError as e:
                            cause = e.cause if getattr(e, "cause", None) is not None else e
                            yield unit, Failure(f"{type(cause).__name__}: {cause}", str(e))
                        except ray.exceptions.RayError as e:  # a worker died, a node was lost, ...
                            yield unit, Failure.of(e)
                        else:
                            yield unit, outcome
            except (KeyboardInterrupt, GeneratorExit):
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise
        finally:
            if started:
                ray.shutdown()


def make_backend(name: str, workers: int, address: str | None = None, gpus_per_task: float = 0.0):
    """The backend for ``--backend NAME``: ``local`` is :class:`Serial` at one worker, else
    :class:`ProcessPool`; ``ray`` is :class:`Ray`."""
    if name == "ray":
        return Ray(workers, address, gpus_per_task=gpus_per_task)
    return Serial() if workers <= 1 else ProcessPool(workers)
