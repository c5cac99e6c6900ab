r"""The harmonic check of issue #6: DenSNet vs PySCF normal modes and IR intensities of ethanol.

    python bench/harmonic.py --model examples/ethanol/model/ethanol_100.pt \
        --out bench/results/harmonic_ethanol

Optimises the molecule separately with the model and with PySCF (default PBE/def2-SVP, the
level of the training data), runs a finite-difference harmonic analysis with each (2·3N
displaced geometries), matches the modes and writes ``<out>.md``, ``<out>.json`` and
``<out>.png``.  The model half takes ~2 s; the PySCF half ~60 BFGS steps plus 54 displaced
geometries at ~10 s per PBE/def2-SVP gradient, 15–25 min on 2 cores.  A quick smoke test of the
whole pipeline (~80 s): ``--basis sto-3g --grid-level 1 --conv-tol 1e-9 --out /tmp/smoke``.
rMD17 frame 0 relaxes to gauche ethanol; ``--hydroxyl-dihedral 180`` starts from trans ethanol,
the conformer of the experimental fundamentals.

Experimental bands: ``--experiment`` picks a list of bench/experiment.py (NIST CCCBDB's
fundamentals for ethanol).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from densnet_cli.analysis.comparison import ComparisonReport, write_comparison
from densnet_cli.analysis.harmonic import (
    HarmonicResult,
    PySCFCalculator,
    dipole_derivatives,
    harmonic_analysis,
    harmonic_from_hessian,
    optimise,
)
from densnet_cli.calculator import DenSNetCalculator
from densnet_cli.data.atomic import write_text
from densnet_cli.reference.dft import LevelOfTheory, scf_dipole
from densnet_cli.sampling.normal_modes import NormalModes
from densnet_cli.units import angstrom_to_bohr, dipole_au_to_e_angstrom

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.command import command_line, relative  # noqa: E402
from bench.experiment import EXPERIMENTS  # noqa: E402


def hydroxyl_atoms(atoms: Atoms) -> tuple[int, int, int, int] | None:
    """Indices (H, O, C, C) of the hydroxyl dihedral of an alcohol (None without one O, 2 C)."""
    symbols = np.array(atoms.get_chemical_symbols())
    distances = atoms.get_all_distances()
    oxygens, hydrogens, carbons = (np.flatnonzero(symbols == s) for s in "OHC")
    if len(oxygens) != 1 or len(carbons) < 2 or not len(hydrogens):
        return None
    o = int(oxygens[0])
    h = int(hydrogens[np.argmin(distances[o, hydrogens])])
    c1 = int(carbons[np.argmin(distances[o, carbons])])
    others = carbons[carbons != c1]
    return h, o, c1, int(others[np.argmin(distances[c1, others])])


def hydroxyl_dihedral(atoms: Atoms) -> float | None:
    """The H–O–C–C dihedral in degrees, in (−180, 180]: ±180 trans, about ±60 gauche."""
    indices = hydroxyl_atoms(atoms)
    if indices is None:
        return None
    dihedral = float(atoms.get_dihedral(*indices))
    return dihedral - 360.0 if dihedral > 180.0 else dihedral


def analyse(name: str, start: Atoms, calc, fmax: float, delta: float
            ) -> tuple[HarmonicResult, float, Atoms]:
    """Optimise, then the harmonic analysis; returns the result, wall seconds, the geometry."""
    print(f"[{name}] optimising (fmax {fmax:g} eV/Å)", file=sys.stderr)
    t0 = time.perf_counter()
    geometry = optimise(start, calc, fmax=fmax, logfile=sys.stderr)
    print(f"[{name}] harmonic analysis ({6 * len(geometry)} displaced geometries)",
          file=sys.stderr)
    result = harmonic_analysis(geometry, calc, delta=delta)
    return result, time.perf_counter() - t0, geometry


def from_hessian(geometry: Atoms, modes: NormalModes, level: LevelOfTheory,
                 threads: int | None, delta: float, checkpoint: Path | None
                 ) -> tuple[HarmonicResult, float]:
    """The PySCF reference from a cached analytic Hessian plus SCF dipole differences."""
    from pyscf import lib

    def dipole_of(positions: np.ndarray) -> np.ndarray:
        with lib.with_omp_threads(threads):
            return dipole_au_to_e_angstrom(scf_dipole(geometry.numbers,
                                                      angstrom_to_bohr(positions), level))

    t0 = time.perf_counter()
    print(f"[PySCF] residual force at the cached geometry (one gradient), then "
          f"{6 * len(geometry)} SCF dipoles", file=sys.stderr)
    forces = PySCFCalculator(level, threads=threads).get_forces(geometry)
    dmu_dx = dipole_derivatives(geometry, dipole_of, delta=delta, checkpoint=checkpoint)
    result = harmonic_from_hessian(geometry, modes.hessian, dmu_dx,
                                   float(np.linalg.norm(forces, axis=1).max()), delta)
    return result, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path,
                        default=ROOT / "examples/ethanol/model/ethanol_100.pt")
    parser.add_argument("--geometry", type=Path,
                        default=ROOT / "examples/ethanol/ethanol_rmd17_100.xyz",
                        help="starting geometry (any format ASE reads)")
    parser.add_argument("--index", type=int, default=0, help="frame of --geometry")
    parser.add_argument("--hydroxyl-dihedral", type=float, default=None,
                        help="set the H–O–C–C dihedral (degrees) of the starting geometry, "
                             "e.g. 180 for trans ethanol, the conformer of the experimental "
                             "data (default: keep it; rMD17 frame 0 relaxes to gauche)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/harmonic_ethanol",
                        help="output prefix: writes OUT.md, OUT.json, OUT.png")
    defaults = LevelOfTheory()
    parser.add_argument("--xc", default=defaults.xc)
    parser.add_argument("--basis", default=defaults.basis)
    parser.add_argument("--grid-level", type=int, default=defaults.grid_level)
    parser.add_argument("--conv-tol", type=float, default=defaults.conv_tol, help="Hartree")
    parser.add_argument("--threads", type=int, default=None, help="PySCF OpenMP threads")
    parser.add_argument("--fmax", type=float, default=1e-4, help="eV/Å, both optimisations")
    parser.add_argument("--delta", type=float, default=0.005, help="finite-difference step, Å")
    parser.add_argument("--device", default="cpu", help="model device: cpu, cuda or auto")
    parser.add_argument("--experiment", choices=[*sorted(EXPERIMENTS), "none"],
                        default="ethanol", help="experimental band list of bench/experiment.py")
    parser.add_argument("--reference-cache", type=Path, default=None,
                        help="JSON file of the PySCF analysis: read if it exists (same start, "
                             "level and settings), else written after computing it")
    parser.add_argument("--reference-hessian", type=Path, default=None,
                        help="a `densnet sample` cache file (modes-*.json: a PySCF-optimised "
                             "geometry and its analytic Hessian, sum rule imposed): the "
                             "reference takes it and adds SCF dipoles at 2·3N displacements "
                             "(no forces; resumable with --reference-cache); the model starts "
                             "from that geometry (--geometry is not read)")
    args = parser.parse_args()

    if args.reference_hessian is not None:
        if not args.reference_hessian.is_file():
            parser.error(f"--reference-hessian {args.reference_hessian}: no such file")
        modes = NormalModes.load(args.reference_hessian)
        start = Atoms(numbers=modes.numbers, positions=modes.positions, masses=modes.masses)
    else:
        read = ase.io.read(args.geometry, index=args.index)
        assert isinstance(read, Atoms)  # one index: one frame
        start = read
    if args.hydroxyl_dihedral is not None:
        indices = hydroxyl_atoms(start)
        if indices is None:
            parser.error("--hydroxyl-dihedral needs an alcohol with one O and two C")
        h, o, c1, c2 = indices  # rotate H: it is the last atom of the dihedral for ASE
        start.set_dihedral(c2, c1, o, h, args.hydroxyl_dihedral, indices=[h])
    level = LevelOfTheory(xc=args.xc, basis=args.basis, grid_level=args.grid_level,
                          conv_tol=args.conv_tol)
    model, model_s, model_geometry = analyse(
        "DenSNet", start, DenSNetCalculator(args.model, device=args.device), args.fmax,
        args.delta)
    cache_key = {"start": start.positions.tolist(), "level": level.as_dict(),
                 "fmax": args.fmax, "delta": args.delta}
    if args.reference_hessian is not None:
        cache_key = {**cache_key, "fmax": None, "hessian": relative(args.reference_hessian)}
    cached = (json.loads(args.reference_cache.read_text())
              if args.reference_cache and args.reference_cache.exists() else None)
    if cached is not None and cached["key"] == cache_key:
        print(f"[PySCF] reusing {args.reference_cache}", file=sys.stderr)
        reference = HarmonicResult.from_dict(cached["result"])
        reference_s = cached["seconds"]
        reference_geometry = Atoms(numbers=reference.numbers, positions=reference.positions)
    else:
        if args.reference_hessian is not None:
            reference, reference_s = from_hessian(
                start, modes, level, args.threads, args.delta,
                None if args.reference_cache is None
                else args.reference_cache.with_suffix(".dipoles.npz"))
            reference_geometry = start
        else:
            reference, reference_s, reference_geometry = analyse(
                "PySCF", start, PySCFCalculator(level, threads=args.threads), args.fmax,
                args.delta)
        if args.reference_cache:
            write_text(args.reference_cache, json.dumps(
                {"key": cache_key, "result": reference.to_dict(), "seconds": reference_s}))

    def rounded(angle: float | None) -> float | None:
        return None if angle is None else round(angle, 1)

    metadata = {
        "command": command_line(),
        "model": relative(args.model),
        "starting geometry": (
            f"{relative(args.geometry)} frame {args.index}"
            + ("" if args.hydroxyl_dihedral is None else
               f", H–O–C–C dihedral set to {args.hydroxyl_dihedral:g}°")
            if args.reference_hessian is None else
            f"the optimised geometry of {relative(args.reference_hessian)}"),
        "reference level": f"{level.xc}/{level.basis}, density-fitted, grid level "
                           f"{level.grid_level}, conv_tol {level.conv_tol:g} Ha",
        "optimisation": f"ASE BFGS, fmax {args.fmax:g} eV/Å (net force and torque removed)"
                        + ("" if args.reference_hessian is None else ", the model only"),
        "finite differences": f"central, δ = {args.delta:g} Å, {6 * len(start)} geometries each",
        **({} if args.reference_hessian is None else {
            "reference Hessian": f"{relative(args.reference_hessian)}: PySCF's analytic "
                                 f"Hessian at the `densnet sample` geometry (optimised there; "
                                 f"translational sum rule imposed); the reference's finite "
                                 f"differences are of SCF dipoles only"}),
        **({} if hydroxyl_atoms(start) is None else {
            "H–O–C–C dihedral (model, reference), degrees":
                f"{rounded(hydroxyl_dihedral(model_geometry))}, "
                f"{rounded(hydroxyl_dihedral(reference_geometry))}"}),
        "wall time (model, reference), s": f"{model_s:.1f}, {reference_s:.1f}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = write_comparison(args.out, ComparisonReport(
        model=model, reference=reference, names=("DenSNet", "PySCF"),
        experiment=EXPERIMENTS.get(args.experiment, ((), ""))[0],
        experiment_source=EXPERIMENTS.get(args.experiment, ((), ""))[1], metadata=metadata))
    print(f"wrote {args.out}.md, .json, .png")
    print(f"mean |Δν| {summary['mean_absolute_difference_cm1']:.1f} cm⁻¹, largest "
          f"{summary['max_absolute_difference_cm1']:.1f} cm⁻¹; median intensity ratio "
          f"{summary['median_intensity_ratio']:.2f}")


if __name__ == "__main__":
    main()
