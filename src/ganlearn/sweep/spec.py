"""What a sweep is, before anything runs: an :class:`Experiment` (declared in code), its resolved
spec (base x grid x seeds with ``--set`` overrides applied, every value parsed against the
experiment's typed parameters) and its cells (grid points x seeds, the experiment's design
choosing the points). Pure: no files, no processes."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ganlearn.config import ConfigError, from_dict, parse_value

__all__ = ["Experiment", "resolve_spec", "check_cells", "cells", "grid_cells", "cell_id"]


@dataclass(frozen=True)
class Experiment:
    """A sweep declared in code.

    Args:
        name: the CLI name (``ganlearn sweep NAME``).
        doc: one paragraph for ``ganlearn sweep --list`` and the report.
        base: parameters shared by every cell (``--set key=value`` replaces one).
        grid: key -> list of values; the cells are the cartesian product, or the points that
            ``design`` picks from it (``--set key=[..]`` replaces an axis).
        seeds: seeds per grid point by default (``--seeds N``); the cell gets ``seed`` in 0..N-1.
        run: ``run(params) -> dict`` for one cell; a top-level function (it is pickled by name).
            Scalars in the result go to results.csv; lists (curves) stay in the cell's JSON.
            A :class:`~ganlearn.errors.DivergenceError` is the cell's outcome (status "diverged").
        params: a dataclass declaring the type (and range, :func:`ganlearn.config.setting`) of every
            key of ``base`` and ``grid``; each grid point is parsed by :func:`ganlearn.config.from_dict`
            before anything runs, so a wrong type names the key. None: values are not checked here.
        report: ``report(sweep_dir, cells, spec) -> markdown`` where ``cells`` are the finished
            cell records; it may write PNGs into ``sweep_dir``.
        design: ``design(spec) -> list of grid points`` (dicts of grid key -> value), a subset of
            the product such as a covering array (:func:`ganlearn.sweep.pairwise_design`); None
            runs the full product.
        check: ``check(params)`` builds one cell's configuration without running it and raises
            ConfigError naming the key when a value is not allowed (rules across keys, and those of
            the problem's own configuration); every grid point is checked before any cell runs.
        run_batch: ``run_batch(list of params) -> list of results`` trains compatible cells as one
            replica-batched computation (each result as ``run`` would give it, up to round-off);
            if it raises DivergenceError the sweep runs that unit's cells one by one with ``run``.
        batch_key: ``batch_key(params) -> hashable``, equal for cells that can share a batch
            (None: never batched).
        batch_limit: ``batch_limit(params) -> int``, the most cells of this one's key worth
            batching (where the replicas' tensors outgrow the cache a batched step costs more).
        cost: ``cost(params) -> float``, a relative estimate of one cell's time: units start
            longest first, so that the long ones do not end up alone at the tail of a sweep.
    """

    name: str
    doc: str
    base: dict
    grid: dict
    seeds: int
    run: Callable[[dict], dict]
    params: type | None = None
    report: Callable[[Path, list, dict], str] | None = None
    design: Callable[[dict], list] | None = None
    check: Callable[[dict], object] | None = None
    run_batch: Callable[[list], list] | None = None
    batch_key: Callable[[dict], object] | None = None
    batch_limit: Callable[[dict], int] | None = None
    cost: Callable[[dict], float] | None = None


def resolve_spec(exp: Experiment, overrides: list[str] | None = None, seeds: int | None = None) -> dict:
    """The experiment's base, grid and seeds with ``KEY=VALUE`` overrides applied, every grid
    point parsed against ``exp.params``."""
    base, grid = dict(exp.base), {k: list(v) for k, v in exp.grid.items()}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not allowed: must be KEY=VALUE")
        key, text = item.split("=", 1)
        value = parse_value(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"--set {key}={value!r} is not allowed: must be a finite number")
        if key in grid:
            grid[key] = value if isinstance(value, list) else [value]
            if not grid[key]:
                raise ConfigError(f"--set {key}=[] is not allowed: a grid axis needs at least one value")
        elif key in base:
            base[key] = value
        else:
            raise ConfigError(
                f"--set {key}=... is not allowed: {exp.name!r} has grid keys "
                f"{sorted(grid)} and base keys {sorted(base)}"
            )
    n_seeds = exp.seeds if seeds is None else seeds
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ConfigError(f"seeds={n_seeds!r} is not allowed: must be an integer >= 1")
    spec = {"experiment": exp.name, "base": base, "grid": grid, "seeds": n_seeds}
    _parse_points(exp, spec)
    return spec


def _parse_points(exp: Experiment, spec: dict) -> None:
    """Every value of the base and of each grid axis parsed by the experiment's ``params``
    dataclass (one point per axis value, the others at their first value)."""
    if exp.params is None:
        return
    names = {f.name for f in dataclasses.fields(exp.params)}
    undeclared = sorted(set(spec["base"]) - names | set(spec["grid"]) - names)
    if undeclared:
        raise TypeError(f"experiment {exp.name!r}: keys {undeclared} are not fields of {exp.params.__name__}")
    first = {k: v[0] for k, v in spec["grid"].items()}
    for key, values in spec["grid"].items():
        for v in values:
            try:
                from_dict(exp.params, {**spec["base"], **first, key: v})
            except ConfigError as e:
                raise ConfigError(f"{e} (set by --set {key}=... or the experiment's grid)") from None
    if not spec["grid"]:
        from_dict(exp.params, spec["base"])


def check_cells(exp: Experiment, spec: dict) -> None:
    """Build every grid point's configuration with ``exp.check`` (seed 0) before anything runs, so
    a value that the experiment's settings refuse is reported up front, naming the key and the
    grid point, instead of as failed cells."""
    if exp.check is None:
        return
    seen = set()
    for cid, params in cells(exp, spec):
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


def cell_id(point: dict, seed: int) -> str:
    """The file name of a cell: ``key=value__...__seed=N`` (values slugged)."""
    return "__".join([f"{k}={_slug(v)}" for k, v in point.items()] + [f"seed={seed}"])


def grid_cells(spec: dict, points: list[dict] | None = None) -> list[tuple[str, dict]]:
    """(cell id, params) for every grid point (of the product, or ``points`` kept in the product's
    order) x seed, in a fixed order."""
    keys = list(spec["grid"])
    product = [dict(zip(keys, pt)) for pt in itertools.product(*(spec["grid"][k] for k in keys))]
    if points is not None:
        chosen = [tuple(p[k] for k in keys) for p in points]
        product = [p for p in product if tuple(p.values()) in chosen]
    return [(cell_id(p, seed), {**spec["base"], **p, "seed": seed}) for p in product for seed in range(spec["seeds"])]


def cells(exp: Experiment, spec: dict) -> list[tuple[str, dict]]:
    """The cells ``exp`` runs for ``spec``: its design's points (or the product) x seeds."""
    return grid_cells(spec, None if exp.design is None else exp.design(spec))
