"""Units of work: how a sweep cuts its cells into units (one cell, or compatible cells trained
together by an experiment's ``run_batch``), the longest first, and how one unit runs -- the same
function whichever backend runs it, with the divergence fall-back stated once here."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Callable

from ganlearn.errors import DivergenceError
from ganlearn.sweep.spec import Experiment

__all__ = ["Unit", "plan_units", "run_unit", "run_each", "timed"]


@dataclass(frozen=True)
class Unit:
    """Cells run together: ``cells`` = [(cell id, params)], by ``run_batch`` when ``batched``.

    A unit of a batch key is batched even when it holds one cell (alone in its group, or with a
    batch limit of 1): the batched trainer at one replica is the faster of the two (one-layer
    d = 32, 600 steps: 2.67 s against 3.3-3.4 s for ``run``, the autograd reference, which
    ``--batch 1`` keeps for every cell)."""

    cells: list
    batched: bool = False

    @property
    def params(self) -> list[dict]:
        return [p for _, p in self.cells]

    def __len__(self) -> int:
        return len(self.cells)


def timed(run: Callable[[dict], dict], params: dict) -> tuple[dict, float]:
    """(result, seconds) of one cell. A DivergenceError is an outcome of the cell, not a failure:
    the result records it, ``{"diverged": true, "divergence": message}`` (not retried)."""
    t = time.perf_counter()
    try:
        result = run(params)
    except DivergenceError as e:
        result = {"diverged": True, "divergence": str(e)}
    return result, time.perf_counter() - t


def run_each(run: Callable[[dict], dict], params_list: list[dict]) -> list[dict]:
    """Each cell by ``run`` on its own, a divergence recorded as that cell's outcome."""
    return [timed(run, p)[0] for p in params_list]


def run_unit(
    run: Callable[[dict], dict], run_batch: Callable[[list], list] | None, params_list: list[dict]
) -> list[tuple[dict, float]]:
    """[(result, seconds)] for one unit: each cell by ``run`` (``run_batch`` None), or the cells
    trained together by ``run_batch``, each charged the batch's time / its size. When the batch
    raises DivergenceError (a replica blew up and stopped the batched computation), its cells run
    one by one with ``run``, so that every cell still gets its own outcome."""
    if run_batch is None:
        return [timed(run, p) for p in params_list]
    t = time.perf_counter()
    try:
        results = run_batch(params_list)
    except DivergenceError:
        return [timed(run, p) for p in params_list]
    sec = (time.perf_counter() - t) / len(params_list)
    return [(r, sec) for r in results]


def plan_units(exp: Experiment, todo: list, batch: int, workers: int) -> list[Unit]:
    """Group the cells to run into units: compatible cells (same ``exp.batch_key``) in batches of
    at most ``batch`` (and ``exp.batch_limit``), and small enough that every worker gets one; the
    rest one cell per unit. With ``exp.cost`` the units come longest first (a stable sort, so
    equal costs keep the grid order; a batch costs about its longest cell)."""
    if batch <= 1 or exp.run_batch is None or exp.batch_key is None:
        units = [Unit([c]) for c in todo]
    else:
        groups: dict = {}
        units = []
        for cid, params in todo:
            key = exp.batch_key(params)
            if key is None:
                units.append(Unit([(cid, params)]))
            else:
                groups.setdefault(json.dumps(key, sort_keys=True, default=str), []).append((cid, params))
        for g in groups.values():
            limit = exp.batch_limit(g[0][1]) if exp.batch_limit is not None else batch
            size = max(1, min(batch, limit, math.ceil(len(g) / max(1, workers))))
            units += [Unit(g[i : i + size], batched=True) for i in range(0, len(g), size)]
    if exp.cost is None:
        return units
    cost = exp.cost
    return sorted(units, key=lambda u: -max(cost(p) for p in u.params))
