"""Fuzzing the command line's paths and module names with hypothesis, as ``test_fuzz.py`` fuzzes
``--set``: output directories (``sweep --out``), run directories and checkpoints (``resume``,
``report``, ``probe``, ``score``), configuration files (``run --config``) and user generators
(``probe --module``), built from pieces that go wrong in every way a file system can (a file where a
directory is wanted, a name too long, a missing parent, a read-only or virtual file system, a NUL
byte). Each call must be accepted (exit 0) or refused with exit 2 and one line ``ganlearn: error:``
(argparse's usage error, for a path that looks like a flag: the usage, then its one error line,
exit 2) -- never a traceback."""

import contextlib
import io
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ganlearn.cli import main

SEGMENTS = [
    "afile",
    "adir",
    "adir/afile",
    "new",
    "..",
    ".",
    "",
    "a" * 300,
    "sp ace",
    "ü",
    "-x",
    "bad.toml",
    "bad.json",
    "empty.json",
    "good.toml",
    "a\x00b",
]
ROOTS = ["", "", "", "/proc/", "/dev/null/", "/sys/", "/proc/self/"]
paths = st.builds(
    lambda root, parts: root + "/".join(parts),
    st.sampled_from(ROOTS),
    st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4),
)
MODULES = [
    "os",
    "os:getcwd",
    "json:loads",
    "collections:OrderedDict",
    "torch.nn:Identity",
    "ganlearn.nope",
    "ganlearn.fsr:nope",
    "a.b:c",
    ":",
    "",
    "x:",
    ":y",
    "1x",
    "a b",
    "a..b",
    "a/b",
    "adir",
    "-m",
]
modules = st.one_of(st.sampled_from(MODULES), st.text(alphabet="ab._:1 -/", max_size=8))
SWEEP = [
    "sweep",
    "width-sweep",
    "--set",
    "m=[2]",
    "--set",
    "width_factor=[2]",
    "--set",
    "steps=2",
    "--set",
    'step_rule=["ltv"]',
    "--seeds",
    "1",
    "--workers",
    "1",
    "--no-progress",
]
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None, derandomize=True
)  # the same draws every run: the counts below are reproducible


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory to run in: a file, a directory holding a file, broken configuration files."""
    root = tmp_path_factory.mktemp("paths") / "work"
    (root / "adir").mkdir(parents=True)
    (root / "afile").write_text("not a directory\n")
    (root / "adir" / "afile").write_text("x")
    (root / "bad.toml").write_text("[unclosed\n")
    (root / "bad.json").write_text("{not json")
    (root / "empty.json").write_text("")
    (root / "good.toml").write_text("seed = 3\n")
    return root


def _call(workdir: Path, argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(argv)  # anything else escaping here fails the test with its traceback
            except SystemExit as e:  # argparse's own usage error (a path that looks like a flag): exit 2
                rc = e.code
    finally:
        os.chdir(cwd)
    return rc, err.getvalue()


def _check(rc: int, err: str, counts: dict, names: tuple[str, ...] = ()) -> None:
    assert "Traceback" not in err, err
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        counts["refused"] += 1
        line = err.strip().splitlines()[-1]
        counts.setdefault("lines", set()).add(line[:160])
        # ours: "ganlearn: error: ..."; argparse's: usage, then "ganlearn CMD: error: ..."
        assert re.match(r"ganlearn( [a-z-]+)?: error: ", line), err
        assert not names or any(n in line for n in names), (names, line)
    else:
        counts["accepted"] += 1


def _report(name: str, counts: dict) -> None:
    print(f"\n{name}: {counts['accepted']} accepted, {counts['refused']} refused in one line")
    for line in sorted(counts.get("lines", ()))[:12]:
        print("   ", line)


def test_fuzz_sweep_out(workdir):
    counts = {"accepted": 0, "refused": 0}

    @FUZZ
    @given(path=paths)
    @example(path="new/sweep")
    def fuzz(path):
        _check(*_call(workdir, SWEEP + ["--out", path]), counts)

    fuzz()
    _report("sweep --out", counts)
    assert counts["accepted"] > 0 and counts["refused"] > 0


def test_fuzz_run_directories(workdir):
    counts = {"accepted": 0, "refused": 0}

    @FUZZ
    @given(command=st.sampled_from(["resume", "report", "probe", "score"]), path=paths)
    def fuzz(command, path):
        rc, err = _call(workdir, [command, path] + (["--data", "digits"] if command == "score" else []))
        assert rc == 2, (rc, err)  # nothing here is a run directory
        _check(rc, err, counts)

    fuzz()
    _report("resume / report / probe / score RUN_DIR", counts)


def test_fuzz_config_files(workdir):
    counts = {"accepted": 0, "refused": 0}

    @FUZZ
    @given(path=paths, suffix=st.sampled_from(["", ".toml", ".json"]))
    @example(path="good", suffix=".toml")
    def fuzz(path, suffix):
        _check(
            *_call(workdir, ["run", "--preset", "tiny", "--dry-run", "--config", path + suffix]), counts, ("--config",)
        )

    fuzz()
    _report("run --config", counts)
    assert counts["accepted"] > 0 and counts["refused"] > 0


def test_fuzz_probe_module(workdir):
    counts = {"accepted": 0, "refused": 0}

    @FUZZ
    @given(module=modules, checkpoint=st.sampled_from(["afile", "nothere.safetensors", "adir"]))
    def fuzz(module, checkpoint):
        rc, err = _call(
            workdir, ["probe", checkpoint, "--module", module, "--layers", "x", "--z-dim", "4", "--out", "probe-out"]
        )
        assert rc == 2, (rc, err)  # no checkpoint here fits a generator
        _check(rc, err, counts, ("--module", "CHECKPOINT", checkpoint))

    fuzz()
    _report("probe --module", counts)
