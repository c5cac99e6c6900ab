"""Labelling one frame: DFT, density fit, diagnostics.

:func:`label_frame` is a plain top-level function of a picklable :class:`FrameTask`, so the same
code runs in-process, in a local worker process, or on a Dask worker.  It never raises for a
frame that fails; it returns a record with an ``error`` entry instead, and the caller reports it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from densnet_cli import units
from densnet_cli.basis.layout import BasisSet
from densnet_cli.data.hdf5 import pack_lower
from densnet_cli.errors import FrameFailure
from densnet_cli.reference.dft import LevelOfTheory, run_dft
from densnet_cli.reference.fitting import (
    constrained_coulomb_fit,
    electronic_dipole_integral,
    real_space_l1,
)


@dataclass(frozen=True)
class LabelSettings:
    """What determines a labelled dataset's numbers (stored in the file and checked on resume)."""

    level: LevelOfTheory
    density_basis: str = "def2-universal-jkfit"
    constrain_dipole: bool = True

    def as_dict(self) -> dict:
        """Plain-data form for metadata."""
        return asdict(self)


@dataclass(frozen=True)
class FrameTask:
    """Everything a worker needs to label one frame."""

    source_index: int
    numbers: np.ndarray  # (n,) int
    positions: np.ndarray  # (n, 3) Å
    settings: LabelSettings
    basis: BasisSet
    sad: dict[str, np.ndarray]
    max_cycle: int = 100
    threads: int = 0  # PySCF threads in this worker; 0 = leave as is


def label_frame(task: FrameTask) -> dict:
    """Run DFT on one geometry and fit its density; returns the frame's record.

    The record holds the fields of :data:`densnet_cli.keys.FRAME_ARRAYS` and
    :data:`~densnet_cli.keys.ATOM_ARRAYS` plus ``coefficients`` (e3nn order),
    ``density_matrix`` (packed, see :func:`~densnet_cli.data.hdf5.pack_lower`),
    ``scf_strategy`` and ``source_index`` — or ``source_index`` and ``error`` if the frame
    failed.  Any exception while labelling one frame becomes such an error record: one odd
    geometry must not stop a run of thousands, and the failure is reported and retried, never
    stored as good.
    """
    try:
        return _label(task)
    except FrameFailure as exc:
        return {"source_index": task.source_index, "error": str(exc)}
    except Exception as exc:
        return {"source_index": task.source_index,
                "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def _label(task: FrameTask) -> dict:
    if task.threads:
        from pyscf import lib

        lib.num_threads(task.threads)
    start = time.perf_counter()
    numbers = np.asarray(task.numbers, dtype=int)
    positions_bohr = units.angstrom_to_bohr(task.positions)
    dft, mf = run_dft(numbers, positions_bohr, task.settings.level, task.max_cycle)

    mol = mf.mol  # type: ignore[attr-defined]
    basis = task.basis
    auxmol = basis.mole(numbers, positions_bohr)
    n_electrons = float(mol.nelectron)
    charges = basis.charges(numbers)  # e3nn order
    dipoles = basis.dipoles(numbers, positions_bohr)  # e3nn order, (C, 3)
    constraints = [basis.e3nn_to_pyscf(charges, numbers)]
    targets = [n_electrons]
    if task.settings.constrain_dipole:
        constraints += list(basis.e3nn_to_pyscf(dipoles.T, numbers))
        targets += list(electronic_dipole_integral(mol, dft.density_matrix))
    fit = constrained_coulomb_fit(mol, auxmol, dft.density_matrix, np.array(constraints),
                                  np.array(targets))
    coefficients = basis.pyscf_to_e3nn(fit.coefficients, numbers)
    prior = basis.molecule_vector(task.sad, numbers)
    fit_l1, sad_l1 = real_space_l1(mol, dft.density_matrix, auxmol,
                                   [fit.coefficients, basis.e3nn_to_pyscf(prior, numbers)],
                                   mf.grids)  # type: ignore[attr-defined]
    nuclear_dipole = mol.atom_charges() @ positions_bohr
    fit_dipole = nuclear_dipole - dipoles.T @ coefficients
    return {
        "source_index": task.source_index,
        "numbers": numbers,
        "positions": np.asarray(task.positions, dtype=float),
        "forces": units.gradient_au_to_forces_ev_per_angstrom(dft.gradient),
        "energy": units.hartree_to_ev(dft.energy),
        "dipole": units.dipole_au_to_e_angstrom(dft.dipole),
        "coefficients": coefficients,
        "density_matrix": pack_lower(dft.density_matrix),
        "fit_dipole": units.dipole_au_to_e_angstrom(fit_dipole),
        "fit_n_electrons": float(charges @ coefficients),
        "fit_coulomb_error": fit.coulomb_error,
        "fit_relative_error": fit.relative_error,
        "fit_l1_percent": fit_l1,
        "sad_l1_percent": sad_l1,
        "scf_strategy": dft.strategy,
        "scf_cycles": dft.cycles,
        "wall_time": time.perf_counter() - start,
    }
