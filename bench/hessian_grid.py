r"""PySCF's analytic Hessian on coarse DFT grids, and the translational sum rule that repairs it.

    python bench/hessian_grid.py hessians [--grids 2 3 4]
    python bench/hessian_grid.py curvature

``hessians``: the analytic PBE/def2-SVP Hessian of DFT-optimised thiophene (the cached geometry
of bench/data/polythiophene/dft_cache) on each DFT grid level: seconds, the violation of the
translational sum rule max |Σ_j H_ij| (eV/Å²), and the six lowest frequencies (cm⁻¹) raw and
with the sum rule imposed (``impose_translational_sum_rule`` of densnet_cli.sampling.normal_modes).

``curvature``: the DFT energy and the force along the lowest mode of the uncorrected grid-2
Hessian of anti-gauche bithiophene (imaginary, −162 cm⁻¹), at displacements of ±0.1 Å on grids
2 and 4, next to the curvature that Hessian claims (recomputing it: ~35 min).  One thread;
both print their tables (``hessians`` → bench/results/hessian_grid.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from densnet_cli.reference.dft import LevelOfTheory, run_dft  # noqa: E402
from densnet_cli.sampling.normal_modes import (  # noqa: E402
    NormalModes,
    dft_hessian,
    impose_translational_sum_rule,
    modes_from_hessian,
)
from densnet_cli.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV, angstrom_to_bohr  # noqa: E402

CACHE = ROOT / "bench/data/polythiophene/dft_cache"
THIOPHENE = CACHE / "modes-9d18e60267da129695a83b96.json"
BITHIOPHENE = CACHE / "modes-346917ebfcbe7d099b470163.json"  # anti-gauche conformer



def hessians(args: argparse.Namespace) -> None:
    ring = NormalModes.load(THIOPHENE)
    atoms = Atoms(numbers=ring.numbers, positions=ring.positions, masses=ring.masses)
    print("| grid | s | max abs sum_j H_ij eV/Å² | lowest 6 cm⁻¹ raw | with the sum rule |")
    print("|---|---|---|---|---|")
    for grid in args.grids:
        started = time.perf_counter()
        _, hessian = dft_hessian(atoms, LevelOfTheory(basis="def2-SVP", grid_level=grid), 1)
        assert hessian is not None
        seconds = time.perf_counter() - started
        fixed, violation = impose_translational_sum_rule(hessian)
        raw = modes_from_hessian(atoms.numbers, atoms.positions, ring.masses, hessian)
        new = modes_from_hessian(atoms.numbers, atoms.positions, ring.masses, fixed)
        print(f"| {grid} | {seconds:.0f} | {violation:.4f} | "
              f"{' '.join(f'{f:.1f}' for f in raw.frequencies_cm1[:6])} | "
              f"{' '.join(f'{f:.1f}' for f in new.frequencies_cm1[:6])} |", flush=True)


def curvature(args: argparse.Namespace) -> None:
    modes = NormalModes.load(BITHIOPHENE)  # its cached Hessian is the corrected one
    atoms = Atoms(numbers=modes.numbers, positions=modes.positions, masses=modes.masses)
    _, raw = dft_hessian(atoms, LevelOfTheory(basis="def2-SVP", grid_level=2), 1)  # as PySCF
    assert raw is not None
    lowest = modes_from_hessian(atoms.numbers, atoms.positions, modes.masses, raw)
    v = lowest.modes[0] / np.sqrt(modes.masses)[:, None]
    v /= np.linalg.norm(v)
    print(f"lowest mode of the raw grid-2 Hessian: {lowest.frequencies_cm1[0]:.1f} cm⁻¹; "
          f"vᵀHv = {float(v.ravel() @ raw @ v.ravel()):+.4f} eV/Å²")
    for grid in (2, 4):
        level = LevelOfTheory(basis="def2-SVP", grid_level=grid)
        energies = []
        for step in (-0.1, 0.0, 0.1):
            result, _ = run_dft(atoms.numbers, angstrom_to_bohr(atoms.positions + step * v),
                                level)
            energies.append(result.energy * HARTREE_TO_EV)
            slope = float((result.gradient * HARTREE_TO_EV / BOHR_TO_ANGSTROM * v).sum())
            print(f"  grid {grid}, step {step:+.2f} Å: dE/ds {slope:+.4f} eV/Å", flush=True)
        e = np.array(energies)
        print(f"grid {grid}: E − E(0) = {1e3 * (e[0] - e[1]):.3f}, {1e3 * (e[2] - e[1]):.3f} meV; "
              f"curvature {(e[0] + e[2] - 2 * e[1]) / 0.01:+.4f} eV/Å²", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hessians")
    h.add_argument("--grids", nargs="+", type=int, default=[2, 3, 4])
    sub.add_parser("curvature")
    args = parser.parse_args()
    {"hessians": hessians, "curvature": curvature}[args.command](args)


if __name__ == "__main__":
    main()
