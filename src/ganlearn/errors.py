"""The user-error hierarchy: what the command line reports as one line and exit status 2.

An exception of these classes means the input (a configuration value, a config file, a dataset, a
checkpoint, a sweep grid, a run directory in use) cannot be used, and its message names the field
or file and what is allowed. Anything else escaping the CLI is a bug in ganlearn and keeps its
traceback.
"""

from __future__ import annotations

import math

__all__ = ["UserError", "ConfigError", "DivergenceError", "divergence", "check_finite_and_bounded"]


class UserError(ValueError):
    """Bad input: the message names the field or file, the value and what is allowed."""


class ConfigError(UserError):
    """A configuration value, key or type that is not allowed (also importable from ganlearn.config)."""


class DivergenceError(RuntimeError):
    """Training blew up: a NaN/inf, or a monitored quantity (a parameter norm, a loss, an error)
    beyond ``factor`` times its value at the start. The message names the step and the quantity;
    the last good checkpoint is kept. The CLI reports it in one line (exit status 1) and a sweep
    records the cell as ``diverged``."""


def divergence(name: str, value: float, start: float, factor: float | None, where: str | int) -> str | None:
    """The one divergence rule of every trainer: the message if ``value`` is NaN/inf, or if
    ``factor`` is set and ``value > factor * max(|start|, 1)`` (the floor of 1 keeps a quantity that
    starts near 0, e.g. a loss, from tripping on noise); else None. ``where`` says which run and
    step, e.g. "stage 2 step 400" (an int: "step N")."""
    where = f"step {where}" if isinstance(where, int) else where
    if not math.isfinite(value):
        return f"{where}: {name} is {value} (non-finite); training stopped"
    if factor is not None and value > factor * max(abs(start), 1.0):
        return (
            f"{where}: {name} = {value:.4g}, more than {factor:g} x its start value {start:.4g} (blow-up); "
            f"training stopped. Smaller step sizes usually help; the factor is the config's divergence_factor"
        )
    return None


def check_finite_and_bounded(name: str, value: float, start: float, factor: float | None, where: str) -> None:
    """Raise :class:`DivergenceError` with :func:`divergence`'s message when it has one (the
    trainers whose divergence ends the run; the overparameterized GDA records it in its result)."""
    why = divergence(name, value, start, factor, where)
    if why is not None:
        raise DivergenceError(why)
