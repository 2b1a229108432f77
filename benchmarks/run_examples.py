"""Run every script in examples/ at its --small size and keep what it printed and drew, for the
documentation's examples page: benchmarks/results/examples/<script>.txt, <script>*.png, meta.json.

    python benchmarks/run_examples.py
"""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import finish, out_stem  # noqa: E402 (benchmarks/ is sys.path[0])

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    stem = out_stem("examples")
    folder = stem.parent
    for old in folder.glob("*"):
        if old.name != "meta.json":
            old.unlink()
    seconds = {}
    for script in sorted((ROOT / "examples").glob("*.py")):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.time()
            out = subprocess.run(
                [sys.executable, str(script), "--small"], capture_output=True, text=True, cwd=tmp, timeout=900
            )
            seconds[script.name] = round(time.time() - t, 1)
            if out.returncode != 0:
                sys.exit(f"{script.name} failed (exit status {out.returncode}):\n{out.stderr[-3000:]}")
            (folder / f"{script.stem}.txt").write_text(out.stdout)
            for png in sorted(Path(tmp).rglob("*.png")):
                name = png.name if png.stem.startswith(script.stem) else f"{script.stem}_{png.name}"
                shutil.copy(png, folder / name)
        print(f"{script.name}: {seconds[script.name]} s", flush=True)
    finish(stem, seconds_per_example=seconds)


if __name__ == "__main__":
    main()
