"""Normal modes of a DFT minimum: optimise, Hessian, mass-weighted modes, and a file cache.

1. :func:`~densnet_cli.analysis.harmonic.optimise` relaxes the structure with PySCF.
2. :func:`dft_hessian` computes PySCF's analytic Hessian of the same (density-fitted) SCF that
   :func:`~densnet_cli.reference.dft.run_dft` converges; where PySCF has no analytic Hessian for
   the SCF type, :func:`compute_normal_modes` falls back to finite differences of the forces
   (:func:`~densnet_cli.analysis.harmonic.harmonic_analysis`).
3. :func:`modes_from_hessian` diagonalises the mass-weighted Hessian in the space orthogonal to
   rigid translations and rotations, so exactly 3n − 6 (3n − 5 if linear) modes come out.

The optimisation and the Hessian are the expensive part; :func:`cached_normal_modes` keeps the
result in a JSON file named by a hash of everything that determines it (start geometry, masses,
level of theory, force threshold), so a second ``densnet sample`` run with other sampling options
reuses it.

Units are ASE's: Å, eV, amu; Hessian eV/Å²; frequencies cm⁻¹ (imaginary as negative numbers);
mode eigenvalues ω² in eV Å⁻² amu⁻¹.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from ase import Atoms

from densnet_cli.analysis.harmonic import (
    SQRT_EIGENVALUE_TO_CM1,
    PySCFCalculator,
    harmonic_analysis,
    optimise,
    vibrations,
)
from densnet_cli.data.atomic import write_text
from densnet_cli.reference.dft import LevelOfTheory, run_dft
from densnet_cli.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV, angstrom_to_bohr, hartree_to_ev

CACHE_FORMAT = 1  # bump when what a cache file holds (or how it is computed) changes
HESSIAN_AU_TO_EV_PER_A2 = HARTREE_TO_EV / BOHR_TO_ANGSTROM**2  # Hartree/Bohr² → eV/Å²

Log = Callable[[str], None]


def quiet(message: str) -> None:
    """The default ``log``: say nothing."""


@dataclass(frozen=True)
class NormalModes:
    """Harmonic normal modes of one optimised geometry (m = 3n − 6, or 3n − 5 if linear)."""

    numbers: np.ndarray  # (n,) atomic numbers
    positions: np.ndarray  # (n, 3) Å, the optimised geometry
    masses: np.ndarray  # (n,) amu
    energy: float  # eV, DFT energy at `positions` (nan when not known)
    hessian: np.ndarray  # (3n, 3n) eV/Å², Cartesian, symmetric, rigid motions not projected out
    frequencies_cm1: np.ndarray  # (m,) ascending; imaginary frequencies as negative numbers
    modes: np.ndarray  # (m, n, 3) orthonormal mass-weighted normal-mode vectors
    method: str  # how the Hessian was computed: "analytic" or "finite-difference"
    # analytic: max |Σ_j H_ij| (eV/Å²) PySCF's Hessian had before the sum rule was imposed
    sum_rule_violation: float = float("nan")

    @property
    def eigenvalues(self) -> np.ndarray:
        """ω² of each mode (eV Å⁻² amu⁻¹), negative for imaginary frequencies."""
        return np.sign(self.frequencies_cm1) * (self.frequencies_cm1 / SQRT_EIGENVALUE_TO_CM1) ** 2

    def to_dict(self) -> dict:
        """Plain-data (JSON-ready) form."""
        data = {key: value.tolist() if isinstance(value, np.ndarray) else value
                for key, value in self.__dict__.items()}
        if np.isnan(self.sum_rule_violation):  # finite differences: not applicable
            data["sum_rule_violation"] = None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> NormalModes:
        """Inverse of :meth:`to_dict`."""
        arrays = {k: np.asarray(data[k]) for k in
                  ("numbers", "positions", "masses", "hessian", "frequencies_cm1", "modes")}
        return cls(**arrays, energy=float(data["energy"]), method=str(data["method"]),
                   sum_rule_violation=_float_or_nan(data.get("sum_rule_violation")))

    def save(self, path: str | Path) -> None:
        """Write the modes to a JSON file (atomically)."""
        write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> NormalModes:
        """Read a file written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _float_or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def modes_from_hessian(numbers: np.ndarray, positions: np.ndarray, masses: np.ndarray,
                       hessian: np.ndarray, energy: float = float("nan"),
                       method: str = "analytic",
                       sum_rule_violation: float = float("nan")) -> NormalModes:
    """Normal modes of a Cartesian Hessian (eV/Å²) at ``positions`` (Å) with ``masses`` (amu).

    The projection and diagonalisation are :func:`~densnet_cli.analysis.harmonic.vibrations`,
    the same as the finite-difference :func:`~densnet_cli.analysis.harmonic.harmonic_analysis`.
    """
    masses = np.asarray(masses, dtype=float)
    hessian = 0.5 * (hessian + hessian.T)
    frequencies, modes, _ = vibrations(hessian, positions, masses)
    return NormalModes(numbers=np.asarray(numbers).copy(), positions=np.array(positions),
                       masses=masses, energy=float(energy), hessian=hessian,
                       frequencies_cm1=frequencies, modes=modes, method=method,
                       sum_rule_violation=sum_rule_violation)


def impose_translational_sum_rule(hessian: np.ndarray) -> tuple[np.ndarray, float]:
    """Restore Σ_j H_ij = 0 (a rigid translation costs no energy) through the on-atom blocks.

    PySCF's analytic DFT Hessian leaves out the response of the integration grid, which moves
    with the atoms; the missing terms sit mostly in the on-atom blocks H_ii and break
    translational invariance.  On coarse grids this is large: thiophene at PBE/def2-SVP on grid
    level 2 has max |Σ_j H_ij| = 6.7 eV/Å² and frequencies up to 25 cm⁻¹ off, bithiophene gets
    imaginary modes of −160 cm⁻¹ at a minimum.  Setting H_ii = −Σ_(j≠i) H_ij recovers the
    grid-level-4 frequencies of thiophene to 0.1 cm⁻¹ (and the finite differences of the
    forces).

    Args:
        hessian: (3n, 3n) Cartesian Hessian.

    Returns:
        The corrected Hessian, symmetrised (which leaves the small asymmetric part of the
        off-atom sums, ~1e-3 eV/Å², in Σ_j H_ij), and the violation max |Σ_j H_ij| it had.
    """
    n = hessian.shape[0] // 3
    blocks = hessian.reshape(n, 3, n, 3).copy()
    sums = blocks.sum(axis=2)  # (n, 3, 3): Σ_j H_(i,a),(j,b)
    violation = float(np.abs(sums).max())
    for i in range(n):
        blocks[i, :, i, :] -= sums[i]
    corrected = blocks.reshape(3 * n, 3 * n)
    return 0.5 * (corrected + corrected.T), violation


def dft_hessian(atoms: Atoms, level: LevelOfTheory,
                threads: int | None = None) -> tuple[float, np.ndarray | None]:
    """DFT energy (eV) and analytic Cartesian Hessian (eV/Å²) of ``atoms``.

    The SCF is :func:`~densnet_cli.reference.dft.run_dft`'s (density fitting, retries); its
    ``Hessian()`` is PySCF's analytic one, returned as it comes.  Neither PySCF's gradient nor
    its Hessian includes the response of the integration grid: the gradient differs slightly
    from finite differences on coarse grids, the Hessian can break translational invariance
    badly (:func:`impose_translational_sum_rule`, which :func:`compute_normal_modes` applies).

    Returns:
        The energy and the Hessian, or the energy and None where PySCF has no analytic Hessian
        for this kind of SCF (e.g. some functionals).
    """
    from pyscf import lib

    with lib.with_omp_threads(threads):
        result, mf = run_dft(atoms.numbers, angstrom_to_bohr(atoms.positions), level)
        energy = float(hartree_to_ev(result.energy))
        try:
            hessian_au = np.asarray(mf.Hessian().kernel())  # type: ignore[attr-defined]
        except (NotImplementedError, AttributeError):  # PySCF lacks it for this SCF type
            return energy, None
    n = len(atoms)
    hessian = hessian_au.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n) * HESSIAN_AU_TO_EV_PER_A2
    return energy, hessian


def compute_normal_modes(atoms: Atoms, level: LevelOfTheory, fmax: float = 1e-3,
                         threads: int | None = None, log: Log = quiet,
                         optimiser_log: IO | None = None,
                         checkpoint: Path | None = None) -> NormalModes:
    """Optimise ``atoms`` with PySCF, then compute its DFT Hessian and normal modes.

    Args:
        atoms: the starting geometry (Å; its masses are used for the mass weighting).
        level: the level of theory of both the optimisation and the Hessian.
        fmax: the optimisation's threshold on the largest force (eV/Å).
        threads: PySCF OpenMP threads (None: PySCF's own setting).
        log: receives one progress line before each slow step.
        optimiser_log: where ASE's BFGS writes one line per step (None: nowhere).
        checkpoint: the optimisation's checkpoint (see :func:`optimise`); None: none.
    """
    calc = PySCFCalculator(level, threads=threads)
    log(f"optimising the geometry ({level.xc}/{level.basis}, fmax {fmax:g} eV/Å)")
    geometry = optimise(atoms, calc, fmax=fmax, logfile=optimiser_log, checkpoint=checkpoint)
    log("computing the analytic DFT Hessian")
    energy, hessian = dft_hessian(geometry, level, threads)
    masses = geometry.get_masses()
    if hessian is not None:
        hessian, violation = impose_translational_sum_rule(hessian)
        log(f"translational sum rule imposed on the analytic Hessian (max |Σ_j H_ij| was "
            f"{violation:.3g} eV/Å²)")
        return modes_from_hessian(geometry.numbers, geometry.positions, masses, hessian,
                                  energy, method="analytic", sum_rule_violation=violation)
    log(f"PySCF has no analytic Hessian for {level.xc}: finite differences of the forces "
        f"({6 * len(geometry)} SCFs)")
    fd = harmonic_analysis(geometry, calc, progress=False)
    return modes_from_hessian(geometry.numbers, geometry.positions, masses, fd.hessian, energy,
                              method="finite-difference")


def cache_key(atoms: Atoms, level: LevelOfTheory, fmax: float | None) -> str:
    """Hash of everything that determines :func:`compute_normal_modes`' result (hex, 24 chars).

    Positions enter rounded to 1e-6 Å, so a geometry that went through a text file once more
    still hits the cache.  ``fmax=None`` names the optimisation path instead, which does not
    depend on where it stops: a run with another ``fmax`` resumes the same checkpoint.
    """
    identity = {"format": CACHE_FORMAT, "numbers": atoms.numbers.tolist(),
                "positions": [f"{x:.6f}" for x in atoms.positions.ravel()],
                "masses": [f"{m:.6f}" for m in atoms.get_masses()],
                "level": level.as_dict(), "fmax": fmax}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def cached_normal_modes(atoms: Atoms, level: LevelOfTheory, fmax: float,
                        cache_dir: Path | None, threads: int | None = None,
                        log: Log = quiet,
                        optimiser_log: IO | None = None) -> tuple[NormalModes, Path | None]:
    """:func:`compute_normal_modes`, reusing (and filling) ``cache_dir`` unless it is None.

    Returns:
        The modes and the cache file that holds them (None without a cache).
    """
    if cache_dir is None:
        return compute_normal_modes(atoms, level, fmax, threads, log, optimiser_log), None
    path = cache_dir / f"modes-{cache_key(atoms, level, fmax)}.json"
    modes = _read_cache(path, log)
    if modes is not None:
        return modes, path
    cache_dir.mkdir(parents=True, exist_ok=True)
    # The optimisation (tens of DFT gradients for a larger molecule) resumes after a kill, also
    # with another fmax (BFGS takes the same steps until it stops).
    checkpoint = cache_dir / f"optimisation-{cache_key(atoms, level, None)}.npz"
    # One process at a time per conformer (two runs of the same molecule at two temperatures,
    # or --workers): a second one waits, then reuses what the first cached.
    with open(checkpoint.with_suffix(".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another process is optimising this conformer ({path.name}); waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
            modes = _read_cache(path, log)
            if modes is not None:
                return modes, path
        if checkpoint.is_file():
            log(f"resuming the optimisation from {checkpoint}")
        modes = compute_normal_modes(atoms, level, fmax, threads, log, optimiser_log, checkpoint)
        modes.save(path)
        checkpoint.unlink(missing_ok=True)
    return modes, path


def _read_cache(path: Path, log: Log) -> NormalModes | None:
    """The cached modes at ``path``, or None when there are none (or they are unreadable)."""
    if not path.is_file():
        return None
    try:
        modes = NormalModes.load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log(f"ignoring unreadable cache file {path} ({type(exc).__name__}); recomputing")
        return None
    log(f"reusing the optimised geometry and Hessian in {path}")
    if modes.method == "analytic" and np.isnan(modes.sum_rule_violation):
        # written before the sum rule was imposed: impose it now (no DFT) and keep the result
        hessian, violation = impose_translational_sum_rule(modes.hessian)
        modes = modes_from_hessian(modes.numbers, modes.positions, modes.masses, hessian,
                                   modes.energy, "analytic", violation)
        modes.save(path)
        log(f"translational sum rule imposed on the cached analytic Hessian (max |Σ_j H_ij| "
            f"was {violation:.3g} eV/Å²)")
    return modes
