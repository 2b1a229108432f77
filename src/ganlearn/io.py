"""Files: every write is atomic (a reader sees the old file or the new one, never half), tensors
are stored as safetensors (which cannot hold code, so loading never executes anything), and
optimizer state is flattened to named tensors for them.

The bottom layer of the package: it imports nothing from ``ganlearn``.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_write_text", "write_json", "append_jsonl", "jsonable", "save_tensors", "load_tensors",
           "save_checkpoint", "latest_checkpoint", "load_checkpoint", "flatten_optimizer", "load_flat_optimizer"]

STATE_RE = re.compile(r"state-(\d{7})\.safetensors$")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old or the new file, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonable(x: Any) -> Any:
    """``json.dumps(default=...)`` for tensors, NumPy scalars and arrays."""
    import numpy as np

    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def write_json(path: str | Path, obj: Any, *, indent: int = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, default=jsonable) + "\n")


def append_jsonl(path: str | Path, record: dict) -> None:
    """One JSON line appended (a log: a crash can lose at most the line being written)."""
    with open(path, "a") as f:
        f.write(json.dumps(record, default=jsonable) + "\n")


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Atomic safetensors write (CPU, contiguous copies); ``meta`` goes in as JSON metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
              metadata=None if meta is None else {"meta": json.dumps(meta)})
    os.replace(tmp, path)


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict | None]:
    """(tensors, meta or None) from a safetensors file; never executes code."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        md = f.metadata() or {}
    return load_file(str(path), device=str(device)), (json.loads(md["meta"]) if "meta" in md else None)


def save_checkpoint(run_dir: str | Path, index: int, tensors: dict[str, torch.Tensor], meta: dict,
                    keep: int = 2) -> Path:
    """Save ``checkpoints/state-{index:07d}.safetensors`` (+ a readable ``.json`` of ``meta``);
    keep only the ``keep`` newest."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"state-{index:07d}.safetensors"
    save_tensors(path, tensors, meta)
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2))
    for old in sorted(ckpt_dir.glob("state-*.safetensors"))[:-keep]:
        old.unlink()
        old.with_suffix(".json").unlink(missing_ok=True)
    return path


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = sorted(p for p in (Path(run_dir) / "checkpoints").glob("state-*.safetensors") if STATE_RE.search(p.name))
    return ckpts[-1] if ckpts else None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a checkpoint written by :func:`save_checkpoint`."""
    tensors, meta = load_tensors(path, device)
    return tensors, meta or {}


def flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as ``{prefix.param_index.name: tensor}`` (safetensors
    holds tensors only; scalars such as Adam's step become 0-d tensors)."""
    return {f"{prefix}.{i}.{k}": (v.detach().clone() if torch.is_tensor(v) else torch.tensor(v))
            for i, st in opt.state_dict()["state"].items() for k, v in st.items()}


def load_flat_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                        param_groups: list | None = None) -> None:
    """Inverse of :func:`flatten_optimizer`. The optimizer's own param_groups (step sizes) are
    kept unless ``param_groups`` is given."""
    state: dict = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            i, k = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(i), {})[k] = v
    sd = opt.state_dict()
    opt.load_state_dict({"state": state, "param_groups": param_groups if param_groups is not None
                         else sd["param_groups"]})
