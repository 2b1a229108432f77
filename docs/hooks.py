"""mkdocs hooks: serve every results folder's figures beside its generated page, and the
changelog from the repository root, so neither is copied into docs/."""
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]


def on_files(files, config):
    for png in sorted((ROOT / "benchmarks" / "results").glob("*/*.png")):
        files.append(File.generated(config, f"results/{png.parent.name}/{png.name}", abs_src_path=str(png)))
    files.append(File.generated(config, "changelog.md", abs_src_path=str(ROOT / "CHANGELOG.md")))
    return files
