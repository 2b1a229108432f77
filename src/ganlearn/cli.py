"""Command line: ``ganlearn run [fsr|onelayer|overparam|images] | resume | report | sweep |
train-images | score | probe``.

The only module that parses flags, prints, and picks devices.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ganlearn.config import ConfigError, to_dict
from ganlearn.errors import DivergenceError, UserError
from ganlearn.fsr.config import PRESETS
from ganlearn.rng import make_generator


def _check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available to this PyTorch build; use --device cpu")


def _headline(summary: Mapping[str, Any]) -> str:
    rows = [("", "staged") + (("baseline",) if "baseline" in summary else ())]
    for k in (
        "coupled_rel_error",
        "feature_cosine_min",
        "feature_cosine_mean",
        "sliced_w2_top",
        "sliced_w2_floor_top",
        "samples_seen",
        "wall_seconds",
    ):
        row: tuple[str, ...] = (k, f"{summary[k]:.4g}")
        if "baseline" in summary:
            row += (f"{summary['baseline'][k]:.4g}",)
        rows.append(row)
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, width)) for r in rows)


def _finish(problem, run_dir: Path, summary: Mapping[str, Any]) -> None:
    report = problem.report(run_dir)
    print(f"\nrun directory: {run_dir}\nreport: {report}\n")
    if problem.name == "fsr":
        print(_headline(summary))
    else:
        width = max(map(len, problem.headline))
        print(
            "\n".join(
                f"{k.ljust(width)}  {summary[k]:.4g}"
                if isinstance(summary.get(k), float)
                else f"{k.ljust(width)}  {summary.get(k)}"
                for k in problem.headline
            )
        )


def _device_of(cfg) -> str:
    return str(getattr(cfg, "device", "cpu")).split(":")[0]


def cmd_run(args) -> int:
    from ganlearn.problems import build_config, get

    problem = get(args.problem)
    overrides = list(args.set or []) + ([f'device="{args.device}"'] if args.device else [])
    if args.device and problem.name in ("onelayer", "overparam"):
        raise ConfigError(f"--device {args.device} is not allowed for {problem.name!r}: its runs are on the CPU")
    cfg = build_config(problem, preset=args.preset, config_file=args.config, overrides=overrides)
    if problem.name == "fsr":
        from ganlearn.fsr.memory import budget_bytes, check_budget, format_prediction, predict_peak_bytes

        if args.dry_run:
            print(format_prediction(*predict_peak_bytes(cfg), budget_bytes(cfg)), file=sys.stderr)
        check_budget(cfg)
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    _check_device(_device_of(cfg))
    desc = {
        "fsr": args.preset or "default",
        "images": f"img-{getattr(cfg, 'arch', '')}-k{getattr(cfg, 'width', '')}",
    }.get(problem.name, problem.name)
    run_dir = Path(args.out) if args.out else _next_run_dir(Path("runs"), desc)
    if (run_dir / "config.json").exists():
        raise ConfigError(
            f"--out {str(run_dir)!r} already holds a run; use `ganlearn resume {run_dir}` or choose another --out"
        )
    _out_dir(run_dir)
    print(f"ganlearn: training {problem.name} ({desc}) into {run_dir}", flush=True)
    summary = problem.train(cfg, run_dir, not args.no_progress)
    _finish(problem, run_dir, summary)
    return 0


def cmd_resume(args) -> int:
    from ganlearn.problems import get
    from ganlearn.rundir import problem_of

    run_dir = Path(args.run_dir)
    problem = get(problem_of(run_dir))
    cfg = problem.load(run_dir)
    _check_device(_device_of(cfg))
    print(f"ganlearn: resuming {run_dir} ({problem.name})", flush=True)
    summary = problem.train(cfg, run_dir, not args.no_progress)
    _finish(problem, run_dir, summary)
    return 0


def cmd_report(args) -> int:
    run_dir = Path(args.run_dir)
    if (run_dir / "sweep.json").exists():  # a sweep directory: table + the experiment's report
        from ganlearn.experiments import get as get_experiment
        from ganlearn.sweep import note_rendering, write_sweep_report, write_table

        write_table(run_dir)
        exp = get_experiment(json.loads((run_dir / "sweep.json").read_text())["experiment"])
        print(write_sweep_report(exp, run_dir))
        note_rendering(run_dir)
        return 0
    from ganlearn.problems import get
    from ganlearn.rundir import problem_of

    problem = get(problem_of(run_dir))
    if not (run_dir / "summary.json").exists():
        raise ConfigError(
            f"RUN_DIR {str(run_dir)!r} has no summary.json: the run has not finished "
            f"(finish it with `ganlearn resume {run_dir}`)"
        )
    print(problem.report(run_dir))
    return 0


def cmd_sweep(args) -> int:
    from ganlearn.experiments import get, registry

    if args.list or not args.experiment:
        for name, exp in registry().items():
            print(f"{name}\n    {exp.doc}\n    grid: {json.dumps(exp.grid)}  seeds: {exp.seeds}\n")
        return 0 if args.list else 2
    from ganlearn.sweep import cells, check_cells, resolve_spec, run_sweep

    exp = get(args.experiment)
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers} is not allowed: must be an integer >= 1")
    if args.batch < 1:
        raise ConfigError(f"--batch {args.batch} is not allowed: must be an integer >= 1")
    if args.dry_run:
        spec = resolve_spec(exp, args.set, args.seeds)
        check_cells(exp, spec)
        print(json.dumps(spec, indent=2) + f"\n{len(cells(exp, spec))} cells")
        return 0
    out = _out_dir(Path(args.out) if args.out else Path("runs") / f"sweep-{exp.name}")
    print(f"ganlearn: sweep {exp.name!r} into {out} with {args.workers} worker(s)", flush=True)
    try:
        stats = run_sweep(
            exp,
            out,
            overrides=args.set,
            seeds=args.seeds,
            workers=args.workers,
            progress=not args.no_progress,
            batch=args.batch,
            backend=args.backend,
            address=args.address,
            gpus_per_task=args.gpus_per_task,
            cpus_per_task=args.cpus_per_task,
            max_failures=args.max_failures,
        )
    except KeyboardInterrupt:
        print(
            "\nganlearn: interrupted; finished cells are kept. Re-run the same command to run only the missing ones.",
            file=sys.stderr,
        )
        return 130
    stopped = " (stopped at --max-failures)" if stats["stopped"] else ""
    print(
        f"\ncells: {stats['finished']} finished ({stats['ran']} now, {stats['skipped']} before), "
        f"{stats['failed']} failed{stopped}\nresults: {out / 'results.csv'}\nreport: {out / 'report.md'}"
    )
    return 1 if stats["failed"] else 0


def cmd_train_images(args) -> int:
    from ganlearn.config import apply_override
    from ganlearn.images.distributed import rank_device
    from ganlearn.images.train import ImageGANConfig, make_config, train

    over: dict = to_dict(ImageGANConfig())
    for item in args.set or []:
        over = apply_override(over, item)
    for key in ("data", "arch", "width", "steps", "device"):
        if getattr(args, key) is not None:
            over[key] = getattr(args, key)
    cfg = make_config(over)
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    _check_device(cfg.device.split(":")[0])
    run_dir = _out_dir(Path(args.out) if args.out else _next_run_dir(Path("runs"), f"img-{cfg.arch}-k{cfg.width}"))
    print(f"ganlearn: training {cfg.arch} (k={cfg.width}) on {cfg.data} into {run_dir}", flush=True)
    res: dict = dict(train(cfg, run_dir, progress=not args.no_progress, device=rank_device(cfg.device)))
    keys = [k for k in res if k.startswith(("swd_avg", "frechet", "precision", "recall", "density", "coverage"))]
    print("\n".join(f"{k:>16}: {res[k]:.4g}" for k in keys))
    print(
        f"run directory: {run_dir} (samples: grid-*.png, metrics: metrics.jsonl); "
        f"probe it with `ganlearn probe {run_dir} --data {cfg.data}`"
    )
    return 0


def cmd_score(args) -> int:
    """Score a trained image run's EMA generator (standalone, the same functions the loop calls)."""
    import torch

    from ganlearn.images import metrics as M
    from ganlearn.images.data import load
    from ganlearn.images.train import load_generator, sample

    try:
        g, _, cfg, meta = load_generator(args.run_dir)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    shape = meta["data_shape"]
    real = load(args.data or cfg.data, resolution=shape[-1], channels=shape[1])
    n = min(args.n, len(real))
    real = real[torch.randperm(len(real), generator=make_generator(args.seed, "score.real"))[:n]]
    fake = sample(g, n, cfg.z_dim, seed=args.seed, stream="score.fake")
    rec = {
        "run": str(args.run_dir),
        "data": args.data or cfg.data,
        "step": meta.get("step"),
        "swd": M.swd(real, fake, seed=args.seed, patches_per_image=args.patches),
        "features": M.feature_metrics(real, fake, feature=args.features, seed=args.seed),
    }
    if args.inception_weights:
        try:
            rec["inception"] = M.inception_fid_kid(real, fake, args.inception_weights)
        except (FileNotFoundError, ImportError) as e:
            raise ConfigError(f"--inception-weights: {e}") from None
    with open(Path(args.run_dir) / "scores.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")
    for part in ("swd", "features", "inception"):
        if part in rec:
            print(f"{part}: " + ", ".join(f"{k}={v:.4g}" for k, v in rec[part].items() if k != "meta"))
    print(f"appended to {Path(args.run_dir) / 'scores.jsonl'} (each record states n, features, seed)")
    return 0


def cmd_probe(args) -> int:
    from ganlearn.images.probe_report import run_probe

    if args.n < 100:
        raise ConfigError(f"--n {args.n} is not allowed: must be >= 100")
    ck = Path(args.checkpoint)
    # RUN_DIR/probe for a run directory or RUN_DIR/checkpoints/state-*.safetensors; beside a --module state dict
    out = _out_dir(
        Path(args.out)
        if args.out
        else (ck if ck.is_dir() else ck.parent if args.module else ck.parent.parent) / "probe"
    )
    try:
        res = run_probe(
            args.checkpoint,
            args.data,
            out,
            n=args.n,
            seed=args.seed,
            layers=args.layers.split(",") if args.layers else None,
            module=args.module,
            z_dim=args.z_dim,
        )
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(str(e)) from None
    for v in res["verdicts"]:
        verdict = "N/A " if v["pass"] is None else "PASS" if v["pass"] else "FAIL"
        value = round(v["value"], 4) if isinstance(v["value"], float) else v["value"]
        print(f"{verdict}  {v['claim']}: {value}")
    print(f"report: {out / 'probe.md'}")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """ganlearn's own warnings (about the user's input) as one line; others as Python prints them."""
    if issubclass(category, UserWarning) and "ganlearn" in str(filename):
        print(f"ganlearn: warning: {message}", file=file or sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _next_run_dir(root: Path, desc: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    ids = [int(p.name.split("-")[0]) for p in root.iterdir() if p.name.split("-")[0].isdigit()]
    return root / f"{max(ids, default=-1) + 1:05d}-{desc}"


class _Version(argparse.Action):
    """``--version``: the version, and the commit when run from a git checkout (read only when asked)."""

    def __call__(self, parser, namespace, values, option_string=None):
        import ganlearn
        from ganlearn.provenance import git_state

        g = git_state()
        where = f" (commit {g['commit'][:10]}{', uncommitted changes' if g['dirty'] else ''})" if g["commit"] else ""
        print(f"ganlearn {ganlearn.__version__}{where}")
        parser.exit()


def _add_run(sub) -> None:
    """``ganlearn run``: one run of a problem."""
    r = sub.add_parser(
        "run",
        help="train one run of a problem (default fsr: the staged FSR algorithm and the "
        "baseline) into a run directory and write its report",
    )
    r.add_argument(
        "problem",
        nargs="?",
        default="fsr",
        choices=["fsr", "onelayer", "overparam", "images"],
        help="fsr (default), onelayer, overparam or images",
    )
    r.add_argument("--preset", choices=sorted(PRESETS), help="fsr: a named configuration (default: default)")
    r.add_argument("--config", help="a .json or .toml file of overrides on top of the preset")
    r.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one value, e.g. --set target.channels=32 --set stages.2.steps=800 (fsr), "
        "--set d=16 (onelayer), --set k=200 (overparam), --set width=64 (images)",
    )
    r.add_argument("--out", help="run directory (default: runs/NNNNN-PRESET or runs/NNNNN-PROBLEM)")
    r.add_argument("--device", choices=["cpu", "cuda"], help="fsr, images: where to train (default: the config's, cpu)")
    r.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)


def _add_run_dirs(sub) -> None:
    """``ganlearn resume`` and ``ganlearn report``."""
    s = sub.add_parser("resume", help="continue an interrupted run (any problem) from its last checkpoint")
    s.add_argument("run_dir")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_resume)
    t = sub.add_parser("report", help="(re)write the report of a finished run or of a sweep directory")
    t.add_argument("run_dir")
    t.set_defaults(func=cmd_report)


def _add_sweep(sub) -> None:
    """``ganlearn sweep``."""
    w = sub.add_parser("sweep", help="run an experiment's grid x seeds in parallel (resumable) and report it")
    w.add_argument("experiment", nargs="?", help="experiment name (see --list)")
    w.add_argument("--list", action="store_true", help="list the experiments and exit")
    w.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a base value or a grid axis, e.g. --set d=[2,4] --set steps=500 (JSON values)",
    )
    w.add_argument("--seeds", type=int, help="seeds per grid point (default: the experiment's)")
    w.add_argument("--workers", type=int, default=2, help="parallel processes, one torch thread each (default 2)")
    w.add_argument(
        "--batch",
        type=int,
        default=64,
        help="train up to this many compatible cells as one replica-batched computation, where the "
        "experiment supports it (sample-complexity, width sweeps; fsr-scaling on a GPU); 1: each cell on its own, "
        "by the single-run trainer (default 64)",
    )
    w.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="local processes (default) or Ray tasks (pip install 'ganlearn[ray]')",
    )
    w.add_argument(
        "--address",
        help="with --backend ray: the Ray cluster to use (default: $RAY_ADDRESS, else a "
        "local instance with --workers CPUs); on a multi-node cluster --out must be "
        "on storage every node sees",
    )
    w.add_argument(
        "--gpus-per-task",
        type=float,
        default=0.0,
        help="with --backend ray: GPUs (a fraction allowed) each task asks Ray for (default 0)",
    )
    w.add_argument(
        "--cpus-per-task",
        type=float,
        default=1.0,
        help="with --backend ray: CPUs each task asks Ray for, and its torch threads (default 1)",
    )
    w.add_argument(
        "--max-failures",
        type=int,
        metavar="N",
        help="stop the sweep once N cells have failed (default: run every cell); re-run to go on",
    )
    w.add_argument("--out", help="sweep directory (default: runs/sweep-EXPERIMENT); re-use it to resume")
    w.add_argument("--dry-run", action="store_true", help="print the resolved grid and the number of cells")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.set_defaults(func=cmd_sweep)


def _add_images(sub) -> None:
    """``ganlearn train-images``, ``score`` and ``probe``."""
    ti = sub.add_parser(
        "train-images",
        help="train an image GAN (DCGAN-k or the multi-resolution FSR generator); "
        "the same as `ganlearn run images` with these flags",
    )
    ti.add_argument("--data", help="fashion-mnist, mnist-5k, digits, faces, photo-crops, cifar10:DIR or folder:DIR")
    ti.add_argument("--arch", choices=["dcgan", "fsr"], help="generator shape (default dcgan)")
    ti.add_argument("--width", type=int, help="width k (default 32)")
    ti.add_argument("--steps", type=int, help="generator steps (default 3000)")
    ti.add_argument("--device", help="cpu (default) or cuda[:i]")
    ti.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any other field of ImageGANConfig, e.g. --set batch=128 --set d_norm=bn",
    )
    ti.add_argument("--out", help="run directory (default runs/NNNNN-img-ARCH-kK); an existing one is resumed")
    ti.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    ti.add_argument("--no-progress", action="store_true")
    ti.set_defaults(func=cmd_train_images)
    sc = sub.add_parser(
        "score", help="SWD, Frechet/PRDC (and FID/KID with local Inception weights) of a trained image run"
    )
    sc.add_argument("run_dir")
    sc.add_argument("--data", help="reference data (default: the run's)")
    sc.add_argument("--n", type=int, default=10000, help="samples per side (default 10000; ProGAN used 16384)")
    sc.add_argument("--patches", type=int, default=128, help="SWD 7x7 patches per image (ProGAN: 128)")
    sc.add_argument("--features", default="randconv128-v1", choices=["randconv128-v1", "pixels16"])
    sc.add_argument(
        "--inception-weights", help="path of Inception-v3 FID weights (needs ganlearn[fid]); never downloaded"
    )
    sc.add_argument("--seed", type=int, default=0)
    sc.set_defaults(func=cmd_score)
    pr = sub.add_parser("probe", help="FSR diagnostics (paper Figs. 1-4) of a trained generator; writes probe.md")
    pr.add_argument(
        "checkpoint", help="an image run directory, a checkpoint file, or (with --module) a safetensors state dict"
    )
    pr.add_argument("--data", help="the dataset, for the discriminator's firing rate and the real-image grid")
    pr.add_argument("--out", help="report folder (default RUN_DIR/probe)")
    pr.add_argument("--n", type=int, default=2000, help="generator samples for the probes (default 2000)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--layers", help="comma-separated hidden module names (default: the generator's hidden_layers())")
    pr.add_argument(
        "--module", help="pkg.module:factory building your own generator (CHECKPOINT is then its state dict)"
    )
    pr.add_argument("--z-dim", type=int, help="latent size of a --module generator")
    pr.set_defaults(func=cmd_probe)


def build_parser() -> argparse.ArgumentParser:
    """The command line (``docs/reference/cli.md`` is generated from it)."""
    p = argparse.ArgumentParser(
        prog="ganlearn",
        description="How GANs learn, runnable and measurable.",
        epilog="Bad input ends with one line 'ganlearn: error: ...' and exit status 2; "
        "--debug (or GANLEARN_DEBUG=1) shows the traceback instead.",
    )
    p.add_argument("--version", action=_Version, nargs=0, help="print the ganlearn version and git commit, and exit")
    p.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of user errors too (also: environment GANLEARN_DEBUG=1)",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for add in (_add_run, _add_run_dirs, _add_sweep, _add_images):
        add(sub)
    return p


def _os_error(e: OSError) -> str:
    """One line for a file-system error: the path(s), then what the system said."""
    paths = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
    return f"{paths}: {e.strerror or e}" if paths else f"{type(e).__name__}: {e.strerror or e}"


def _out_dir(path: Path, flag: str = "--out") -> Path:
    """``path`` checked before any work starts: a directory, or one that can be created (its nearest
    existing ancestor is a writable directory); else a UserError naming ``flag``. Nothing is created
    here, so a command refused later leaves no empty directory behind."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a file, not a directory")
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} cannot be created: {str(parent)!r} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {str(path)!r} cannot be created: no permission to write in {str(parent)!r}")
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    for i, a in enumerate(argv):  # a shell cannot pass a NUL byte; a Python caller can
        if "\x00" in a:
            flag = argv[i - 1] if i and argv[i - 1].startswith("-") else "argument"
            print(f"ganlearn: error: {flag} {a!r} is not allowed: contains a NUL byte", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("GANLEARN_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except UserError as e:  # bad input: one line (an internal bug keeps its traceback)
            if debug:
                raise
            print(f"ganlearn: error: {e}", file=sys.stderr)
            return 2
        except OSError as e:  # the file system refused (a path that is a file, no permission, a full disk)
            if debug:
                raise
            print(f"ganlearn: error: {_os_error(e)}", file=sys.stderr)
            return 2
        except DivergenceError as e:  # a training outcome, not bad input: one line, exit status 1
            if debug:
                raise
            print(f"ganlearn: diverged: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nganlearn: interrupted; continue with `ganlearn resume RUN_DIR`", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
