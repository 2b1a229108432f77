import importlib
import json

import pytest
import torch
from safetensors.torch import load_file

from ganlearn.fsr.config import resolve
from ganlearn.io import latest_checkpoint, load_checkpoint

# the module (``ganlearn.fsr.train`` as an attribute is the package's exported function)
loop = importlib.import_module("ganlearn.fsr.train")

FAST = ["baseline.enabled=false", "eval.fit_steps=0"]


def _weights(run_dir):
    return load_file(str(run_dir / "learner.safetensors"))


def test_tiny_run_learns_and_writes_run_directory(tmp_path):
    cfg = resolve("tiny", overrides=["baseline.enabled=false"])
    summary = loop.train(cfg, tmp_path, progress=False)
    recs = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    first = recs[0]  # right after the warm start
    for key in loop.SUMMARY_KEYS:
        assert key in summary
    # The warm start (span + non-negative rotation) recovers the output features; the hidden
    # stages then cut the coupled error a lot and the features stay recovered.
    assert first["feature_cosine_min"] > 0.99
    assert summary["feature_cosine_mean"] > 0.95
    assert summary["coupled_rel_error"] < 0.8 * first["coupled_rel_error"]
    assert summary["samples_seen"] == recs[-1]["samples_seen"]
    assert (tmp_path / "config.json").exists() and (tmp_path / "summary.json").exists()
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.suffix == ".safetensors"
    tensors, meta = load_checkpoint(ckpt)  # safetensors: no code can run on load
    assert meta["stage"] == len(cfg.stages) - 1 and "rng" in tensors


def test_resume_after_interruption_is_bitwise_equal(tmp_path, monkeypatch):
    cfg = resolve("tiny", overrides=FAST + ["checkpoint_every=40"])
    loop.train(cfg, tmp_path / "a", progress=False)

    real_make_runner = loop.make_runner
    count = {"n": 0}

    def interrupting_make_runner(spec, learner, data, generator):
        runner = real_make_runner(spec, learner, data, generator)
        step = runner.step

        def counted(t, g):
            count["n"] += 1
            if count["n"] == 50:  # inside the first_hidden stage (60 steps), between checkpoints
                raise KeyboardInterrupt
            return step(t, g)

        runner.step = counted
        return runner

    monkeypatch.setattr(loop, "make_runner", interrupting_make_runner)
    with pytest.raises(KeyboardInterrupt):
        loop.train(cfg, tmp_path / "b", progress=False)
    monkeypatch.setattr(loop, "make_runner", real_make_runner)
    loop.train(cfg, tmp_path / "b", progress=False)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    la = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    lb = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()

    def strip(ln):
        return {k: v for k, v in json.loads(ln).items() if k not in ("wall_seconds", "eval_seconds")}

    assert [strip(x) for x in la] == [strip(x) for x in lb]


def test_divergence_stops_with_message_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = resolve("tiny", overrides=FAST + ["checkpoint_every=20", "eval.every=20"])
    real_make_runner = loop.make_runner

    def poisoning(spec, learner, data, generator):
        runner = real_make_runner(spec, learner, data, generator)
        if spec.kind == "first_hidden":
            step = runner.step

            def bad(t, g):
                out = step(t, g)
                if t == 30:
                    with torch.no_grad():
                        learner.V[0].fill_(float("nan"))
                return out

            runner.step = bad
        return runner

    monkeypatch.setattr(loop, "make_runner", poisoning)
    with pytest.raises(
        loop.DivergenceError,
        match=r"non-finite values.*stage 1 \(first_hidden\) at step 40.*"
        r"Last good checkpoint: .*state-\d+\.safetensors",
    ):
        loop.train(cfg, tmp_path, progress=False)
    tensors, meta = load_checkpoint(latest_checkpoint(tmp_path))
    assert meta["kind"] == "first_hidden" and meta["step"] == 20
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("learner."))


def _strip_wall(d):
    if isinstance(d, dict):
        return {k: _strip_wall(v) for k, v in d.items() if k not in ("wall_seconds", "eval_seconds")}
    return d


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_summary(tmp_path):
    """A real SIGKILL of `ganlearn run` mid-training, then `ganlearn resume`: summary.json (every
    metric, every level) equals the uninterrupted run's. One torch thread in the children, so
    both runs execute the same float operations in the same order."""
    import os
    import signal
    import subprocess
    import sys
    import time

    sets = [
        "baseline.enabled=false",
        "eval.fit_steps=20",
        "checkpoint_every=10",
        "eval.every=20",
        "stages.first_hidden.steps=60",
        "stages.super_resolution_2.steps=60",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

    def cmd(*a):
        return [sys.executable, "-m", "ganlearn.cli", *a]

    def run_args(out):
        return cmd(
            "run", "--preset", "tiny", "--no-progress", "--out", str(out), *[x for s in sets for x in ("--set", s)]
        )

    subprocess.run(run_args(tmp_path / "a"), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(run_args(tmp_path / "b"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = tmp_path / "b" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        # kill inside the first_hidden stage (global steps 2..61), after a few checkpoints
        if any(int(p.stem.split("-")[1]) >= 31 for p in ckpts.glob("state-*.json")):
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "b" / "summary.json").exists()
    subprocess.run(cmd("resume", str(tmp_path / "b"), "--no-progress"), check=True, env=env, capture_output=True)
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert _strip_wall(a) == _strip_wall(b)
    assert _weights(tmp_path / "a").keys() == _weights(tmp_path / "b").keys()
    for k, v in _weights(tmp_path / "a").items():
        assert torch.equal(v, _weights(tmp_path / "b")[k]), k


def test_evaluation_is_a_function_of_the_parameters():
    """The same learner evaluated twice (and with a different thread count) gives identical metrics."""
    from ganlearn.fsr.metrics import evaluate

    cfg = resolve("tiny")
    target, learner = loop.build(cfg)
    a = evaluate(learner, target, cfg.eval, final=True)
    n = torch.get_num_threads()
    torch.set_num_threads(max(1, 3 - n))
    try:
        b = evaluate(learner, target, cfg.eval, final=True)
    finally:
        torch.set_num_threads(n)
    assert a == b


def test_eval_device_is_validated_and_train_means_the_training_device_on_a_cpu_run():
    import dataclasses

    from ganlearn.config import ConfigError
    from ganlearn.fsr.config import resolve
    from ganlearn.fsr.metrics import evaluate
    from ganlearn.fsr.train import build

    with pytest.raises(ConfigError, match="eval.device='gpu'"):
        resolve("tiny", overrides=['eval.device="gpu"'])
    cfg = resolve("tiny", overrides=['eval.device="train"', "eval.fit_steps=3"])
    target, learner = build(cfg)
    assert evaluate(learner, target, cfg.eval, final=True) == evaluate(
        learner, target, dataclasses.replace(cfg.eval, device="cpu"), final=True
    )
