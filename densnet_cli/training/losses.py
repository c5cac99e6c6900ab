"""Loss terms, each a mean over the batch, in physical units (see docs/training.md).

- density: ``Δcᵀ J Δc`` per molecule (Hartree) — the Coulomb self-energy of the density error;
- grid: ``∫|ρ − ρ_DFT| / N`` per molecule on an integration grid (refine stage; a fraction);
- dipole: ``|μ − μ_DFT|²`` per molecule (e·Å)²;
- energy: ``((E − E_DFT) / n_atoms)²`` (eV/atom)²;
- forces: ``|F − F_DFT|²`` per component (eV/Å)².
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from densnet_cli.basis.values import density_values
from densnet_cli.model.batch import Batch
from densnet_cli.training.data import GridTensors
from densnet_cli.units import ANGSTROM_TO_BOHR

TERMS = ("density", "grid", "dipole", "energy", "forces")


def grid_l1(pred: dict[str, torch.Tensor], batch: Batch, grids: Sequence[GridTensors]
            ) -> torch.Tensor:
    """Mean over molecules of ``∫|ρ_pred − ρ_DFT| / N`` on each frame's grid."""
    atoms = torch.bincount(batch.molecule, minlength=batch.n_molecules).tolist()
    coeffs = torch.bincount(batch.coeff_molecule, minlength=batch.n_molecules).tolist()
    positions = torch.split(batch.positions * ANGSTROM_TO_BOHR, atoms)
    c = torch.split(pred["coefficients"], coeffs)
    scales = (torch.split(pred["exponent_scales"], coeffs) if "exponent_scales" in pred
              else [None] * len(coeffs))
    errors = []
    for g, x, cm, sm in zip(grids, positions, c, scales, strict=True):
        rho = density_values(g.functions, x, g.points, cm, sm)
        errors.append((g.weights * (rho - g.density).abs()).sum() / g.n_electrons)
    return torch.stack(errors).mean()


def loss_terms(pred: dict[str, torch.Tensor], batch: Batch, coulomb: list[torch.Tensor],
               grids: Sequence[GridTensors] = ()) -> dict[str, torch.Tensor]:
    """The loss terms that ``pred`` allows.

    Energy and forces only when predicted; the grid term only when ``grids`` are given.
    """
    out: dict[str, torch.Tensor] = {}
    error = pred["coefficients"] - batch.targets["coefficients"]
    start, density = 0, []
    for j in coulomb:
        e = error[start:start + j.shape[0]]
        density.append(e @ (j @ e))
        start += j.shape[0]
    out["density"] = torch.stack(density).mean()
    if grids:
        out["grid"] = grid_l1(pred, batch, grids)
    out["dipole"] = ((pred["dipole"] - batch.targets["dipole"]) ** 2).sum(-1).mean()
    if "energy" in pred:
        n_atoms = torch.zeros(batch.n_molecules, dtype=error.dtype,
                              device=error.device).index_add(
            0, batch.molecule, torch.ones_like(batch.molecule, dtype=error.dtype))
        out["energy"] = (((pred["energy"] - batch.targets["energy"]) / n_atoms) ** 2).mean()
    if "forces" in pred:
        out["forces"] = ((pred["forces"] - batch.targets["forces"]) ** 2).mean()
    return out


def weighted_total(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """``Σ w_k L_k`` over the terms that have a non-zero weight in this stage."""
    return sum((weights[k] * v for k, v in terms.items() if weights.get(k, 0.0)),
               start=torch.zeros((), dtype=next(iter(terms.values())).dtype))
