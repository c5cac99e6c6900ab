"""The DenSNet model, top to bottom.

    positions ─► radius graph ─► DensityNetwork ─► coefficients c (∫ρ = N exactly)
                                     │                 ├─► dipole μ = Σ Z R − Σ c (q R + d)
                                     ▼                 ▼
                               edge features ──► EnergyNetwork ─► E ─► F = −∂E/∂R (autograd
                                                      + ZBL repulsion   through both networks)

Units: positions Å, energies eV, forces eV/Å, dipoles e·Å; coefficients weight the electron
number density in the basis of :mod:`densnet_cli.basis.layout` (e3nn order).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from densnet_cli.basis.layout import BasisSet
from densnet_cli.basis.values import DIPOLE_SCALE_POWER
from densnet_cli.model.batch import Batch, radius_graph
from densnet_cli.model.layers import EdgeEmbedding
from densnet_cli.model.networks import (
    DensityNetwork,
    EnergyNetwork,
    SpeciesIndex,
    element_order,
    hidden_irreps,
)
from densnet_cli.model.repulsion import ZBLRepulsion
from densnet_cli.units import BOHR_TO_ANGSTROM


@dataclass(frozen=True)
class ModelConfig:
    """Architecture (plain data; stored in the model file)."""

    cutoff: float = 4.0  # Å, radius of the graph
    n_radial: int = 8  # Bessel functions of the edge length
    lmax_edge: int = 3  # spherical harmonics of edge directions
    density_features: int = 32  # scalar channels of the density network (halved per l)
    density_layers: int = 3
    energy_features: int = 32
    energy_lmax: int = 2
    energy_layers: int = 2
    radial_hidden: int = 32
    avg_num_neighbors: float = 8.0  # message normalisation
    delta: bool = True  # predict c − c_SAD (False: the paper's "no Δ-learning" ablation)
    max_exponent_factor: float = 1.0  # > 1: flexible basis, shell exponents × [1/f, f]
    pair_repulsion: bool = False  # add ZBL nuclear repulsion (model/repulsion.py); files written
    # before it existed load with False, new training defaults to True
    charge_flow: bool = False  # local ∫ρ = N: neutral atoms + learned edge flows (networks.py);
    # files written before it existed load with False (one projection per fragment)
    repulsion_radius_scale: float = 1.0  # ZBL switched off at this × (r_cov,i + r_cov,j);
    # files written before it existed load with 1.0

    def as_dict(self) -> dict:
        """Plain-data form for metadata."""
        return asdict(self)


def forces_from_energy(energy: torch.Tensor, positions: torch.Tensor, create_graph: bool
                       ) -> torch.Tensor:
    """``F = −∂E_total/∂R`` (eV/Å); the single place forces are made."""
    (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
    return -grad


class DenSNet(torch.nn.Module):
    """Density network + energy network, with analytic dipoles and autograd forces."""

    def __init__(self, basis: BasisSet, sad: dict, config: ModelConfig | None = None):
        """Build for the elements of ``basis``; ``sad`` maps symbols to prior coefficients.

        The model is built in float64 whatever torch's default dtype (e3nn computes its
        Clebsch–Gordan constants at construction; built in float32 they would stay rounded after
        ``.double()`` and break equivariance at 1e-7).  Cast with ``.float()`` for speed.
        """
        super().__init__()
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            self._build(basis, sad, config)
        finally:
            torch.set_default_dtype(previous)

    def _build(self, basis: BasisSet, sad: dict, config: ModelConfig | None) -> None:
        self.config = config or ModelConfig()
        self.basis = basis
        cfg = self.config
        lmax_basis = max(e.lmax for e in basis.elements.values())
        self.edges = EdgeEmbedding(cfg.cutoff, cfg.n_radial, cfg.lmax_edge)
        self.species = SpeciesIndex(element_order(basis))
        self.density = DensityNetwork(
            basis, sad, self.edges.irreps_sh, hidden_irreps(cfg.density_features, lmax_basis),
            cfg.density_layers, cfg.n_radial, cfg.radial_hidden, cfg.avg_num_neighbors,
            cfg.delta, cfg.max_exponent_factor, cfg.charge_flow)
        self.energy = EnergyNetwork(
            basis, self.edges.irreps_sh, hidden_irreps(cfg.energy_features, cfg.energy_lmax),
            cfg.energy_layers, cfg.n_radial, cfg.radial_hidden, cfg.avg_num_neighbors,
            self.density.flexible)
        self.repulsion = (ZBLRepulsion(cfg.cutoff, cfg.repulsion_radius_scale)
                          if cfg.pair_repulsion else None)
        for s in self.density.symbols:
            self.register_buffer(f"dipoles_{s}", torch.as_tensor(basis[s].dipoles)
                                 * BOHR_TO_ANGSTROM)

    def forward(self, batch: Batch, forces: bool = True, energy: bool = True
                ) -> dict[str, torch.Tensor]:
        """Coefficients (C,), dipole (M, 3), populations (n,); energy (M,) and forces (n, 3).

        A flexible-basis model also returns ``exponent_scales`` (C,), one per function.
        ``energy=False`` runs the density network only (the density training stage);
        ``forces=False`` skips the autograd force computation.
        """
        positions = batch.positions
        if forces and energy and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        src, dst = radius_graph(positions, batch.molecule, self.config.cutoff)
        edge_sh, edge_radial = self.edges(positions, src, dst)
        species = self.species(batch.numbers, positions.dtype)
        c, scales = self.density(batch, species, src, dst, edge_sh, edge_radial)
        out = {"coefficients": c, "dipole": self.dipole(batch, positions, c, scales),
               "populations": self.populations(batch, c, scales)}
        if scales is not None:
            out["exponent_scales"] = scales
        if energy:
            sad = self.density.flat("sad", batch, c.dtype)
            out["energy"] = self.energy(batch, c - sad, species, src, dst, edge_sh, edge_radial,
                                        scales)
            if self.repulsion is not None:
                out["energy"] = out["energy"] + self.repulsion(
                    batch.numbers, positions, batch.molecule, src, dst, batch.n_molecules)
            if forces:
                out["forces"] = forces_from_energy(out["energy"], positions,
                                                   create_graph=self.training)
        return out

    def populations(self, batch: Batch, c: torch.Tensor, scales: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """Electrons on each atom, ``Σ_{μ∈A} c_μ ∫φ_μ`` (n,); they sum to N."""
        q = self.density.charges(batch, scales, c.dtype)
        return torch.zeros(len(batch.numbers), dtype=c.dtype, device=c.device).index_add(
            0, batch.coeff_atom, q * c)

    def dipole(self, batch: Batch, positions: torch.Tensor, c: torch.Tensor,
               scales: torch.Tensor | None = None) -> torch.Tensor:
        """``μ = Σ_A Z_A R_A − Σ_μ c_μ (∫φ_μ R_A + ∫(r − R_A) φ_μ)`` in e·Å, (M, 3)."""
        d = torch.zeros(batch.n_coefficients, 3, dtype=c.dtype, device=c.device)
        for s, idx in batch.element_coeffs.items():
            d[idx] = getattr(self, f"dipoles_{s}").to(c.dtype)
        if scales is not None:
            d = d * (scales ** DIPOLE_SCALE_POWER)[:, None]
        q = self.density.charges(batch, scales, c.dtype)
        electronic = c[:, None] * (q[:, None] * positions[batch.coeff_atom] + d)
        charge = batch.numbers.to(c.dtype)[:, None] * positions
        out = torch.zeros(batch.n_molecules, 3, dtype=c.dtype, device=c.device)
        return out.index_add(0, batch.molecule, charge).index_add(0, batch.coeff_molecule,
                                                                  -electronic)
