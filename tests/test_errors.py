"""One error path for the CLI: every user error is one line ``ganlearn: error: ...``
with exit status 2 and no traceback; --debug shows it; divergence is one line with exit status 1."""

import numpy as np
import pytest

from ganlearn.cli import main
from ganlearn.errors import DivergenceError, UserError


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(capsys, value):
    assert main(["run", "--preset", "tiny", "--dry-run", "--set", f"stages.2.sgda.lr_g={value}"]) == 2
    err = _err(capsys)
    assert err.startswith("ganlearn: error: stages.2.sgda.lr_g=") and "must be a finite number" in err


def test_config_file_syntax_errors_name_file_line_and_column(capsys, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"seed": 1,\n "target": {')
    assert main(["run", "--config", str(bad), "--dry-run"]) == 2
    err = _err(capsys)
    assert err.startswith("ganlearn: error: --config ") and f"{bad}:2:" in err and "not valid JSON" in err
    toml = tmp_path / "broken.toml"
    toml.write_text("seed = 1\n[target]\nchannels = = 3\n")
    assert main(["run", "--config", str(toml), "--dry-run"]) == 2
    err = _err(capsys)
    assert f"{toml}:3:" in err and "not valid TOML" in err
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    assert main(["run", "--config", str(lst), "--dry-run"]) == 2
    assert "must hold a table" in _err(capsys)
    assert main(["run", "--config", str(tmp_path / "none.toml"), "--dry-run"]) == 2
    assert "no such file" in _err(capsys)


def _png(path, size=12, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def test_image_folder_errors_and_unreadable_files(capsys, tmp_path):
    from ganlearn.images.data import DataWarning, load

    assert main(["train-images", "--data", "folder:/no/such/dir", "--steps", "1", "--out", str(tmp_path / "a")]) == 2
    assert "folder:/no/such/dir: not a directory" in _err(capsys)
    assert not (tmp_path / "a").exists()  # no empty run directory is left behind
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train-images", "--data", f"folder:{empty}", "--steps", "1", "--out", str(tmp_path / "b")]) == 2
    assert "no image files" in _err(capsys)
    # only unreadable files: refused, naming them
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"not a png at all")
    assert main(["train-images", "--data", f"folder:{junk}", "--steps", "1", "--out", str(tmp_path / "c")]) == 2
    err = _err(capsys)
    assert "1 of 1 image files are not readable: a.png" in err and "no readable image remains" in err
    # some readable: the unreadable ones are skipped with one warning that counts and names them
    for i in range(3):
        _png(junk / f"ok{i}.png", seed=i)
    (junk / "b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.warns(DataWarning, match=r"2 of 5 image files are not readable: a.png .*; b.jpg .*skipped them"):
        x = load(f"folder:{junk}", resolution=8)
    assert x.shape == (3, 3, 8, 8)


@pytest.mark.parametrize(
    "args, key",
    [
        (["width-sweep", "--set", "m=abc"], "m"),
        (["width-sweep", "--set", "m=[5,abc]"], "m"),
        (["width-sweep", "--set", "width_factor=NaN"], "width_factor"),
        (["width-sweep", "--set", "steps=-3"], "steps"),
        (["sample-complexity", "--set", "eps=[0.5,2]"], "eps"),
        (["sample-complexity", "--set", "d=[4,0]"], "d"),
        (["fsr-scaling", "--set", "budget=[1,x]"], "budget"),
        (["fsr-shapes", "--set", "levels=[2,9]"], "target.levels=9"),
        (["image-width", "--set", "width=[4,-1]"], "width"),
        (["image-width", "--set", "data=nope"], "data"),
        (["width-sweep", "--set", "m=[]"], "m"),
        (["width-sweep", "--seeds", "0"], "seeds"),
    ],
)
def test_sweep_grids_are_validated_before_any_cell(capsys, tmp_path, args, key):
    out = tmp_path / "sw"
    assert main(["sweep", *args, "--dry-run"]) == 2
    err = _err(capsys)
    assert err.startswith("ganlearn: error:") and key in err
    assert main(["sweep", *args, "--out", str(out), "--no-progress"]) == 2
    assert not (out / "cells").exists() or not any((out / "cells").iterdir())


def test_debug_shows_the_traceback(capsys, monkeypatch):
    with pytest.raises(UserError):
        main(["--debug", "run", "--preset", "tiny", "--dry-run", "--set", "target.nope=1"])
    monkeypatch.setenv("GANLEARN_DEBUG", "1")
    with pytest.raises(UserError):
        main(["run", "--preset", "tiny", "--dry-run", "--set", "target.nope=1"])


def test_one_layer_blow_up_is_caught():
    from ganlearn.onelayer import OneLayerConfig, train

    with pytest.raises(DivergenceError, match=r"step \d+: Sigma's relative error = .* more than 10 x"):
        train(OneLayerConfig(d=4, lr_g=30.0, steps=400, decay_t0=1e9, eval_every=1))


def test_fsr_blow_up_ends_the_run_with_one_line(capsys, tmp_path):
    out = tmp_path / "r"
    rc = main(
        [
            "run",
            "--preset",
            "tiny",
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "baseline.enabled=false",
            "--set",
            "stages.first_hidden.sgda.lr_g=50",
            "--set",
            "stages.first_hidden.steps=60",
        ]
    )
    err = _err(capsys)
    assert rc == 1 and err.startswith("ganlearn: diverged: staged: stage 1 (first_hidden) step ")
    assert "last good checkpoint" in err


def test_a_sweep_records_diverged_cells(tmp_path):
    from ganlearn.sweep import Experiment, run_sweep

    exp = Experiment(
        name="t-div",
        doc="test",
        base={},
        grid={"x": [1, 2]},
        seeds=1,
        run=_div_run,
        report=lambda out, recs, spec: f"{len(recs)} analysed",
    )
    stats = run_sweep(exp, tmp_path / "s", workers=1, progress=False, log=lambda s: None)
    assert stats == {"skipped": 0, "ran": 2, "failed": 0, "finished": 2, "stopped": False}
    import csv

    rows = {r["x"]: r for r in csv.DictReader(open(tmp_path / "s" / "results.csv"))}
    assert rows["1"]["status"] == "ok" and rows["2"]["status"] == "diverged"
    assert "blew up at step 7" in rows["2"]["divergence"]
    report = (tmp_path / "s" / "report.md").read_text()
    assert "diverged: 1 (x=2__seed=0" in report and "1 analysed" in report
    stats = run_sweep(exp, tmp_path / "s", workers=1, progress=False, log=lambda s: None)
    assert stats["skipped"] == 2 and stats["ran"] == 0  # a diverged cell is an outcome: not retried


def _div_run(params):
    if params["x"] == 2:
        raise DivergenceError("blew up at step 7")
    return {"value": 1.0}
