"""Peak resident memory of FSR runs of several shapes, measured against the prediction of
``ganlearn.fsr.memory`` (what ``ganlearn run --dry-run`` prints).

Each shape runs as ``ganlearn run --config FILE`` in a child process, with every stage cut to a
few steps (the peak of a phase depends on its batch and the shapes, not on how many steps it
runs), the baseline capped at 3 steps and the final evaluation's rotation fit at 2 steps and the
warm start's rotation at 50 (the same tensors every step); the child's peak RSS comes from ``os.wait4``.
Writes benchmarks/results/bench_memory.json and a Markdown table beside it; a run of some shapes
replaces those shapes' rows and keeps the others.
Usage: python benchmarks/bench_memory.py [--shapes NAME,...] [--steps N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import finish, out_stem  # noqa: E402 (benchmarks/ is sys.path[0])

from ganlearn.config import to_dict
from ganlearn.fsr.config import resolve
from ganlearn.fsr.memory import predict_peak_bytes

SHAPES = {
    "default (3 levels, 32 px, m 16, shared W)": [],
    "default, per-patch W": ["target.shared_output=false"],
    "4 levels, 64 px, square graph, per-patch W": [
        "target.levels=4",
        'target.neighbourhood="square"',
        "target.shared_output=false",
    ],
    "4 levels, 48 px, patch 3, cross graph (the fsr-shapes cell)": [
        "target.levels=4",
        "target.patch=3",
        'target.neighbourhood="cross"',
    ],
    "5 levels, 64 px, m 32, cross graph": [
        "target.levels=5",
        "target.base_grid=1",
        "target.channels=32",
        "target.sparsity=4",
    ],
    "5 levels, 64 px, m 32, square graph, per-patch W": [
        "target.levels=5",
        "target.base_grid=1",
        "target.channels=32",
        "target.sparsity=4",
        'target.neighbourhood="square"',
        "target.shared_output=false",
    ],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=",".join(str(i) for i in range(len(SHAPES))), help="indices of SHAPES")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rotation-steps", type=int, default=50, help="cap on the warm start's rotation steps")
    ap.add_argument(
        "--fit-steps",
        type=int,
        default=2,
        help="steps of the final evaluation's rotation fit "
        "(each step builds the same graph, so the peak does not depend on how many)",
    )
    args = ap.parse_args()
    names = list(SHAPES)
    rows = []
    for i in map(int, args.shapes.split(",")):
        name = names[i]
        cfg = resolve(
            "default",
            overrides=SHAPES[name]
            + ["baseline.max_steps=3", "memory_budget_gb=1000", f"eval.fit_steps={args.fit_steps}"],
        )
        d = to_dict(cfg)
        for st in d["stages"]:
            if "steps" in st:
                st["steps"] = args.steps
            if "rotation_steps" in st:  # the warm start's rotation: the same tensors every step
                st["rotation_steps"] = min(st["rotation_steps"], args.rotation_steps)
        pred, phases = predict_peak_bytes(cfg)
        with tempfile.TemporaryDirectory(prefix="ganlearn-bench-mem-") as tmp:
            cfile = Path(tmp) / "config.json"
            cfile.write_text(json.dumps(d))
            cmd = [
                sys.executable,
                "-m",
                "ganlearn.cli",
                "run",
                "--config",
                str(cfile),
                "--no-progress",
                "--out",
                str(Path(tmp) / "run"),
            ]
            t0 = time.time()
            with open(Path(tmp) / "stderr.txt", "w+b") as errf:  # a file: a full pipe would block the child
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf)
                _, status, usage = os.wait4(proc.pid, 0)
                errf.seek(0)
                err = errf.read().decode(errors="replace")[-1500:]
            wall = time.time() - t0
        peak = usage.ru_maxrss * 1024  # kB on Linux
        rows.append(
            {
                "shape": name,
                "overrides": SHAPES[name],
                "exit_status": os.waitstatus_to_exitcode(status),
                "measured_peak_gb": peak / 1e9,
                "predicted_peak_gb": pred / 1e9,
                "predicted_over_measured": pred / peak,
                "largest_phase": max(phases, key=phases.get),
                "top_resolution_px": cfg.target.base_grid * 2 ** (cfg.target.levels - 1) * cfg.target.patch,
                "wall_seconds": wall,
                "stderr_tail": err if os.waitstatus_to_exitcode(status) else "",
                "steps_per_stage": args.steps,
                "rotation_steps": args.rotation_steps,
                "fit_steps": args.fit_steps,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        write(rows, names, args)  # after every shape: a stopped benchmark keeps what it measured


def write(rows: list, names: list, args) -> None:
    out = out_stem("bench_memory").with_suffix(".json")
    if out.exists():  # keep the rows of shapes not run this time, in SHAPES order
        new = {r["shape"]: r for r in rows}
        old = {r["shape"]: r for r in json.loads(out.read_text())["rows"] if r["shape"] not in new}
        rows = [new.get(n) or old[n] for n in names if n in new or n in old]
    tmp = out.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "what": "peak RSS of ganlearn run (stages cut to a few steps) vs the prediction",
                "steps_per_stage": args.steps,
                "eval_fit_steps": args.fit_steps,
                "rotation_steps": args.rotation_steps,
                "cpus": os.cpu_count(),
                "rows": rows,
            },
            indent=2,
        )
    )
    os.replace(tmp, out)
    lines = [
        "# Peak memory of `ganlearn run` against the `--dry-run` prediction",
        "",
        f"`python benchmarks/bench_memory.py` ({os.cpu_count()} CPUs): every stage cut to a few steps, the "
        "baseline to 3, the final rotation fit and the warm start's rotation capped (the caps of each row "
        "are in its last column: the peak of a phase depends on its batch and shapes, not on how many "
        "steps it runs); peak RSS of the child process "
        "(`os.wait4`). Written by the benchmark; rows of shapes not re-run are kept.",
        "",
        "| shape | top px | exit status | measured peak GB | predicted GB | predicted / measured | largest phase "
        "| steps / rotation / fit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['shape']} | {r['top_resolution_px']} | {r['exit_status']} | {r['measured_peak_gb']:.2f} "
        f"| {r['predicted_peak_gb']:.2f} "
        f"| {r['predicted_over_measured']:.2f} | {r['largest_phase']} "
        f"| {r.get('steps_per_stage', 3)} / {r.get('rotation_steps', 50)} / {r.get('fit_steps', 2)} |"
        for r in rows
    ]
    md = out.with_suffix(".md")
    md.write_text("\n".join(lines) + "\n")
    finish(out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
