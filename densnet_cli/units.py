"""Unit conversions, in one place.

Inside the library, the Python API speaks ASE units: Å, eV, eV/Å, e·Å.  PySCF and the i-PI
socket speak atomic units: Bohr, Hartree, Hartree/Bohr, e·Bohr.  Only the edges that talk to
those programs convert, and they use the factors below (taken from ASE, so that a round trip
through ASE's own socket code is exact).

Density coefficients are not converted anywhere: the Gaussian basis functions are defined in
atomic units (exponents in Bohr⁻²), and the coefficients are the expansion weights of the
electron number density in that basis.
"""

from __future__ import annotations

import ase.units
import numpy as np

BOHR_TO_ANGSTROM = float(ase.units.Bohr)  # Å per Bohr
ANGSTROM_TO_BOHR = 1.0 / BOHR_TO_ANGSTROM
HARTREE_TO_EV = float(ase.units.Hartree)  # eV per Hartree
EV_TO_HARTREE = 1.0 / HARTREE_TO_EV
KCAL_PER_MOL_TO_EV = float(ase.units.kcal / ase.units.mol)
EV_TO_KCAL_PER_MOL = 1.0 / KCAL_PER_MOL_TO_EV
DEBYE_TO_E_ANGSTROM = float(ase.units.Debye)  # e·Å per Debye
E_ANGSTROM_TO_DEBYE = 1.0 / DEBYE_TO_E_ANGSTROM


def angstrom_to_bohr(x: np.ndarray) -> np.ndarray:
    """Lengths (positions) Å → Bohr."""
    return np.asarray(x, dtype=float) * ANGSTROM_TO_BOHR


def bohr_to_angstrom(x: np.ndarray) -> np.ndarray:
    """Lengths (positions) Bohr → Å."""
    return np.asarray(x, dtype=float) * BOHR_TO_ANGSTROM


def hartree_to_ev(e: float | np.ndarray) -> float | np.ndarray:
    """Energies Hartree → eV."""
    return e * HARTREE_TO_EV


def gradient_au_to_forces_ev_per_angstrom(grad: np.ndarray) -> np.ndarray:
    """Energy gradient in Hartree/Bohr → forces (−∇E) in eV/Å."""
    return -np.asarray(grad, dtype=float) * (HARTREE_TO_EV / BOHR_TO_ANGSTROM)


def dipole_au_to_e_angstrom(d: np.ndarray) -> np.ndarray:
    """Dipole moments e·Bohr → e·Å (ASE's convention)."""
    return np.asarray(d, dtype=float) * BOHR_TO_ANGSTROM


# --- spectroscopy (densnet spectrum): time in fs, wavenumbers in cm⁻¹, dipoles in e·Å ----------
FS = 1e-15  # s per fs
SPEED_OF_LIGHT_CM_PER_FS = float(ase.units._c) * 1e2 * FS  # cm/fs; ω (rad/fs) = 2π c ν̃ (cm⁻¹)
HBAR_EV_FS = float(ase.units._hbar / ase.units._e) / FS  # eV·fs
BOLTZMANN_EV_PER_K = float(ase.units.kB)  # eV/K
AMU_KG = float(ase.units._amu)  # kg per atomic mass unit
E_ANGSTROM_TO_COULOMB_METRE = float(ase.units._e) * 1e-10  # C·m per e·Å
EV_TO_JOULE = float(ase.units._e)  # J per eV
EPSILON0_SI = float(ase.units._eps0)  # F/m
SPEED_OF_LIGHT_SI = float(ase.units._c)  # m/s
AVOGADRO = float(ase.units._Nav)  # 1/mol
M2_PER_MOL_TO_KM_PER_MOL_PER_CM1 = 1e2 / 1e3  # N_A σ: m² mol⁻¹ → km mol⁻¹ (cm⁻¹)⁻¹
M_PER_MOL_TO_KM_PER_MOL = 1e-3


def wavenumber_to_angular_frequency(nu_cm1: np.ndarray) -> np.ndarray:
    """Wavenumbers ν̃ (cm⁻¹) → angular frequencies ω = 2π c ν̃ (rad/fs)."""
    return 2.0 * np.pi * SPEED_OF_LIGHT_CM_PER_FS * np.asarray(nu_cm1, dtype=float)


# --- the i-PI socket edge (drivers/): ASE units → atomic units, written as ASE's own -------------
# IPIProtocol.sendforce writes them, so that a round trip through ASE's socket code is exact.
def ev_to_hartree(e: float | np.ndarray) -> float | np.ndarray:
    """Energies eV → Hartree."""
    return e / HARTREE_TO_EV


def forces_ev_per_angstrom_to_au(f: np.ndarray) -> np.ndarray:
    """Forces eV/Å → Hartree/Bohr."""
    return (BOHR_TO_ANGSTROM / HARTREE_TO_EV) * np.asarray(f, dtype=float)


def dipole_e_angstrom_to_au(d: np.ndarray) -> np.ndarray:
    """Dipole moments e·Å → e·Bohr (i-PI's extras)."""
    return np.asarray(d, dtype=float) / BOHR_TO_ANGSTROM
