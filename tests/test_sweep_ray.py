"""Sweeps on Ray: a local Ray instance (CPU only) runs the toy sweep with a failing cell and a
resume, a worker killed mid-cell (retried by Ray, the table equal to the local backend's), a raising
cell (not retried), a real experiment's replica-batched units, and the shared-storage probe's refusal
(test_sweep_ray_cluster.py: the probe on a real two-node cluster)."""

import csv
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import ray
import ray.cloudpickle

from ganlearn.config import ConfigError
from ganlearn.errors import UserError
from ganlearn.sweep import Experiment, run_sweep
from ganlearn.sweep.backends import Failure, Ray
from ganlearn.sweep.units import Unit

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the toy cell functions live here


def _run(params):
    if params.get("fail_at") == [params["x"], params["seed"]]:
        raise ValueError("boom")
    return {"y": params["x"] ** 2 + params["seed"]}


def _run_fixed(params):
    return _run({**params, "fail_at": None})


def _report(out, recs, spec):
    return f"{len(recs)} cells"


def _exp(run):
    return Experiment(
        name="toy", doc="", base={"fail_at": None}, grid={"x": [1, 2, 3]}, seeds=2, run=run, report=_report
    )


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_sweep_records_a_failing_cell_and_resumes_only_it(tmp_path, local_ray):
    quiet = dict(progress=False, log=lambda s: None, backend="ray", workers=2)
    stats = run_sweep(_exp(_run), tmp_path, overrides=["fail_at=[3,0]"], **quiet)
    assert stats == {"skipped": 0, "ran": 5, "failed": 1, "finished": 5, "stopped": False}
    err = json.loads((tmp_path / "cells" / "x=3__seed=0.error.json").read_text())
    assert err["error"] == "ValueError: boom"
    stats = run_sweep(_exp(_run_fixed), tmp_path, overrides=["fail_at=[3,0]"], **quiet)
    assert stats == {"skipped": 5, "ran": 1, "failed": 0, "finished": 6, "stopped": False}
    assert not (tmp_path / "cells" / "x=3__seed=0.error.json").exists()
    cell = json.loads((tmp_path / "cells" / "x=2__seed=1.json").read_text())
    assert cell["result"] == {"y": 5}
    hist = [json.loads(ln) for ln in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [h["backend"] for h in hist] == ["ray", "ray"]


def test_ray_runs_replica_batches_of_a_real_experiment_like_the_local_backend(tmp_path, local_ray):
    from ganlearn.experiments.width_sweep import EXPERIMENT

    ov = ["m=[5]", "width_factor=[2,4]", 'step_rule=["ltv"]', "steps=60"]
    quiet = dict(progress=False, log=lambda s: None, seeds=2, overrides=ov)
    run_sweep(EXPERIMENT, tmp_path / "ray", backend="ray", workers=2, **quiet)
    run_sweep(EXPERIMENT, tmp_path / "local", workers=1, batch=1, **quiet)
    names = sorted(p.name for p in (tmp_path / "local" / "cells").glob("*.json"))
    assert names == sorted(p.name for p in (tmp_path / "ray" / "cells").glob("*.json")) and len(names) == 4
    for n in names:
        a = json.loads((tmp_path / "ray" / "cells" / n).read_text())["result"]
        b = json.loads((tmp_path / "local" / "cells" / n).read_text())["result"]
        assert a["success"] == b["success"] and abs(a["residual_final"] - b["residual_final"]) <= 1e-8 * b["residual0"]


def _run_killed_once(params):
    """x = 2 kills its own worker process on the first attempt (a lost worker, not a cell error)."""
    marker = Path(params["marks"]) / f"x={params['x']}__seed={params['seed']}"
    with open(marker, "a") as f:
        f.write("attempt\n")
    if params["x"] == 2 and marker.read_text().count("attempt") == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    if params["x"] == 3:
        raise ValueError("a cell error")
    return {"y": params["x"] ** 2 + params["seed"]}


def _table(out):
    with open(out / "results.csv") as f:
        return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_a_lost_worker_is_retried_by_ray_and_a_raising_cell_is_not(tmp_path, local_ray):
    tables = {}
    for backend, run in (("ray", _run_killed_once), ("local", _run_no_kill)):
        marks = tmp_path / f"marks-{backend}"
        marks.mkdir()
        exp = Experiment(name="toy", doc="", base={"marks": str(marks)}, grid={"x": [1, 2, 3]}, seeds=2, run=run)
        stats = run_sweep(
            exp,
            tmp_path / backend,
            backend=backend,
            workers=2 if backend == "ray" else 1,
            progress=False,
            log=lambda s: None,
        )
        assert stats == {"skipped": 0, "ran": 4, "failed": 2, "finished": 4, "stopped": False}, backend
        tables[backend] = [{k: v for k, v in r.items() if k != "marks"} for r in _table(tmp_path / backend)]
    attempts = {p.name: p.read_text().count("attempt") for p in (tmp_path / "marks-ray").iterdir()}
    assert attempts["x=2__seed=0"] == attempts["x=2__seed=1"] == 2  # killed once, run again by Ray
    assert attempts["x=3__seed=0"] == attempts["x=3__seed=1"] == 1  # raised once: not retried
    assert attempts["x=1__seed=0"] == attempts["x=1__seed=1"] == 1
    err = json.loads((tmp_path / "ray" / "cells" / "x=3__seed=0.error.json").read_text())
    assert err["error"] == "ValueError: a cell error"
    assert tables["ray"] == tables["local"]
    assert [r["status"] for r in tables["ray"]] == ["ok", "ok", "ok", "ok", "failed", "failed"]


def _run_no_kill(params):
    if params["x"] == 3:
        raise ValueError("a cell error")
    return {"y": params["x"] ** 2 + params["seed"]}


@pytest.mark.slow
def test_a_worker_lost_more_often_than_max_retries_is_a_failed_cell(tmp_path, local_ray):
    marks = tmp_path / "marks"
    marks.mkdir()
    exp = Experiment(name="toy", doc="", base={"marks": str(marks)}, grid={"x": [2]}, seeds=1, run=_run_killed_once)
    units = [Unit([("x=2__seed=0", {"x": 2, "seed": 0, "marks": str(marks)})])]
    [(unit, outcome)] = list(Ray(workers=2, max_retries=0).run(exp, units))
    assert isinstance(outcome, Failure) and outcome.error.startswith("WorkerCrashedError"), outcome


class _FakeRay:
    """Enough of ray's API for the storage probe: two live nodes, the second sees another file system."""

    def __init__(self):
        self.options_of = []

    def nodes(self):
        return [
            {"Alive": True, "NodeID": "a" * 56, "NodeManagerAddress": "10.0.0.1"},
            {"Alive": True, "NodeID": "b" * 56, "NodeManagerAddress": "10.0.0.2"},
            {"Alive": False, "NodeID": "c" * 56, "NodeManagerAddress": "10.0.0.3"},
        ]

    def remote(self, **_):
        fake = self

        class _Task:
            def __init__(self, fn):
                self.fn = fn

            def options(self, scheduling_strategy):
                fake.options_of.append(scheduling_strategy.node_id)
                node = scheduling_strategy.node_id
                fn = self.fn

                class _Bound:
                    def remote(self, path, token):
                        return fn(path if node == "a" * 56 else "/nonexistent" + path, token)

                return _Bound()

        return _Task

    def get(self, values, timeout=None):
        return values


def test_the_storage_probe_refuses_a_directory_a_node_cannot_see(tmp_path):
    fake = _FakeRay()
    with pytest.raises(UserError, match=r"is not visible from the Ray node\(s\) 10\.0\.0\.2 \(of 2\)") as e:
        Ray(workers=2, storage=tmp_path).check_storage(fake)
    assert str(tmp_path.resolve()) in str(e.value) and fake.options_of == ["a" * 56, "b" * 56]
    assert not list(tmp_path.iterdir())  # the probe file is removed again
    Ray(workers=2, storage=None).check_storage(fake)  # nothing to check without a directory


def test_backend_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="--backend 'dask' is not allowed"):
        run_sweep(_exp(_run), tmp_path, backend="dask")
    with pytest.raises(ConfigError, match="--address 'x:1' needs --backend ray"):
        run_sweep(_exp(_run), tmp_path, address="x:1")
    with pytest.raises(ConfigError, match="--cpus-per-task 2 needs --backend ray"):
        run_sweep(_exp(_run), tmp_path, cpus_per_task=2)
    with pytest.raises(ConfigError, match="--gpus-per-task -1 is not allowed: must be a number >= 0"):
        run_sweep(_exp(_run), tmp_path, backend="ray", gpus_per_task=-1)
