"""The documentation describes the present, from the files that measured it: the generated pages
(results, headline tables, config and CLI references, examples) equal what docs/generate.py writes
now; every results folder has its meta.json; no development history outside the changelog."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _generate():
    spec = importlib.util.spec_from_file_location("ganlearn_docs_generate", ROOT / "docs" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_pages_match_the_results_and_the_code():
    gen = _generate()
    stale = [str(p.relative_to(ROOT)) for p, text in gen.pages().items() if not p.exists() or p.read_text() != text]
    stale += [str(p.relative_to(ROOT)) for p in gen.stale_results_pages()]
    assert not stale, f"out of date (run `make results-docs`): {stale}"


def test_the_drift_check_catches_a_typed_number(tmp_path, monkeypatch):
    # The check itself: a README whose generated table was edited by hand is reported.
    gen = _generate()
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    edited = re.sub(r"(<!-- headline:fsr -->\n\|[^\n]*\n\|[^\n]*\n\|[^|]*\|)[^|]*\|", r"\1 **0.0001** |", text, count=1)
    assert edited != text
    readme.write_text(edited)
    assert gen.with_headlines(edited, ROOT / "README.md") == gen.with_headlines(text, ROOT / "README.md") != edited


def test_every_results_folder_has_its_meta():
    folders = [p for p in RESULTS.iterdir() if p.is_dir()]
    assert folders
    loose = [p.name for p in RESULTS.iterdir() if p.is_file()]
    assert not loose, f"results are folders, not loose files: {loose}"
    for folder in folders:
        meta = json.loads((folder / "meta.json").read_text())
        for key in ("command", "ganlearn", "commit", "date", "machine"):
            assert key in meta, f"{folder.name}/meta.json has no {key!r}"
        assert re.fullmatch(r"[0-9a-f]{40}", meta["commit"] or ""), f"{folder.name}: commit {meta['commit']!r}"
        assert not re.search(r"-v\d+$", folder.name), f"{folder.name}: one current folder per experiment"


HISTORY = re.compile(r"\b(stop|issue)s?[ -]?#?\d+", re.I)
SCANNED = ["src", "tests", "benchmarks", "examples", "docs", "README.md"]


def _scanned_files():
    for top in SCANNED:
        path = ROOT / top
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if (
                f.suffix in (".png", ".pyc", ".csv", ".json", ".safetensors")
                or "egg-info" in str(f)
                or f == Path(__file__)
            ):
                continue
            yield f


def test_no_development_history_outside_the_changelog():
    hits = []
    for f in _scanned_files():
        for i, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            if HISTORY.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()[:120]}")
    assert not hits, "history belongs in CHANGELOG.md and git:\n" + "\n".join(hits)


def test_the_history_pattern_catches_what_it_names():
    for text in ("fixed in stop 29", "Issue 15: batched", "before issue-11", "(issue #3)", "stops 24"):
        assert HISTORY.search(text), text
    for text in ("the run stops at step 100", "an issue with 2 threads", "stop_below=0"):
        assert not HISTORY.search(text), text


def test_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).splitlines()
    assert [ln.split()[:2] for ln in block] == [["make", "run"], ["make", "test"]]


def test_cli_prints_its_version_and_commit():
    out = subprocess.run([sys.executable, "-m", "ganlearn.cli", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert re.match(r"ganlearn \d+\.\d+\.\d+", out.stdout)


def test_the_version_is_written_once():
    import ganlearn

    cff = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: {re.escape(ganlearn.__version__)}$", cff, re.M), "CITATION.cff version"
    assert re.search(rf"version = \{{{re.escape(ganlearn.__version__)}\}}", (ROOT / "README.md").read_text()), (
        "README citation version"
    )
