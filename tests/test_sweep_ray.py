"""Sweeps on Ray (ganlearn.sweep_ray): a local Ray instance (CPU only) runs the toy sweep with a
failing cell and a resume, and a real experiment's replica-batched units; same files as local."""
import json
import sys

import pytest
import ray
import ray.cloudpickle

from ganlearn.config import ConfigError
from ganlearn.sweep import Experiment, run_sweep

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
    return Experiment(name="toy", doc="", base={"fail_at": None}, grid={"x": [1, 2, 3]}, seeds=2, run=run,
                      report=_report)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_sweep_records_a_failing_cell_and_resumes_only_it(tmp_path, local_ray):
    quiet = dict(progress=False, log=lambda s: None, backend="ray", workers=2)
    stats = run_sweep(_exp(_run), tmp_path, overrides=["fail_at=[3,0]"], **quiet)
    assert stats == {"skipped": 0, "ran": 5, "failed": 1, "finished": 5}
    err = json.loads((tmp_path / "cells" / "x=3__seed=0.error.json").read_text())
    assert err["error"] == "ValueError: boom"
    stats = run_sweep(_exp(_run_fixed), tmp_path, overrides=["fail_at=[3,0]"], **quiet)
    assert stats == {"skipped": 5, "ran": 1, "failed": 0, "finished": 6}
    assert not (tmp_path / "cells" / "x=3__seed=0.error.json").exists()
    cell = json.loads((tmp_path / "cells" / "x=2__seed=1.json").read_text())
    assert cell["result"] == {"y": 5}
    hist = [json.loads(ln) for ln in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [h["backend"] for h in hist] == ["ray", "ray"]


def test_ray_runs_replica_batches_of_a_real_experiment_like_the_local_backend(tmp_path, local_ray):
    from ganlearn.experiments.width_sweep import EXPERIMENT

    ov = ["m=[5]", "width_factor=[2,4]", "step_rule=[\"ltv\"]", "steps=60"]
    quiet = dict(progress=False, log=lambda s: None, seeds=2, overrides=ov)
    run_sweep(EXPERIMENT, tmp_path / "ray", backend="ray", workers=2, **quiet)
    run_sweep(EXPERIMENT, tmp_path / "local", workers=1, batch=1, **quiet)
    names = sorted(p.name for p in (tmp_path / "local" / "cells").glob("*.json"))
    assert names == sorted(p.name for p in (tmp_path / "ray" / "cells").glob("*.json")) and len(names) == 4
    for n in names:
        a = json.loads((tmp_path / "ray" / "cells" / n).read_text())["result"]
        b = json.loads((tmp_path / "local" / "cells" / n).read_text())["result"]
        assert a["success"] == b["success"] and abs(a["residual_final"] - b["residual_final"]) <= 1e-8 * b["residual0"]


def test_backend_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="--backend 'dask' is not allowed"):
        run_sweep(_exp(_run), tmp_path, backend="dask")
    with pytest.raises(ConfigError, match="--address 'x:1' needs --backend ray"):
        run_sweep(_exp(_run), tmp_path, address="x:1")
