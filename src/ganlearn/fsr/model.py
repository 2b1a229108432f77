"""The forward-super-resolution (FSR) network: one class for the target G* and the learner G.

Allen-Zhu & Li (2023), §2.1 (target) and §2.2 (learner, "the same structure"):

    S_{1,j} = ReLU(V_{1,j} z - b_{1,j}),                                  z ~ N(0, I_{m0})
    S_{l,j} = ReLU(sum_{j' in P(l,j)} V_{l,j,j'} S_{l-1,j'} - b_{l,j}),    l = 2..L
    X_{l,j} = W_{l,j} S_{l,j}                                              (patch j of image l)

Shapes (n = batch, P = padded parent count, m = channels per patch, d = patch dimension):
    V[0]: (d_1, m, m0)        b[0]: (d_1, m)
    V[l]: (d_l, m, P, m)      b[l]: (d_l, m)       for the levels above the first
    W[l]: (1, d, m) shared across patches (a deconvolution, the DCGAN case), or (d_l, d, m)

A replica net (``FSRNet(shape, replicas=R)``, or :meth:`FSRNet.stack`) holds R nets of one shape:
every parameter has a leading dimension R, and activations carry R right after the sample axis,
(n, R, d_l, ...), so that (R, d_l) are one axis of R * d_l patches in memory and every per-patch
product is one batched product over them, as a run with R times the patches would have it
(:func:`replica_eq`; :mod:`ganlearn.fsr.batched` trains them as one computation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ganlearn.config import ConfigError
from ganlearn.fsr.geometry import Geometry
from ganlearn.rng import Generators, randn, to_device

__all__ = [
    "Shape",
    "FSRNet",
    "random_orthonormal",
    "polar",
    "edge_colour_atoms",
    "init_hidden",
    "replica_eq",
    "CALIBRATION_CHUNK",
]


@dataclass(frozen=True)
class Shape:
    """Everything needed to build an :class:`FSRNet` (the target's or the learner's)."""

    geometry: Geometry
    channels: int  # m, hidden channels per patch
    latent_dim: int  # m0, dimension of z
    shared_output: bool = True  # W_{l,j} = W_l for every patch j


class FSRNet(nn.Module):
    """A forward-super-resolution generator (target or learner).

    ``forward(z)`` returns ``(X, S)``: lists over levels of ``(n, d_l, d)`` patch images and
    ``(n, d_l, m)`` hidden codes. Every level is produced from the same ``z``.
    """

    def __init__(self, shape: Shape, replicas: int | None = None):
        super().__init__()
        self.shape, self.replicas = shape, replicas
        geo, m = shape.geometry, shape.channels
        lead = () if replicas is None else (replicas,)  # every parameter's leading replica dimension
        self.V = nn.ParameterList()
        self.b = nn.ParameterList()
        self.W = nn.ParameterList()
        for level in range(1, geo.n_levels + 1):
            dl = geo.n_patches(level)
            if level == 1:
                self.V.append(nn.Parameter(torch.zeros(*lead, dl, m, shape.latent_dim)))
            else:
                idx, mask = geo.parents(level)
                self.register_buffer(f"parent_idx_{level}", idx, persistent=False)
                self.register_buffer(f"parent_mask_{level}", mask, persistent=False)
                self.V.append(nn.Parameter(torch.zeros(*lead, dl, m, idx.shape[1], m)))
            self.b.append(nn.Parameter(torch.zeros(*lead, dl, m)))
            self.W.append(nn.Parameter(torch.zeros(*lead, 1 if shape.shared_output else dl, geo.d, m)))

    # -- replicas: R nets of one shape as one, every parameter with a leading dimension R ----------
    @classmethod
    def stack(cls, nets: list["FSRNet"]) -> "FSRNet":
        """R nets of one shape as one replica net (their parameters stacked along a new first axis).
        Every method then maps (R, ...) inputs to (R, ...) outputs, replica r by net r's parameters."""
        if len({n.shape for n in nets}) != 1 or any(n.replicas is not None for n in nets):
            raise ValueError("FSRNet.stack needs plain nets (replicas=None) of one shape")
        out = cls(nets[0].shape, replicas=len(nets)).to(nets[0].W[0])
        with torch.no_grad():
            for name, p in out.named_parameters():
                p.copy_(torch.stack([n.get_parameter(name) for n in nets]))
        return out

    def replica(self, r: int) -> "FSRNet":
        """Replica ``r`` of a replica net as a plain net (a copy)."""
        net = FSRNet(self.shape).to(self.W[0])
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(self.get_parameter(name)[r])
        return net

    @torch.no_grad()
    def set_replica(self, r: int, net: "FSRNet") -> None:
        """Write the plain net ``net``'s parameters into replica ``r``."""
        for name, p in self.named_parameters():
            p[r].copy_(net.get_parameter(name))

    @property
    def n_levels(self) -> int:
        return self.shape.geometry.n_levels

    def parent_inputs(self, level: int, s_prev: torch.Tensor) -> torch.Tensor:
        """Gather the parents' codes of every patch at ``level`` (>= 2).

        s_prev: (n, [R,] d_{l-1}, m) -> (n, [R,] d_l, P, m), zero where the graph has no edge.
        """
        idx = getattr(self, f"parent_idx_{level}")
        mask = getattr(self, f"parent_mask_{level}")
        return s_prev[..., idx, :] * mask[:, :, None]

    def preactivation(self, level: int, inp: torch.Tensor, patches: slice = slice(None)) -> torch.Tensor:
        """Pre-activation of ``level`` (of the patches in ``patches``) from its input: z for level 1,
        the previous level's codes (n, [R,] d_{l-1}, m) above.

        The parents are gathered one slot p at a time, so the largest temporary is (n, d_l, m), not
        the (n, d_l, P, m) of :meth:`parent_inputs` (|P| = 9 for the square graph)."""
        i = level - 1
        if self.replicas is None:  # (a bare slice, not a 1-tuple: that one gives an alias, not a
            V, b = self.V[i][patches], self.b[i][patches]  # copy, and a non-contiguous V.grad)
        else:  # the patch axis follows R
            V, b = self.V[i][:, patches], self.b[i][:, patches]
        if level == 1:
            return torch.einsum(self.eq("jrk,nk->njr"), V, inp) - b
        idx = getattr(self, f"parent_idx_{level}")[patches]
        mask = getattr(self, f"parent_mask_{level}")[patches]
        pre = (-b).expand(inp.shape[0], *b.shape)
        for p in range(idx.shape[1]):
            x = inp[..., idx[:, p], :].to(V.dtype) * mask[:, p, None]
            pre = pre + torch.einsum(self.eq("jrs,njs->njr"), V[..., p, :], x)
        return pre

    def hidden(self, level: int, inp: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.preactivation(level, inp))

    def decode(self, level: int, s: torch.Tensor) -> torch.Tensor:
        """Output layer: (n, [R,] d_l, m) codes -> (n, [R,] d_l, d) patches, X_{l,j} = W_{l,j} S_{l,j}."""
        return torch.einsum(self.eq("jdr,njr->njd"), self.W[level - 1], s)

    def encode(self, level: int, x: torch.Tensor) -> torch.Tensor:
        """Read codes off patches with the transpose, W^T X (exact when W is column-orthonormal)."""
        return torch.einsum(self.eq("jdr,njd->njr"), self.W[level - 1], x)

    def forward(self, z: torch.Tensor, upto: int | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Images and codes of levels 1..``upto`` (default: all) from latents ``z``."""
        xs, ss = [], []
        inp = z
        for level in range(1, (upto or self.n_levels) + 1):
            s = self.hidden(level, inp)
            ss.append(s)
            xs.append(self.decode(level, s))
            inp = s
        return xs, ss

    def sample_latent(self, n: int, *, generator: torch.Generator | Generators) -> torch.Tensor:
        """z ~ N(0, I) drawn on the generator's device (the training RNG lives on the CPU, so a run
        draws the same latents whatever device it trains on), then moved to the network's without a
        host-device synchronisation (:func:`ganlearn.rng.to_device`). A replica net takes
        :class:`~ganlearn.rng.Generators` and returns (n, R, m0), replica r's from its own stream."""
        p = self.W[0]
        return to_device(randn((n, self.shape.latent_dim), generator=generator, dtype=p.dtype, dim=1), p.device)

    def eq(self, equation: str) -> str:
        """``equation`` (an einsum of this net's tensors, written for one net) for this net:
        unchanged for a plain net, with the replica axis added for a replica net (:func:`replica_eq`)."""
        return equation if self.replicas is None else replica_eq(equation)


def replica_eq(equation: str) -> str:
    """An einsum written for one net, rewritten for replica nets: an operand (or the result) indexed
    by the sample axis ``n`` gets the replica axis ``R`` right after it (activations are (n, R, ...)),
    any other (weights, moments: per-replica quantities) gets it first. ``"jrk,nk->njr"`` ->
    ``"Rjrk,nRk->nRjr"``; ``"njr,njq->jrq"`` -> ``"nRjr,nRjq->Rjrq"``."""

    def one(term: str) -> str:
        return term.replace("n", "nR") if "n" in term else "R" + term

    ins, out = equation.split("->")
    return ",".join(one(t) for t in ins.split(",")) + "->" + one(out)


# ----------------------------------------------------------------------------------------------
# Initialisation (shared by the target, which then is frozen, and the learner).


def random_orthonormal(rows: int, cols: int, *, generator: torch.Generator) -> torch.Tensor:
    """A (rows, cols) column-orthonormal matrix, Haar-distributed (QR with sign fix)."""
    q, r = torch.linalg.qr(torch.randn(rows, cols, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))[None, :]


def polar(a: torch.Tensor) -> torch.Tensor:
    """Nearest column-orthonormal matrix to ``a`` in Frobenius norm (the polar factor)."""
    u, _, vh = torch.linalg.svd(a, full_matrices=False)
    return u @ vh


def edge_colour_atoms(geo: Geometry, m: int, *, generator: torch.Generator) -> torch.Tensor:
    """``m`` "edge-colour" patch atoms (paper Fig. 2), made column-orthonormal.

    Design (the paper shows such features, but gives no recipe): up to ``colours`` flat colour
    atoms, then oriented soft step edges and colour blobs, each a random colour times a spatial
    pattern. The polar factor of the stacked atoms is the nearest orthonormal dictionary, so the
    atoms stay recognisable while W*^T W* = I holds exactly as §2.1 assumes.

    Returns: (d, m) float64, column-orthonormal.
    """
    p, c = geo.patch, geo.colours
    if m > geo.d:
        raise ConfigError(f"channels m={m} must be <= patch dimension d={geo.d} for a column-orthonormal W")
    coords = (torch.arange(p, dtype=torch.float64) - (p - 1) / 2) / max(p / 2, 1)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    atoms = []
    for r in range(m):
        colour = torch.randn(c, generator=generator, dtype=torch.float64)
        colour = colour / colour.norm()
        kind = "flat" if r < min(c, m // 4) else ("edge" if r % 3 else "blob")
        u = torch.rand(3, generator=generator, dtype=torch.float64)
        if kind == "flat":
            pattern = torch.ones(p, p, dtype=torch.float64)
        elif kind == "edge":
            theta = math.pi * 2 * u[0]
            offset = 0.6 * (u[1] - 0.5)
            pattern = torch.tanh(3.0 * (xx * torch.cos(theta) + yy * torch.sin(theta) - offset))
        else:
            cy, cx = 1.2 * (u[:2] - 0.5)
            pattern = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.3)
        atoms.append((colour[:, None, None] * pattern[None]).reshape(-1))
    return polar(torch.stack(atoms, dim=1))


@torch.no_grad()
def init_hidden(net: FSRNet, *, k: float, n_calibration: int, generator: torch.Generator) -> None:
    """Random hidden weights with unit-variance pre-activations and biases calibrated so that
    every (patch, channel) fires with probability k/m.

    Level 1: rows of V_{1,j} are unit-norm Gaussian directions. Level l >= 2: Gaussian entries
    on the connection graph, each unit's row rescaled so its pre-activation (before the bias)
    has unit variance over the data -- keeps every level on the same scale, whatever |P|.
    """
    net.V[0].copy_(torch.randn(net.V[0].shape, generator=generator, dtype=torch.float64))
    net.V[0].div_(net.V[0].norm(dim=-1, keepdim=True))
    q = 1.0 - k / net.shape.channels
    # Unit-norm rows give N(0, 1) pre-activations: b = Phi^{-1}(1 - k/m) exactly.
    net.b[0].fill_(math.sqrt(2) * torch.erfinv(torch.tensor(2 * q - 1.0, dtype=torch.float64)).item())
    s = net.hidden(1, net.sample_latent(n_calibration, generator=generator)).float()
    for level in range(2, net.n_levels + 1):
        i = level - 1
        mask = getattr(net, f"parent_mask_{level}")
        net.V[i].copy_(torch.randn(net.V[i].shape, generator=generator, dtype=torch.float64))
        net.V[i].mul_(mask[:, None, :, None])
        net.b[i].zero_()
        # Patches in chunks and codes kept in float32, so calibration memory stays about
        # 2 * n_calibration * d_l * m * 4 bytes (the shape benchmark's 5-level target included).
        s_next = torch.empty(s.shape[0], net.V[i].shape[0], net.shape.channels, dtype=s.dtype, device=s.device)
        chunk = max(1, CALIBRATION_CHUNK // max(1, s.shape[0] * net.shape.channels))
        for j0 in range(0, net.V[i].shape[0], chunk):
            js = slice(j0, j0 + chunk)
            net.V[i][js] /= net.preactivation(level, s, js).std(dim=0)[:, :, None, None]
            pre = net.preactivation(level, s, js)
            # Empirical (1 - k/m)-quantile: each (patch, channel) fires with probability k/m.
            net.b[i][js] = torch.quantile(pre, q, dim=0)
            s_next[:, js] = torch.relu(pre - net.b[i][js]).float()
        s = s_next


CALIBRATION_CHUNK = 2**22  # elements of a (n, chunk of patches, m) pre-activation block
