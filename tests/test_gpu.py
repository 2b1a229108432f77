"""One step of every trainer that has a device option, on CUDA. These run only where PyTorch sees
a GPU (the CPU-only CI machine has none, so they report as skipped with that reason); the one-layer
and overparameterized trainers are CPU/float64 by design and have no device option.
"""
import json

import pytest
import torch

from ganlearn.cli import main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none visible to PyTorch)")


def test_fsr_run_on_cuda(tmp_path):
    torch.cuda.set_sync_debug_mode("warn")  # a host-device sync inside a step shows as a warning
    try:
        assert main(["run", "--preset", "tiny", "--device", "cuda", "--no-progress", "--out", str(tmp_path),
                     "--set", "baseline.enabled=false", "--set", "eval.fit_steps=2",
                     "--set", "stages.first_hidden.steps=3", "--set", "stages.super_resolution_2.steps=2"]) == 0
    finally:
        torch.cuda.set_sync_debug_mode(0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["coupled_rel_error"] == summary["coupled_rel_error"]  # finite, not NaN
    assert json.loads((tmp_path / "config.json").read_text())["device"] == "cuda"


def test_image_gan_step_on_cuda(tmp_path):
    assert main(["train-images", "--data", "digits", "--steps", "2", "--width", "4", "--device", "cuda",
                 "--out", str(tmp_path), "--no-progress", "--set", "eval_every=2", "--set", "eval_n=64"]) == 0
    assert (tmp_path / "metrics.jsonl").exists()
