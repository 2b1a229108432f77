"""Fuzzing the command line with hypothesis: generated ``--set`` overrides (real keys
and unknown ones; values of every JSON type, out of range, NaN/inf, empty lists, huge sizes) for
``run``, ``sweep`` and ``train-images``. Each must be accepted (exit 0) or refused with exit 2 and
one line ``ganlearn: error: ...`` that names the key -- never a traceback, never a hang.

Accepted ``run`` configurations also train: every stage is cut to one step at the tiny preset's
sizes (the values under test stay as generated), so an accepted value is one that trains."""

import contextlib
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganlearn.cli import main
from ganlearn.config import to_dict
from ganlearn.fsr.config import resolve

COUNTS = {"accepted": 0, "rejected": 0}


def _leaves(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, f"{prefix}{k}.")
    elif isinstance(d, list) and d and isinstance(d[0], dict):
        for i, v in enumerate(d):
            yield from _leaves(v, f"{prefix}{i}.")
    else:
        yield prefix[:-1]


RUN_KEYS = sorted(set(_leaves(to_dict(resolve("tiny"))))) + ["target.bogus", "nope", "stages.9.steps", "eval"]
IMG_KEYS = [
    "width",
    "steps",
    "batch",
    "lr_g",
    "resolution",
    "data",
    "d_norm",
    "eval_n",
    "z_dim",
    "ema_rampup",
    "divergence_factor",
    "bogus",
]
SWEEP_KEYS = {
    "width-sweep": ["m", "width_factor", "steps", "step_rule", "model", "mu", "bogus"],
    "sample-complexity": ["d", "eps", "condition", "batch", "activation", "max_samples"],
    "fsr-scaling": ["budget", "width", "whiten_ridge", "preset"],
    "fsr-shapes": ["levels", "patch", "sparsity", "neighbourhood", "threads", "max_steps"],
    "image-width": ["width", "data", "steps", "lr_g"],
}

scalars = st.one_of(
    st.integers(min_value=-5, max_value=50),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(alphabet='abcxyz_=.,[]{}" 0189-', max_size=8),
    st.sampled_from(["relu", "sigmoid", "cross", "square", "sn", "none", "default", "digits", "pairwise"]),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=3), st.dictionaries(st.sampled_from(["a", "kind"]), scalars, max_size=2)
)


def _text(v) -> str:
    return v if isinstance(v, str) and not v.startswith(("[", "{", '"')) else json.dumps(v)


def _call(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)  # anything escaping here fails the test with its traceback
    return rc, err.getvalue()


def _check(rc: int, err: str, key: str) -> None:
    assert "Traceback" not in err
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        COUNTS["rejected"] += 1
        line = err.strip().splitlines()[-1]
        assert line.startswith("ganlearn: error: "), err
        names = {key, key.split(".")[-1], key.split(".")[0]}
        assert any(n in line for n in names) or "predicted peak memory" in line, (key, line)
    else:
        COUNTS["accepted"] += 1


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


@FUZZ
@given(key=st.sampled_from(RUN_KEYS), value=values)
def test_fuzz_run_overrides(key, value):
    rc, err = _call(["run", "--preset", "tiny", "--dry-run", "--set", f"{key}={_text(value)}"])
    _check(rc, err, key)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(data=st.data())
def test_fuzz_accepted_run_overrides_train(data, tmp_path_factory):
    """Values the config accepts must train: each accepted draw runs every stage for one step."""
    cheap = [
        "seed",
        "target.sparsity",
        "target.channels",
        "target.neighbourhood",
        "target.shared_output",
        "target.atoms",
        "learner.channels",
        "learner.sparsity",
        "stages.1.sgda.lr_g",
        "stages.1.ridge",
        "stages.2.whiten_ridge",
        "stages.2.parents",
        "stages.0.rotation",
        "stages.1.whiten",
        "dtype",
    ]
    key = data.draw(st.sampled_from(cheap))
    value = data.draw(values)
    caps = [
        "baseline.enabled=false",
        "eval.fit_steps=1",
        "eval.n_samples=100",
        "eval.n_fit=100",
        "eval.n_projections=8",
        "stages.1.steps=1",
        "stages.2.steps=1",
        "stages.0.n_samples=256",
        "stages.0.rotation_steps=5",
        "stages.1.batch=64",
        "stages.1.fake_batch=64",
        "stages.2.batch=64",
    ]
    argv = ["run", "--preset", "tiny", "--no-progress"] + sum((["--set", c] for c in caps), [])
    argv += ["--set", f"{key}={_text(value)}"]
    rc, err = _call(argv + ["--dry-run"])
    _check(rc, err, key)
    if rc == 0:
        out = tmp_path_factory.mktemp("fz")
        rc, err = _call(argv + ["--out", str(out / "r")])
        assert "Traceback" not in err and rc in (0, 1, 2), (rc, err)  # 1: diverged, said in one line
        assert rc != 2 or err.strip().splitlines()[-1].startswith("ganlearn: error: "), err
        assert rc != 1 or err.strip().splitlines()[-1].startswith("ganlearn: diverged: "), err


@FUZZ
@given(key=st.sampled_from(IMG_KEYS), value=values)
def test_fuzz_train_images_overrides(key, value):
    rc, err = _call(["train-images", "--dry-run", "--set", f"{key}={_text(value)}"])
    _check(rc, err, key)


@FUZZ
@given(
    exp_key=st.sampled_from([(e, k) for e, ks in SWEEP_KEYS.items() for k in ks]),
    value=st.one_of(values, st.lists(scalars, min_size=0, max_size=3)),
)
def test_fuzz_sweep_overrides(exp_key, value):
    exp, key = exp_key
    rc, err = _call(["sweep", exp, "--dry-run", "--set", f"{key}={_text(value)}"])
    _check(rc, err, key)


def test_fuzz_counts_reported(capsys):
    """Fuzzes the sweep overrides itself (so it stands alone, under -k or in any order) and prints
    how many fuzzed cases this file has accepted and rejected so far."""
    before = COUNTS["accepted"] + COUNTS["rejected"]
    test_fuzz_sweep_overrides()  # hypothesis draws its own examples here
    assert COUNTS["accepted"] + COUNTS["rejected"] - before >= 30
    with capsys.disabled():
        print(f"\nfuzzed CLI cases: {COUNTS['accepted']} accepted, {COUNTS['rejected']} rejected")
