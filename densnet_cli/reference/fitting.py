"""Fitting a density matrix onto the atom-centred density basis in the Coulomb metric.

For a KS density ``ρ(r) = Σ_ij D_ij χ_i(r) χ_j(r)`` and density functions ``φ_P`` we minimise
the Coulomb self-energy of the error, ``(ρ − ρ̃ | ρ − ρ̃)`` with ``(f|g) = ∬ f(r) g(r') / |r − r'|``,
subject to linear constraints ``A c = t``: the electron count (``Σ c_P ∫φ_P = N``) and, by
default, the electronic dipole (``Σ c_P ∫ r φ_P = Σ_ij D_ij ⟨i|r|j⟩``) so that the fitted density
reproduces the DFT dipole exactly.  With ``J_PQ = (P|Q)`` and ``b_P = (P|ρ)`` the Lagrangian gives

    c = J⁻¹ (b − Aᵀλ),      (A J⁻¹ Aᵀ) λ = A J⁻¹ b − t.

The Coulomb metric is the standard choice for density fitting: the error it leaves in the
Hartree energy is second order in the fit error, and it penalises errors in the long-range
electrostatics, which is what the dipole depends on.

Everything is in PySCF order and atomic units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

_MAX_BLOCK_BYTES = 256 * 1024**2  # memory for one block of three-centre integrals


@dataclass
class FitResult:
    """A fitted density and how good it is."""

    coefficients: np.ndarray  # (n_aux,) PySCF order
    coulomb_error: float  # (δρ|δρ), Hartree
    relative_error: float  # sqrt((δρ|δρ) / (ρ|ρ))


def coulomb_projections(mol, auxmol, dm: np.ndarray) -> np.ndarray:
    """``b_P = (P|ρ)`` for all density functions, blocked over auxiliary shells."""
    from pyscf import df, lib

    dm_tril = lib.pack_tril(dm + dm.T - np.diag(np.diag(dm)))  # (ij|P) is symmetric in i,j
    ao_loc = auxmol.ao_loc_nr()
    max_functions = max(1, _MAX_BLOCK_BYTES // (8 * dm_tril.size))
    b = np.empty(auxmol.nao_nr())
    start = 0
    while start < auxmol.nbas:
        stop = start + 1
        while stop < auxmol.nbas and ao_loc[stop + 1] - ao_loc[start] <= max_functions:
            stop += 1
        ints = df.incore.aux_e2(mol, auxmol, "int3c2e", aosym="s2ij",
                                shls_slice=(0, mol.nbas, 0, mol.nbas, start, stop))
        b[ao_loc[start] : ao_loc[stop]] = dm_tril @ ints
        start = stop
    return b


def coulomb_self_energy(mol, dm: np.ndarray) -> float:
    """``(ρ|ρ)`` with exact four-centre integrals (Hartree)."""
    from pyscf import scf

    vj = scf.hf.get_jk(mol, dm, hermi=1, with_k=False)[0]
    return float(np.einsum("ij,ji->", dm, vj))


def _solve_spd(j: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``J⁻¹ rhs`` by Cholesky, or by eigen-decomposition if ``J`` is numerically singular.

    Large even-tempered bases can be; then directions below 1e-13 of the largest eigenvalue
    are dropped.
    """
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(j), rhs)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(j)
        keep = w > 1e-13 * w[-1]
        return v[:, keep] @ ((v[:, keep].T @ rhs) / w[keep, None] if rhs.ndim == 2
                             else (v[:, keep].T @ rhs) / w[keep])


def constrained_coulomb_fit(mol, auxmol, dm: np.ndarray, constraints: np.ndarray,
                            targets: np.ndarray) -> FitResult:
    """Minimise ``(ρ − ρ̃|ρ − ρ̃)`` subject to ``constraints @ c = targets`` (exactly)."""
    j = auxmol.intor("int2c2e")
    b = coulomb_projections(mol, auxmol, dm)
    a = np.atleast_2d(constraints)
    jinv_b = _solve_spd(j, b)
    jinv_at = _solve_spd(j, a.T)
    lam = np.linalg.solve(a @ jinv_at, a @ jinv_b - np.atleast_1d(targets))
    c = jinv_b - jinv_at @ lam
    rho_rho = coulomb_self_energy(mol, dm)
    err = max(rho_rho - 2.0 * c @ b + c @ j @ c, 0.0)
    return FitResult(coefficients=c, coulomb_error=float(err),
                     relative_error=float(np.sqrt(err / rho_rho)))


def electronic_dipole_integral(mol, dm: np.ndarray) -> np.ndarray:
    """``∫ r ρ(r) d³r`` (e·Bohr, origin 0) of a density matrix."""
    with mol.with_common_orig((0.0, 0.0, 0.0)):
        r = mol.intor_symmetric("int1e_r", comp=3)
    return np.einsum("xij,ji->x", r, dm)


def real_space_l1(mol, dm: np.ndarray, auxmol, coefficient_sets: list[np.ndarray],
                  grids, block: int = 20000) -> list[float]:
    """``∫|ρ̃ − ρ| / N × 100`` (percent) on a DFT grid, for several fitted densities at once."""
    from pyscf.dft import numint

    n = float(mol.nelectron)
    totals = np.zeros(len(coefficient_sets))
    for p0 in range(0, grids.weights.size, block):
        coords = grids.coords[p0 : p0 + block]
        w = grids.weights[p0 : p0 + block]
        rho = numint.eval_rho(mol, mol.eval_gto("GTOval_sph", coords), dm)
        phi = auxmol.eval_gto("GTOval_sph", coords)
        for k, c in enumerate(coefficient_sets):
            totals[k] += w @ np.abs(phi @ c - rho)
    return list(100.0 * totals / n)
