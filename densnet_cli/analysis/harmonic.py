"""Harmonic (normal-mode) vibrational analysis: frequencies and IR intensities of a molecule.

The steps, each a function below (the physics and the units are in ``docs/harmonic.md``):

1. :func:`optimise`: relax the geometry (ASE BFGS) until every force is below ``fmax``.
2. :func:`harmonic_analysis`: central finite differences of the forces and the dipole, 2·3N
   displaced geometries, give the Hessian H_jk = −∂F_k/∂x_j (then symmetrised) and ∂μ/∂x_j.
   The mass-weighted Hessian is diagonalised in the space orthogonal to the rigid translations
   and rotations (the Eckart conditions, 6 modes, 5 for a linear molecule), so exactly 3N − 6
   vibrations come out however noisy the rigid-motion block is.  Intensities are the
   double-harmonic ones, N_A |∂μ/∂Q|² / (12 ε0 c²) in km/mol, Q the normalised mass-weighted
   normal coordinate (:func:`~densnet_cli.spectrum.corrections.harmonic_ir_intensity`).
3. :mod:`densnet_cli.analysis.comparison` matches and tabulates the modes of two analyses.

Units are ASE's: Å, eV, amu, e·Å; Hessian eV/Å²; frequencies cm⁻¹, imaginary ones as negative
numbers; intensities km/mol.  :class:`PySCFCalculator` is the PySCF edge, converting from
atomic units with :mod:`densnet_cli.units`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixConstraint
from ase.optimize import BFGS
from tqdm import tqdm

from densnet_cli.calculator import DenSNetCalculator
from densnet_cli.data.atomic import save_npz
from densnet_cli.errors import DenSNetError, InputError
from densnet_cli.reference.dft import LevelOfTheory, run_dft
from densnet_cli.spectrum.corrections import harmonic_ir_intensity
from densnet_cli.units import (
    AMU_KG,
    EV_TO_JOULE,
    SPEED_OF_LIGHT_SI,
    angstrom_to_bohr,
    dipole_au_to_e_angstrom,
    gradient_au_to_forces_ev_per_angstrom,
    hartree_to_ev,
)

# √(eigenvalue of the mass-weighted Hessian, eV Å⁻² amu⁻¹) → ν̃ (cm⁻¹): ω / (2π c), c in cm/s.
SQRT_EIGENVALUE_TO_CM1 = math.sqrt(EV_TO_JOULE / (1e-20 * AMU_KG)) / (2 * math.pi * 100
                                                                       * SPEED_OF_LIGHT_SI)
LINEAR_MOMENT_RATIO = 1e-6  # linear molecule: smallest / largest principal moment below this


class PySCFCalculator(Calculator):
    """ASE calculator running Kohn–Sham DFT with PySCF (:func:`densnet_cli.reference.dft.run_dft`).

    Results: ``energy`` and ``free_energy`` (eV), ``forces`` (eV/Å), ``dipole`` (e·Å, about the
    origin).  Every call converges a fresh SCF from PySCF's initial guess.

    Args:
        level: the level of theory (default PBE/def2-SVP, density-fitted, as for the datasets).
        threads: OpenMP threads for PySCF during each call (default: PySCF's own setting).
    """

    implemented_properties = [  # noqa: RUF012 (ASE declares it an instance attribute)
        "energy", "free_energy", "forces", "dipole"]

    def __init__(self, level: LevelOfTheory | None = None, threads: int | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.level = level or LevelOfTheory()
        self.threads = threads

    def calculate(self, atoms: Atoms | None = None, properties: list[str] | None = None,
                  system_changes: list[str] = all_changes) -> None:
        """Run the DFT calculation for ``atoms`` and fill ``self.results``."""
        from pyscf import lib

        super().calculate(atoms, properties or ["energy"], system_changes)
        if self.atoms is None:
            raise InputError("PySCFCalculator needs an Atoms object")
        with lib.with_omp_threads(self.threads):
            result, _ = run_dft(self.atoms.numbers, angstrom_to_bohr(self.atoms.positions),
                                self.level)
        energy = float(hartree_to_ev(result.energy))
        self.results = {"energy": energy, "free_energy": energy,
                        "forces": gradient_au_to_forces_ev_per_angstrom(result.gradient),
                        "dipole": dipole_au_to_e_angstrom(result.dipole)}


def rigid_motion_basis(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Orthonormal (3n, k) basis of infinitesimal translations and rotations.

    In mass-weighted coordinates √m_i x_i, about the centre of mass: k = 6, 5 for a linear
    molecule (its smallest principal moment below :data:`LINEAR_MOMENT_RATIO` × the largest),
    3 for one atom.  With unit masses it is the Cartesian basis.
    """
    sqrt_m = np.sqrt(masses)[:, None]
    r = positions - masses @ positions / masses.sum()
    axes = np.eye(3)
    translations = np.stack([(sqrt_m * axes[a]).ravel() for a in range(3)], axis=1)
    rotations = np.stack([(sqrt_m * np.cross(axes[a], r)).ravel() for a in range(3)], axis=1)
    u, s, _ = np.linalg.svd(rotations, full_matrices=False)  # s² = principal moments
    keep = s**2 > LINEAR_MOMENT_RATIO * s[0] ** 2
    return np.hstack([translations / np.sqrt(masses.sum()), u[:, keep]])


class _NoRigidMotion(FixConstraint):
    """Removes the net force and torque during optimisation.

    A DFT integration grid breaks translation and rotation invariance slightly, and the
    gradient then carries a net force that no geometry change can remove.
    """

    def get_removed_dof(self, atoms: Atoms) -> int:
        return 6

    def adjust_forces(self, atoms: Atoms, forces: np.ndarray) -> None:
        basis = rigid_motion_basis(atoms.positions, np.ones(len(atoms)))
        flat = forces.reshape(-1)
        forces[:] = (flat - basis @ (basis.T @ flat)).reshape(forces.shape)

    def todict(self) -> dict:
        return {"name": "_NoRigidMotion", "kwargs": {}}

    def copy(self) -> _NoRigidMotion:
        return _NoRigidMotion()


def _snapshot(positions: np.ndarray, forces: np.ndarray) -> Atoms:
    atoms = Atoms(positions=positions)
    atoms.calc = SinglePointCalculator(atoms, forces=forces)
    return atoms


def _read_optimisation(path: Path, molecule: Atoms) -> list[Atoms]:
    """The geometries and forces an earlier :func:`optimise` left in ``path`` (or [])."""
    if not path.is_file():
        return []
    try:
        with np.load(path) as f:
            numbers, positions, forces = f["numbers"], f["positions"], f["forces"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read the optimisation checkpoint {path} "
                         f"({type(exc).__name__}); delete it to start over") from None
    if not np.array_equal(numbers, molecule.numbers):
        raise InputError(f"the optimisation checkpoint {path} holds another molecule; delete "
                         f"it to start over")
    return [_snapshot(x, g) for x, g in zip(positions, forces, strict=True)]


def _molecule(atoms: Atoms) -> Atoms:
    """A plain copy (numbers, positions, masses) of a molecule; no cell, constraints or calc."""
    if atoms.pbc.any():
        raise InputError("harmonic analysis is for molecules in vacuum: the Atoms object is "
                         "periodic")
    if len(atoms) < 2:
        raise InputError("harmonic analysis needs at least two atoms")
    return Atoms(numbers=atoms.numbers, positions=atoms.positions, masses=atoms.get_masses())


def optimise(atoms: Atoms, calc: Calculator, fmax: float = 1e-4, steps: int = 500,
             logfile: IO | str | None = None, checkpoint: Path | None = None) -> Atoms:
    """Relax ``atoms`` with ASE's BFGS on ``calc`` until the largest force is below ``fmax``.

    The net force and torque are removed from the forces the optimiser sees (they are
    numerical noise for a molecule in vacuum).

    Args:
        atoms: the starting geometry (not modified).
        calc: any ASE calculator giving forces.
        fmax: convergence threshold on the largest atomic force (eV/Å).
        steps: the most BFGS steps allowed (in all, over interrupted runs).
        logfile: ASE's optimiser log (``"-"`` for stdout, a file object, or None).
        checkpoint: an ``.npz`` file holding every geometry and force of the optimisation so
            far, rewritten (atomically) after each force call.  A run that finds it continues
            from its last geometry with the BFGS Hessian rebuilt from the whole history, so an
            interrupted DFT optimisation loses at most one force call and ends where the
            uninterrupted one would.  It belongs to one start geometry: the caller names it
            (e.g. by a hash of the start and the level of theory) and deletes it when done.

    Returns:
        The optimised geometry (no calculator attached).

    Raises:
        DenSNetError: if the optimisation has not converged after ``steps`` steps.
        InputError: if ``checkpoint`` holds another molecule or cannot be read.
    """
    work = _molecule(atoms)
    history = _read_optimisation(checkpoint, work) if checkpoint is not None else []
    if history:
        work.positions = history[-1].positions
    work.set_constraint(_NoRigidMotion())
    work.calc = calc
    optimiser = BFGS(work, logfile=logfile)
    if history:
        optimiser.replay_trajectory(history)
    if checkpoint is not None:
        def record() -> None:
            if history and np.array_equal(history[-1].positions, work.positions):
                return  # the resumed start: already recorded
            history.append(_snapshot(work.positions, work.get_forces()))
            save_npz(checkpoint, {"numbers": work.numbers,
                                  "positions": np.stack([a.positions for a in history]),
                                  "forces": np.stack([a.get_forces() for a in history])})
        optimiser.attach(record)
    if not optimiser.run(fmax=fmax, steps=max(steps - max(len(history) - 1, 0), 0)):
        largest = float(np.linalg.norm(work.get_forces(), axis=1).max())
        raise DenSNetError(f"the geometry optimisation did not converge in {steps} steps: the "
                           f"largest force is {largest:.2e} eV/Å, the target {fmax:.1e} eV/Å")
    out = _molecule(atoms)
    out.positions = work.positions
    return out


@dataclass(frozen=True)
class HarmonicResult:
    """Normal modes and IR intensities of one geometry (m = 3n − 6, or 3n − 5 if linear)."""

    numbers: np.ndarray  # (n,) atomic numbers
    positions: np.ndarray  # (n, 3) Å, the geometry analysed
    masses: np.ndarray  # (n,) amu
    hessian: np.ndarray  # (3n, 3n) eV/Å², Cartesian, symmetrised, rigid motions not removed
    dipole_derivatives: np.ndarray  # (3n, 3) e: ∂μ/∂x_j
    frequencies_cm1: np.ndarray  # (m,) ascending; imaginary frequencies as negative numbers
    modes: np.ndarray  # (m, n, 3) orthonormal mass-weighted normal-mode vectors
    dmu_dq: np.ndarray  # (m, 3) e/√amu: ∂μ/∂Q along each normal mode
    intensities_km_mol: np.ndarray  # (m,) km/mol
    rigid_cm1: np.ndarray  # (6,) or (5,) "frequencies" of the rigid-motion block (ideally 0)
    residual_force: float  # eV/Å, largest force at the geometry, (F(x+δ) + F(x−δ)) / 2
    delta: float  # Å, the finite-difference step

    def to_dict(self) -> dict:
        """Plain-data (JSON-ready) form."""
        return {key: value.tolist() if isinstance(value, np.ndarray) else value
                for key, value in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> HarmonicResult:
        """Inverse of :meth:`to_dict`."""
        scalars = {"residual_force", "delta"}
        arrays = {k: np.asarray(v) for k, v in data.items() if k not in scalars}
        return cls(**arrays, residual_force=float(data["residual_force"]),
                   delta=float(data["delta"]))


def _signed_wavenumbers(eigenvalues: np.ndarray) -> np.ndarray:
    """Wavenumbers (cm⁻¹) of mass-weighted Hessian eigenvalues; negative ones as −√|λ|."""
    return np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) * SQRT_EIGENVALUE_TO_CM1


def _forces_and_dipoles(atoms: Atoms, calc: Calculator, positions: np.ndarray,
                        batch_size: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Forces (B, n, 3) and dipoles (B, 3) of ``atoms`` at each of the positions (B, n, 3)."""
    forces, dipoles = [], []
    with tqdm(total=len(positions), desc="displacements", unit="geometry",
              disable=not progress) as bar:
        if isinstance(calc, DenSNetCalculator):  # the model evaluates a stack in one call
            calc.evaluator.check_species(atoms.numbers, "the Atoms object")
            for start in range(0, len(positions), batch_size):
                p = calc.evaluator(atoms.numbers, positions[start:start + batch_size])
                forces.append(p.forces)
                dipoles.append(p.dipole)
                bar.update(len(p.energy))
        else:
            probe = _molecule(atoms)
            probe.calc = calc
            for x in positions:
                probe.positions = x
                forces.append(probe.get_forces()[None])
                dipoles.append(probe.get_dipole_moment()[None])
                bar.update()
    return np.concatenate(forces), np.concatenate(dipoles)


def vibrations(hessian: np.ndarray, positions: np.ndarray, masses: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (cm⁻¹, imaginary negative), mass-weighted modes (m, n, 3), rigid block (cm⁻¹).

    The mass-weighted Hessian M^(-1/2) H M^(-1/2) (H in eV/Å², symmetric) is diagonalised in
    the orthonormal complement of the rigid translations and rotations.
    """
    inv_sqrt_m = np.repeat(np.asarray(masses, dtype=float) ** -0.5, 3)
    h_mw = inv_sqrt_m[:, None] * hessian * inv_sqrt_m[None, :]
    rigid = rigid_motion_basis(positions, masses)
    complete, _ = np.linalg.qr(rigid, mode="complete")
    internal = complete[:, rigid.shape[1]:]  # orthonormal complement: the vibrations
    eigenvalues, vectors = np.linalg.eigh(internal.T @ h_mw @ internal)
    modes = (internal @ vectors).T.reshape(-1, len(masses), 3)
    return (_signed_wavenumbers(eigenvalues), modes,
            _signed_wavenumbers(np.linalg.eigvalsh(rigid.T @ h_mw @ rigid)))


def _displaced(molecule: Atoms, delta: float) -> np.ndarray:
    """(2·3n, n, 3): each Cartesian coordinate moved by +δ, then −δ, in turn."""
    if not delta > 0:
        raise InputError(f"the finite-difference step must be positive, not {delta}")
    n = len(molecule)
    steps = np.einsum("jk,s->jsk", np.eye(3 * n), np.array([delta, -delta]))  # (3n, ±, 3n)
    return (molecule.positions.reshape(1, 1, 3 * n) + steps).reshape(-1, n, 3)


def harmonic_analysis(atoms: Atoms, calc: Calculator, delta: float = 0.005,
                      batch_size: int = 16, progress: bool = True) -> HarmonicResult:
    """Normal modes, harmonic frequencies and IR intensities of ``atoms`` with ``calc``.

    Args:
        atoms: an optimised geometry (at a non-stationary point the frequencies are not
            meaningful; ``residual_force`` in the result says how stationary it was).
        calc: any ASE calculator giving forces and the dipole; a :class:`DenSNetCalculator`
            evaluates ``batch_size`` displaced geometries per call.
        delta: finite-difference step (Å) of each Cartesian coordinate.
        batch_size: geometries per model call (DenSNet only).
        progress: show a progress bar (stderr).
    """
    molecule = _molecule(atoms)
    n = len(molecule)
    forces, dipoles = _forces_and_dipoles(molecule, calc, _displaced(molecule, delta),
                                          batch_size, progress)
    forces, dipoles = forces.reshape(3 * n, 2, 3 * n), dipoles.reshape(3 * n, 2, 3)
    hessian = -(forces[:, 0] - forces[:, 1]) / (2 * delta)
    dmu_dx = (dipoles[:, 0] - dipoles[:, 1]) / (2 * delta)

    residual = float(np.linalg.norm(forces.mean(axis=(0, 1)).reshape(n, 3), axis=1).max())
    return harmonic_from_hessian(molecule, hessian, dmu_dx, residual, delta)


def harmonic_from_hessian(atoms: Atoms, hessian: np.ndarray, dipole_derivatives: np.ndarray,
                          residual_force: float, delta: float) -> HarmonicResult:
    """Normal modes and double-harmonic IR intensities from a Hessian and ∂μ/∂x.

    Args:
        atoms: the (optimised) geometry; its masses are used.
        hessian: (3n, 3n) Cartesian Hessian, eV/Å² (symmetrised here).
        dipole_derivatives: (3n, 3) ∂μ/∂x_j, e.
        residual_force: largest force at the geometry, eV/Å (reported, not used).
        delta: finite-difference step behind the derivatives, Å (reported, not used).
    """
    molecule = _molecule(atoms)
    x0, masses = molecule.positions, molecule.get_masses()
    hessian = 0.5 * (hessian + hessian.T)
    inv_sqrt_m = np.repeat(masses**-0.5, 3)
    frequencies, modes, rigid_cm1 = vibrations(hessian, x0, masses)
    dmu_dq = modes.reshape(len(modes), -1) @ (inv_sqrt_m[:, None] * dipole_derivatives)
    return HarmonicResult(
        numbers=molecule.numbers.copy(), positions=x0.copy(), masses=masses,
        hessian=hessian, dipole_derivatives=dipole_derivatives,
        frequencies_cm1=frequencies, modes=modes,
        dmu_dq=dmu_dq, intensities_km_mol=np.array([harmonic_ir_intensity(d) for d in dmu_dq]),
        rigid_cm1=rigid_cm1, residual_force=residual_force, delta=delta)


def dipole_derivatives(atoms: Atoms, dipole_of: Callable[[np.ndarray], np.ndarray],
                       delta: float = 0.005, checkpoint: Path | None = None,
                       progress: bool = True) -> np.ndarray:
    """∂μ/∂x_j (3n, 3), e, by central differences of ``dipole_of(positions Å) → μ (e·Å)``.

    For a reference whose Hessian comes from elsewhere (PySCF's analytic one): 2·3n dipole
    calculations, no forces.  ``checkpoint``: an ``.npz`` file of the dipoles done so far,
    rewritten (atomically) after each, so that an interrupted run loses at most one; it
    belongs to one geometry and step (another raises :class:`InputError`).
    """
    molecule = _molecule(atoms)
    n, x0 = len(molecule), molecule.positions
    displaced = _displaced(molecule, delta)
    dipoles = np.full((len(displaced), 3), np.nan)
    if checkpoint is not None and checkpoint.is_file():
        with np.load(checkpoint) as f:
            if not (np.array_equal(f["positions"], x0) and float(f["delta"]) == delta):
                raise InputError(f"the dipole checkpoint {checkpoint} belongs to another "
                                 f"geometry or step; delete it to start over")
            dipoles = f["dipoles"].copy()
    todo = np.flatnonzero(np.isnan(dipoles).any(axis=1))
    for k in tqdm(todo, desc="dipoles", unit="geometry", disable=not progress,
                  initial=len(dipoles) - len(todo), total=len(dipoles)):
        dipoles[k] = dipole_of(displaced[k])
        if checkpoint is not None:
            save_npz(checkpoint, {"positions": x0, "delta": np.float64(delta),
                                  "dipoles": dipoles})
    pairs = dipoles.reshape(3 * n, 2, 3)
    return (pairs[:, 0] - pairs[:, 1]) / (2 * delta)
