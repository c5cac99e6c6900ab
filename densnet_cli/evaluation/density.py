"""Density errors in real space and Gaussian cube files of predicted densities.

Densities ``ρ(r) = Σ_μ c_μ φ_μ^s(r)`` are evaluated with :mod:`densnet_cli.basis.values`
(equal to PySCF's ``eval_gto`` for the fixed basis, and able to scale exponents for a flexible
one) on a DFT integration grid for errors, on a regular grid for cubes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from densnet_cli import units
from densnet_cli.basis.layout import BasisSet, Numbers
from densnet_cli.basis.values import MoleculeFunctions, density_values

GRID_LEVEL = 3  # PySCF grid level of the L1 integrals (converged to ~1e-3 % for ethanol)


def _grid(mol, level: int):
    from pyscf import dft

    grids = dft.gen_grid.Grids(mol)
    grids.level = level
    return grids.build()


def density_on(basis: BasisSet, numbers: Numbers, positions: np.ndarray,
               coefficients: np.ndarray, points_bohr: np.ndarray,
               scales: np.ndarray | None = None) -> np.ndarray:
    """``ρ`` (electrons/Bohr³) of coefficients (e3nn order; positions Å) at points (Bohr)."""
    with torch.no_grad():
        return density_values(
            MoleculeFunctions.build(basis, numbers),
            torch.as_tensor(units.angstrom_to_bohr(positions)), torch.as_tensor(points_bohr),
            torch.as_tensor(coefficients, dtype=torch.float64),
            None if scales is None else torch.as_tensor(scales, dtype=torch.float64)).numpy()


def l1_error_percent(basis: BasisSet, numbers: Numbers, positions: np.ndarray,
                     predicted: np.ndarray, reference: np.ndarray,
                     scales: np.ndarray | None = None, level: int = GRID_LEVEL) -> float:
    """``∫|ρ_pred − ρ_ref| / N × 100`` for two coefficient vectors (e3nn order), positions Å.

    ``scales``: the prediction's exponent scales (flexible basis); the reference is fixed.
    """
    grids = _grid(basis.mole(numbers, units.angstrom_to_bohr(positions)), level)
    rho_pred = density_on(basis, numbers, positions, predicted, grids.coords, scales)
    rho_ref = density_on(basis, numbers, positions, reference, grids.coords)
    n = float(basis.charges(numbers) @ np.asarray(reference))
    return 100.0 * float(grids.weights @ np.abs(rho_pred - rho_ref)) / n


def l1_error_vs_dft_percent(basis: BasisSet, numbers: Numbers, positions: np.ndarray,
                            predicted: np.ndarray, settings: dict,
                            scales: np.ndarray | None = None,
                            density_matrix: np.ndarray | None = None) -> float:
    """``∫|ρ_pred − ρ_DFT| / N × 100`` on the DFT grid of the dataset's level of theory.

    ``density_matrix``: the stored DFT density matrix of this geometry; without it DFT is
    run afresh.
    """
    from pyscf.dft import numint

    from densnet_cli.reference.dft import LevelOfTheory, build_molecule, run_dft

    level = LevelOfTheory(**settings["level"])
    positions_bohr = units.angstrom_to_bohr(positions)
    if density_matrix is None:
        result, mf = run_dft(numbers, positions_bohr, level)
        mol, grids = mf.mol, mf.grids  # type: ignore[attr-defined]
        density_matrix = result.density_matrix
    else:
        mol = build_molecule(numbers, positions_bohr, level)
        grids = _grid(mol, level.grid_level)
    pred = density_on(basis, numbers, positions, predicted, grids.coords, scales)
    rho = np.concatenate([
        numint.eval_rho(mol, mol.eval_gto("GTOval_sph", grids.coords[p0:p0 + 20000]),
                        density_matrix) for p0 in range(0, grids.weights.size, 20000)])
    return 100.0 * float(grids.weights @ np.abs(pred - rho)) / mol.nelectron


def coulomb_error(basis: BasisSet, numbers: Numbers, positions: np.ndarray,
                  predicted: np.ndarray, reference: np.ndarray) -> float:
    """``(ρ_pred − ρ_ref | ρ_pred − ρ_ref)`` in Hartree."""
    mol = basis.mole(numbers, units.angstrom_to_bohr(positions))
    diff = basis.e3nn_to_pyscf(np.asarray(predicted) - np.asarray(reference), numbers)
    return float(diff @ mol.intor("int2c2e") @ diff)


def write_cube(basis: BasisSet, numbers: Numbers, positions: np.ndarray,
               coefficients: np.ndarray, path: str | Path, spacing: float = 0.2,
               margin: float = 3.0, scales: np.ndarray | None = None) -> None:
    """Write ``ρ`` (electrons/Bohr³) as a Gaussian cube file; ``spacing``/``margin`` in Å."""
    from pyscf.tools import cubegen

    mol = basis.mole(numbers, units.angstrom_to_bohr(positions))
    extent = np.ptp(mol.atom_coords(), axis=0) + 2 * margin * units.ANGSTROM_TO_BOHR
    nx, ny, nz = np.maximum(2, np.ceil(extent / (spacing * units.ANGSTROM_TO_BOHR))).astype(int)
    cube = cubegen.Cube(mol, int(nx), int(ny), int(nz),
                        margin=margin * units.ANGSTROM_TO_BOHR)
    values = density_on(basis, numbers, positions, coefficients, cube.get_coords(), scales)
    cube.write(values.reshape(cube.nx, cube.ny, cube.nz), str(path),
               comment="DenSNet predicted electron density")
