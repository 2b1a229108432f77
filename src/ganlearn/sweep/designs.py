"""Designs: which grid points of a sweep's product to run (``Experiment.design``)."""

from __future__ import annotations

import itertools
import json

__all__ = ["pairwise_design"]


def _covers(keys: list, point: tuple) -> tuple[set, set]:
    enc = [json.dumps(v) for v in point]
    pairs = {(keys[i], enc[i], keys[j], enc[j]) for i in range(len(keys)) for j in range(i + 1, len(keys))}
    return pairs, {(keys[i], enc[i]) for i in range(len(keys))}


def pairwise_design(grid: dict) -> list[dict]:
    """A covering array of strength 2: grid points such that every value of every axis and every
    pair of values of every two axes occurs in at least one point. Greedy and deterministic (each
    new point covers the most uncovered pairs; ties go to the earliest point of the product)."""
    keys = list(grid)
    pairs = {
        (a, va, b, vb)
        for i, a in enumerate(keys)
        for b in keys[i + 1 :]
        for va in map(json.dumps, grid[a])
        for vb in map(json.dumps, grid[b])
    }
    singles = {(a, json.dumps(v)) for a in keys for v in grid[a]}
    points = list(itertools.product(*(grid[k] for k in keys)))
    chosen: list[tuple] = []
    while pairs or singles:
        best = max(points, key=lambda pt: (len(_covers(keys, pt)[0] & pairs), len(_covers(keys, pt)[1] & singles)))
        ps, ss = _covers(keys, best)
        pairs -= ps
        singles -= ss
        chosen.append(best)
        points.remove(best)
    return [dict(zip(keys, pt)) for pt in chosen]
