"""ganlearn: the theory of how GANs learn, runnable and measurable with exact ground truth.

Public modules (everything else is internal and may change):

* :mod:`ganlearn.fsr` -- forward super-resolution (Allen-Zhu & Li, ICLR 2023): targets, learner,
  the staged algorithm (``run_stage``), its error (``level_errors``, ``evaluate``), ``train``.
* :mod:`ganlearn.onelayer` -- one-layer generators phi(W* x) (Kontonis, Liu & Tzamos).
* :mod:`ganlearn.overparam` -- overparameterized GANs (Balaji et al., ICLR 2021).
* :mod:`ganlearn.metrics` -- coupled error, sliced W2, co-activation statistics (pure functions).
* :mod:`ganlearn.sgda` -- the SGDA step (``SGDA``, ``SGDAConfig``).
* :mod:`ganlearn.images.probe` -- the FSR paper's probes of any image generator.
* :mod:`ganlearn.sweep` -- the resumable sweep runner (``run_sweep``) and ``ganlearn.experiments``.

See README.md, "Use it from Python", and examples/.
"""

__version__ = "0.1.0"
