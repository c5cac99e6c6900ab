"""``densnet sample``: the command-line face of :mod:`densnet_cli.sampling.run`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from densnet_cli.cli.options import level_of_theory_options
from densnet_cli.sampling.normal_modes import Log, quiet
from densnet_cli.sampling.run import DEFAULT_CACHE_DIR, SampleConfig, run_sample
from densnet_cli.sampling.thermal import MIN_DISTANCE_FACTOR, MIN_FREQUENCY_CM1


def _echo(message: str) -> None:
    click.echo(message, err=True)


@click.command("sample")
@click.argument("input")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Extended XYZ file of the samples (Å), written atomically; a summary "
                   "(frequencies and DFT energies of the conformers) goes beside it with the "
                   "suffix .modes.json (samples.xyz -> samples.modes.json).")
@click.option("--n-samples", default=100, show_default=True, help="Number of geometries.")
@click.option("--temperature", default=300.0, show_default=True, help="Temperature (K).")
@click.option("--quantum/--classical", default=False, show_default=True,
              help="Mode amplitudes from the quantum harmonic oscillator (Wigner: zero-point "
                   "motion included) instead of the classical Boltzmann distribution.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the sampling.")
@click.option("--index", default="0", show_default=True,
              help="Which frame of INPUT is the structure (0-based; -1 is the last).")
@click.option("--dihedral", multiple=True, metavar="I,J,K,L=ANGLE[;...]",
              help="Add a conformer: the input with dihedral I-J-K-L set to ANGLE (degrees) by "
                   "rotating everything on L's side of bond J-K; 0-based atoms; ';' joins "
                   "several settings into one conformer.  Repeatable.")
@click.option("--conformers", type=click.Path(path_type=Path),
              help="Add every frame of this file (same atoms, same order) as a conformer.")
@click.option("--weights", default="even", show_default=True,
              help="Share of the samples per conformer: even, boltzmann (exp(-ΔE/kT) of the "
                   "conformers' DFT energies) or numbers W0,W1,... in conformer order.")
@level_of_theory_options
@click.option("--fmax", default=1e-3, show_default=True,
              help="Optimisation threshold on the largest force (eV/Å).")
@click.option("--min-frequency", default=MIN_FREQUENCY_CM1, show_default=True,
              help="Modes below this (cm⁻¹), imaginary ones included, are not displaced.")
@click.option("--min-distance-factor", default=MIN_DISTANCE_FACTOR, show_default=True,
              help="Redraw a sample with two atoms closer than this × the sum of their "
                   "covalent radii.")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help=f"Where optimised geometries and Hessians are kept for reuse by later runs "
                   f"[default: {DEFAULT_CACHE_DIR}/ beside OUTPUT].")
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="Reuse and keep optimised geometries and Hessians.")
@click.option("--threads", default=0, show_default=True,
              help="PySCF threads (0: PySCF's default, all cores).")
@click.option("--workers", default=1, show_default=True,
              help="Conformers optimised side by side, each in its own process with --threads "
                   "threads (e.g. --workers 2 --threads 1 on two cores).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress messages for the slow steps (and a line per optimisation step) on "
                   "stderr.")
def sample(**options) -> None:
    """Draw geometries of a molecule by normal-mode sampling at a temperature.

    INPUT is a structure file ASE reads (Å), or a SMILES string when RDKit is installed
    (pip install 'densnet[smiles]').  Each conformer (INPUT, then --conformers frames, then one
    per --dihedral) is optimised with PySCF, its DFT Hessian gives the normal modes, and every
    mode is displaced by a Gaussian amplitude of the Boltzmann distribution at --temperature.
    The optimised geometry and Hessian are cached, so reruns with other sampling options skip
    the DFT.  Each frame of OUTPUT records its conformer, temperature (K), harmonic energy (eV)
    and seed; `densnet fit-density OUTPUT` labels it.
    """
    options["dihedral"] = tuple(options["dihedral"])
    cfg = SampleConfig(**options)
    log: Log = _echo if cfg.progress else quiet
    optimiser_log = sys.stderr if cfg.progress else None
    results = run_sample(cfg, log=log, warn=_echo, optimiser_log=optimiser_log)
    n_rejected = sum(r.samples.n_rejected for r in results)
    lowest = min(r.modes.energy for r in results)
    click.echo(f"wrote {cfg.output}: {cfg.n_samples} frames from {len(results)} conformer(s) at "
               f"{cfg.temperature:g} K ({'quantum' if cfg.quantum else 'classical'}); "
               f"{n_rejected} draws redrawn for overlapping atoms")
    for c, r in enumerate(results):
        frequencies = r.modes.frequencies_cm1
        click.echo(f"  conformer {c} ({r.conformer.label}): {len(r.samples.positions)} frames, "
                   f"E - E_min = {r.modes.energy - lowest:.4f} eV, frequencies "
                   f"{frequencies.min():.0f} to {frequencies.max():.0f} cm⁻¹")
    click.echo(f"  modes and energies: {cfg.modes_path}")
