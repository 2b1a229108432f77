"""The sweep runner: resumable, failure-tolerant, one tidy table; and the experiments' cells."""

import csv
import json

import pytest

from ganlearn.config import ConfigError, parse_value
from ganlearn.sweep import Experiment, cells, resolve_spec, run_sweep

CALLS = []


def _run(params):
    CALLS.append((params["x"], params["seed"]))
    if params.get("interrupt_at") == [params["x"], params["seed"]]:
        raise KeyboardInterrupt  # what Ctrl-C raises in the cell that is running
    if params.get("fail_at") == [params["x"], params["seed"]]:
        raise ValueError("boom")
    return {"y": params["x"] ** 2 + params["seed"], "curve": [1, 2, 3]}


def _report(out, recs, spec):
    return f"{len(recs)} cells, mean y {sum(r['result']['y'] for r in recs) / len(recs):g}"


EXP = Experiment(
    name="toy",
    doc="x squared",
    base={"interrupt_at": None, "fail_at": None},
    grid={"x": [1, 2, 3]},
    seeds=2,
    run=_run,
    report=_report,
)


def _rows(out):
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def test_interrupted_sweep_resumes_with_only_the_missing_cells(tmp_path):
    CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(EXP, tmp_path, overrides=["interrupt_at=[2,1]"], workers=1, progress=False, log=lambda s: None)
    assert CALLS == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert len(_rows(tmp_path)) == 3  # the table holds what finished before the interrupt
    # the same command again (the override is part of the spec, so it must match); it no longer interrupts
    CALLS.clear()
    assert json.loads((tmp_path / "sweep.json").read_text())["base"] == dict(EXP.base, interrupt_at=[2, 1])
    exp2 = Experiment(
        name="toy", doc=EXP.doc, base=EXP.base, grid=EXP.grid, seeds=2, run=_run_no_interrupt, report=_report
    )
    stats = run_sweep(exp2, tmp_path, overrides=["interrupt_at=[2,1]"], workers=1, progress=False, log=lambda s: None)
    assert CALLS == [(2, 1), (3, 0), (3, 1)]
    assert stats == {"skipped": 3, "ran": 3, "failed": 0, "finished": 6, "stopped": False}
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 1  # the interrupted call wrote none
    rows = _rows(tmp_path)
    assert [(int(r["x"]), int(r["seed"]), int(r["y"])) for r in rows] == [
        (x, s, x * x + s) for x in (1, 2, 3) for s in (0, 1)
    ]
    assert "curve" not in rows[0]  # lists stay in the cell JSON
    assert "6 cells, mean y 5.16667" in (tmp_path / "report.md").read_text()


def _run_no_interrupt(params):
    return _run({**params, "interrupt_at": None})


def test_failed_cells_are_recorded_and_retried(tmp_path):
    CALLS.clear()
    stats = run_sweep(EXP, tmp_path, overrides=["fail_at=[3,0]"], workers=1, progress=False, log=lambda s: None)
    assert stats["failed"] == 1 and stats["finished"] == 5
    err = json.loads((tmp_path / "cells" / "x=3__seed=0.error.json").read_text())
    assert err["error"] == "ValueError: boom" and "Traceback" in err["traceback"]
    rows = {r["cell"]: r for r in _rows(tmp_path)}
    assert rows["x=3__seed=0"]["status"] == "failed" and rows["x=3__seed=1"]["status"] == "ok"
    # a re-run retries only the failed cell; once it succeeds its error file is gone
    CALLS.clear()
    fixed = Experiment(name="toy", doc="", base=EXP.base, grid=EXP.grid, seeds=2, run=_run_no_fail, report=_report)
    stats = run_sweep(fixed, tmp_path, overrides=["fail_at=[3,0]"], workers=1, progress=False, log=lambda s: None)
    assert CALLS == [(3, 0)] and stats["failed"] == 0 and stats["finished"] == 6
    assert not (tmp_path / "cells" / "x=3__seed=0.error.json").exists()


def _run_no_fail(params):
    return _run({**params, "fail_at": None})


def _run_fail_odd(params):
    if params["x"] % 2:
        raise ValueError(f"odd x={params['x']}")
    return {"y": params["x"]}


def test_max_failures_stops_the_sweep_and_a_rerun_goes_on(tmp_path):
    exp = Experiment(name="toy", doc="", base={}, grid={"x": [1, 2, 3, 4, 5]}, seeds=1, run=_run_fail_odd)
    quiet = dict(workers=1, progress=False, log=lambda s: None)
    stats = run_sweep(exp, tmp_path, max_failures=2, **quiet)
    # grid order: x=1 fails, x=2 runs, x=3 fails -> stop; x=4 and x=5 are not run
    assert stats == {"skipped": 0, "ran": 1, "failed": 2, "finished": 1, "stopped": True}
    assert {r["cell"]: r["status"] for r in _rows(tmp_path)} == {
        "x=1__seed=0": "failed",
        "x=2__seed=0": "ok",
        "x=3__seed=0": "failed",
    }
    stats = run_sweep(exp, tmp_path, **quiet)  # no budget: the failed cells are tried again, the rest run
    assert stats == {"skipped": 1, "ran": 1, "failed": 3, "finished": 2, "stopped": False}
    with pytest.raises(ConfigError, match="--max-failures 0 is not allowed: must be an integer >= 1"):
        run_sweep(exp, tmp_path, max_failures=0, **quiet)


def test_spec_errors_and_overrides():
    assert parse_value("[ltv,fixed]") == ["ltv", "fixed"] and parse_value("[1, 2.5]") == [1, 2.5]
    assert parse_value("relu") == "relu" and parse_value("null") is None
    spec = resolve_spec(EXP, ["x=[5]", "fail_at=[1,1]"], seeds=3)
    assert spec["grid"] == {"x": [5]} and spec["base"]["fail_at"] == [1, 1]
    assert [c for c, _ in cells(EXP, spec)] == ["x=5__seed=0", "x=5__seed=1", "x=5__seed=2"]
    with pytest.raises(ConfigError, match=r"--set y=... is not allowed: 'toy' has grid keys \['x'\]"):
        resolve_spec(EXP, ["y=1"])
    with pytest.raises(ConfigError, match="seeds=0 is not allowed"):
        resolve_spec(EXP, [], seeds=0)


def test_a_directory_holding_another_sweep_is_refused(tmp_path):
    run_sweep(EXP, tmp_path, overrides=["x=[1]"], seeds=1, workers=1, progress=False, log=lambda s: None)
    with pytest.raises(ConfigError, match="holds a sweep with other settings"):
        run_sweep(EXP, tmp_path, overrides=["x=[2]"], seeds=1, workers=1, progress=False, log=lambda s: None)


def test_cli_sweep_in_worker_processes_and_report(tmp_path, capsys):
    """The real path: spawned workers, a registered experiment, then `ganlearn report DIR`."""
    from ganlearn.cli import main

    out = tmp_path / "ws"
    rc = main(
        [
            "sweep",
            "width-sweep",
            "--set",
            "m=[3]",
            "--set",
            "width_factor=[0.5,30]",
            "--set",
            "step_rule=[ltv]",
            "--set",
            "steps=300",
            "--seeds",
            "2",
            "--workers",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    rows = _rows(out)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    by_k = {}
    for r in rows:
        by_k.setdefault(int(r["k"]), []).append(r["success"] == "True")
    assert by_k == {2: [False, False], 90: [True, True]}  # k < m cannot reach xbar; 30 m converges
    text = (out / "report.md").read_text()
    assert "| 3 | ltv | 90 | 30 | 1 |" in text and "| 3 | ltv | 2 | 0.667 | 0 |" in text  # success fractions
    assert (out / "rate_success_linear.png").stat().st_size > 1000
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.md").exists()
    assert main(["sweep", "nope"]) == 2
    assert "EXPERIMENT 'nope' is not allowed" in capsys.readouterr().err


def test_sample_complexity_cell_and_exponent_fit():
    from ganlearn.experiments.sample_complexity import fit_exponents, run

    pts = [(d, e, 3.0 * d**2 / e**2) for d in (2, 4, 8) for e in (0.4, 0.1)]
    f = fit_exponents(pts)
    assert f["alpha_d"] == pytest.approx(2) and f["beta_inv_eps"] == pytest.approx(2) and f["C"] == pytest.approx(3)
    res = run(
        {
            "d": 2,
            "condition": 2.0,
            "activation": "relu",
            "eps": [0.4],
            "batch": "auto",
            "max_samples": 200_000,
            "tv_lower_samples": 500,
            "seed": 0,
        }
    )
    assert res["batch"] == 256 and res["N_eps=0.4"] is not None and res["N_eps=0.4"] % 256 == 0
    assert res["tv_upper_final"] <= 0.4 and 0 <= res["tv_lower_final"] <= 1
    # the Gaussian TV is below the certificate, so it reaches eps no later
    assert res["tv_gauss_final"] <= res["tv_upper_final"] and res["N_gauss_eps=0.4"] <= res["N_eps=0.4"]


def test_fsr_scaling_cell_sets_width_and_budget():
    from ganlearn.experiments.fsr_scaling import run

    res = run({"preset": "tiny", "width": 1.25, "budget": 0.1, "seed": 0})
    assert res["learner_channels"] == 10 and res["target_channels"] == 8
    assert 0 < res["samples_seen"] < 60_000 and res["coupled_rel_error"] >= 0
    # the budget scales the real and (unless scale_fake=false) the generated batches of every stage
    from ganlearn.experiments.fsr_scaling import config
    from ganlearn.fsr.config import resolve

    base = resolve("default")
    both = config({"preset": "default", "width": 1.0, "budget": 2.0, "seed": 0})[0]
    real = config({"preset": "default", "width": 1.0, "budget": 2.0, "seed": 0, "scale_fake": False})[0]
    for b, st, sr in zip(base.stages, both.stages, real.stages):
        if hasattr(b, "fake_batch"):
            assert st.fake_batch == 2 * b.fake_batch and sr.fake_batch == b.fake_batch and st.batch == 2 * b.batch


def test_fsr_scaling_batches_seeds_on_a_gpu_only_and_run_batch_equals_run(monkeypatch):
    from ganlearn.errors import DivergenceError
    from ganlearn.experiments import fsr_scaling as fs

    short = ["dtype=float64", "stages.1.steps=10", "stages.2.steps=20", "eval.every=20"]
    cells = [{"preset": "tiny", "width": 1.0, "budget": 0.5, "seed": s, "set": short} for s in (0, 1)]
    assert fs.batch_key(cells[0]) is None  # on the CPU every cell runs on its own
    on_gpu = [dict(c, set=short + ['device="cuda"']) for c in cells]  # keys only: nothing runs on the GPU here
    assert fs.batch_key(on_gpu[0]) == fs.batch_key(on_gpu[1]) is not None
    assert fs.batch_key(dict(on_gpu[0], budget=1.0)) != fs.batch_key(on_gpu[0])
    assert 1 <= fs.batch_limit(on_gpu[0]) <= 16
    batched, alone = fs.run_batch(cells), [fs.run(c) for c in cells]
    for b, a in zip(batched, alone):
        assert b.keys() == a.keys()
        for k in ("coupled_rel_error", "coupled_rel_error_level2", "feature_cosine_min", "samples_seen"):
            assert b[k] == pytest.approx(a[k], rel=1e-8), k
    # a divergence in the batch: the sweep's unit runs every cell again on its own, each with its
    # own outcome (a result, or the record of its divergence)
    from ganlearn.sweep.units import run_unit

    calls = []

    def diverge(*a, **k):
        raise DivergenceError("replica r1 diverged")

    def alone_run(p):
        calls.append(p["seed"])
        if p["seed"] == 1:
            raise DivergenceError("r1 blew up on its own too")
        return {"seed": p["seed"]}

    monkeypatch.setattr(fs, "train_replicas", diverge)
    with pytest.raises(DivergenceError):
        fs.run_batch(cells)
    outcome = [r for r, _ in run_unit(alone_run, fs.run_batch, cells)]
    assert outcome == [{"seed": 0}, {"diverged": True, "divergence": "r1 blew up on its own too"}] and calls == [0, 1]


def test_fsr_scaling_report_fits_the_power_law_per_level(tmp_path):
    from ganlearn.experiments.fsr_scaling import fit_power_law, report

    xs = [1e5, 2e5, 4e5, 8e5]
    alpha, c = fit_power_law(xs, [3.0 * x**-0.5 for x in xs])
    assert abs(alpha - 0.5) < 1e-12 and abs(c - 3.0) < 1e-9
    cells = [
        {
            "params": {"width": 1.0, "budget": b, "seed": 0},
            "result": {
                "levels": 2,
                "samples_seen": 1e6 * b,
                "learner_channels": 8,
                "coupled_rel_error": 0.2 * b**-0.5,
                "coupled_rel_error_level1": 0.1 * b**-1.0,
                "coupled_rel_error_level2": 0.2 * b**-0.5,
                "feature_cosine_min": 0.99,
                "sliced_w2_top": 0.05,
                "sliced_w2_floor_top": 0.04,
            },
        }
        for b in (0.5, 1.0, 2.0)
    ]
    md = report(tmp_path, cells, {})
    assert (tmp_path / "fsr_scaling_levels_w1.png").exists()
    per_level = md.split("## Per level")[1].splitlines()
    row1 = next(ln for ln in per_level if ln.startswith("| 1 |"))
    assert "| 1.00 | 1.00 |" in row1  # alpha of level 1 over all budgets and over the last two


def test_pairwise_design_covers_every_pair_of_values():
    import itertools

    from ganlearn.sweep import pairwise_design

    grid = {"levels": [2, 3, 4], "patch": [3, 4], "shared": [True, False], "graph": ["p", "c", "s"], "k": [2, 4]}
    design = pairwise_design(grid)
    assert len(design) < 72 / 4  # far fewer than the product
    for a, b in itertools.combinations(grid, 2):
        for va, vb in itertools.product(grid[a], grid[b]):
            assert any(p[a] == va and p[b] == vb for p in design), (a, va, b, vb)


@pytest.mark.slow
def test_fsr_shapes_tiny_grid_trains_every_level_of_every_cell(tmp_path):
    """The shape experiment at a tiny size: every cell runs (in its own process), the stage list
    trains every level of every shape, and the report and table come out."""
    from ganlearn.experiments import get

    exp = get("fsr-shapes")
    sets = [
        'preset="tiny"',
        "max_steps=8",
        "levels=[2,3]",
        "patch=[2,3]",
        "sparsity=[1.5,3.0]",
        'set=["eval.n_samples=200","eval.n_fit=200","eval.fit_steps=3","stages.0.n_samples=256"]',
    ]
    stats = run_sweep(exp, tmp_path, overrides=sets, workers=2, progress=False, log=lambda s: None)
    spec = json.loads((tmp_path / "sweep.json").read_text())
    n = len(cells(exp, spec))
    assert stats["failed"] == 0 and stats["finished"] == n and 6 <= n < 24
    seen = set()
    for row in _rows(tmp_path):
        assert row["status"] == "ok"
        assert int(row["n_levels_trained"]) == int(row["levels"])
        assert float(row["peak_rss_gb"]) > 0.1
        seen |= {
            ("levels", row["levels"]),
            ("patch", row["patch"]),
            ("shared", row["shared_output"]),
            ("graph", row["neighbourhood"]),
        }
    assert len(seen) == 2 + 2 + 2 + 3  # every value of every axis ran
    assert "Every level trained in every cell: **yes**" in (tmp_path / "report.md").read_text()


def test_width_sweep_features_reports_the_conditions_per_feature_map(tmp_path):
    """One report row per (f, scale, p, width) with s_min at start and end, and a
    verdict per (f, scale, p)."""
    from ganlearn.experiments import get
    from ganlearn.sweep import run_sweep

    sets = ["width_factor=[2,10]", "features=[3]", "feature_scale=[1.0]", "steps=60", "n=40", "m=4"]
    st = run_sweep(
        get("width-sweep-features"),
        tmp_path / "w",
        overrides=sets,
        seeds=1,
        workers=1,
        progress=False,
        log=lambda s: None,
    )
    assert st["ran"] == 6 and st["failed"] == 0
    report = (tmp_path / "w" / "report.md").read_text()
    for a in ("relu", "tanh", "softplus"):  # the verdict follows from the cells: success at the widest, never falling
        recs = [json.loads(f.read_text()) for f in (tmp_path / "w" / "cells").glob(f"feature_act={a}*.json")]
        succ = [r["result"]["success"] for r in sorted(recs, key=lambda r: r["params"]["width_factor"])]
        expected = "yes" if succ[-1] == 1 and all(b >= a_ for a_, b in zip(succ, succ[1:])) else "no"
        assert f"| {a} | 1 | 3 | {expected} |" in report
    cell = json.loads(sorted((tmp_path / "w" / "cells").glob("feature_act=tanh*.json"))[0].read_text())["result"]
    assert cell["s_min0"] > 0 and cell["s_min_end"] > 0 and cell["k"] in (8, 40)


def test_units_respect_the_batch_limit_and_start_longest_first():
    from ganlearn.sweep.units import plan_units

    exp = Experiment(
        name="t",
        doc="",
        base={},
        grid={},
        seeds=1,
        run=lambda p: {},
        run_batch=lambda ps: [{}] * len(ps),
        batch_key=lambda p: p["size"],
        batch_limit=lambda p: 2 if p["size"] == "big" else 64,
        cost=lambda p: {"big": 100.0, "small": 1.0}[p["size"]],
    )
    todo = [(f"s{i}", {"size": "small"}) for i in range(6)] + [(f"b{i}", {"size": "big"}) for i in range(5)]
    units = plan_units(exp, todo, batch=64, workers=1)
    assert [len(u) for u in units] == [2, 2, 1, 6]  # big ones at most 2 per unit, and first
    assert all(p["size"] == "big" for u in units[:3] for p in u.params)
    assert sorted(c for u in units for c, _ in u.cells) == sorted(c for c, _ in todo)
    # every unit of a batch key goes to run_batch, the lone big cell too; with --batch 1 none does
    assert all(u.batched for u in units)
    assert not any(u.batched for u in plan_units(exp, todo, batch=1, workers=1))
    unkeyed = Experiment(
        name="t", doc="", base={}, grid={}, seeds=1, run=exp.run, run_batch=exp.run_batch, batch_key=lambda p: None
    )
    assert not any(u.batched for u in plan_units(unkeyed, todo, batch=64, workers=1))


def _design_first_and_last(spec):
    xs = spec["grid"]["x"]
    return [{"x": xs[0], "y": spec["grid"]["y"][0]}, {"x": xs[-1], "y": spec["grid"]["y"][-1]}]


def _run_xy(params):
    return {"z": params["x"] * 10 + params["y"]}


def test_a_users_experiment_runs_exactly_its_own_design(tmp_path):
    """An Experiment that is in no registry, with its own design, passed to run_sweep: exactly the
    design's points run (not the grid's product), and the table and report count them."""
    exp = Experiment(
        name="mine",
        doc="a design of two points",
        base={},
        grid={"x": [1, 2, 3], "y": [0, 5]},
        seeds=2,
        run=_run_xy,
        design=_design_first_and_last,
        report=lambda o, r, s: f"{len(r)} cells",
    )
    stats = run_sweep(exp, tmp_path, workers=1, progress=False, log=lambda s: None)
    assert stats == {"skipped": 0, "ran": 4, "failed": 0, "finished": 4, "stopped": False}
    rows = _rows(tmp_path)
    assert sorted((int(r["x"]), int(r["y"]), int(r["seed"])) for r in rows) == [
        (1, 0, 0),
        (1, 0, 1),
        (3, 5, 0),
        (3, 5, 1),
    ]
    assert "Cells finished: 4 of 4." in (tmp_path / "report.md").read_text()
    assert [c for c, _ in cells(exp, resolve_spec(exp))] == [
        "x=1__y=0__seed=0",
        "x=1__y=0__seed=1",
        "x=3__y=5__seed=0",
        "x=3__y=5__seed=1",
    ]


def test_declared_parameters_refuse_a_wrong_type_naming_the_key():
    from ganlearn.experiments import get

    with pytest.raises(ConfigError, match=r"m=2.5 has the wrong type: must be an int \(set by --set m="):
        resolve_spec(get("width-sweep"), ["m=[2.5]"])
    with pytest.raises(ConfigError, match=r"step_rule='slow' is not allowed: must be one of 'ltv', 'fixed'"):
        resolve_spec(get("width-sweep"), ["step_rule=slow"])
    with pytest.raises(ConfigError, match=r"probe_n=50 is not allowed: must be an integer >= 100"):
        resolve_spec(get("sparsity-claims"), ["probe_n=50"])
    with pytest.raises(ConfigError, match=r"batch='many' is not allowed"):
        resolve_spec(get("sample-complexity"), ["batch=many"])
    assert resolve_spec(get("sample-complexity"), ["batch=512"])["base"]["batch"] == 512
