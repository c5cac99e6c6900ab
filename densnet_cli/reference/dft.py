"""Kohn–Sham DFT with PySCF: energy, forces, dipole and density matrix of one geometry.

Everything here is in atomic units (Bohr, Hartree); callers convert at the edge with
:mod:`densnet_cli.units`.

An SCF that does not converge is retried with progressively more robust settings
(:data:`SCF_STRATEGIES`); if none converges, :class:`~densnet_cli.errors.FrameFailure` is raised
and the frame is reported, never stored.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from ase.data import chemical_symbols

from densnet_cli.basis.layout import Numbers
from densnet_cli.errors import FrameFailure, InputError

# Tried in order until one converges: plain DIIS; DIIS with damping and a level shift from the
# superposition-of-atoms guess; second-order (Newton) SCF.
SCF_STRATEGIES = ("diis", "damped-level-shift", "newton")


@dataclass(frozen=True)
class LevelOfTheory:
    """Everything that determines the reference numbers (part of a dataset's identity)."""

    xc: str = "PBE"
    basis: str = "def2-SVP"
    scf_auxbasis: str = ""  # "" = PySCF's default J/K fitting basis for `basis`
    charge: int = 0
    spin: int = 0  # 2S = N_alpha - N_beta; UKS when non-zero
    grid_level: int = 4
    conv_tol: float = 1e-10  # Hartree

    def as_dict(self) -> dict:
        """Plain-data form for metadata."""
        return asdict(self)

    @classmethod
    def of(cls, options: object) -> LevelOfTheory:
        """The level of theory given by the same-named attributes of ``options`` (a config)."""
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)})


@dataclass
class DFTResult:
    """Converged KS-DFT results for one geometry (atomic units)."""

    energy: float  # Hartree
    gradient: np.ndarray  # (n_atoms, 3) Hartree/Bohr
    dipole: np.ndarray  # (3,) e·Bohr, total (nuclear − electronic), origin at 0
    density_matrix: np.ndarray  # (n_ao, n_ao) total (α+β) density matrix
    strategy: str  # which entry of SCF_STRATEGIES converged
    cycles: int  # SCF iterations of the converged attempt


def build_molecule(numbers: Numbers, positions_bohr: np.ndarray, lot: LevelOfTheory):
    """PySCF ``Mole`` for a geometry; bad charge/spin or basis raise :class:`InputError`."""
    from pyscf import gto

    symbols = [chemical_symbols[int(z)] for z in numbers]
    try:
        return gto.M(atom=list(zip(symbols, map(tuple, positions_bohr), strict=True)),
                     basis=lot.basis, charge=lot.charge, spin=lot.spin, unit="Bohr", verbose=0)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise InputError(f"PySCF cannot build the molecule {''.join(symbols)} with basis "
                         f"'{lot.basis}', charge {lot.charge}, spin {lot.spin}: {exc}") from exc


def make_scf(mol, lot: LevelOfTheory):
    """The (density-fitted) KS object for ``mol`` at the given level of theory."""
    from pyscf import dft

    mf = dft.RKS(mol) if lot.spin == 0 else dft.UKS(mol)
    mf.xc = lot.xc
    mf.grids.level = lot.grid_level
    mf.conv_tol = lot.conv_tol
    mf.verbose = 0
    return mf.density_fit(auxbasis=lot.scf_auxbasis or None)


def _attempt(mf, strategy: str, max_cycle: int, dm0):
    mf.max_cycle = max_cycle
    if strategy == "damped-level-shift":
        mf.level_shift, mf.damp, mf.diis_start_cycle = 0.25, 0.5, 4
        dm0 = mf.get_init_guess(key="atom")
    elif strategy == "newton":
        mf = mf.newton()
    with contextlib.redirect_stdout(io.StringIO()):  # PySCF prints non-convergence warnings
        mf.kernel(dm0=dm0)
    return mf


def converged_scf(numbers: Numbers, positions_bohr: np.ndarray, lot: LevelOfTheory,
                  max_cycle: int = 100) -> tuple[Any, str]:
    """The converged PySCF SCF object and the name of the strategy that converged it.

    Raises:
        FrameFailure: if no strategy in :data:`SCF_STRATEGIES` converges.
    """
    mol = build_molecule(numbers, positions_bohr, lot)
    dm = None
    for strategy in SCF_STRATEGIES:
        mf = _attempt(make_scf(mol, lot), strategy, max_cycle, dm)
        if mf.converged:
            return mf, strategy
        dm = mf.make_rdm1()  # the next, more robust strategy starts from here
    raise FrameFailure(f"SCF did not converge in {max_cycle} cycles with any of "
                       f"{', '.join(SCF_STRATEGIES)}")


def _dipole_au(mf) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        return np.asarray(mf.dip_moment(unit="AU", verbose=0))


def scf_dipole(numbers: Numbers, positions_bohr: np.ndarray, lot: LevelOfTheory) -> np.ndarray:
    """Dipole moment (atomic units, about the origin) of the converged SCF; no gradient.

    Raises:
        FrameFailure: if the SCF does not converge.
    """
    mf, _ = converged_scf(numbers, positions_bohr, lot)
    return _dipole_au(mf)


def run_dft(numbers: Numbers, positions_bohr: np.ndarray, lot: LevelOfTheory,
            max_cycle: int = 100) -> tuple[DFTResult, object]:
    """Converge the SCF (with retries), then compute forces and the dipole.

    Returns:
        The results and the converged PySCF SCF object (its ``mol`` and ``grids`` are reused
        by the density fit).

    Raises:
        FrameFailure: if no strategy in :data:`SCF_STRATEGIES` converges.
    """
    mf, strategy = converged_scf(numbers, positions_bohr, lot, max_cycle)
    gradient = np.asarray(mf.nuc_grad_method().kernel())
    dm_total = mf.make_rdm1()
    if dm_total.ndim == 3:
        dm_total = dm_total[0] + dm_total[1]
    dipole = _dipole_au(mf)
    result = DFTResult(energy=float(mf.e_tot), gradient=gradient, dipole=dipole,
                       density_matrix=np.asarray(dm_total), strategy=strategy,
                       cycles=int(getattr(mf, "cycles", -1)))
    return result, mf
