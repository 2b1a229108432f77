"""The headline table of each paper, computed from the result files (``docs/generate.py`` puts
them between ``<!-- headline:NAME -->`` markers in README.md and the docs). A row whose results
folder is missing is left out, so a table never shows a number without its file."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

__all__ = ["table"]


def _rows(folder: Path) -> list[dict]:
    f = folder / "results.csv"
    if not f.exists():
        return []
    out = []
    for r in csv.DictReader(f.open()):
        out.append({k: _num(v) for k, v in r.items()})
    return [r for r in out if r.get("status") == "ok"]


def _num(v: str):
    if v in ("", None):
        return None
    if v in ("True", "False"):
        return v == "True"
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def _meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").exists() else {}


PREFIX = ["docs/results/"]  # the link from the page being generated to docs/results/ (set by table())


def _src(folder: Path) -> str:
    m = _meta(folder)
    commit = (m.get("commit") or "")[:7]
    return f"[`{folder.name}`]({PREFIX[0]}{folder.name}.md) ({commit}, {str(m.get('date', ''))[:10]})"


def _sci(x: float) -> str:
    """2 significant digits, 1.9e4 rather than 1.9e+04."""
    return f"{x:.2g}".replace("e+0", "e").replace("e+", "e")


def _g(x: float) -> str:
    return f"{x:.3g}"


def _samples(n: float) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n:.3g}"


def fsr(results: Path) -> list[list[str]]:
    rows = []
    seeds = _rows(results / "fsr-default-seeds")
    if seeds:
        e = sorted(r["coupled_rel_error"] for r in seeds)
        levels = sorted(
            int(k[len("coupled_rel_error_level") :]) for k in seeds[0] if k.startswith("coupled_rel_error_level")
        )
        per = " / ".join(_g(statistics.median(r[f"coupled_rel_error_level{lv}"] for r in seeds)) for lv in levels)
        rows.append(
            [
                f"coupled error min_U E‖G(z) − G*(Uᵀz)‖²/E‖G*‖², default preset, {len(e)} seeds: median (range)",
                f"**{_g(statistics.median(e))}** ({_g(e[0])} – {_g(e[-1])})",
                _src(results / "fsr-default-seeds"),
            ]
        )
        rows.append(
            [f"the same per level {' / '.join(map(str, levels))} (medians)", per, _src(results / "fsr-default-seeds")]
        )
        rows.append(
            [
                "worst output-feature cosine over those seeds",
                f"{min(r['feature_cosine_min'] for r in seeds):.4f}",
                _src(results / "fsr-default-seeds"),
            ]
        )
    run = results / "bench_run" / "result.json"
    if run.exists():
        d = json.loads(run.read_text())
        s, b = d["staged"], d.get("baseline")
        if b:
            rows.append(
                [
                    "staged algorithm vs end-to-end WGAN-GP baseline (seed 0): coupled error",
                    f"{_g(s['coupled_rel_error'])} vs {_g(b['coupled_rel_error'])}",
                    _src(results / "bench_run"),
                ]
            )
            rows.append(
                [
                    "… worst feature cosine",
                    f"{s['feature_cosine_min']:.3f} vs {b['feature_cosine_min']:.3f}",
                    _src(results / "bench_run"),
                ]
            )
            rows.append(
                [
                    "… real samples seen",
                    f"{_samples(s['samples_seen'])} vs {_samples(b['samples_seen'])}",
                    _src(results / "bench_run"),
                ]
            )
        rows.append(
            [
                f"`make run` wall time ({d['device']}, staged + baseline + report)",
                f"{d['total_wall_seconds']:.0f} s",
                _src(results / "bench_run"),
            ]
        )
    shapes = _rows(results / "fsr-shapes")
    if shapes:
        e = [r["coupled_rel_error"] for r in shapes]
        rows.append(
            [
                f"shape experiment ({len(e)} shapes: levels, patch, shared/per-patch W*, graph, sparsity): "
                f"coupled error ≤ 0.1 / ≤ 0.05",
                f"{sum(x <= 0.1 for x in e)} / {sum(x <= 0.05 for x in e)} of {len(e)} (worst {_g(max(e))})",
                _src(results / "fsr-shapes"),
            ]
        )
        rows.append(
            [
                "… worst feature cosine over the shapes",
                f"{min(r['feature_cosine_min'] for r in shapes):.4f}",
                _src(results / "fsr-shapes"),
            ]
        )
    scaling = [r for r in _rows(results / "fsr-scaling") if r.get("width") == 1.0]
    if len(scaling) >= 2:
        scaling.sort(key=lambda r: r["samples_seen"])
        lo, hi = scaling[0], scaling[-1]
        rows.append(
            [
                f"error against real samples ({_samples(lo['samples_seen'])} → {_samples(hi['samples_seen'])})",
                f"{_g(lo['coupled_rel_error'])} → {_g(hi['coupled_rel_error'])}",
                _src(results / "fsr-scaling"),
            ]
        )
    return rows


def onelayer(results: Path) -> list[list[str]]:
    cells = _rows(results / "sample-complexity")
    if not cells:
        return []
    key = "N_eps=0.05"
    cols = sorted({(r["activation"], r["condition"]) for r in cells})
    ds = sorted({int(r["d"]) for r in cells})
    rows = []
    for d in ds:
        row = [str(d)]
        for act, cond in cols:
            ns = [r[key] for r in cells if r["d"] == d and (r["activation"], r["condition"]) == (act, cond)]
            hit = [n for n in ns if n is not None]
            row.append(("–" if len(hit) * 2 <= len(ns) else _sci(statistics.median(hit))) + f" ({len(hit)}/{len(ns)})")
        rows.append(row)
    slope = ["fitted exponent of N in d"]
    for act, cond in cols:
        pts = []
        for d in ds:
            ns = [r[key] for r in cells if r["d"] == d and (r["activation"], r["condition"]) == (act, cond)]
            hit = [n for n in ns if n is not None]
            if hit and len(hit) * 2 > len(ns):
                pts.append((math.log(d), math.log(statistics.median(hit))))
        slope.append(f"{_fit(pts):.2f} ({len(pts)} d)" if len(pts) >= 2 else "–")
    return [["d"] + [f"{a} κ {c:g}" for a, c in cols]] + rows + [slope]


def _fit(pts):
    xs, ys = zip(*pts)
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x in xs)


def overparam(results: Path) -> list[list[str]]:
    cells = [r for r in _rows(results / "width-sweep") if r.get("step_rule") == "ltv"]
    if not cells:
        return []
    ms = sorted({int(r["m"]) for r in cells})
    fs = sorted({r["width_factor"] for r in cells})
    rows = [["k / m"] + [f"m = {m}: converged (rate)" for m in ms]]
    for f in fs:
        row = [f"{f:g}"]
        for m in ms:
            cs = [r for r in cells if r["m"] == m and r["width_factor"] == f]
            ok = sum(bool(r["success"]) for r in cs)
            rate = statistics.median(r["rate_fitted"] for r in cs if r["rate_fitted"] is not None)
            row.append(f"{ok}/{len(cs)} ({rate:.3f})")
        rows.append(row)
    return rows


def table(name: str, results: Path, prefix: str = "docs/results/") -> str:
    """The Markdown table NAME (fsr, onelayer, overparam); links to results pages start with ``prefix``."""
    PREFIX[0] = prefix
    if name == "fsr":
        rows = fsr(results)
        body = ["| measurement | value | results |", "|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(body) if rows else "_No FSR results yet._"
    if name in ("onelayer", "overparam"):
        rows = onelayer(results) if name == "onelayer" else overparam(results)
        if not rows:
            return "_No results yet._"
        folder = results / ("sample-complexity" if name == "onelayer" else "width-sweep")
        head, body = rows[0], rows[1:]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in body]
        what = (
            "Median real samples N to reach the TV certificate ε = 0.05 (seeds reaching it); "
            if name == "onelayer"
            else "GDA with the LTV step rule: seeds converging to residual < 1e-6 (median fitted per-step rate); "
        )
        return "\n".join(lines + ["", f"{what}from {_src(folder)}."])
    raise KeyError(f"unknown headline {name!r}")
