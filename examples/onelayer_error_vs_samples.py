"""One-layer generator phi(W* x) (Kontonis, Liu & Tzamos): SGDA against the truncated-statistics
discriminator at a dimension of your choice, and the error of the learned law against the real
samples used: Sigma's relative error |W W^T - W* W*^T| / |W* W*^T| and the Gaussian TV upper
bound, on log-log axes (written to onelayer_error_vs_samples.png).

    python examples/onelayer_error_vs_samples.py [--d 12] [--activation relu] [--small]

--small: d = 4, 400 steps.
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ganlearn.onelayer import OneLayerConfig, train  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--d", type=int, default=12)
ap.add_argument("--activation", default="relu", choices=["relu", "leaky_relu", "sigmoid"])
ap.add_argument("--out", default="onelayer_error_vs_samples.png")
ap.add_argument("--small", action="store_true")
a = ap.parse_args()

cfg = OneLayerConfig(d=4 if a.small else a.d, activation=a.activation, steps=400 if a.small else 3000, seed=0)
res = train(cfg)
# one (real samples, Sigma error, TV bound, Monte-Carlo Gaussian TV) per evaluation
samples, sigma_err, tv, tv_gauss = zip(*res["curve"])
print(
    f"d = {cfg.d}, {cfg.activation}: Sigma error {res['sigma_rel_error']:.4f}, TV upper bound "
    f"{res['tv_upper']:.4f}, Gaussian TV {res['tv_gauss']:.4f} after {res['samples']:,} real samples"
)
print("real samples to reach TV upper bound eps:", res["samples_to_eps"])
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(samples[1:], sigma_err[1:], label="Sigma relative error")
ax.loglog(samples[1:], tv[1:], label="TV upper bound (certificate)")
ax.loglog(samples[1:], tv_gauss[1:], label="Gaussian TV (Monte Carlo)")
ax.set_xlabel("real samples")
ax.legend()
fig.tight_layout()
fig.savefig(a.out, dpi=120)
print("wrote", a.out)
