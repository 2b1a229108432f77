"""Files: every write is atomic (a reader sees the old file or the new one, never half), tensors
are stored as safetensors (which cannot hold code, so loading never executes anything), and
optimizer state is flattened to named tensors for them.

The bottom layer of the package: it imports nothing from ``ganlearn`` but :mod:`ganlearn.errors`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganlearn.errors import UserError
from ganlearn.provenance import META_FILE, command_line, machine, provenance

__all__ = [
    "atomic_write_text",
    "write_json",
    "append_jsonl",
    "read_jsonl",
    "write_meta",
    "jsonable",
    "save_tensors",
    "load_tensors",
    "save_checkpoint",
    "latest_checkpoint",
    "load_checkpoint",
    "load_latest_checkpoint",
    "flatten_optimizer",
    "load_flat_optimizer",
    "CorruptFileError",
    "CheckpointWarning",
    "RunLock",
    "RunDirBusy",
]

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


def read_jsonl(path: str | Path) -> list[dict]:
    """The records of a JSON-lines log; a last line cut short by a crash is left out."""
    lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i < len(lines) - 1:
                raise CorruptFileError(f"{path}: line {i + 1} is not JSON ({e.msg})") from None
    return out


def write_meta(
    folder: str | Path, *, wall_seconds: float | None, command: str | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``folder/meta.json`` (atomically): the command, provenance, machine, wall time and
    ``extra``. Every results folder under ``benchmarks/results/`` has one."""
    meta = {
        "command": command if command is not None else command_line(),
        **provenance(),
        "machine": machine(),
        "wall_seconds": None if wall_seconds is None else round(float(wall_seconds), 1),
        **(extra or {}),
    }
    path = Path(folder) / META_FILE
    write_json(path, meta, indent=1)
    return path


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    """BLAKE2b of every tensor's name, dtype, shape and bytes, in name order: detects a file that
    safetensors still parses but whose data changed (a bit flip, a partial overwrite)."""

    h = hashlib.blake2b(digest_size=16)
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous().cpu()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Atomic, durable safetensors write (CPU, contiguous copies; the temporary file is fsynced
    before it replaces ``path``, so a kill or a crash leaves the old file or the new one).
    ``meta`` goes in as JSON metadata, with a digest of the data that :func:`load_tensors` checks."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    cpu = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    md = {"digest": _digest(cpu)}
    if meta is not None:
        md["meta"] = json.dumps(meta)
    save_file(cpu, str(tmp), metadata=md)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


class CorruptFileError(UserError):
    """A tensor file that cannot be read back as written (truncated, garbled, digest mismatch)."""


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict | None]:
    """(tensors, meta or None) from a safetensors file; never executes code. A file that is
    truncated, not safetensors, or whose data does not match its digest raises CorruptFileError."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
        tensors = load_file(str(path), device="cpu")
        meta = json.loads(md["meta"]) if "meta" in md else None
    except FileNotFoundError:
        raise
    except Exception as e:  # safetensors raises its own SafetensorError / OSError / ValueError
        raise CorruptFileError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    if "digest" in md and _digest(tensors) != md["digest"]:
        raise CorruptFileError(
            f"{path}: its data does not match the digest written with it (the file changed after it was saved)"
        )
    # copy=True: fresh, aligned memory. safetensors hands out views into its read buffer at any byte
    # offset (measured: 56, 4 and 24 mod 64 for three tensors of one file), and the CPU's BLAS takes
    # other code paths, with other round-off, for unaligned operands: a GAN_FirstHidden resumed with
    # its whitening matrix restored that way left the uninterrupted trajectory (tests/fsr/test_train).
    return {k: v.to(device, copy=True) for k, v in tensors.items()}, meta


def save_checkpoint(
    run_dir: str | Path, index: int, tensors: dict[str, torch.Tensor], meta: dict, keep: int = 2
) -> Path:
    """Save ``checkpoints/state-{index:07d}.safetensors`` (+ a readable ``.json`` of ``meta``);
    keep only the ``keep`` newest."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"state-{index:07d}.safetensors"
    save_tensors(path, tensors, meta)
    atomic_write_text(path.with_suffix(".json"), json.dumps({**meta, "ganlearn": provenance()}, indent=2))
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


def load_latest_checkpoint(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[Path, dict[str, torch.Tensor], dict] | None:
    """The newest checkpoint of ``run_dir`` that loads intact, as (path, tensors, meta); None if
    there is none. A corrupt one (truncated, garbled, digest mismatch) is reported with a warning
    and the previous one is used; if every one is corrupt, CorruptFileError names them all."""
    ckpts = sorted(p for p in (Path(run_dir) / "checkpoints").glob("state-*.safetensors") if STATE_RE.search(p.name))
    bad = []
    for path in reversed(ckpts):
        try:
            tensors, meta = load_checkpoint(path, device)
        except CorruptFileError as e:
            bad.append(str(e))
            continue
        if bad:
            warnings.warn(
                f"skipped {len(bad)} corrupt checkpoint(s) and resumed from {path.name}: " + "; ".join(bad),
                CheckpointWarning,
                stacklevel=2,
            )
        return path, tensors, meta
    if bad:
        raise CorruptFileError(
            f"no intact checkpoint in {Path(run_dir) / 'checkpoints'}: "
            + "; ".join(bad)
            + ". Move the checkpoints folder away to start the run over"
        )
    return None


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped on resume (corrupt); the message names it and the one used."""


def flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as ``{prefix.param_index.name: tensor}`` (safetensors
    holds tensors only; scalars such as Adam's step become 0-d tensors)."""
    return {
        f"{prefix}.{i}.{k}": (v.detach().clone() if torch.is_tensor(v) else torch.tensor(v))
        for i, st in opt.state_dict()["state"].items()
        for k, v in st.items()
    }


def load_flat_optimizer(
    prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], param_groups: list | None = None
) -> None:
    """Inverse of :func:`flatten_optimizer`. The optimizer's own param_groups (step sizes) are
    kept unless ``param_groups`` is given."""
    state: dict = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            i, k = key[len(prefix) + 1 :].split(".", 1)
            # Adam's step count stays on the CPU (where the optimizer keeps it unless capturable):
            # loaded onto a GPU with the checkpoint, it would cost a host sync per parameter per step
            state.setdefault(int(i), {})[k] = v.cpu() if k == "step" else v
    sd = opt.state_dict()
    opt.load_state_dict(
        {"state": state, "param_groups": param_groups if param_groups is not None else sd["param_groups"]}
    )


class RunDirBusy(UserError):
    """Another live process holds the run directory."""


class RunLock:
    """One writer per run directory: ``RUN_DIR/.lock`` holds the holder's pid and host.

    Taken with ``O_CREAT | O_EXCL`` (atomic on a local filesystem). A lock whose pid is not alive
    on this host (the holder was killed) is stale: it is taken over. A lock held by a live
    process raises :class:`RunDirBusy` naming the pid. Use as a context manager; released on exit
    (also on an exception or Ctrl-C; a SIGKILL leaves a stale lock, which the next run takes over).
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / ".lock"

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        return True

    def acquire(self) -> "RunLock":

        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid_s, _, host = self.path.read_text().strip().partition(" ")
                    pid = int(pid_s)
                except (OSError, ValueError):
                    pid, host = -1, ""  # unreadable / half-written: treated as stale
                if pid == os.getpid():
                    return self
                if pid > 0 and (host not in ("", socket.gethostname()) or self._alive(pid)):
                    raise RunDirBusy(
                        f"{self.path.parent}: in use by process {pid}"
                        + (f" on {host}" if host and host != socket.gethostname() else "")
                        + f" (lock file {self.path}); wait for it to finish or stop it. "
                        f"If that process is gone, delete the lock file"
                    )
                self.path.unlink(missing_ok=True)  # stale: the holder is dead
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            return self
        raise RunDirBusy(f"{self.path.parent}: could not take the lock {self.path} (another process keeps taking it)")

    def release(self) -> None:
        try:
            if self.path.read_text().split(" ", 1)[0] == str(os.getpid()):
                self.path.unlink()
        except (OSError, ValueError):
            pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
