import json

import pytest

from ganlearn.config import ConfigError, from_dict, to_dict
from ganlearn.fsr.config import RunConfig, resolve
from ganlearn.fsr.stages import stage_name


def test_default_round_trips_through_json():
    cfg = resolve("default")
    assert from_dict(RunConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_overrides_apply_with_types():
    cfg = resolve("default", overrides=["target.channels=12", "stages.1.sgda.lr_g=3", "seed=4"])
    assert cfg.target.channels == 12 and cfg.stages[1].sgda.lr_g == 3.0 and cfg.seed == 4


@pytest.mark.parametrize(
    "override,needle",
    [
        ("target.chanels=3", "unknown key 'target.chanels'"),
        ("target.channels=abc", "target.channels='abc' has the wrong type: must be an int"),
        ("target.channels=1000", "target.channels=1000 is not allowed"),
        ('target.neighbourhood="diag"', "target.neighbourhood='diag' is not allowed: must be one of"),
        ("stages.1.sgda.lr_d=-1", r"stages.1.sgda.lr_d=-1.0 is not allowed: must be a number > 0"),
        ("stages.9.steps=3", "unknown key 'stages.9'"),
        ('stages.2.kind="magic"', "stages.2.kind='magic' is not allowed"),
        ("baseline.enabled=1", "baseline.enabled=1 has the wrong type: must be a bool"),
        ("baseline.max_steps=0", "baseline.max_steps=0 is not allowed"),
        ("stages.2.level=-1", "stages.2.level=-1 is not allowed"),
        ("stages.1.fake_batch=0", "stages.1.fake_batch=0 is not allowed"),
        ("stages.3.whiten=false", "stages.3.precondition=True is not allowed"),
        ("stages.3.whiten_ridge=0", "stages.3.whiten_ridge=0.0 is not allowed: must be a number > 0"),
        ("noequals", "must look like key=value"),
        ("learner.channels=12", "learner.channels=12 is not allowed: must be null or >= target.channels = 16"),
    ],
)
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


@pytest.mark.parametrize("preset", ["default", "tiny"])
@pytest.mark.parametrize("levels", [1, 2, 4, 5])
def test_stages_follow_the_target(preset, levels):
    cfg = resolve(preset, overrides=[f"target.levels={levels}"])
    sr = [s.level for s in cfg.stages if s.kind == "super_resolution"]
    assert sr == list(range(2, levels + 1))
    assert cfg.stages[0].kind == "warm_start" and any(s.kind == "first_hidden" for s in cfg.stages)


def test_untrained_level_is_rejected_naming_it():
    with pytest.raises(ConfigError, match=r"level\(s\) 4 of the learner untrained: level 4 lacks its hidden layer V_4"):
        resolve("default", overrides=["target.levels=4", "stages-=4"])
    cfg = resolve("default", overrides=["target.levels=4", "stages-=4", "allow_untrained_levels=true"])
    assert [s.level for s in cfg.stages if s.kind == "super_resolution"] == [2, 3]
    with pytest.raises(ConfigError, match=r"level 1 lacks its output layer W_1 \(a warm_start or output_layer"):
        resolve("tiny", overrides=["stages-=0"])  # no warm start: no output layer is trained
    # GAN_OutputLayer on level 1 alone trains W_1 but not W_2
    with pytest.raises(ConfigError, match=r"level 2 lacks its output layer W_2 \(a warm_start or output_layer"):
        resolve("tiny", overrides=["stages-=0", 'stages+={"kind": "output_layer", "level": 1}'])


def test_stages_append_and_remove():
    cfg = resolve("default", overrides=['stages+={"kind": "output_layer", "level": 3, "steps": 7}'])
    assert cfg.stages[-1].kind == "output_layer" and cfg.stages[-1].level == 3 and cfg.stages[-1].steps == 7
    # An appended stage can be overridden by index afterwards, in order.
    n = len(cfg.stages)
    cfg = resolve("default", overrides=['stages+={"kind": "first_hidden"}', f"stages.{n - 1}.steps=11"])
    assert cfg.stages[-1].steps == 11
    with pytest.raises(ConfigError, match="stages-='9' is not allowed: must be a stage index 0..3"):
        resolve("default", overrides=["stages-=9"])
    with pytest.raises(ConfigError, match=r"stages\+=\[0\].kind='magic' is not allowed"):
        resolve("default", overrides=['stages+={"kind": "magic"}'])


def test_stage_list_in_a_toml_file_replaces_the_derived_one(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(
        '[target]\nlevels = 2\n\n[[stages]]\nkind = "warm_start"\n\n[[stages]]\nkind = "first_hidden"\n'
        'steps = 5\n\n[[stages]]\nkind = "super_resolution"\nlevel = 2\nsteps = 6\n'
    )
    cfg = resolve("default", p)
    assert [s.kind for s in cfg.stages] == ["warm_start", "first_hidden", "super_resolution"]
    assert cfg.stages[1].steps == 5 and cfg.stages[2].steps == 6


def test_stages_are_addressed_by_name_in_overrides():
    cfg = resolve("default", overrides=["stages.first_hidden.steps=7", "stages.super_resolution_3.batch=128"])
    names = [stage_name(s) for s in cfg.stages]
    assert names == ["warm_start", "first_hidden", "super_resolution_2", "super_resolution_3"]
    assert cfg.stages[1].steps == 7 and cfg.stages[3].batch == 128
    cfg = resolve(
        "default",
        overrides=['stages+={"kind": "output_layer", "name": "polish_w1", "level": 1}', "stages.polish_w1.steps=9"],
    )
    assert stage_name(cfg.stages[-1]) == "polish_w1" and cfg.stages[-1].steps == 9
    cfg = resolve(
        "default", overrides=['stages+={"kind": "output_layer", "name": "polish_w1", "level": 1}', "stages-=polish_w1"]
    )
    assert "polish_w1" not in [stage_name(s) for s in cfg.stages] and len(cfg.stages) == 4
    with pytest.raises(ConfigError, match="no stage is named 'nope'; the stages here are 0: warm_start"):
        resolve("default", overrides=["stages.nope.steps=1"])
    with pytest.raises(ConfigError, match="are all named 'first_hidden'"):
        resolve("default", overrides=['stages+={"kind": "first_hidden"}', "stages.first_hidden.steps=1"])


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(value):
    with pytest.raises(ConfigError, match="must be a finite number"):
        resolve("default", overrides=[f"stages.first_hidden.ridge={value}"])


def test_sparser_targets_get_proportionally_larger_moment_stage_batches():
    """The derived stage list scales GAN_FirstHidden's and GAN_ForwardSuperResolution's batches by
    (2/16) / (k/m) for codes sparser than the default's (rounded up to 256), never below the
    defaults; an explicit stage override still wins, and the learner's own sparsity counts."""

    def batches(*ovs):
        return [
            (getattr(s, "batch", None), getattr(s, "fake_batch", None))
            for s in resolve("default", overrides=list(ovs)).stages
        ]

    default = batches()
    assert default == [(None, None), (8192, 16384), (1024, 1024), (1024, 1024)]
    assert batches("target.sparsity=4.0") == default
    assert batches("target.sparsity=1.0") == [(None, None), (16384, 32768), (2048, 2048), (2048, 2048)]
    assert batches("target.sparsity=1.5")[1] == (11008, 22016)  # 8192 * 4/3 = 10923 -> 11008
    assert batches("target.channels=32", "target.sparsity=4.0") == default  # the rate k/m, not k
    assert batches("target.sparsity=1.0", "learner.sparsity=2.0") == default
    assert batches("target.sparsity=1.0", "stages.first_hidden.batch=100")[1] == (100, 32768)
    from ganlearn.fsr.config import RunConfig, TargetConfig

    assert [getattr(s, "batch", None) for s in RunConfig(target=TargetConfig(sparsity=1.0)).stages][1] == 16384

    def steps(*ovs):  # GAN_FirstHidden's steps follow the same factor; the other stages' do not
        return [getattr(s, "steps", None) for s in resolve("default", overrides=list(ovs)).stages]

    assert steps() == steps("target.sparsity=4.0") == [None, 300, 800, 800]
    assert steps("target.sparsity=0.5") == [None, 1200, 800, 800]
    assert steps("target.sparsity=1.5") == [None, 400, 800, 800]
    assert steps("target.sparsity=0.5", "stages.first_hidden.steps=50")[1] == 50
