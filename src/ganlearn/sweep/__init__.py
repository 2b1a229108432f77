"""Sweeps: an experiment = base parameters x a grid of overrides x seeds, declared in code
(``ganlearn.experiments``). Each cell is one call ``experiment.run(params) -> dict``.

The package's modules import one way, each only from those before it:

* :mod:`~ganlearn.sweep.spec` -- :class:`Experiment`, the resolved spec and its cells (pure);
* :mod:`~ganlearn.sweep.designs` -- which grid points to run (:func:`pairwise_design`);
* :mod:`~ganlearn.sweep.units` -- cells cut into units of work, and how one unit runs;
* :mod:`~ganlearn.sweep.storage` -- the sweep directory (``sweep.json``, ``cells/``, ``results.csv``);
* :mod:`~ganlearn.sweep.backends` -- serial, process pool and Ray, behind one interface;
* :mod:`~ganlearn.sweep.report` -- ``report.md``;
* :mod:`~ganlearn.sweep.runner` -- :func:`run_sweep`, on top.
"""

from ganlearn.sweep.designs import pairwise_design
from ganlearn.sweep.report import write_sweep_report
from ganlearn.sweep.runner import run_sweep
from ganlearn.sweep.spec import Experiment, cell_id, cells, check_cells, grid_cells, resolve_spec
from ganlearn.sweep.storage import load_cells, note_rendering, write_table
from ganlearn.sweep.units import run_each

__all__ = [
    "Experiment",
    "resolve_spec",
    "check_cells",
    "cells",
    "grid_cells",
    "cell_id",
    "pairwise_design",
    "run_sweep",
    "run_each",
    "load_cells",
    "write_table",
    "write_sweep_report",
    "note_rendering",
]
