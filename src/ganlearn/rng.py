"""Named random streams: every random draw in ganlearn comes from a generator made here.

A run has one integer seed; each consumer asks for its own stream by name (``"fsr.target"``,
``"fsr.train"``, ``"images.eval.real"``, ...). The stream's state is derived from (seed, name) by
NumPy's ``SeedSequence`` with a hash of the name as spawn key, so

* streams are statistically independent of each other (no ``seed + 1`` offsets that collide with
  the next run's seed: seed 0's stream 1 was seed 1's stream 0 under the old scheme);
* adding or renaming a stream changes no other stream;
* the derived seed does not depend on the device: ``make_generator(s, name, "cuda")`` and
  ``make_generator(s, name, "cpu")`` start from the same ``initial_seed()``. (PyTorch's CPU and
  CUDA generators are different algorithms, so the draws themselves are reproducible per device,
  not across devices; draw on the CPU and move if bitwise equality across devices matters.)

No library code seeds the global RNGs (``torch.manual_seed``); every random call takes a generator.
"""

from __future__ import annotations

import contextlib
import hashlib

import numpy as np
import torch

from ganlearn.errors import ConfigError

__all__ = ["stream_seed", "make_generator", "numpy_rng", "default_init_rng", "to_device", "Generators", "randn"]


def stream_seed(seed: int, stream: str) -> int:
    """The 63-bit seed of stream ``stream`` of a run with seed ``seed`` (a non-negative int)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r}: a non-negative integer is required")
    key = int.from_bytes(hashlib.blake2b(stream.encode(), digest_size=8).digest(), "little")
    state = np.random.SeedSequence(entropy=int(seed), spawn_key=(key,)).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def make_generator(seed: int, stream: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` for the named stream of seed ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, stream))
    return g


class Generators:
    """The training RNGs of R replicas trained as one batched computation (:mod:`ganlearn.fsr.batched`):
    one ``torch.Generator`` per replica, each the stream its separate run would use, so replica r
    draws exactly the numbers of its own run. Anything that takes a generator and draws through
    :func:`randn` accepts it; ``get_state`` / ``set_state`` act on every replica's stream (stacked)."""

    def __init__(self, generators: list[torch.Generator]):
        if not generators:
            raise ValueError("Generators needs at least one generator")
        self.generators = list(generators)
        self.device = self.generators[0].device

    def __len__(self) -> int:
        return len(self.generators)

    def __getitem__(self, r: int) -> torch.Generator:
        return self.generators[r]

    def get_state(self) -> torch.Tensor:
        return torch.stack([g.get_state() for g in self.generators])

    def set_state(self, state: torch.Tensor) -> None:
        for g, s in zip(self.generators, state):
            g.set_state(s.clone())


def randn(
    shape, *, generator: "torch.Generator | Generators", dtype: torch.dtype = torch.float32, dim: int = 0
) -> torch.Tensor:
    """``torch.randn(shape)`` from ``generator`` on its device; from :class:`Generators`, one draw of
    ``shape`` per replica in replica order, stacked along a new axis ``dim`` (0: (R, *shape))."""
    if isinstance(generator, Generators):
        return torch.stack(
            [torch.randn(shape, generator=g, dtype=dtype, device=g.device) for g in generator.generators], dim=dim
        )
    return torch.randn(shape, generator=generator, dtype=dtype, device=generator.device)


def to_device(t: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``t`` (drawn on the CPU training RNG) on ``device`` without a host-device synchronisation:
    a plain ``.to("cuda")`` from pageable memory copies and then waits for the whole GPU queue
    (``cudaMemcpy`` semantics; ``torch.cuda.set_sync_debug_mode`` reports it), so every latent
    draw would stall the step. The draw is staged in page-locked memory (PyTorch's caching host
    allocator, which keeps the block until the copy has run) and copied asynchronously on the
    current stream, which orders it before the kernels that read it."""
    device = torch.device(device)
    if t.device == device or (device.type == t.device.type and device.index is None):
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def numpy_rng(seed: int, stream: str) -> np.random.Generator:
    """A NumPy generator for the named stream (same derivation as :func:`make_generator`)."""
    return np.random.default_rng(stream_seed(seed, stream))


@contextlib.contextmanager
def default_init_rng(seed: int, stream: str):
    """For building ``torch.nn`` layers with PyTorch's own initializers, which draw from the global
    CPU generator and take no generator argument (nor does spectral norm's power-iteration start):
    inside the block the global CPU RNG is a fork seeded from the named stream; on exit the
    caller's state is restored, so library code never changes the user's global RNG. Build on the
    CPU inside the block and move the module to its device afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(stream_seed(seed, stream))
        yield
