"""One step of every trainer that has a device option, on CUDA. These run only where PyTorch sees
a GPU (the CPU-only CI machine has none, so they report as skipped with that reason); the one-layer
and overparameterized trainers are CPU/float64 by design and have no device option.
"""

import json
import math

import pytest
import torch

from ganlearn.cli import main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none visible to PyTorch)")


def test_fsr_run_on_cuda(tmp_path):
    torch.cuda.set_sync_debug_mode("warn")  # a host-device sync inside a step shows as a warning
    try:
        assert (
            main(
                [
                    "run",
                    "--preset",
                    "tiny",
                    "--device",
                    "cuda",
                    "--no-progress",
                    "--out",
                    str(tmp_path),
                    "--set",
                    "baseline.enabled=false",
                    "--set",
                    "eval.fit_steps=2",
                    "--set",
                    "stages.first_hidden.steps=3",
                    "--set",
                    "stages.super_resolution_2.steps=2",
                ]
            )
            == 0
        )
    finally:
        torch.cuda.set_sync_debug_mode(0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert math.isfinite(summary["coupled_rel_error"]) and 0 <= summary["coupled_rel_error"] < 10
    assert json.loads((tmp_path / "config.json").read_text())["device"] == "cuda"


def test_image_gan_step_on_cuda(tmp_path):
    assert (
        main(
            [
                "train-images",
                "--data",
                "digits",
                "--steps",
                "2",
                "--width",
                "4",
                "--device",
                "cuda",
                "--out",
                str(tmp_path),
                "--no-progress",
                "--set",
                "eval_every=2",
                "--set",
                "eval_n=160",
            ]
        )
        == 0
    )
    assert (tmp_path / "metrics.jsonl").exists()


def _sync_sites(fn) -> list[str]:
    """Run fn() with PyTorch's sync debugging on; return 'file:line' of every Python call that
    synchronised the host with the GPU (every one, not only the first, so one run shows them all)."""
    import warnings

    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sorted({f"{w.filename}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)})


def test_fsr_steps_do_not_synchronise():
    """No stage's SGDA step waits for the GPU (the step stays asynchronous, so the host
    queues the next kernels while the device runs). The stage set-up (whitening, scales) and the
    evaluation may synchronise; the steps may not. Each kind's first step is run unchecked (lazy
    initialisation), then two more are checked."""
    import dataclasses

    from ganlearn.fsr.config import resolve
    from ganlearn.fsr.stages import make_runner
    from ganlearn.fsr.train import build
    from ganlearn.rng import make_generator

    cfg = dataclasses.replace(resolve("tiny"), device="cuda")
    target, learner = build(cfg)
    rng = make_generator(0, "test.gpu")
    found = {}
    for spec in list(cfg.stages) + [cfg.baseline.stage]:
        runner = make_runner(spec, learner, target.images, rng)
        runner.step(0, rng)
        if runner.n_steps > 1:
            found[spec.kind] = _sync_sites(lambda: [runner.step(t, rng) for t in (1, 2)])
            # resumed from a checkpoint (its tensors loaded onto the GPU, as load_latest_checkpoint does)
            resumed = make_runner(spec, learner, target.images, rng)
            resumed.load_state_dict({k: v.to("cuda") for k, v in runner.state_dict().items()})
            found[spec.kind + " (resumed)"] = _sync_sites(lambda: [resumed.step(t, rng) for t in (3, 4)])
    assert set(found) >= {"first_hidden", "super_resolution", "end_to_end"}
    assert not any(found.values()), f"host-device synchronisations inside a step: {found}"


def test_overparam_batched_on_cuda_matches_cpu():
    """The replica-batched GDA on the GPU follows the CPU trajectories (float64 both)."""
    from ganlearn.overparam.batched import train_batched
    from ganlearn.overparam.config import OverparamConfig

    cfgs = [OverparamConfig(m=6, d=3, n=40, k=k, steps=60, seed=s) for s, k in ((0, 20), (1, 32), (2, 24))]
    cpu, gpu = train_batched(cfgs), train_batched(cfgs, device="cuda")
    for a, b in zip(cpu, gpu):
        assert b["eta"] == pytest.approx(a["eta"], rel=1e-9)
        assert b["residual"] == pytest.approx(a["residual"], rel=1e-6, abs=1e-12)
        assert b["steps_to_tol"] == a["steps_to_tol"]


def test_evaluation_on_the_gpu_matches_the_cpu():
    """eval.device="train" on a GPU: the same metrics as the CPU evaluation (float64 both) up to
    round-off, and the same numbers twice (deterministic algorithms)."""
    import dataclasses

    from ganlearn.fsr.config import resolve
    from ganlearn.fsr.metrics import evaluate
    from ganlearn.fsr.stages import run_stage
    from ganlearn.fsr.train import build
    from ganlearn.rng import make_generator

    cfg = dataclasses.replace(resolve("tiny"), device="cuda")
    target, learner = build(cfg)
    run_stage(cfg.stages[0], learner, target.images, make_generator(0, "test.gpu"))  # the warm start
    ev_cpu = dataclasses.replace(cfg.eval, fit_steps=20, device="cpu")
    ev_gpu = dataclasses.replace(ev_cpu, device="train")
    cpu = evaluate(learner, target, ev_cpu, final=True)
    gpu, again = (evaluate(learner, target, ev_gpu, final=True) for _ in range(2))
    assert gpu == again
    assert gpu["u_fit"] == cpu["u_fit"]
    for key in (
        "coupled_rel_error",
        "coupled_rel_error_level1",
        "feature_cosine_min",
        "sliced_w2_top",
        "learner_fire_rate_mean_level1",
    ):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-6), key


def test_fsr_replicas_on_cuda_match_the_cpu_and_steps_do_not_synchronise(tmp_path):
    """Replica-batched FSR training (fsr.batched) on the GPU: each replica's run equals the CPU's
    (float64 both; the training RNG is the CPU's on both), and no SGDA stage's batched step waits
    for the GPU."""
    import dataclasses

    from ganlearn.fsr.batched import _images, train_replicas
    from ganlearn.fsr.config import resolve
    from ganlearn.fsr.model import FSRNet
    from ganlearn.fsr.stages import make_runner
    from ganlearn.fsr.train import build
    from ganlearn.rng import Generators, make_generator

    short = ["dtype=float64", "baseline.enabled=false", "stages.1.steps=10", "stages.2.steps=20", "eval.every=20"]
    cfgs = [resolve("tiny", overrides=short + [f"seed={s}"]) for s in (0, 1)]
    gpu_cfgs = [dataclasses.replace(c, device="cuda") for c in cfgs]
    cpu = train_replicas(cfgs, [tmp_path / "c0", tmp_path / "c1"], progress=False)
    gpu = train_replicas(gpu_cfgs, [tmp_path / "g0", tmp_path / "g1"], progress=False)
    for a, b in zip(cpu, gpu):
        for key in ("coupled_rel_error", "feature_cosine_min", "samples_seen"):
            assert b[key] == pytest.approx(a[key], rel=1e-6), key
    built = [build(c) for c in gpu_cfgs]
    learner = FSRNet.stack([lr for _, lr in built])
    data = _images(FSRNet.stack([t.net for t, _ in built]).requires_grad_(False))
    gens = Generators([make_generator(s, "test.gpu") for s in (0, 1)])
    found = {}
    for spec in gpu_cfgs[0].stages[1:]:  # the SGDA stages (the warm start runs replica by replica)
        runner = make_runner(spec, learner, data, gens)
        runner.step(0, gens)
        found[spec.kind] = _sync_sites(lambda: [runner.step(t, gens) for t in (1, 2)])
    assert set(found) == {"first_hidden", "super_resolution"}
    assert not any(found.values()), f"host-device synchronisations inside a batched step: {found}"


def test_image_replicas_on_cuda():
    """DCGAN seeds as one grouped network (images.batched) train on the GPU; each replica's result is
    finite and the replicas differ."""
    from ganlearn.images.batched import train_replicas
    from ganlearn.images.train import make_config

    cfgs = [
        make_config(
            dict(
                data="digits",
                width=4,
                z_dim=8,
                batch=16,
                eval_n=150,
                eval_patches=4,
                eval_every=2,
                grid_every=0,
                ckpt_every=0,
                log_every=1,
                steps=2,
                device="cuda",
                seed=s,
            )
        )
        for s in (0, 1)
    ]
    out = train_replicas(cfgs)
    assert [len(o["stats"]) for o in out] == [2, 2]
    assert all(math.isfinite(o["result"]["swd_avg"]) and o["result"]["swd_avg"] >= 0 for o in out)
    assert out[0]["result"]["swd_avg"] != out[1]["result"]["swd_avg"]
