"""Batches of molecules as flat tensors, and their radius graphs.

Molecules of different sizes and elements are concatenated: atoms along one axis (with a
``molecule`` index), density coefficients along another (each atom owns the block of its
element's basis functions, e3nn order, atoms in order).  For each element the batch keeps the
atoms of that element and the positions of their coefficients, so that per-element network
heads read and write whole blocks with one gather/scatter.

Positions are in Å (the library's units); the graph holds every ordered pair of distinct atoms
of the same molecule closer than the cutoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from ase.data import atomic_numbers, chemical_symbols

from densnet_cli.basis.layout import BasisSet


@dataclass
class Batch:
    """A batch of molecules (tensors on one device, one floating dtype)."""

    numbers: torch.Tensor  # (n,) long, atomic numbers
    positions: torch.Tensor  # (n, 3) Å
    molecule: torch.Tensor  # (n,) long, which molecule each atom belongs to
    n_molecules: int
    charge: torch.Tensor  # (M,) e, total charge of each molecule
    coeff_molecule: torch.Tensor  # (C,) long, molecule of each coefficient
    coeff_atom: torch.Tensor  # (C,) long, atom of each coefficient
    element_atoms: dict[str, torch.Tensor]  # symbol → (n_e,) atom indices
    element_coeffs: dict[str, torch.Tensor]  # symbol → (n_e, n_functions_e) coefficient indices
    targets: dict[str, torch.Tensor] = field(default_factory=dict)  # optional labels

    @property
    def n_coefficients(self) -> int:
        """Total number of density coefficients in the batch."""
        return int(self.coeff_molecule.shape[0])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
           ) -> Batch:
        """Move to a device and/or cast floating tensors to ``dtype``."""
        def cast(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        return Batch(cast(self.numbers), cast(self.positions), cast(self.molecule),
                     self.n_molecules, cast(self.charge), cast(self.coeff_molecule),
                     cast(self.coeff_atom),
                     {k: cast(v) for k, v in self.element_atoms.items()},
                     {k: cast(v) for k, v in self.element_coeffs.items()},
                     {k: cast(v) for k, v in self.targets.items()})


def collate(basis: BasisSet, molecules: Sequence[tuple[np.ndarray, np.ndarray]],
            charges: Sequence[float] | None = None,
            targets: Sequence[dict[str, Any]] | None = None,
            dtype: torch.dtype = torch.float64) -> Batch:
    """Build a :class:`Batch` from ``(numbers, positions_Å)`` pairs.

    ``targets`` (optional, one dict per molecule) are concatenated key by key: per-atom arrays
    along atoms, ``coefficients`` along coefficients, per-molecule values stacked.
    """
    numbers = np.concatenate([np.asarray(z, dtype=np.int64) for z, _ in molecules])
    positions = np.concatenate([np.asarray(r, dtype=float).reshape(-1, 3) for _, r in molecules])
    molecule = np.concatenate([np.full(len(z), m) for m, (z, _) in enumerate(molecules)])
    sizes = np.array([basis[chemical_symbols[z]].n_functions for z in numbers])
    starts = np.concatenate([[0], np.cumsum(sizes)])
    coeff_atom = np.repeat(np.arange(len(numbers)), sizes)
    element_atoms, element_coeffs = {}, {}
    for symbol in sorted({chemical_symbols[z] for z in numbers}):
        atoms = np.flatnonzero(numbers == atomic_numbers[symbol])
        n_f = basis[symbol].n_functions
        element_atoms[symbol] = torch.as_tensor(atoms)
        element_coeffs[symbol] = torch.as_tensor(starts[atoms][:, None] + np.arange(n_f))
    stacked: dict[str, torch.Tensor] = {}
    if targets:
        for key in targets[0]:
            values = [np.asarray(t[key], dtype=float) for t in targets]
            per_molecule = values[0].ndim == 0 or key in ("dipole", "energy")
            joined = np.stack(values) if per_molecule else np.concatenate(values)
            stacked[key] = torch.as_tensor(joined, dtype=dtype)
    return Batch(
        numbers=torch.as_tensor(numbers),
        positions=torch.as_tensor(positions, dtype=dtype),
        molecule=torch.as_tensor(molecule),
        n_molecules=len(molecules),
        charge=torch.as_tensor(np.zeros(len(molecules)) if charges is None else charges,
                               dtype=dtype),
        coeff_molecule=torch.as_tensor(molecule[coeff_atom]),
        coeff_atom=torch.as_tensor(coeff_atom),
        element_atoms=element_atoms,
        element_coeffs=element_coeffs,
        targets=stacked,
    )


def radius_graph(positions: torch.Tensor, molecule: torch.Tensor, cutoff: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Directed edges (src, dst) between distinct atoms of one molecule within ``cutoff`` Å.

    Built per molecule from all pairs (O(n²) memory per molecule, fine up to a few thousand
    atoms); the graph is a function of the positions only, so it is built without gradients.
    """
    src, dst = [], []
    with torch.no_grad():
        for m in torch.unique(molecule):
            atoms = torch.nonzero(molecule == m).squeeze(1)
            # not the matrix-product path: above 25 atoms it leaves ~1e-7 on the diagonal, which
            # `d > 0` took for an edge (a zero-length self-edge: NaN from the radial basis)
            d = torch.cdist(positions[atoms], positions[atoms],
                            compute_mode="donot_use_mm_for_euclid_dist")
            distinct = ~torch.eye(len(atoms), dtype=torch.bool, device=d.device)
            i, j = torch.nonzero((d < cutoff) & distinct, as_tuple=True)
            src.append(atoms[i])
            dst.append(atoms[j])
    return torch.cat(src), torch.cat(dst)
