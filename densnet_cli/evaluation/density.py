"""Density errors in real space and Gaussian cube files of predicted densities.

Densities are evaluated with PySCF from coefficients (converted to PySCF order at this edge):
``ρ(r) = Σ_μ c_μ φ_μ(r)`` on a DFT integration grid for errors, on a regular grid for cubes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from densnet_cli import units
from densnet_cli.basis.layout import BasisSet, Numbers

GRID_LEVEL = 3  # PySCF grid level of the L1 integrals (converged to ~1e-3 % for ethanol)


def _grid(mol, level: int):
    from pyscf import dft

    grids = dft.gen_grid.Grids(mol)
    grids.level = level
    return grids.build()


def l1_error_percent(basis: BasisSet, numbers: Numbers, positions: np.ndarray,
                     predicted: np.ndarray, reference: np.ndarray,
                     level: int = GRID_LEVEL, block: int = 20000) -> float:
    """``∫|ρ_pred − ρ_ref| / N × 100`` for two coefficient vectors (e3nn order), positions Å."""
    mol = basis.mole(numbers, units.angstrom_to_bohr(positions))
    grids = _grid(mol, level)
    diff = basis.e3nn_to_pyscf(np.asarray(predicted) - np.asarray(reference), numbers)
    n = float(basis.charges(numbers) @ np.asarray(reference))
    total = 0.0
    for p0 in range(0, grids.weights.size, block):
        phi = mol.eval_gto("GTOval_sph", grids.coords[p0:p0 + block])
        total += float(grids.weights[p0:p0 + block] @ np.abs(phi @ diff))
    return 100.0 * total / n


def l1_error_vs_dft_percent(basis: BasisSet, numbers: Numbers, positions: np.ndarray,
                            predicted: np.ndarray, settings: dict) -> float:
    """``∫|ρ_pred − ρ_DFT| / N × 100`` against a fresh DFT density at the dataset's level."""
    from pyscf.dft import numint

    from densnet_cli.reference.dft import LevelOfTheory, run_dft

    level = LevelOfTheory(**settings["level"])
    positions_bohr = units.angstrom_to_bohr(positions)
    result, mf = run_dft(numbers, positions_bohr, level)
    mol = mf.mol  # type: ignore[attr-defined]
    auxmol = basis.mole(numbers, positions_bohr)
    c = basis.e3nn_to_pyscf(predicted, numbers)
    grids = mf.grids  # type: ignore[attr-defined]
    total = 0.0
    for p0 in range(0, grids.weights.size, 20000):
        coords = grids.coords[p0:p0 + 20000]
        rho = numint.eval_rho(mol, mol.eval_gto("GTOval_sph", coords), result.density_matrix)
        total += float(grids.weights[p0:p0 + 20000]
                       @ np.abs(auxmol.eval_gto("GTOval_sph", coords) @ c - rho))
    return 100.0 * total / mol.nelectron


def coulomb_error(basis: BasisSet, numbers: Numbers, positions: np.ndarray,
                  predicted: np.ndarray, reference: np.ndarray) -> float:
    """``(ρ_pred − ρ_ref | ρ_pred − ρ_ref)`` in Hartree."""
    mol = basis.mole(numbers, units.angstrom_to_bohr(positions))
    diff = basis.e3nn_to_pyscf(np.asarray(predicted) - np.asarray(reference), numbers)
    return float(diff @ mol.intor("int2c2e") @ diff)


def write_cube(basis: BasisSet, numbers: Numbers, positions: np.ndarray,
               coefficients: np.ndarray, path: str | Path, spacing: float = 0.2,
               margin: float = 3.0) -> None:
    """Write ``ρ`` (electrons/Bohr³) as a Gaussian cube file; ``spacing``/``margin`` in Å."""
    from pyscf.tools import cubegen

    mol = basis.mole(numbers, units.angstrom_to_bohr(positions))
    extent = np.ptp(mol.atom_coords(), axis=0) + 2 * margin * units.ANGSTROM_TO_BOHR
    nx, ny, nz = np.maximum(2, np.ceil(extent / (spacing * units.ANGSTROM_TO_BOHR))).astype(int)
    cube = cubegen.Cube(mol, int(nx), int(ny), int(nz),
                        margin=margin * units.ANGSTROM_TO_BOHR)
    values = mol.eval_gto("GTOval_sph", cube.get_coords()) @ basis.e3nn_to_pyscf(
        coefficients, numbers)
    cube.write(values.reshape(cube.nx, cube.ny, cube.nz), str(path),
               comment="DenSNet predicted electron density")
