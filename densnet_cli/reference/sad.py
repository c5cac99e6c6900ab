"""The SAD prior: superposition of free, spherically averaged atomic densities.

For each element we run PySCF's spherically averaged, spin-restricted atomic KS calculation
(``pyscf.scf.atom_ks.get_atm_nrks``: fractional occupation of each open shell, the same
functional and orbital basis as the molecules) and fit its density onto the *s functions* of
that element's density basis (Coulomb metric, electron count = Z exactly).  A spherical density
has no l > 0 components, so fitting onto the s functions alone is exact and makes the prior
rotation-invariant by construction.

The result is a constant coefficient vector per element (e3nn order); a molecule's prior is the
concatenation of its atoms' vectors.  The model predicts a Δ on top of it.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from typing import Any

import numpy as np
from ase.data import atomic_numbers

from densnet_cli.basis.layout import BasisSet, ElementBasis, atom_basis_mole
from densnet_cli.reference.dft import LevelOfTheory
from densnet_cli.reference.fitting import constrained_coulomb_fit


def atomic_density_matrix(symbol: str, lot: LevelOfTheory) -> tuple[Any, np.ndarray]:
    """Spherically averaged free-atom density matrix of ``symbol`` (and its PySCF ``Mole``)."""
    from pyscf import gto
    from pyscf.scf import atom_ks

    z = atomic_numbers[symbol]
    mol = gto.M(atom=f"{symbol} 0 0 0", basis=lot.basis, spin=z % 2, verbose=0)
    with contextlib.redirect_stdout(io.StringIO()):
        _, _, mo_coeff, mo_occ = atom_ks.get_atm_nrks(mol, xc=lot.xc)[symbol]
    return mol, (mo_coeff * mo_occ) @ mo_coeff.T


def element_prior(element: ElementBasis, lot: LevelOfTheory) -> np.ndarray:
    """SAD coefficients of one element, e3nn order, shape (n_functions,)."""
    mol, dm = atomic_density_matrix(element.symbol, lot)
    s_only = replace(element, shells=tuple(s for s in element.shells if s.l == 0))
    auxmol = atom_basis_mole(s_only)
    fit = constrained_coulomb_fit(mol, auxmol, dm, s_only.charges[None, :],
                                  np.array([float(mol.nelectron)]))
    coefficients_pyscf = np.zeros(element.n_functions)
    starts = np.cumsum([0] + [2 * s.l + 1 for s in element.shells])
    s_positions = [starts[i] for i, s in enumerate(element.shells) if s.l == 0]
    coefficients_pyscf[s_positions] = fit.coefficients
    return element.pyscf_to_e3nn @ coefficients_pyscf


def sad_prior(basis: BasisSet, lot: LevelOfTheory) -> dict[str, np.ndarray]:
    """SAD coefficients for every element of the basis set."""
    return {s: element_prior(basis[s], lot) for s in sorted(basis.elements)}

