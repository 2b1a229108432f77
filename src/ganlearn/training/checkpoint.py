"""Checkpoints: safetensors tensors + JSON metadata, written atomically, loaded without
unpickling anything (safetensors cannot hold code)."""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

STATE_RE = re.compile(r"state-(\d{7})\.safetensors$")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old or the new file, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(run_dir: Path, index: int, tensors: dict[str, torch.Tensor], meta: dict, keep: int = 2) -> Path:
    """Save ``state-{index:07d}.safetensors`` (+ ``.json``); keep only the ``keep`` newest."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"state-{index:07d}.safetensors"
    tmp = path.with_suffix(".safetensors.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
              metadata={"meta": json.dumps(meta)})
    os.replace(tmp, path)
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2))
    for old in sorted(ckpt_dir.glob("state-*.safetensors"))[:-keep]:
        old.unlink()
        old.with_suffix(".json").unlink(missing_ok=True)
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted(p for p in (Path(run_dir) / "checkpoints").glob("state-*.safetensors") if STATE_RE.search(p.name))
    return ckpts[-1] if ckpts else None


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Load tensors and metadata; never executes code (safetensors format)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
    return load_file(str(path), device=str(device)), meta
