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
3. :func:`compare_modes`: match the modes of two analyses of the same molecule by the largest
   overlap of their normal-mode vectors (Hungarian assignment) and tabulate the differences;
   :func:`write_comparison` writes them as Markdown, JSON and a stick-spectrum plot.

Units are ASE's: Å, eV, amu, e·Å; Hessian eV/Å²; frequencies cm⁻¹, imaginary ones as negative
numbers; intensities km/mol.  :class:`PySCFCalculator` is the PySCF edge, converting from
atomic units with :mod:`densnet_cli.units`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.constraints import FixConstraint
from ase.optimize import BFGS
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from densnet_cli.calculator import DenSNetCalculator
from densnet_cli.data.atomic import save_figure, write_text
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
INTENSE_KM_MOL = 1.0  # intensity ratios are summarised over reference modes at least this strong
LINE_FWHM_CM1 = 10.0  # Lorentzian full width of each line in the plot


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


def _molecule(atoms: Atoms) -> Atoms:
    """A plain copy (numbers, positions, masses) of a molecule; no cell, constraints or calc."""
    if atoms.pbc.any():
        raise InputError("harmonic analysis is for molecules in vacuum: the Atoms object is "
                         "periodic")
    if len(atoms) < 2:
        raise InputError("harmonic analysis needs at least two atoms")
    return Atoms(numbers=atoms.numbers, positions=atoms.positions, masses=atoms.get_masses())


def optimise(atoms: Atoms, calc: Calculator, fmax: float = 1e-4, steps: int = 500,
             logfile: IO | str | None = None) -> Atoms:
    """Relax ``atoms`` with ASE's BFGS on ``calc`` until the largest force is below ``fmax``.

    The net force and torque are removed from the forces the optimiser sees (they are
    numerical noise for a molecule in vacuum).

    Args:
        atoms: the starting geometry (not modified).
        calc: any ASE calculator giving forces.
        fmax: convergence threshold on the largest atomic force (eV/Å).
        steps: the most BFGS steps allowed.
        logfile: ASE's optimiser log (``"-"`` for stdout, a file object, or None).

    Returns:
        The optimised geometry (no calculator attached).

    Raises:
        DenSNetError: if the optimisation has not converged after ``steps`` steps.
    """
    work = _molecule(atoms)
    work.set_constraint(_NoRigidMotion())
    work.calc = calc
    if not BFGS(work, logfile=logfile).run(fmax=fmax, steps=steps):
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
    if not delta > 0:
        raise InputError(f"the finite-difference step must be positive, not {delta}")
    molecule = _molecule(atoms)
    n, x0, masses = len(molecule), molecule.positions, molecule.get_masses()
    steps = np.einsum("jk,s->jsk", np.eye(3 * n), np.array([delta, -delta]))  # (3n, ±, 3n)
    displaced = x0.reshape(1, 1, 3 * n) + steps
    forces, dipoles = _forces_and_dipoles(molecule, calc, displaced.reshape(-1, n, 3),
                                          batch_size, progress)
    forces, dipoles = forces.reshape(3 * n, 2, 3 * n), dipoles.reshape(3 * n, 2, 3)
    hessian = -(forces[:, 0] - forces[:, 1]) / (2 * delta)
    hessian = 0.5 * (hessian + hessian.T)
    dmu_dx = (dipoles[:, 0] - dipoles[:, 1]) / (2 * delta)

    inv_sqrt_m = np.repeat(masses**-0.5, 3)
    h_mw = inv_sqrt_m[:, None] * hessian * inv_sqrt_m[None, :]
    rigid = rigid_motion_basis(x0, masses)
    complete, _ = np.linalg.qr(rigid, mode="complete")
    internal = complete[:, rigid.shape[1]:]  # orthonormal complement: the vibrations
    eigenvalues, vectors = np.linalg.eigh(internal.T @ h_mw @ internal)
    modes = (internal @ vectors).T  # (m, 3n)
    dmu_dq = modes @ (inv_sqrt_m[:, None] * dmu_dx)
    return HarmonicResult(
        numbers=molecule.numbers.copy(), positions=x0.copy(), masses=masses,
        hessian=hessian, dipole_derivatives=dmu_dx,
        frequencies_cm1=_signed_wavenumbers(eigenvalues), modes=modes.reshape(-1, n, 3),
        dmu_dq=dmu_dq, intensities_km_mol=np.array([harmonic_ir_intensity(d) for d in dmu_dq]),
        rigid_cm1=_signed_wavenumbers(np.linalg.eigvalsh(rigid.T @ h_mw @ rigid)),
        residual_force=float(np.linalg.norm(forces.mean(axis=(0, 1)).reshape(n, 3),
                                            axis=1).max()),
        delta=delta)


def _alignment(mobile: np.ndarray, target: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """The rotation R (3, 3) that best maps centred ``mobile`` onto ``target`` (Kabsch)."""
    p = mobile - masses @ mobile / masses.sum()
    q = target - masses @ target / masses.sum()
    u, _, vt = np.linalg.svd(p.T @ (masses[:, None] * q))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def compare_modes(model: HarmonicResult, reference: HarmonicResult) -> list[dict]:
    """Match the model's normal modes to the reference's and tabulate the differences.

    The model geometry is first rotated onto the reference one (mass-weighted Kabsch), then
    modes are paired by the Hungarian assignment that maximises the summed |overlap| of their
    mass-weighted normal-mode vectors.

    Returns:
        One row per reference mode, ascending in frequency: ``mode`` (1-based),
        ``reference_cm1``, ``model_cm1``, ``difference_cm1`` (model − reference),
        ``reference_km_mol``, ``model_km_mol``, ``intensity_ratio`` (model / reference; NaN
        if the reference intensity is 0) and ``overlap`` (|⟨reference|model⟩|, 1 = identical).

    Raises:
        InputError: if the two analyses are not of the same atoms in the same order.
    """
    if not np.array_equal(model.numbers, reference.numbers):
        raise InputError("the two harmonic analyses are of different molecules (or of the "
                         "same atoms in a different order)")
    if len(model.modes) != len(reference.modes):
        raise InputError(f"the model has {len(model.modes)} vibrations, the reference "
                         f"{len(reference.modes)}: one geometry is linear, the other not")
    rotation = _alignment(model.positions, reference.positions, reference.masses)
    model_modes = (model.modes @ rotation.T).reshape(len(model.modes), -1)
    overlap = np.abs(reference.modes.reshape(len(reference.modes), -1) @ model_modes.T)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    table = []
    for i, j in zip(rows, cols, strict=True):
        ref_i, model_i = reference.intensities_km_mol[i], model.intensities_km_mol[j]
        table.append({
            "mode": int(i) + 1,
            "reference_cm1": float(reference.frequencies_cm1[i]),
            "model_cm1": float(model.frequencies_cm1[j]),
            "difference_cm1": float(model.frequencies_cm1[j] - reference.frequencies_cm1[i]),
            "reference_km_mol": float(ref_i), "model_km_mol": float(model_i),
            "intensity_ratio": float(model_i / ref_i) if ref_i > 0 else math.nan,
            "overlap": float(overlap[i, j]),
        })
    return table


def lorentzian_spectrum(nu_cm1: np.ndarray, frequencies_cm1: np.ndarray,
                        intensities_km_mol: np.ndarray, fwhm_cm1: float = LINE_FWHM_CM1
                        ) -> np.ndarray:
    """Σ_k I_k L(ν̃ − ν̃_k) in km mol⁻¹ (cm⁻¹)⁻¹, L a unit-area Lorentzian of full width fwhm."""
    gamma = 0.5 * fwhm_cm1
    offset = nu_cm1[:, None] - frequencies_cm1[None, :]
    return (intensities_km_mol * (gamma / np.pi) / (offset**2 + gamma**2)).sum(axis=1)


def summarise(rows: list[dict]) -> dict:
    """Frequency errors (cm⁻¹) and intensity ratios over the rows of :func:`compare_modes`."""
    diff = np.array([r["difference_cm1"] for r in rows])
    ratios = np.array([r["intensity_ratio"] for r in rows
                       if r["reference_km_mol"] >= INTENSE_KM_MOL])
    worst = int(np.argmax(np.abs(diff)))
    return {
        "modes": len(rows),
        "mean_difference_cm1": float(diff.mean()),
        "mean_absolute_difference_cm1": float(np.abs(diff).mean()),
        "rms_difference_cm1": float(np.sqrt((diff**2).mean())),
        "max_absolute_difference_cm1": float(abs(diff[worst])),
        "max_difference_mode": rows[worst]["mode"],
        "intense_modes": len(ratios),
        "median_intensity_ratio": float(np.median(ratios)) if len(ratios) else math.nan,
        "geometric_mean_intensity_ratio": (float(np.exp(np.log(ratios).mean()))
                                           if len(ratios) and np.all(ratios > 0) else math.nan),
        "min_overlap": float(min(r["overlap"] for r in rows)),
    }


@dataclass(frozen=True)
class Band:
    """An experimental band to show next to the computed modes."""

    wavenumber_cm1: float
    label: str
    note: str = ""


@dataclass(frozen=True)
class ComparisonReport:
    """Everything :func:`write_comparison` writes; ``names`` are (model, reference)."""

    model: HarmonicResult
    reference: HarmonicResult
    names: tuple[str, str] = ("DenSNet", "PySCF")
    experiment: Sequence[Band] = ()
    experiment_source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _markdown(report: ComparisonReport, rows: list[dict], summary: dict) -> str:
    model_name, ref_name = report.names
    lines = [f"# Harmonic frequencies and IR intensities: {model_name} vs {ref_name}", ""]
    lines += [f"- {key}: {value}" for key, value in report.metadata.items()]
    for name, result in ((model_name, report.model), (ref_name, report.reference)):
        lines.append(f"- {name}: largest residual force {result.residual_force:.1e} eV/Å; "
                     f"rigid-motion block {np.abs(result.rigid_cm1).max():.1f} cm⁻¹ at most "
                     f"(removed before diagonalising)")
    lines += ["", f"Over {summary['modes']} modes, {model_name} − {ref_name}: mean "
              f"{summary['mean_difference_cm1']:+.1f} cm⁻¹, mean absolute "
              f"{summary['mean_absolute_difference_cm1']:.1f} cm⁻¹, RMS "
              f"{summary['rms_difference_cm1']:.1f} cm⁻¹, largest "
              f"{summary['max_absolute_difference_cm1']:.1f} cm⁻¹ (mode "
              f"{summary['max_difference_mode']}). Intensity ratio {model_name}/{ref_name} over "
              f"the {summary['intense_modes']} modes ≥ {INTENSE_KM_MOL:g} km/mol: median "
              f"{summary['median_intensity_ratio']:.2f}, geometric mean "
              f"{summary['geometric_mean_intensity_ratio']:.2f}. Smallest mode overlap "
              f"{summary['min_overlap']:.2f}.", "",
              f"| mode | {ref_name} cm⁻¹ | {model_name} cm⁻¹ | Δ cm⁻¹ | {ref_name} km/mol | "
              f"{model_name} km/mol | ratio | overlap |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['reference_cm1']:.1f} | {r['model_cm1']:.1f} | "
                     f"{r['difference_cm1']:+.1f} | {r['reference_km_mol']:.2f} | "
                     f"{r['model_km_mol']:.2f} | {r['intensity_ratio']:.2f} | "
                     f"{r['overlap']:.2f} |")
    if report.experiment:
        lines += ["", "## Experimental fundamentals (anharmonic; harmonic frequencies lie "
                  "higher, by a few % for X–H stretches)", "",
                  f"Source: {report.experiment_source}", "", "| cm⁻¹ | band | note |",
                  "|---|---|---|"]
        lines += [f"| {b.wavenumber_cm1:g} | {b.label} | {b.note} |" for b in report.experiment]
    return "\n".join(lines) + "\n"


def _plot(path: Path, report: ComparisonReport) -> None:
    """Mirror plot: the model's broadened spectrum up, the reference's down, sticks in both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(report.model.frequencies_cm1.max(), report.reference.frequencies_cm1.max())
    nu = np.linspace(0.0, 100.0 * math.ceil(1.08 * top / 100.0), 4000)
    stick_scale = 2.0 / (math.pi * LINE_FWHM_CM1)  # stick height = an isolated line's peak
    fig, ax = plt.subplots(figsize=(8.0, 4.0), dpi=110)
    try:
        for sign, result, name, colour in ((1, report.model, report.names[0], "C0"),
                                           (-1, report.reference, report.names[1], "C3")):
            ax.plot(nu, sign * lorentzian_spectrum(nu, result.frequencies_cm1,
                                                   result.intensities_km_mol),
                    color=colour, lw=1.0, label=name)
            ax.vlines(result.frequencies_cm1, 0.0,
                      sign * stick_scale * result.intensities_km_mol, color=colour, lw=0.8)
        for i, band in enumerate(report.experiment):
            ax.axvline(band.wavenumber_cm1, color="0.5", lw=0.6, ls=":",
                       label="experiment (fundamentals)" if i == 0 else None)
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set_xlim(nu[0], nu[-1])
        ax.set_xlabel("wavenumber (cm$^{-1}$)")
        ax.set_ylabel(f"km mol$^{{-1}}$ (cm$^{{-1}}$)$^{{-1}}$, FWHM {LINE_FWHM_CM1:g} cm$^{{-1}}$")
        ax.set_title(f"harmonic IR: {report.names[0]} (up) vs {report.names[1]} (down)",
                     fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)


def write_comparison(prefix: str | Path, report: ComparisonReport) -> dict:
    """Write ``prefix.md`` (table), ``prefix.json`` (everything) and ``prefix.png`` (spectra).

    Returns:
        The summary of :func:`summarise`.
    """
    prefix = Path(prefix)
    rows = compare_modes(report.model, report.reference)
    summary = summarise(rows)
    document = {
        "names": {"model": report.names[0], "reference": report.names[1]},
        "metadata": report.metadata,
        "units": {"frequency": "cm^-1 (imaginary as negative)", "intensity": "km/mol",
                  "positions": "angstrom", "hessian": "eV/angstrom^2", "masses": "amu",
                  "dipole_derivatives": "e", "dmu_dq": "e/sqrt(amu)"},
        "summary": summary,
        "modes": rows,
        "model": report.model.to_dict(),
        "reference": report.reference.to_dict(),
        "experiment": {"source": report.experiment_source,
                       "bands": [b.__dict__ for b in report.experiment]},
    }
    write_text(prefix.with_name(prefix.name + ".md"), _markdown(report, rows, summary))
    write_text(prefix.with_name(prefix.name + ".json"),
               json.dumps(_json_safe(document), indent=1) + "\n")
    _plot(prefix.with_name(prefix.name + ".png"), report)
    return summary
