import json

import pytest

from ganlearn.config import ConfigError, RunConfig, from_dict, resolve, to_dict


def test_default_round_trips_through_json():
    cfg = resolve("default")
    assert from_dict(RunConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_overrides_apply_with_types():
    cfg = resolve("default", overrides=["target.channels=12", "stages.1.sgda.lr_g=3", "seed=4"])
    assert cfg.target.channels == 12 and cfg.stages[1].sgda.lr_g == 3.0 and cfg.seed == 4


@pytest.mark.parametrize("override,needle", [
    ("target.chanels=3", "unknown key 'target.chanels'"),
    ("target.channels=abc", "target.channels='abc' has the wrong type: must be an int"),
    ("target.channels=1000", "target.channels=1000 is not allowed"),
    ("target.neighbourhood=\"diag\"", "target.neighbourhood='diag' is not allowed: must be one of"),
    ("stages.1.sgda.lr_d=-1", "lr_d must be > 0"),
    ("stages.9.steps=3", "unknown key 'stages.9'"),
    ("stages.2.kind=\"magic\"", "stages.2.kind='magic' is not allowed"),
    ("baseline.enabled=1", "baseline.enabled=1 has the wrong type: must be a bool"),
    ("baseline.max_steps=0", "baseline.max_steps=0 is not allowed"),
    ("stages.1.level=-1", "stages.1.level=-1 is not allowed"),
    ("stages.2.fake_batch=0", "stages.2.fake_batch=0 is not allowed"),
    ("stages.5.whiten=false", "stages.5.precondition=True is not allowed"),
    ("stages.5.whiten_ridge=0", "stages.5.whiten_ridge=0.0 is not allowed: must be > 0"),
    ("noequals", "must look like key=value"),
])
def test_bad_values_are_rejected_naming_the_key(override, needle):
    with pytest.raises(ConfigError) as e:
        resolve("default", overrides=[override])
    assert needle in str(e.value)


def test_config_file_toml(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("seed = 3\n[target]\nchannels = 10\n")
    cfg = resolve("tiny", p)
    assert cfg.seed == 3 and cfg.target.channels == 10
    p.write_text("[target]\nwidth = 10\n")
    with pytest.raises(ConfigError, match="unknown key 'target.width'"):
        resolve("tiny", p)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="--preset 'huge' is not allowed"):
        resolve("huge")
