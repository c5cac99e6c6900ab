"""``densnet build-oligothiophene``: the command-line face of :mod:`densnet_cli.systems`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import ase.io
import click
import numpy as np
from ase import Atoms

from densnet_cli.cli.options import level_of_theory_options
from densnet_cli.data.atomic import atomic_output
from densnet_cli.errors import InputError
from densnet_cli.reference.dft import LevelOfTheory
from densnet_cli.systems.oligothiophene import INTER_RING_BOND, build_chain, chain_dihedrals
from densnet_cli.systems.thiophene import ThiopheneGeometry, optimised_monomer, read_monomer


@dataclass(frozen=True)
class BuildConfig:
    """Options of ``densnet build-oligothiophene`` (one field per option)."""

    n_rings: int
    output: Path
    conformation: str | None = None  # anti | syn; None: anti unless --dihedrals
    dihedrals: str | None = None  # "180,160,..." degrees
    inter_ring_bond: float = INTER_RING_BOND  # Å
    monomer: Path | None = None
    optimise_monomer: bool = False
    xc: str = "PBE"
    basis: str = "def2-SVP"
    scf_auxbasis: str = ""
    charge: int = 0
    spin: int = 0
    grid_level: int = 4
    conv_tol: float = 1e-10  # Hartree
    fmax: float = 1e-3  # eV/Å
    threads: int = 0  # 0: PySCF's default
    progress: bool = True

    def level(self) -> LevelOfTheory:
        """The level of theory of the monomer optimisation."""
        return LevelOfTheory.of(self)

    @property
    def monomer_cache(self) -> Path:
        """Where the optimised monomer is kept: ``OUT.monomer.json``."""
        return self.output.with_suffix(".monomer.json")

    def chain_dihedrals(self) -> list[float]:
        """The n − 1 inter-ring dihedrals (degrees), checked before any DFT runs."""
        if self.n_rings < 1:
            raise InputError(f"N must be at least 1 ring, not {self.n_rings}")
        if self.monomer is not None and self.optimise_monomer:
            raise InputError("give either --monomer or --optimise-monomer, not both")
        if self.dihedrals is None:
            return chain_dihedrals(self.n_rings, self.conformation or "anti")
        if self.conformation is not None:
            raise InputError("give either --conformation or --dihedrals, not both")
        try:
            angles = [float(a) for a in self.dihedrals.split(",") if a.strip()]
        except ValueError:
            raise InputError(f"--dihedrals must be comma-separated numbers (degrees), not "
                             f"'{self.dihedrals}'") from None
        if len(angles) != self.n_rings - 1:
            raise InputError(f"a chain of {self.n_rings} rings has {self.n_rings - 1} "
                             f"inter-ring dihedrals; --dihedrals gives {len(angles)}")
        return angles


def _echo(message: str) -> None:
    click.echo(message, err=True)


def run_build(cfg: BuildConfig) -> tuple[Atoms, ThiopheneGeometry, str]:
    """Build the chain of ``cfg`` and write it; returns it, its ring geometry and its source."""
    angles = cfg.chain_dihedrals()
    if cfg.monomer is not None:
        monomer, source = read_monomer(cfg.monomer), str(cfg.monomer)
    elif cfg.optimise_monomer:
        level = cfg.level()
        monomer = optimised_monomer(level, cfg.monomer_cache, cfg.fmax, cfg.threads or None,
                                    logfile=sys.stderr if cfg.progress else None,
                                    log=_echo if cfg.progress else None)
        source = f"{level.xc}/{level.basis} (grid {level.grid_level}), {cfg.monomer_cache}"
    else:
        monomer, source = None, "literature (Bak et al. 1961)"
    geometry = ThiopheneGeometry() if monomer is None else ThiopheneGeometry.from_atoms(monomer)
    atoms = build_chain(cfg.n_rings, angles, geometry, cfg.inter_ring_bond)
    atoms.info["monomer"] = source
    with atomic_output(cfg.output) as tmp:
        ase.io.write(tmp, atoms, format="extxyz")
    return atoms, geometry, source


@click.command("build-oligothiophene")
@click.argument("n_rings", metavar="N", type=int)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Extended XYZ file of the chain (Å), written atomically.")
@click.option("--conformation", type=click.Choice(["anti", "syn"]), default=None,
              help="All inter-ring S–C–C–S dihedrals 180° (anti) or 0° (syn)  [default: anti].")
@click.option("--dihedrals", metavar="D1,D2,...",
              help="The N − 1 inter-ring S–C–C–S dihedrals in degrees, first ring first.")
@click.option("--inter-ring-bond", default=INTER_RING_BOND, show_default=True,
              help="Cα–Cα′ bond length between rings (Å).")
@click.option("--monomer", type=click.Path(path_type=Path),
              help="Take the ring geometry (C2v-averaged bond lengths and angles) from this "
                   "thiophene: a file ASE reads (last frame) or a .monomer.json of an earlier "
                   "--optimise-monomer run  [default: the microwave structure].")
@click.option("--optimise-monomer", is_flag=True,
              help="Optimise thiophene with PySCF at the level of theory below and use its ring "
                   "geometry; kept beside OUTPUT for reuse (chain.xyz → chain.monomer.json).")
@level_of_theory_options
@click.option("--fmax", default=1e-3, show_default=True,
              help="Optimisation threshold on the largest force (eV/Å).")
@click.option("--threads", default=0, show_default=True,
              help="PySCF threads (0: PySCF's default, all cores).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Optimisation steps on stderr.")
def build_oligothiophene(**options) -> None:
    """Build the α-linked, H-terminated oligothiophene of N rings, C(4N) H(2N+2) S(N).

    Every ring has the same planar C2v geometry; ring k+1 is bonded by its C2 to ring k's C5
    along the α C–H direction, turned about that bond to the inter-ring dihedral
    S–C5–C2′–S′.  The chain is centred at the origin with x along the end-to-end C2 → C5
    vector and z along the first ring's normal (planar chains lie in z = 0).  Overlapping
    atoms (e.g. all-syn chains of 11 or more rings, which curl into a circle) are an error.
    """
    cfg = BuildConfig(**options)
    atoms, geometry, source = run_build(cfg)
    angles = ", ".join(f"{a:g}" for a in atoms.info["dihedrals"]) or "none"
    extent = np.ptp(atoms.positions, axis=0)
    click.echo(f"wrote {cfg.output}: {atoms.get_chemical_formula()} ({cfg.n_rings} rings, "
               f"{len(atoms)} atoms), inter-ring dihedrals {angles}; extent "
               f"{extent[0]:.2f} × {extent[1]:.2f} × {extent[2]:.2f} Å")
    click.echo(f"  ring geometry from {source}: S–C {geometry.r_sc:.4f} Å, C=C "
               f"{geometry.r_cacb:.4f} Å, C–C {geometry.r_cbcb:.4f} Å, ∠CSC "
               f"{geometry.angle_csc:.2f}°; inter-ring bond {cfg.inter_ring_bond:.4f} Å")
