"""mkdocs hooks: serve every results folder's figures beside its generated page and the changelog
from the repository root (so neither is copied into docs/), and render $...$ / $$...$$ math to
MathML at build time (latex2mathml; browsers draw MathML natively, so the pages need no script
and no network)."""

import re
from pathlib import Path

from latex2mathml.converter import convert
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
# fenced code blocks and inline code spans are left alone
_CODE = re.compile(r"(^```.*?^```|`[^`\n]+`)", re.S | re.M)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$\w])\$([^$\n]+?)\$(?![\w$])")


def on_files(files, config):
    for png in sorted((ROOT / "benchmarks" / "results").glob("*/*.png")):
        files.append(File.generated(config, f"results/{png.parent.name}/{png.name}", abs_src_path=str(png)))
    files.append(File.generated(config, "changelog.md", abs_src_path=str(ROOT / "CHANGELOG.md")))
    return files


def _math(text: str) -> str:
    text = _DISPLAY.sub(lambda m: "\n\n" + convert(" ".join(m.group(1).split()), display="block") + "\n\n", text)
    return _INLINE.sub(lambda m: convert(m.group(1)), text)


def on_page_markdown(markdown, page, config, files):
    parts = _CODE.split(markdown)
    return "".join(p if i % 2 else _math(p) for i, p in enumerate(parts))


_ROLE = re.compile(r":(?:mod|func|class|meth|attr|data|obj|exc):(?=<code)")


def on_page_content(html, page, config, files):
    """Drop the Sphinx roles (``:func:`x```) that the docstrings use: mkdocstrings renders them as
    text before the code span."""
    return _ROLE.sub("", html).replace("</p>\n<p>::</p>", "</p>")
