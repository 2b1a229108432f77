"""The four problems behind one grammar: ``ganlearn run fsr|onelayer|overparam|images --set ...``
builds the problem's configuration the same way (defaults or a preset -> ``--config FILE`` ->
``--set key=value``, checked by :mod:`ganlearn.config`), trains into a run directory
(``config.json``, ``metrics.jsonl``, ``summary.json``, then ``report.md``) and resumes there.

Each problem package has the same files for the same jobs (``config``, ``model``, ``train``,
``batched``, ``metrics``) and exports ``Config``, ``train``, ``train_batched`` and its result type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ganlearn import fsr, images, onelayer, overparam
from ganlearn.config import ConfigError, apply_override, from_dict, merge, read_config_file, to_dict
from ganlearn.fsr.config import PRESETS, load_json, resolve
from ganlearn.fsr.report import write_report as fsr_report
from ganlearn.images.config import make_config as image_config
from ganlearn.images.train import train as image_train
from ganlearn.images.train import write_report as image_report
from ganlearn.onelayer.train import run as onelayer_run
from ganlearn.onelayer.train import write_report as onelayer_report
from ganlearn.overparam.train import run as overparam_run
from ganlearn.overparam.train import write_report as overparam_report
from ganlearn.rundir import read_config

__all__ = ["Problem", "PROBLEMS", "get", "build_config"]


@dataclass(frozen=True)
class Problem:
    """How the command line builds, trains, resumes and reports one problem.

    ``train(cfg, run_dir, progress) -> summary`` writes the run directory and resumes one that
    holds the same configuration; ``load(run_dir)`` reads a run's configuration back;
    ``report(run_dir)`` (re)writes ``report.md``; ``headline`` names the summary's key results."""

    name: str
    doc: str
    config: type
    train: Callable[[Any, Path, bool], Mapping[str, Any]]
    load: Callable[[Path], Any]
    report: Callable[[Path], Path]
    headline: tuple[str, ...]
    presets: tuple[str, ...] = ()


def _dict_config(cls: type, config_file: str | None, overrides: list[str]) -> Any:
    """defaults -> file -> ``key=value`` overrides -> a validated ``cls``."""
    d = to_dict(cls())
    if config_file is not None:
        d = merge(d, read_config_file(config_file, "--config"), "")
    for item in overrides:
        d = apply_override(d, item)
    cfg = from_dict(cls, d)
    cfg.validate()
    return cfg


def _load_dict(cls: type) -> Callable[[Path], Any]:
    def load(run_dir: Path) -> Any:
        d = read_config(run_dir)
        d.pop("problem", None)
        return from_dict(cls, d)

    return load


def _load_image(run_dir: Path):
    return image_config(read_config(run_dir)["config"])


PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in [
        Problem(
            "fsr",
            "forward super-resolution (Allen-Zhu & Li): the staged algorithm and the end-to-end baseline",
            fsr.Config,
            lambda c, d, pr: fsr.train(c, d, progress=pr),
            lambda d: load_json(Path(d) / "config.json"),
            fsr_report,
            ("coupled_rel_error", "feature_cosine_min", "sliced_w2_top", "samples_seen", "wall_seconds"),
            presets=tuple(sorted(PRESETS)),
        ),
        Problem(
            "onelayer",
            "a one-layer generator phi(W* x) by SGDA against truncated statistics (Kontonis et al.)",
            onelayer.Config,
            lambda c, d, pr: onelayer_run(c, d, progress=pr),
            _load_dict(onelayer.Config),
            onelayer_report,
            ("sigma_rel_error", "tv_upper", "tv_gauss", "samples", "steps"),
        ),
        Problem(
            "overparam",
            "an overparameterized one-hidden-layer GAN by GDA (Balaji et al.)",
            overparam.Config,
            lambda c, d, pr: overparam_run(c, d, progress=pr),
            _load_dict(overparam.Config),
            overparam_report,
            ("success", "residual_final", "rate_fitted", "rate_predicted", "steps_to_tol"),
        ),
        Problem(
            "images",
            "an image GAN (DCGAN-k or the multi-resolution FSR generator) on real images",
            images.Config,
            lambda c, d, pr: image_train(c, d, progress=pr),
            _load_image,
            image_report,
            ("swd_avg", "frechet", "precision", "recall", "wall_seconds"),
        ),
    ]
}


def get(name: str) -> Problem:
    if name not in PROBLEMS:
        raise ConfigError(f"PROBLEM {name!r} is not allowed: must be one of {', '.join(PROBLEMS)}")
    return PROBLEMS[name]


def build_config(
    problem: Problem, *, preset: str | None = None, config_file: str | None = None, overrides: list[str] | None = None
) -> Any:
    """The problem's validated configuration: its defaults (FSR: the preset), the file, then the
    overrides."""
    overrides = list(overrides or [])
    if problem.name == "fsr":
        return resolve(preset or "default", config_file, overrides)
    if preset not in (None, "default"):
        raise ConfigError(
            f"--preset {preset!r} is not allowed for {problem.name!r}: presets are FSR's ({', '.join(sorted(PRESETS))})"
        )
    if problem.name == "images":
        d = to_dict(images.Config())
        if config_file is not None:
            d = merge(d, read_config_file(config_file, "--config"), "")
        for item in overrides:
            d = apply_override(d, item)
        return image_config(d)
    return _dict_config(problem.config, config_file, overrides)
