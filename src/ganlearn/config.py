"""Configuration, the same way for every setting (FSR runs, one-layer, overparameterized, image
GANs): frozen dataclasses whose fields are constructor arguments, built from dicts with strict
checking (unknown keys and wrong types are errors that name the key and what is allowed),
dotted ``key=value`` overrides with one value grammar (:func:`parse_value`), JSON round trip.

The settings' dataclasses live with their code (``ganlearn.fsr.config``, ...); this module holds
only the mechanism and imports nothing from ``ganlearn`` but :mod:`ganlearn.errors`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, cast

from ganlearn.errors import ConfigError

__all__ = [
    "ConfigError",
    "check",
    "setting",
    "check_fields",
    "allowed_text",
    "Settings",
    "to_dict",
    "from_dict",
    "parse_value",
    "apply_override",
    "merge",
    "read_config_file",
]


def check(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"{key}={value!r} is not allowed: must be {allowed}")


# Validation stated once. A field's type is its annotation (checked by from_dict); its range is
# declared beside it with ``setting(default, ge=..., lt=...)`` (field metadata), checked by
# check_fields -- from from_dict, naming the dotted key, and from ``Settings.__post_init__`` for
# configurations built in Python. Why field metadata and not pydantic: the settings are frozen
# stdlib dataclasses throughout (dataclasses.replace, asdict, the generated config reference),
# and a range check is a few lines; pydantic would add a dependency and a second model layer.
# ``validate()`` methods keep only the rules that relate several fields.
_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def setting(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    allowed: str | None = None,
    min_items: int = 0,
    **field_kwargs,
) -> Any:
    """A dataclass field with its allowed range: ``ge``/``gt``/``le``/``lt`` bounds (for a list, on
    every item; None, for an Optional field, is always allowed; a string, for a field that also
    takes a Literal such as "auto", is checked by its type); ``min_items`` for a list; ``allowed``
    replaces the generated text of the error."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    meta = dict(field_kwargs.pop("metadata", {}), bounds=bounds, min_items=min_items)
    if allowed is not None:
        meta["allowed"] = allowed
    return dataclasses.field(default=default, metadata=meta, **field_kwargs)


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def allowed_text(f: dataclasses.Field, tp: Any) -> str | None:
    """What a field declared with :func:`setting` allows, in words (None: no range declared)."""
    bounds = f.metadata.get("bounds") or {}
    if not bounds and "allowed" not in f.metadata and not f.metadata.get("min_items"):
        return None
    optional = typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)
    if "allowed" in f.metadata:
        text = f.metadata["allowed"]
    else:
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0] if optional else tp
        seq = typing.get_origin(inner) in (list, tuple)
        item = (typing.get_args(inner) or (float,))[0] if seq else inner
        kind = ("a non-empty list of " if f.metadata.get("min_items") else "a list of ") * seq + (
            "integers" if seq and item is int else "numbers" if seq else "an integer" if item is int else "a number"
        )
        lo = next(((k, v) for k, v in bounds.items() if k in ("ge", "gt")), None)
        hi = next(((k, v) for k, v in bounds.items() if k in ("le", "lt")), None)
        if lo and hi and inner is int and lo[0] == "ge" and hi[0] == "le":
            text = f"{kind} in {_num(lo[1])}..{_num(hi[1])}"
        elif lo and hi:
            text = (
                f"{kind} in {'[' if lo[0] == 'ge' else '('}{_num(lo[1])}, {_num(hi[1])}{']' if hi[0] == 'le' else ')'}"
            )
        else:
            text = " and ".join(f"{kind} {_BOUNDS[k]} {_num(v)}" for k, v in bounds.items())
    return f"null or {text}" if optional and not text.startswith("null") else text


def _in_range(value: Any, bounds: dict) -> bool:
    return all({"ge": value >= b, "gt": value > b, "le": value <= b, "lt": value < b}[k] for k, b in bounds.items())


@functools.cache
def _hints(cls: Any) -> dict:
    return typing.get_type_hints(cls)


def check_fields(obj: Any, key: str = "") -> None:
    """Raise ConfigError, naming the dotted key, for the first field of dataclass ``obj`` whose
    value is outside the range its :func:`setting` declares."""
    hints = _hints(cast(Any, type(obj)))  # a class is hashable; the stubs of functools.cache say otherwise
    for f in dataclasses.fields(obj):
        _check_one(f, getattr(obj, f.name), hints[f.name], key)


def _literal_of(tp: Any) -> tuple | None:
    """The choices of a Literal field (also inside Optional[...]); None for other types."""
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and typing.get_origin(args[0]) is Literal:
            return typing.get_args(args[0]) + ((None,) if len(args) < len(typing.get_args(tp)) else ())
    return None


def _check_one(f: dataclasses.Field, value: Any, tp: Any, key: str) -> None:
    bounds = f.metadata.get("bounds")
    full = f"{key}.{f.name}" if key else f.name
    choices = _literal_of(tp)
    if choices is not None and value not in choices:
        raise ConfigError(f"{full}={value!r} is not allowed: must be {_type_name(tp)}")
    if isinstance(value, (list, tuple)) and f.metadata.get("min_items", 0) > len(value):
        raise ConfigError(f"{full}={value!r} is not allowed: must be {allowed_text(f, tp)}")
    if not bounds or value is None or isinstance(value, str):  # a string is a Literal alternative ("auto")
        return
    try:
        values = value if isinstance(value, (list, tuple)) else [value]  # bounds hold for every item
        ok = all(not isinstance(v, bool) and _in_range(v, bounds) for v in values)
    except TypeError:
        raise ConfigError(f"{full}={value!r} has the wrong type: must be {allowed_text(f, tp)}") from None
    if not ok:
        raise ConfigError(f"{full}={value!r} is not allowed: must be {allowed_text(f, tp)}")


class Settings:
    """Base of the settings dataclasses: every construction checks the declared ranges."""

    def __post_init__(self) -> None:
        check_fields(self)


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is Union or origin is types.UnionType:
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}={value!r} is not allowed: must be {_type_name(tp)}")
        return value
    if origin is Union or origin is types.UnionType:  # Optional[X] and X | None
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(value, inner[0], key)
        for a in inner:  # e.g. int | Literal["auto"]: the first that takes the value
            try:
                return _convert(value, a, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}={value!r} is not allowed: must be {_type_name(tp)}")
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} has the wrong type: must be a list")
        item = (typing.get_args(tp) or (Any,))[0]
        items = [_convert(v, item, f"{key}.{i}") for i, v in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} has the wrong type: must be a bool (true/false)")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}={value!r} has the wrong type: must be an int")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r} has the wrong type: must be a number")
        if not math.isfinite(value):
            raise ConfigError(f"{key}={value!r} is not allowed: must be a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r} has the wrong type: must be a string")
        return value
    return value


def from_dict(cls: type, d: Any, key: str = "") -> Any:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys and wrong types."""
    if not isinstance(d, dict):
        raise ConfigError(f"{key or 'config'} must be a table/dict, got {d!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(fields)
    kwargs = {}
    for k, v in d.items():
        full = f"{key}.{k}" if key else k
        if k not in names:
            raise ConfigError(f"unknown key {full!r}; allowed keys here: {', '.join(names)}")
        items = fields[k].metadata.get("items")  # a list of tagged tables (e.g. FSR stages)
        if items is not None and v is not None:
            if not isinstance(v, list):
                raise ConfigError(f"{full} must be a list of tables, got {v!r}")
            kwargs[k] = [items(s, f"{full}.{i}") for i, s in enumerate(v)]
        else:
            kwargs[k] = _convert(v, hints[k], full)
    for name, value in kwargs.items():  # the declared ranges, naming the dotted key
        _check_one(fields[name], value, hints[name], key)
    try:
        obj = cls(**kwargs)
    except ConfigError as e:  # a rule of __post_init__: its message starts with the field's name
        raise ConfigError(f"{key}.{e}" if key else str(e)) from None
    except ValueError as e:  # e.g. SGDAConfig checks its own values
        raise ConfigError(f"{key}: {e}") from None
    return obj


def parse_value(text: str):
    """JSON if it parses (numbers, lists, true/false/null); ``[a,b]`` with bare words is a list whose
    items are parsed the same way; anything else is the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        t = text.strip()
        if t.startswith("[") and t.endswith("]"):
            return [parse_value(x.strip()) for x in t[1:-1].split(",") if x.strip()]
        return text


def apply_override(d: dict, assignment: str) -> dict:
    """Apply one ``dotted.key=value`` (value read by :func:`parse_value`) to a dict."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like key=value (e.g. target.channels=32)")
    path, raw = assignment.split("=", 1)
    value = parse_value(raw)
    parts = path.strip().split(".")
    node: Any = d
    for i, part in enumerate(parts[:-1]):
        here = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"unknown key {here!r}: index must be 0..{len(node) - 1}")
            node = node[int(part)]
        elif isinstance(node, dict) and part in node and isinstance(node[part], (dict, list)):
            node = node[part]
        else:
            allowed = (
                ", ".join(k for k, v in node.items() if isinstance(v, (dict, list))) if isinstance(node, dict) else ""
            )
            raise ConfigError(f"unknown key {here!r}; sections allowed here: {allowed}")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"unknown key {path!r}: index must be 0..{len(node) - 1}")
        node[int(last)] = value
    else:
        if last not in node:
            raise ConfigError(f"unknown key {path!r}; allowed keys here: {', '.join(node)}")
        node[last] = value
    return d


def merge(base: dict, new: dict, key: str) -> dict:
    out = dict(base)
    for k, v in new.items():
        full = f"{key}.{k}" if key else k
        if k not in base:
            raise ConfigError(f"unknown key {full!r}; allowed keys here: {', '.join(base)}")
        out[k] = merge(base[k], v, full) if isinstance(v, dict) and isinstance(base[k], dict) else v
    return out


def read_config_file(path, what: str = "--config") -> dict:
    """A ``.toml`` or ``.json`` file of settings as a dict. A syntax error names the file, line and
    column; a file that is missing, unreadable or not a table is refused with what is allowed."""

    path = Path(path)
    if path.suffix not in (".json", ".toml"):
        raise ConfigError(f"{what} {str(path)!r}: the file name must end in .json or .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{what} {str(path)!r}: cannot be read ({e})") from None
    try:
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} {path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    except tomllib.TOMLDecodeError as e:
        # tomllib puts the position in the message: "... (at line L, column C)"
        m = re.search(r"\(at line (\d+), column (\d+)\)$", str(e))
        where = f"{path}:{m.group(1)}:{m.group(2)}" if m else str(path)
        why = str(e)[: m.start()].rstrip() if m else str(e)
        raise ConfigError(f"{what} {where}: not valid TOML: {why}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{what} {str(path)!r}: must hold a table (a JSON object), got {type(d).__name__}")
    return d
