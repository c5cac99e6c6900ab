"""Loss terms, each a mean over the batch, in physical units (see docs/training.md).

- density: ``Δcᵀ J Δc`` per molecule (Hartree) — the Coulomb self-energy of the density error;
- dipole: ``|μ − μ_DFT|²`` per molecule (e·Å)²;
- energy: ``((E − E_DFT) / n_atoms)²`` (eV/atom)²;
- forces: ``|F − F_DFT|²`` per component (eV/Å)².
"""

from __future__ import annotations

import torch

from densnet_cli.model.batch import Batch

TERMS = ("density", "dipole", "energy", "forces")


def loss_terms(pred: dict[str, torch.Tensor], batch: Batch, coulomb: list[torch.Tensor]
               ) -> dict[str, torch.Tensor]:
    """The loss terms that ``pred`` allows (energy and forces only when predicted)."""
    out: dict[str, torch.Tensor] = {}
    error = pred["coefficients"] - batch.targets["coefficients"]
    start, density = 0, []
    for j in coulomb:
        e = error[start:start + j.shape[0]]
        density.append(e @ (j @ e))
        start += j.shape[0]
    out["density"] = torch.stack(density).mean()
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
