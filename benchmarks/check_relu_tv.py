"""Is the kappa = 10 ReLU "failure" of ``sample-complexity`` a loose bound or a failure to learn?

Re-runs the sweep's ReLU cells at kappa(W*) = 10 for d = 4 and 8 (5 seeds each, the sweep's own
config: batch max(256, 4 d^2), 4M real samples) and scores the learned Sigma three ways: the TV
certificate (3/2)|Sigma*^-1/2 Sigma Sigma*^-1/2 - I|_F, the Gaussian TV of the pre-activations
(``gaussian_tv``, an upper bound on the ReLU TV) and the exact TV of the ReLU laws themselves
(``relu_tv``, Monte Carlo with orthant probabilities, n = 5000 per side). One torch thread; about
20 minutes on a shared CPU core (the d = 8 orthant probabilities dominate).

    python benchmarks/check_relu_tv.py

Writes benchmarks/results/relu_tv_kappa10.json and .md.
"""

from __future__ import annotations

import json
import time

import torch
from _results import finish, out_stem  # noqa: E402 (benchmarks/ is sys.path[0])

from ganlearn.experiments.sample_complexity import BASE, config
from ganlearn.onelayer.metrics import gaussian_tv, gaussian_tv_upper, relu_tv, sigma_rel_error
from ganlearn.onelayer.train import train

OUT = out_stem("relu_tv_kappa10").parent


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for d in (4, 8):
        for seed in range(5):
            cfg, *_ = config({**BASE, "d": d, "condition": 10.0, "activation": "relu", "seed": seed})
            t = time.time()
            r = train(cfg)
            s, s_star = r["learner_W"] @ r["learner_W"].T, r["target_W"] @ r["target_W"].T
            rows.append(
                {
                    "d": d,
                    "seed": seed,
                    "samples": r["samples"],
                    "sigma_err": sigma_rel_error(s, s_star),
                    "tv_certificate": gaussian_tv_upper(s, s_star),
                    "tv_gauss": gaussian_tv(s, s_star),
                    "tv_relu": relu_tv(s, s_star, n=5000),
                    "seconds": time.time() - t,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "result.json").write_text(json.dumps(rows, indent=1))
    lines = [
        "# ReLU one-layer generators at kappa(W*) = 10: three TV measures of the same learned Sigma",
        "",
        "`python benchmarks/check_relu_tv.py` (the sample-complexity cells' config, 4M real samples).",
        "",
        "| d | seed | Sigma rel. error | TV certificate | Gaussian TV (upper bound) | ReLU TV (exact, MC) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['d']} | {r['seed']} | {r['sigma_err']:.4f} | {r['tv_certificate']:.3f} | {r['tv_gauss']:.3f} | "
        f"{r['tv_relu']:.3f} |"
        for r in rows
    ]
    (OUT / "result.md").write_text("\n".join(lines) + "\n")
    finish(OUT / "result")


if __name__ == "__main__":
    main()
