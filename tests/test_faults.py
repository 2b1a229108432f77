"""Real faults: SIGKILL mid-training then resume, for ``run``, ``train-images`` and a
sweep, each ending equal to the uninterrupted run; SIGKILL during checkpoint writes; corrupt
checkpoints detected on resume (the previous one used); one writer per run directory."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganlearn.io import CorruptFileError, RunDirBusy, RunLock, load_latest_checkpoint, save_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}  # the same threads in every process
CLI = [sys.executable, "-m", "ganlearn.cli"]


def _cli(args, **kw):
    return subprocess.run(CLI + args, env=ENV, capture_output=True, text=True, timeout=600, **kw)


def _kill_when(args, ready, timeout=300):
    """Start the CLI, SIGKILL it as soon as ``ready()`` is true; return its exit status."""
    proc = subprocess.Popen(CLI + args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"the process ended (status {proc.returncode}) before the kill point")
            if time.time() - t0 > timeout:
                pytest.fail("kill point not reached in time")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def _ckpt_index(run_dir: Path) -> int:
    found = sorted((run_dir / "checkpoints").glob("state-*.safetensors"))
    return int(found[-1].stem.split("-")[1]) if found else -1


def _summary(run_dir: Path) -> dict:
    s = json.loads((run_dir / "summary.json").read_text())
    s.pop("wall_seconds")
    s["final"].pop("wall_seconds")
    s["final"].pop("eval_seconds")
    return s


FSR = [
    "run",
    "--preset",
    "tiny",
    "--no-progress",
    "--set",
    "baseline.enabled=false",
    "--set",
    "eval.fit_steps=5",
    "--set",
    "checkpoint_every=20",
    "--set",
    "stages.first_hidden.steps=120",
    "--set",
    "stages.super_resolution_2.steps=60",
]


@pytest.mark.slow
def test_fsr_run_killed_then_resumed_equals_uninterrupted(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _cli(FSR + ["--out", str(full)]).returncode == 0
    assert _kill_when(FSR + ["--out", str(cut)], lambda: _ckpt_index(cut) >= 80) == -signal.SIGKILL
    assert not (cut / "summary.json").exists() and (cut / ".lock").exists()  # a stale lock is left
    r = _cli(["resume", str(cut), "--no-progress"])
    assert r.returncode == 0, r.stderr
    a, b = load_file(str(full / "learner.safetensors")), load_file(str(cut / "learner.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _summary(full) == _summary(cut)
    assert not (cut / ".lock").exists()  # released at the end

    # A corrupt newest checkpoint (truncated, then bit-flipped) is detected; the previous one is used.
    for how in ("truncate", "flip"):
        newest = sorted((cut / "checkpoints").glob("state-*.safetensors"))[-1]
        raw = bytearray(newest.read_bytes())
        newest.write_bytes(raw[: len(raw) // 2] if how == "truncate" else raw[:-9] + bytes([raw[-9] ^ 0xFF]) + raw[-8:])
        r = _cli(["resume", str(cut), "--no-progress"])
        assert r.returncode == 0, r.stderr
        assert "skipped 1 corrupt checkpoint(s) and resumed from" in r.stderr and newest.name in r.stderr
        assert "Traceback" not in r.stderr
        b = load_file(str(cut / "learner.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert _summary(full) == _summary(cut)


IMG = [
    "train-images",
    "--data",
    "digits",
    "--width",
    "4",
    "--steps",
    "40",
    "--no-progress",
    "--set",
    "z_dim=8",
    "--set",
    "batch=16",
    "--set",
    "eval_n=150",
    "--set",
    "eval_patches=4",
    "--set",
    "eval_every=0",
    "--set",
    "grid_every=0",
    "--set",
    "ckpt_every=4",
    "--set",
    "log_every=2",
]


@pytest.mark.slow
def test_train_images_killed_then_resumed_equals_uninterrupted(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _cli(IMG + ["--out", str(full)]).returncode == 0
    assert _kill_when(IMG + ["--out", str(cut)], lambda: _ckpt_index(cut) >= 16) == -signal.SIGKILL
    assert _ckpt_index(cut) < 40
    r = _cli(IMG + ["--out", str(cut)])  # an existing run directory is resumed
    assert r.returncode == 0, r.stderr
    a = load_file(str(sorted((full / "checkpoints").glob("*.safetensors"))[-1]))
    b = load_file(str(sorted((cut / "checkpoints").glob("*.safetensors"))[-1]))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


SWEEP = [
    "sweep",
    "width-sweep",
    "--set",
    "m=[5]",
    "--set",
    "width_factor=[1,2,3,5]",
    "--set",
    "step_rule=[ltv]",
    "--set",
    "steps=400",
    "--seeds",
    "1",
    "--workers",
    "1",
    "--no-progress",
]


@pytest.mark.slow
def test_sweep_killed_then_rerun_equals_uninterrupted(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _cli(SWEEP + ["--out", str(full)]).returncode == 0
    n_done = lambda: len(list((cut / "cells").glob("*.json"))) if (cut / "cells").exists() else 0  # noqa: E731
    assert _kill_when(SWEEP + ["--out", str(cut)], lambda: n_done() >= 1) == -signal.SIGKILL
    assert 1 <= n_done() < 4
    r = _cli(SWEEP + ["--out", str(cut)])
    assert r.returncode == 0, r.stderr
    assert "already finished" in r.stdout
    for f in sorted((full / "cells").glob("*.json")):
        x, y = json.loads(f.read_text()), json.loads((cut / "cells" / f.name).read_text())
        assert x["params"] == y["params"] and x["result"] == y["result"], f.name


_WRITER = """
import sys, torch
from ganlearn.io import save_checkpoint
big = torch.arange(4_000_000, dtype=torch.float32)
for i in range(1, 10_000):
    save_checkpoint(sys.argv[1], i, {"x": big + i, "i": torch.tensor(i)}, {"i": i})
    print(i, flush=True)
"""


def test_sigkill_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], env=ENV, stdout=subprocess.PIPE, text=True)
    for _ in range(3):  # let it write a few, then kill it at an arbitrary point of a write
        proc.stdout.readline()
    time.sleep(0.37)
    proc.kill()
    proc.wait(timeout=30)
    path, tensors, meta = load_latest_checkpoint(tmp_path)
    assert torch.equal(tensors["x"], torch.arange(4_000_000, dtype=torch.float32) + meta["i"])
    assert int(tensors["i"]) == meta["i"] >= 3


def test_every_checkpoint_corrupt_is_a_clear_error(tmp_path):
    for i in (1, 2):
        save_checkpoint(tmp_path, i, {"x": torch.ones(3)}, {"i": i})
    for p in (tmp_path / "checkpoints").glob("*.safetensors"):
        p.write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match=r"no intact checkpoint in .*state-0000002.*state-0000001"):
        load_latest_checkpoint(tmp_path)


def test_one_writer_per_run_directory(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_dir = tmp_path / "r"
        run_dir.mkdir()
        (run_dir / ".lock").write_text(f"{holder.pid} {os.uname().nodename}\n")
        with pytest.raises(RunDirBusy, match=rf"in use by process {holder.pid}"):
            RunLock(run_dir).acquire()
        r = _cli(FSR + ["--out", str(run_dir)])
        assert r.returncode == 2 and r.stderr.startswith("ganlearn: error: ") and f"process {holder.pid}" in r.stderr
        r = _cli(IMG + ["--out", str(run_dir)])
        assert r.returncode == 2 and f"process {holder.pid}" in r.stderr
    finally:
        holder.kill()
        holder.wait()
    # the holder is dead: its lock is stale and is taken over, then released
    with RunLock(run_dir) as lock:
        assert lock.path.read_text().split()[0] == str(os.getpid())
    assert not (run_dir / ".lock").exists()


def test_loaded_tensors_are_fresh_aligned_copies(tmp_path):
    """safetensors returns views into its read buffer at arbitrary byte offsets; the CPU BLAS rounds
    differently on unaligned operands, which broke a bitwise resume of GAN_FirstHidden. Loaded
    tensors are fresh allocations (PyTorch aligns CPU memory to 64 bytes) and equal to what was saved."""
    from ganlearn.io import load_tensors, save_tensors

    saved = {"a": torch.randn(3), "white": torch.randn(64, 64), "b": torch.randn(5, dtype=torch.float64)}
    save_tensors(tmp_path / "t.safetensors", saved)
    raw = load_file(str(tmp_path / "t.safetensors"))
    assert any(v.data_ptr() % 64 for v in raw.values())  # the situation the copy guards against
    loaded, _ = load_tensors(tmp_path / "t.safetensors")
    for k, v in saved.items():
        assert loaded[k].data_ptr() % 64 == 0 and torch.equal(loaded[k], v)
