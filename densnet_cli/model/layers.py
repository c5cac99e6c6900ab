"""Building blocks of both networks: radial basis, equivariant interaction (NequIP-style).

An interaction updates node features ``x`` (irreps) from neighbours: a tensor product of the
neighbour's features with the spherical harmonics of the edge direction, weighted by an MLP of
the edge length that vanishes smoothly at the cutoff, summed over neighbours, mixed linearly,
plus a species-dependent self-connection, then a gated nonlinearity.  Every step is
SE(3)-equivariant, so the outputs transform exactly as their irreps say.
"""

from __future__ import annotations

import math

import torch
from e3nn import nn, o3


class RadialBasis(torch.nn.Module):
    """Bessel functions ``sqrt(2/rc) sin(nπr/rc)/r`` times a smooth polynomial cutoff (p = 6)."""

    frequencies: torch.Tensor  # (n_basis,) nπ/rc, Å⁻¹

    def __init__(self, cutoff: float, n_basis: int):
        """Basis of ``n_basis`` functions on ``[0, cutoff]`` (Å)."""
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("frequencies", torch.arange(1, n_basis + 1) * math.pi / cutoff)

    def envelope(self, r: torch.Tensor) -> torch.Tensor:
        """1 at r = 0, 0 with three vanishing derivatives at the cutoff."""
        x = r / self.cutoff
        p = 6.0
        env = (1.0 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1)
               - p * (p + 1) / 2 * x ** (p + 2))
        return env * (x < 1.0)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """(n_edges,) lengths → (n_edges, n_basis)."""
        r = r.unsqueeze(-1)
        bessel = math.sqrt(2.0 / self.cutoff) * torch.sin(self.frequencies * r) / r
        return bessel * self.envelope(r)


def natural_irreps(multiplicities: dict[int, int]) -> o3.Irreps:
    """Irreps ``mul x l p`` with the parity ``(-1)^l`` of true spherical harmonics."""
    return o3.Irreps([(m, (l, (-1) ** l)) for l, m in sorted(multiplicities.items()) if m > 0])


class Interaction(torch.nn.Module):
    """One equivariant message-passing layer with a gated nonlinearity."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, irreps_sh: o3.Irreps,
                 n_species: int, n_radial: int, radial_hidden: int, avg_num_neighbors: float):
        """Map node features ``irreps_in`` to ``irreps_out`` (natural parity, gated)."""
        super().__init__()
        scalars = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l == 0]).simplify()
        gated = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e")  # one sigmoid gate per gated irrep
        self.gate = nn.Gate(scalars, [torch.nn.functional.silu] * len(scalars), gates,
                            [torch.sigmoid], gated)
        target = self.gate.irreps_in
        # Tensor-product paths x ⊗ Y → every target irrep they can reach ("uvu": one weight
        # per channel and path, supplied per edge by the radial network).
        mid: list[tuple[int, o3.Irrep]] = []
        instructions: list[tuple] = []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in target:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        irreps_mid = o3.Irreps(mid)
        self.tp = o3.TensorProduct(irreps_in, irreps_sh, irreps_mid, instructions,
                                   shared_weights=False, internal_weights=False)
        self.radial = nn.FullyConnectedNet([n_radial, radial_hidden, radial_hidden,
                                            self.tp.weight_numel], torch.nn.functional.silu)
        self.linear_in = o3.Linear(irreps_in, irreps_in)
        self.linear_out = o3.Linear(irreps_mid, target)
        self.self_connection = o3.FullyConnectedTensorProduct(
            irreps_in, o3.Irreps(f"{n_species}x0e"), target)
        self.norm = 1.0 / math.sqrt(avg_num_neighbors)
        self.irreps_out = self.gate.irreps_out

    def forward(self, x: torch.Tensor, species: torch.Tensor, src: torch.Tensor,
                dst: torch.Tensor, edge_sh: torch.Tensor, edge_radial: torch.Tensor
                ) -> torch.Tensor:
        """Update ``x`` (n, irreps_in) → (n, irreps_out); ``species`` is one-hot (n, S)."""
        messages = self.tp(self.linear_in(x)[src], edge_sh, self.radial(edge_radial))
        aggregated = torch.zeros(x.shape[0], messages.shape[1], dtype=x.dtype, device=x.device)
        aggregated.index_add_(0, dst, messages)
        out = self.linear_out(aggregated * self.norm) + self.self_connection(x, species)
        return self.gate(out)


class EdgeEmbedding(torch.nn.Module):
    """Spherical harmonics of edge directions and the radial basis of edge lengths."""

    def __init__(self, cutoff: float, n_radial: int, lmax: int):
        """Edges embedded with ``Y^l`` for ``l ≤ lmax`` and ``n_radial`` radial functions."""
        super().__init__()
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.radial = RadialBasis(cutoff, n_radial)

    def forward(self, positions: torch.Tensor, src: torch.Tensor, dst: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(Y(r̂_ij) (E, sh), radial(r_ij) (E, n_radial)) with r_ij = R_src − R_dst."""
        vec = positions[src] - positions[dst]
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True,
                                    normalization="component")
        return sh, self.radial(vec.norm(dim=-1))
