"""Every artefact says where it came from: the ganlearn version, the git commit and dirty flag of
the checkout, the package versions, the machine; in run configs, sweeps, checkpoints, results."""

import json
import subprocess
from pathlib import Path

import torch

import ganlearn
from ganlearn.config import to_dict
from ganlearn.fsr.config import load_json, resolve
from ganlearn.io import load_checkpoint, save_checkpoint, write_meta
from ganlearn.provenance import command_line, git_state, machine, provenance
from ganlearn.sweep import Experiment, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def _head():
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def test_provenance_names_the_version_commit_and_packages():
    p = provenance()
    assert p["ganlearn"] == ganlearn.__version__ and p["torch"] == torch.__version__
    assert p["commit"] == _head()  # the checkout the package is imported from
    assert isinstance(p["dirty"], bool) or p["commit"] is None
    m = machine()
    assert m["cores"] >= 1 and m["cpu"]


def test_command_line_has_no_machine_paths():
    assert command_line(["/some/venv/bin/ganlearn", "run", "--set", "a=b c"]) == "ganlearn run --set 'a=b c'"
    assert (
        command_line([str(ROOT / "benchmarks" / "bench_run.py"), "--device", "cpu"])
        == "python benchmarks/bench_run.py --device cpu"
    )


def test_a_runs_config_json_carries_provenance_and_still_loads(tmp_path):
    cfg = resolve("tiny")
    f = tmp_path / "config.json"
    f.write_text(json.dumps({**to_dict(cfg), "ganlearn": provenance()}))
    assert load_json(f) == cfg


def test_checkpoint_sidecar_records_provenance(tmp_path):
    path = save_checkpoint(tmp_path, 3, {"w": torch.ones(2)}, {"step": 3})
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["step"] == 3 and side["ganlearn"]["commit"] == git_state()["commit"]
    assert load_checkpoint(path)[1]["step"] == 3


def _cell(params):
    return {"y": params["x"] + params["seed"]}


def test_sweep_json_and_meta_json(tmp_path):
    exp = Experiment(name="prov", doc="x", base={}, grid={"x": [1, 2]}, seeds=1, run=_cell)
    run_sweep(exp, tmp_path, workers=1, progress=False, log=lambda s: None)
    spec = json.loads((tmp_path / "sweep.json").read_text())
    assert spec["ganlearn"]["ganlearn"] == ganlearn.__version__
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["commit"] == _head() and meta["cells_finished"] == 2 and meta["machine"]["cores"] >= 1
    assert meta["wall_seconds"] >= 0 and meta["invocations"] == 1
    # the provenance in sweep.json is not part of the spec: the same sweep resumes
    stats = run_sweep(exp, tmp_path, workers=1, progress=False, log=lambda s: None)
    assert stats["skipped"] == 2 and json.loads((tmp_path / "meta.json").read_text())["invocations"] == 2


def test_write_meta(tmp_path):
    path = write_meta(tmp_path, wall_seconds=1.234, command="ganlearn x", extra={"n": 1})
    meta = json.loads(path.read_text())
    assert meta["command"] == "ganlearn x" and meta["wall_seconds"] == 1.2 and meta["n"] == 1
