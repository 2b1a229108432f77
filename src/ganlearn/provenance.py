"""Where an artefact came from: the ganlearn version, the git commit and dirty flag of the
checkout it ran from, the package versions, the machine and the command.

:func:`provenance` goes into every run's ``config.json``, every sweep's ``sweep.json``, every
checkpoint sidecar and every results folder's ``meta.json`` (:func:`write_meta`), so a number can
always be traced to the code and the machine that produced it. Outside a git checkout (an installed
wheel) the commit is ``None``.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["provenance", "git_state", "machine", "command_line", "META_FILE"]

META_FILE = "meta.json"
RESULTS_DIR = "benchmarks/results"
_ROOT = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def _git_root() -> Path | None:
    for parent in (_ROOT, *_ROOT.parents):
        if (parent / ".git").exists():
            return parent
    return None


@functools.lru_cache(maxsize=1)
def git_state() -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout ganlearn is imported
    from. Dirty means tracked files differ from the commit, untracked files and the results folders
    (``benchmarks/results/``, which a benchmark rewrites as it runs) aside. Read once per process."""
    root = _git_root()
    if root is None:
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                f":(exclude){RESULTS_DIR}",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


@functools.lru_cache(maxsize=1)
def machine() -> dict:
    """The machine: CPU model, logical cores, memory, operating system, and the GPU if PyTorch
    sees one."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "gpu": gpu,
    }


def _versions() -> dict:
    import numpy
    import torch

    import ganlearn

    return {
        "ganlearn": ganlearn.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }


def provenance() -> dict:
    """Versions, git state and date of this process (no machine: see :func:`machine`)."""
    return {**_versions(), **git_state(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def command_line(argv: list[str] | None = None) -> str:
    """The command that started this process, without machine-specific paths: ``ganlearn ...``
    for the command-line tool, ``python benchmarks/x.py ...`` for a script."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    head = Path(argv[0])
    if head.name in ("ganlearn", "cli.py", "__main__.py") or argv[0] == "-m":
        first = ["ganlearn"]
    else:
        try:
            rel = head.resolve().relative_to(_git_root() or Path("/nonexistent"))
            first = ["python", str(rel)]
        except ValueError:
            first = ["python", head.name]
    return shlex.join(first + argv[1:])


if __name__ == "__main__":  # python -m ganlearn.provenance: what this checkout would record
    print(json.dumps({**provenance(), "machine": machine()}, indent=1))
