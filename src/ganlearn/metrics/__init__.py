"""Metrics as pure functions of tensors (no network class is imported here).

* ``coupled_error``: min_U E|G(z) - G*(U^T z)|^2 / E|G*|^2 over column-orthonormal U, the FSR
  theorem's error (an upper bound on W2^2 / E|G*|^2); ``procrustes_latent_map`` its first U;
  ``feature_recovery``: output features matched to the truth (mean and worst cosine);
  ``error_split``: a level's error split into its own layer's and its parents'.
* ``sliced_w2``: sliced 2-Wasserstein distance between two samples (POT's estimator).
* ``coactivation_stats``: firing rates and pair / triple co-activation ratios of codes.
"""

from ganlearn.metrics.distances import sliced_w2
from ganlearn.metrics.recovery import coupled_error, error_split, feature_recovery, procrustes_latent_map
from ganlearn.metrics.sparsity import coactivation_stats

__all__ = [
    "coupled_error",
    "procrustes_latent_map",
    "feature_recovery",
    "error_split",
    "sliced_w2",
    "coactivation_stats",
]
