import json
import warnings

import pytest

from ganlearn.cli import main
from ganlearn.config import ConfigError


def test_dry_run_prints_resolved_config(capsys):
    assert main(["run", "--preset", "tiny", "--dry-run", "--set", "seed=7"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["seed"] == 7 and cfg["stages"][0]["kind"] == "warm_start"


def test_bad_key_is_rejected_before_training(capsys, tmp_path):
    assert main(["run", "--preset", "tiny", "--set", "target.nope=1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'target.nope'" in err and "allowed keys here" in err
    assert not (tmp_path / "r").exists()


def test_run_then_report_then_resume_of_a_finished_run(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "run",
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "baseline.stage.steps=1",
        "--set",
        "eval.fit_steps=5",
        "--set",
        "stages.first_hidden.steps=20",
        "--set",
        "stages.super_resolution_2.steps=20",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "coupled_rel_error" in text and "report:" in text
    report = (out / "report.md").read_text()
    assert "![samples](figures/samples.png)" in report and (out / "figures" / "features.png").stat().st_size > 1000
    assert (out / "baseline" / "metrics.jsonl").exists()
    assert main(args) == 2  # refuses to overwrite a run
    assert "already holds a run" in capsys.readouterr().err
    assert main(["report", str(out)]) == 0
    assert main(["resume", str(out), "--no-progress"]) == 0


def test_device_cuda_without_gpu_is_a_clear_error(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["run", "--preset", "tiny", "--device", "cuda", "--out", "/nonexistent/x"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_dry_run_predicts_memory_and_a_run_over_budget_is_refused(capsys, tmp_path):
    assert main(["run", "--preset", "tiny", "--dry-run"]) == 0
    assert "predicted peak memory:" in capsys.readouterr().err
    out = tmp_path / "r"
    assert main(["run", "--preset", "tiny", "--set", "memory_budget_gb=0.05", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "predicted peak memory" in err and "exceeds the budget of 0.1 GB (memory_budget_gb)" in err
    assert "target.levels=2" in err  # names the fields that drive the largest phase
    assert not out.exists()


def test_memory_budget_falls_back_when_available_memory_cannot_be_read(monkeypatch, capsys):
    from ganlearn.fsr import memory
    from ganlearn.fsr.config import resolve

    cfg = resolve("tiny")
    assert memory.memory_budget(cfg, available=lambda: 4e9) == (3e9, "75% of the available memory")
    with pytest.warns(
        RuntimeWarning,
        match=r"the memory budget is 12\.0 GB, 75% of the physical memory \(the "
        r"available memory could not be read\); set memory_budget_gb",
    ):
        assert memory.memory_budget(cfg, available=lambda: None, total=lambda: 16e9).bytes == 12e9
    with pytest.warns(RuntimeWarning, match=r"8\.0 GB, 8 GB \(neither the available nor the physical memory"):
        assert (
            memory.memory_budget(cfg, available=lambda: None, total=lambda: None).bytes == memory.FALLBACK_BUDGET_BYTES
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a set budget needs no memory reading and says nothing
        assert memory.memory_budget(resolve("tiny", overrides=["memory_budget_gb=2"]), available=lambda: None) == (
            2e9,
            "memory_budget_gb",
        )
    # through the command line: the fall-back is said in one line, and a run over it is refused with its source
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    monkeypatch.setattr(memory, "total_bytes", lambda: 0.4e9)
    assert main(["run", "--preset", "tiny", "--out", "/nonexistent/never"]) == 2
    err = capsys.readouterr().err
    assert "the memory budget is 0.3 GB, 75% of the physical memory" in err
    assert "exceeds the budget of 0.3 GB (75% of the physical memory (the available memory could not be read))" in err


def test_memory_prediction_grows_with_the_shape():
    from ganlearn.fsr.config import resolve
    from ganlearn.fsr.memory import predict_peak_bytes

    small, _ = predict_peak_bytes(resolve("default"))
    big, phases = predict_peak_bytes(
        resolve("default", overrides=["target.levels=5", "target.channels=32", 'target.neighbourhood="square"'])
    )
    assert 0.5e9 < small < big and "evaluation" in phases and "target" in phases


@pytest.mark.parametrize(
    "problem,sets,key",
    [
        ("onelayer", ["steps=60", "d=4", "batch=256", "tv_mc_samples=0"], "sigma_rel_error"),
        ("overparam", ["steps=80", "m=4", "k=20", "n=40"], "residual_final"),
    ],
)
def test_every_problem_runs_with_one_grammar_and_resumes(problem, sets, key, tmp_path, capsys):
    """``ganlearn run PROBLEM``: the same run directory (config.json, metrics.jsonl, summary.json,
    report.md) for each problem; a finished run resumes to the same summary, an unfinished one is
    run again to the same numbers; another configuration in the same directory is refused."""
    out = tmp_path / problem
    args = ["run", problem, "--out", str(out), "--no-progress"] + [a for s in sets for a in ("--set", s)]
    assert main(args) == 0
    for name in ("config.json", "metrics.jsonl", "summary.json", "report.md", "curves.png"):
        assert (out / name).exists(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["problem"] == problem and "ganlearn" in cfg
    first = json.loads((out / "summary.json").read_text())
    assert len((out / "metrics.jsonl").read_text().splitlines()) >= 2
    (out / "summary.json").unlink()  # as if interrupted before the end
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())[key] == first[key]
    assert main(["report", str(out)]) == 0
    capsys.readouterr()
    from ganlearn.problems import build_config, get

    with pytest.raises(ConfigError, match="another configuration"):
        get(problem).train(build_config(get(problem), overrides=sets[:-1]), out, False)
    assert main(args) == 2 and "already holds a run" in capsys.readouterr().err


def test_run_images_writes_the_same_run_directory(tmp_path, capsys):
    out = tmp_path / "img"
    sets = [
        'data="digits"',
        "width=4",
        "steps=20",
        "batch=32",
        "eval_every=0",
        "eval_n=200",
        "eval_patches=4",
        "grid_every=0",
        "ckpt_every=0",
        "log_every=10",
        "z_dim=8",
    ]
    assert main(["run", "images", "--out", str(out), "--no-progress"] + [a for s in sets for a in ("--set", s)]) == 0
    for name in ("config.json", "metrics.jsonl", "summary.json", "report.md"):
        assert (out / name).exists(), name
    assert "swd_avg" in capsys.readouterr().out
    from ganlearn.rundir import problem_of

    assert problem_of(out) == "images"
    with pytest.raises(ConfigError, match="no config.json"):
        problem_of(tmp_path / "nothing")


def test_run_refuses_what_a_problem_does_not_have(capsys):
    assert main(["run", "overparam", "--preset", "tiny", "--dry-run"]) == 2
    assert "presets are FSR's" in capsys.readouterr().err
    assert main(["run", "onelayer", "--set", "d=0", "--dry-run"]) == 2
    assert "d=0 is not allowed: must be an integer >= 1" in capsys.readouterr().err
    assert main(["run", "onelayer", "--device", "cuda", "--dry-run"]) == 2
    assert main(["run", "overparam", "--dry-run", "--set", "k=7"]) == 0
    assert json.loads(capsys.readouterr().out)["k"] == 7
