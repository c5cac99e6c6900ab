"""Gas-phase IR spectrum of one flexible point-charge water molecule from classical MD.

The model is q-SPC/Fw (Paesani et al., J. Chem. Phys. 125, 184507 (2006)) for a single molecule:
harmonic O–H bonds and H–O–H angle, fixed charges, dipole = Σ q_i r_i.  Each of N_RUNS
trajectories is thermalised with Langevin dynamics at 300 K, has its overall rotation removed
(so that bands are not split into rotational branches and can be compared with normal modes),
and is then run in NVE with velocity Verlet at 0.5 fs, writing a DenSNet dipole stream.
`densnet spectrum` turns the streams into the spectrum; this script then compares its bands with
the harmonic normal modes and km/mol intensities of ase.vibrations.Infrared.

    python water_md.py            # MD + harmonic analysis, writes out/
    bash run.sh                   # the same, then the spectrum and the plot
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet
from ase.vibrations import Infrared

from densnet_cli.data.dipole_stream import DipoleStreamWriter

KCAL = units.kcal / units.mol
K_BOND = 1059.162 * KCAL  # eV/Å²
R_OH = 1.0  # Å
K_ANGLE = 75.90 * KCAL  # eV/rad²
THETA0 = np.radians(112.0)
CHARGES = np.array([-0.84, 0.42, 0.42])  # e


class FlexibleWater(Calculator):
    """q-SPC/Fw intramolecular energy, forces and point-charge dipole of one O–H–H molecule."""

    implemented_properties: ClassVar[list[str]] = ["energy", "forces", "dipole"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        r = self.atoms.positions
        forces = np.zeros((3, 3))
        energy = 0.0
        bonds = [r[1] - r[0], r[2] - r[0]]
        lengths = [np.linalg.norm(b) for b in bonds]
        for h, (b, length) in enumerate(zip(bonds, lengths, strict=True), start=1):
            energy += 0.5 * K_BOND * (length - R_OH) ** 2
            f = -K_BOND * (length - R_OH) * b / length
            forces[h] += f
            forces[0] -= f
        (a, b), (la, lb) = bonds, lengths
        cos = np.clip(a @ b / (la * lb), -1.0, 1.0)
        theta = np.arccos(cos)
        energy += 0.5 * K_ANGLE * (theta - THETA0) ** 2
        dtheta = -1.0 / np.sqrt(1.0 - cos**2)  # dθ/dcosθ
        fa = -K_ANGLE * (theta - THETA0) * dtheta * (b / (la * lb) - cos * a / la**2)
        fb = -K_ANGLE * (theta - THETA0) * dtheta * (a / (la * lb) - cos * b / lb**2)
        forces[1] += fa
        forces[2] += fb
        forces[0] -= fa + fb
        self.results = {"energy": energy, "forces": forces,
                        "dipole": CHARGES @ self.atoms.positions}


def water() -> Atoms:
    half = THETA0 / 2
    atoms = Atoms("OH2", positions=[[0, 0, 0], [R_OH * np.sin(half), 0, R_OH * np.cos(half)],
                                    [-R_OH * np.sin(half), 0, R_OH * np.cos(half)]])
    atoms.calc = FlexibleWater()
    return atoms


def harmonic_modes(out: Path) -> list[tuple[float, float]]:
    """(wavenumber cm⁻¹, intensity km/mol) of the three vibrations, from ase.vibrations."""
    cache = out / "vib"
    shutil.rmtree(cache, ignore_errors=True)
    ir = Infrared(water(), name=str(cache), delta=0.005, nfree=4)
    ir.run()
    freqs = ir.get_frequencies().real
    intensities = ir.intensities * 42.255  # (D/Å)²/amu → km/mol, as ASE reports
    return sorted((float(f), float(i)) for f, i in zip(freqs, intensities, strict=True)
                  if f > 500)


def run_md(out: Path, n_runs: int, nve_ps: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    atoms = water()
    dt = 0.5 * units.fs
    for run in range(n_runs):
        Langevin(atoms, dt, temperature_K=300, friction=0.05 / units.fs,
                 fixcm=False, rng=rng).run(400)
        Stationary(atoms, preserve_temperature=False)  # ASE's default would put the removed
        ZeroRotation(atoms, preserve_temperature=False)  # kinetic energy into the vibrations
        md = VelocityVerlet(atoms, dt)
        with DipoleStreamWriter(out / f"run_{run:03d}.dipoles",
                                {"timestep_fs": 0.5, "source": "water_md.py q-SPC/Fw"}) as w:
            def record(md=md, w=w):
                w.write(md.nsteps, 0, md.nsteps * 0.5, atoms.get_dipole_moment())
            md.attach(record, interval=1)
            md.run(int(nve_ps * 2000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--runs", type=int, default=80)
    parser.add_argument("--nve-ps", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out.mkdir(exist_ok=True)
    for old in args.out.glob("run_*.dipoles"):
        old.unlink()
    modes = harmonic_modes(args.out)
    (args.out / "harmonic.csv").write_text(
        "wavenumber_cm1,intensity_km_per_mol\n"
        + "".join(f"{f:.2f},{i:.4f}\n" for f, i in modes))
    run_md(args.out, args.runs, args.nve_ps, args.seed)
    print("harmonic modes (cm⁻¹, km/mol):", ", ".join(f"{f:.1f} ({i:.2f})" for f, i in modes))


if __name__ == "__main__":
    main()
