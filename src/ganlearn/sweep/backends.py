"""Where units of work run, behind one small interface: ``backend.run(exp, units)`` yields
``(unit, outcome)`` as each unit ends, the outcome being ``[(result, seconds)]`` per cell
(:func:`ganlearn.sweep.units.run_unit`) or a :class:`Failure`. The runner records both the same
way whichever backend ran them.

* :class:`Serial` -- in this process, one unit after the other (``--workers 1``).
* :class:`ProcessPool` -- worker processes with one torch thread each (no oversubscription),
  started once and kept for the whole sweep.
* :class:`Ray` -- one Ray task per unit, on a local Ray instance or the cluster at ``address`` or
  ``$RAY_ADDRESS`` (``pip install 'ganlearn[ray]'``; imported only when used). Each task asks Ray
  for ``cpus_per_task`` CPUs and ``gpus_per_task`` GPUs (a fraction allowed) and runs torch with
  that many threads. Lost workers and nodes are retried by Ray; a cell that raises is not.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

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


def _start_method() -> str:
    """``fork`` where it is safe, else ``spawn``. A forked worker starts warm: torch, the problem
    packages and the experiment are already imported (a spawned one re-imports them, 1.5-2 s of
    each worker's start). Fork needs Linux (macOS's system libraries are not fork-safe) and a
    parent that has not initialised CUDA (a CUDA context does not survive fork); torch's own
    thread pools re-initialise in the child."""
    if sys.platform.startswith("linux") and not torch.cuda.is_initialized():
        return "fork"
    return "spawn"


class ProcessPool:
    """Units in ``workers`` processes (one torch thread each), started when the first unit is
    submitted and kept until the sweep ends."""

    def __init__(self, workers: int):
        self.workers = workers

    def run(self, exp: Experiment, units: list[Unit]) -> Iterator[tuple[Unit, list | Failure]]:
        if not units:
            return
        ctx = multiprocessing.get_context(_start_method())
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


def _sees(path: str, token: str) -> bool:
    """On one node: does ``path`` hold ``token`` (the storage probe's file)?"""
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def unseen_nodes(seen: dict[str, bool]) -> list[str]:
    """The nodes (by address) of a storage probe ``{node: saw the file}`` that did not see it."""
    return sorted(node for node, ok in seen.items() if not ok)


class Ray:
    """One Ray task per unit, on a Ray instance: the one already initialised in this process, else
    the cluster at ``address`` (or ``$RAY_ADDRESS``), else a local instance with ``workers`` CPUs
    started here (and shut down at the end).

    Failures: a task whose worker process or node died is a system failure, and Ray runs it again
    (``max_retries`` times, Ray's default 3): cells are deterministic functions of their parameters,
    so a retry gives the result the lost attempt would have. A cell that raises is the cell's own
    outcome (``retry_exceptions=False``): it is recorded as failed, once.

    Storage: results come back to this process, which writes the sweep directory; cells that write
    run directories of their own write them under ``storage`` on whichever node ran them. On a
    cluster of more than one node, ``storage`` must therefore be a path every node sees: before any
    cell runs, a probe task on every node reads a token file written there, and the sweep is refused,
    naming the path and the nodes, when a node cannot read it."""

    def __init__(
        self,
        workers: int,
        address: str | None = None,
        cpus_per_task: float = 1.0,
        gpus_per_task: float = 0.0,
        max_retries: int = 3,
        storage: str | Path | None = None,
    ):
        self.workers, self.address = workers, address
        self.cpus_per_task, self.gpus_per_task = cpus_per_task, gpus_per_task
        self.max_retries, self.storage = max_retries, storage

    def _init(self, ray) -> bool:
        """Connect to (or start) Ray; True when this call started it."""
        if ray.is_initialized():
            return False
        kwargs = {"include_dashboard": False, "log_to_driver": False}
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        try:
            ray.init(address=address, **kwargs) if address else ray.init(num_cpus=self.workers, **kwargs)
        except ConnectionError as e:
            raise UserError(f"--address {address!r}: no Ray cluster could be reached there ({e})") from e
        return True

    def check_storage(self, ray) -> None:
        """Refuse a multi-node cluster whose nodes do not all see ``storage`` (see the class)."""
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if self.storage is None or len(nodes) < 2:
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        token = uuid.uuid4().hex
        probe_file = Path(self.storage) / f".storage-probe-{token}"
        probe_file.write_text(token)
        try:
            probe = ray.remote(num_cpus=0, max_retries=0)(_sees)
            refs = {
                n["NodeManagerAddress"]: probe.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                ).remote(str(probe_file.resolve()), token)
                for n in nodes
            }
            seen = dict(zip(refs, ray.get(list(refs.values()), timeout=120)))
        finally:
            probe_file.unlink(missing_ok=True)
        unseen = unseen_nodes(seen)
        if unseen:
            raise UserError(
                f"the sweep directory {Path(self.storage).resolve()} is not visible from the Ray "
                f"node(s) {', '.join(unseen)} (of {len(nodes)}): on a multi-node cluster "
                f"--out must be on storage every node sees (a shared file system)"
            )

    def run(self, exp: Experiment, units: list[Unit]) -> Iterator[tuple[Unit, list | Failure]]:
        if not units:
            return
        try:
            import ray  # optional extra: imported only when this backend runs
        except ImportError as e:
            raise UserError("--backend ray needs Ray: pip install 'ganlearn[ray]'") from e
        started = self._init(ray)
        try:
            self.check_storage(ray)
            task = ray.remote(
                num_cpus=self.cpus_per_task,
                num_gpus=self.gpus_per_task,
                max_retries=self.max_retries,
                retry_exceptions=False,
            )(_ray_unit)
            threads = max(1, int(self.cpus_per_task))
            pending = {task.remote(*_args(exp, unit), threads): unit for unit in units}  # type: ignore[call-arg]  # ray types remote() by arity; *args hides it
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
                        except ray.exceptions.RayError as e:  # lost more often than max_retries allows
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


def make_backend(
    name: str,
    workers: int,
    address: str | None = None,
    gpus_per_task: float = 0.0,
    cpus_per_task: float = 1.0,
    max_retries: int = 3,
    storage: str | Path | None = None,
):
    """The backend for ``--backend NAME``: ``local`` is :class:`Serial` at one worker, else
    :class:`ProcessPool`; ``ray`` is :class:`Ray`."""
    if name == "ray":
        return Ray(
            workers,
            address,
            cpus_per_task=cpus_per_task,
            gpus_per_task=gpus_per_task,
            max_retries=max_retries,
            storage=storage,
        )
    return Serial() if workers <= 1 else ProcessPool(workers)
