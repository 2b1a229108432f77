"""How a sweep cuts its cells into units of work: one cell, or compatible cells trained together by
an experiment's ``run_batch`` (replica batching); each unit timed, longest first."""
from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING

from ganlearn.errors import DivergenceError

if TYPE_CHECKING:
    from ganlearn.sweep import Experiment

__all__: list[str] = []  # helpers of ganlearn.sweep and ganlearn.sweep_ray only


def _timed(run, params):
    """(result, seconds); a DivergenceError is an outcome of the cell, not a failure: the result
    records it (and the sweep does not retry it)."""
    t = time.perf_counter()
    try:
        result = run(params)
    except DivergenceError as e:
        result = {"diverged": True, "divergence": str(e)}
    return result, time.perf_counter() - t


class _Batch(list):
    """A unit of cells with one batch key, trained by the experiment's ``run_batch`` even when it
    holds one cell (a cell alone in its group, or whose batch limit is 1): the batched trainer at
    one replica is the faster of the two (one-layer d = 32, 600 steps: 2.67 s against 3.3-3.4 s for
    ``run``, the autograd reference, which ``--batch 1`` keeps for every cell)."""


def _timed_unit(run, run_batch, params_list: list) -> list:
    """[(result, seconds)] for one unit of work: a single cell by ``run`` (``run_batch`` None), or
    compatible cells trained together by ``run_batch`` (each cell is charged the batch's time /
    its size)."""
    if run_batch is None:
        return [_timed(run, params_list[0])]
    t = time.perf_counter()
    results = run_batch(params_list)
    sec = (time.perf_counter() - t) / len(params_list)
    return [(r, sec) for r in results]


def _units(exp: Experiment, todo: list, batch: int, workers: int) -> list[list]:
    """Group the cells to run into units: compatible cells (same ``exp.batch_key``) in batches of
    at most ``batch`` (and ``exp.batch_limit``), and small enough that every worker gets one; the
    rest one cell per unit. With ``exp.cost`` the units come longest first."""
    if batch <= 1 or exp.run_batch is None or exp.batch_key is None:
        return _longest_first(exp, [[c] for c in todo])
    groups: dict = {}
    units = []
    for cid, params in todo:
        key = exp.batch_key(params)
        if key is None:
            units.append([(cid, params)])
        else:
            groups.setdefault(json.dumps(key, sort_keys=True, default=str), []).append((cid, params))
    for g in groups.values():
        limit = exp.batch_limit(g[0][1]) if exp.batch_limit is not None else batch
        size = max(1, min(batch, limit, math.ceil(len(g) / max(1, workers))))
        units += [_Batch(g[i:i + size]) for i in range(0, len(g), size)]
    return _longest_first(exp, units)


def _run_batch_of(exp: Experiment, unit: list):
    """The experiment's ``run_batch`` for a unit of :func:`_units` marked batched, else None."""
    return exp.run_batch if isinstance(unit, _Batch) else None


def _longest_first(exp: Experiment, units: list[list]) -> list[list]:
    """Units by decreasing estimated time (a batch costs about its longest cell), if the
    experiment estimates costs; a stable sort, so equal costs keep the grid order."""
    if exp.cost is None:
        return units
    return sorted(units, key=lambda u: -max(exp.cost(p) for _, p in u))
