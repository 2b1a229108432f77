"""Image-GAN training: exact resume, config errors, DDP under torchrun (gloo, 2 CPU processes),
and the probe CLI on a trained run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ganlearn.cli import main
from ganlearn.config import ConfigError
from ganlearn.images.train import make_config, train
from ganlearn.io import latest_checkpoint

TINY = dict(
    data="digits",
    width=4,
    z_dim=8,
    batch=16,
    eval_n=150,
    eval_patches=4,
    eval_every=0,
    grid_every=0,
    ckpt_every=3,
    log_every=1,
)


def _params(run_dir):
    t = load_file(str(latest_checkpoint(run_dir)))
    return {k: v for k, v in t.items() if k.startswith(("G.", "G_ema.", "D.", "opt_"))}


@pytest.mark.parametrize("arch", ["dcgan", "fsr"])
def test_resume_equals_uninterrupted(tmp_path, arch):
    full = train(make_config({**TINY, "arch": arch, "steps": 6}), tmp_path / "full", progress=False)
    train(make_config({**TINY, "arch": arch, "steps": 3}), tmp_path / "split", progress=False)
    part = train(make_config({**TINY, "arch": arch, "steps": 6}), tmp_path / "split", progress=False)
    a, b = _params(tmp_path / "full"), _params(tmp_path / "split")
    assert a.keys() == b.keys() and any(k.startswith("opt_d.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert full["swd_avg"] == part["swd_avg"]
    assert (tmp_path / "full" / "grid-0000006.png").exists()
    with pytest.raises(ConfigError, match=r"different config \(keys \['width'\]\)"):
        train(make_config({**TINY, "arch": arch, "steps": 6, "width": 5}), tmp_path / "split", progress=False)


def test_config_errors():
    with pytest.raises(ConfigError, match="data='imagenet' is not allowed"):
        make_config({"data": "imagenet"})
    with pytest.raises(ConfigError, match="eval_n=100 is not allowed"):
        make_config({"eval_n": 100})
    with pytest.raises(ConfigError, match="arch='vit' is not allowed"):
        make_config({"arch": "vit"})
    with pytest.raises(ConfigError, match="unknown key 'lr'"):
        make_config({"lr": 1e-3})


@pytest.mark.slow
@pytest.mark.parametrize("d_norm", ["bn", "sn"])
def test_ddp_two_processes_gloo(tmp_path, d_norm):
    """torchrun, 2 CPU processes: D (with BN or SN buffers) is called twice per step; the replicas must
    stay identical and only rank 0 writes."""
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    args = [f"{k}={v}" for k, v in {**TINY, "steps": 4, "d_norm": d_norm, "grid_every": 2}.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "ganlearn.images.train", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["world"] == 2 and res["replica_max_abs_diff"] == 0.0
    meta = json.loads((out / "config.json").read_text())
    assert meta["world"] == 2
    assert sorted(p.name for p in out.glob("grid-*.png")) == ["grid-0000002.png", "grid-0000004.png"]
    assert len(list((out / "stats.jsonl").read_text().splitlines())) == 4  # one writer


def test_probe_cli_on_a_trained_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train-images",
                "--data",
                "digits",
                "--steps",
                "4",
                "--width",
                "4",
                "--out",
                str(run),
                "--set",
                "batch=16",
                "--set",
                "eval_n=150",
                "--set",
                "eval_patches=4",
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["probe", str(run), "--data", "digits", "--n", "200"]) == 0
    text = capsys.readouterr().out
    assert "Fig. 1 FSR: blocks.0" in text and "report:" in text
    res = json.loads((run / "probe" / "probe.json").read_text())
    assert set(res["layers"]["blocks.0"]) == {"shape", "trained", "random"}
    assert "fire_rate_on_real" in res["d_filters"]["trained"]
    md = (run / "probe" / "probe.md").read_text()
    for png in ("fsr_r2.png", "codes.png", "g_filters_trained.png", "d_filters_random.png", "real.png"):
        assert png in md and (run / "probe" / png).exists()
    assert main(["probe", str(tmp_path / "nothing"), "--data", "digits"]) == 2


def test_probe_any_module(tmp_path, monkeypatch):
    """A user's own generator: a factory, a safetensors state dict and named hidden layers."""
    (tmp_path / "usergen.py").write_text(
        "import torch.nn as nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Linear(6, 8 * 4 * 4), nn.Unflatten(1, (8, 4, 4)), nn.ReLU(),\n"
        "                         nn.ConvTranspose2d(8, 1, 4, 2, 1), nn.Tanh())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import usergen

    torch.manual_seed(0)
    save_file(usergen.build().state_dict(), str(tmp_path / "g.safetensors"))
    out = tmp_path / "probe"
    assert (
        main(
            [
                "probe",
                str(tmp_path / "g.safetensors"),
                "--module",
                "usergen:build",
                "--layers",
                "2",
                "--z-dim",
                "6",
                "--n",
                "300",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads((out / "probe.json").read_text())
    assert res["layers"]["2"]["shape"] == [8, 4, 4] and "d_filters" not in res


def test_score_cli(tmp_path, capsys):
    run = tmp_path / "run"
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
                "--out",
                str(run),
                "--set",
                "batch=16",
                "--set",
                "eval_n=150",
                "--set",
                "eval_patches=4",
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["score", str(run), "--n", "300", "--patches", "8"]) == 0
    rec = json.loads((run / "scores.jsonl").read_text().splitlines()[-1])
    assert rec["swd"]["meta"]["n_real"] == 300 and rec["swd"]["meta"]["patches_per_image"] == 8
    assert rec["features"]["meta"]["features"] == "randconv128-v1" and "inception" not in rec
    assert main(["score", str(run), "--n", "300", "--inception-weights", str(tmp_path / "none.pth")]) == 2
    assert "never downloads" in capsys.readouterr().err


def test_image_width_experiment_tiny(tmp_path):
    from ganlearn.experiments import get
    from ganlearn.sweep import run_sweep, write_sweep_report

    exp = get("image-width")
    stats = run_sweep(
        exp,
        tmp_path,
        overrides=[
            "width=[2,4]",
            "steps=4",
            "eval_every=2",
            "eval_n=150",
            "eval_patches=4",
            "batch=16",
            "data=digits",
            "resolution=8",
        ],
        seeds=2,
        workers=1,
        progress=False,
        log=lambda s: None,
    )
    assert stats["finished"] == 4 and stats["failed"] == 0
    report = write_sweep_report(exp, tmp_path).read_text()
    assert "| 4 |" in report and "real vs real" in report
    assert (tmp_path / "image_width_curves.png").exists() and (tmp_path / "samples_k2.png").exists()
    rec = json.loads(next((tmp_path / "cells").glob("*.json")).read_text())
    assert [r[0] for r in rec["result"]["curve"]] == [2, 4]
    # the seeds of a width trained as replicas of one grouped network (the default) = one by one
    one = run_sweep(
        exp,
        tmp_path / "one",
        overrides=[
            "width=[2,4]",
            "steps=4",
            "eval_every=2",
            "eval_n=150",
            "eval_patches=4",
            "batch=16",
            "data=digits",
            "resolution=8",
        ],
        seeds=2,
        workers=1,
        progress=False,
        log=lambda s: None,
        batch=1,
    )
    assert one["finished"] == 4
    for f in (tmp_path / "cells").glob("*.json"):
        a, b = (json.loads(p.read_text())["result"] for p in (f, tmp_path / "one" / "cells" / f.name))
        for key, cols in (("loss_curve", slice(0, 3)), ("curve", slice(0, 3))):  # step, then two values
            flat = [[v for r in res[key] for v in r[cols]] for res in (a, b)]
            assert flat[0] == pytest.approx(flat[1], rel=1e-5), key


def test_sparsity_claims_cell_compares_trained_with_random_init_over_time(tmp_path):
    """Every evaluation logs the codes' sparsity measures; the experiment's cell
    holds trained and random-init values per layer and the curve from step 0 (the random init)."""
    from ganlearn.experiments import get
    from ganlearn.sweep import run_sweep

    sets = [
        'data="digits"',
        "resolution=8",
        "steps=20",
        "eval_every=10",
        "width=4",
        "probe_n=200",
        "eval_n=200",
        'arch=["fsr"]',
        'g_norm=["none"]',
    ]
    st = run_sweep(
        get("sparsity-claims"), tmp_path / "s", overrides=sets, seeds=2, workers=1, progress=False, log=lambda s: None
    )
    assert st["ran"] == 2 and st["failed"] == 0
    from ganlearn.experiments.sparsity_claims import config
    from ganlearn.images.probe import code_sparsity
    from ganlearn.images.probe_report import calibrate_bn, random_init

    rec = json.loads(sorted((tmp_path / "s" / "cells").glob("*.json"))[0].read_text())
    cell = rec["result"]
    assert [p["step"] for p in cell["over_time"]] == [0, 10, 20]
    # step 0 is the random-init network: measured again here from the cell's parameters, it is the same
    cfg, _ = config(rec["params"])
    g0 = calibrate_bn(random_init(cfg, (1, 1, 8, 8), seed=cfg.seed)[0], cfg.z_dim, seed=cfg.seed)
    again = code_sparsity(g0, cfg.z_dim, seed=cfg.seed)
    for name, codes in cell["over_time"][0]["codes"].items():
        for key, v in codes.items():
            if isinstance(v, float):
                assert v == pytest.approx(again[name][key], rel=1e-9, abs=1e-12), (name, key)
    for name, layer in cell["layers"].items():
        for side in ("trained", "random"):
            v = layer[side]
            assert 0 <= v["fire_rate"] <= 1 and 0 <= v["hoyer"] <= 1 and 0 < v["topk_energy"] <= 1
        # the probe measured two different networks: 20 steps of training moved the codes
        assert any(
            abs(layer["trained"][k] - layer["random"][k]) > 1e-4 for k in ("fire_rate", "hoyer", "topk_energy")
        ), name
        assert cell["over_time"][-1]["codes"][name] != cell["over_time"][0]["codes"][name], name
    report = (tmp_path / "s" / "report.md").read_text()
    assert "trained - random" in report and "sparsity_over_time.png" in report
