"""``densnet fit-density``: the command-line face of :mod:`densnet_cli.reference.runner`."""

from __future__ import annotations

from pathlib import Path

import click

from densnet_cli.cli.options import level_of_theory_options
from densnet_cli.reference.runner import FitDensityConfig, run_fit_density
from densnet_cli.units import E_ANGSTROM_TO_DEBYE

EXIT_SOME_FRAMES_FAILED = 3


@click.command("fit-density")
@click.argument("geometries", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="HDF5 dataset to write (created atomically; resumed if a run was killed).")
@click.option("--index", default=":", show_default=True,
              help="Frames to label: N, START:STOP[:STEP] (Python slicing, 0-based).")
@level_of_theory_options
@click.option("--density-basis", default="def2-universal-jkfit", show_default=True,
              help="Basis the density is fitted onto: any PySCF auxiliary basis name, or 'etb' "
                   "/ 'etb:BETA' for PySCF's even-tempered basis built from --basis.")
@click.option("--constrain-dipole/--no-constrain-dipole", default=True, show_default=True,
              help="Make the fitted density reproduce the DFT dipole exactly (the electron "
                   "count always is).")
@click.option("--max-cycle", default=100, show_default=True, type=click.IntRange(min=1),
              help="SCF iterations per attempt; a frame that does not converge is retried "
                   "with damping + level shift, then Newton, then reported as failed.")
@click.option("--workers", default=1, show_default=True, type=int,
              help="Local worker processes (frames in parallel).")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(min=0),
              help="PySCF threads per worker (0: all cores for 1 worker, else cores/workers).")
@click.option("--scheduler", default="", metavar="ADDRESS",
              help="Dask scheduler address (tcp://host:8786): label on that cluster instead.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar with ETA on stderr.")
def fit_density(**options) -> None:
    """Label GEOMETRIES with Kohn–Sham DFT (PySCF) and fit each density onto a Gaussian basis.

    GEOMETRIES is any file ASE reads (xyz, extxyz, traj, ...), positions in Å.  Each frame gets
    energy (eV), forces (eV/Å), DFT dipole (e·Å), density coefficients and fit diagnostics;
    the file also holds the basis, the SAD prior and the level of theory.  Exit code 0 when
    every frame is labelled, 3 when some SCFs failed (they are listed, stored in the file under
    /failed, and retried by rerunning the same command), 1 for bad input.
    """
    cfg = FitDensityConfig(**options)
    summary = run_fit_density(cfg)
    if summary.already_complete:
        click.echo(f"{cfg.output} is already complete ({summary.n_frames} frames); nothing to do")
        return
    n_ok = summary.n_frames - len(summary.failed)
    click.echo(f"wrote {cfg.output}: {n_ok} frames ({summary.n_labelled_now} labelled now)")
    if n_ok:
        click.echo(f"  seconds per frame (DFT + fit): {summary.seconds_per_frame:.2f}")
        click.echo(f"  fit L1 error: {summary.fit_l1_percent:.3f} % of N   "
                   f"SAD prior L1 error: {summary.sad_l1_percent:.2f} % of N")
        click.echo(f"  max |dipole(fit) - dipole(DFT)|: "
                   f"{summary.max_fit_dipole_error * E_ANGSTROM_TO_DEBYE:.2e} D")
    if summary.failed:
        for index, reason in summary.failed:
            click.echo(f"frame {index} failed: {reason}", err=True)
        click.echo(f"Error: {len(summary.failed)} frames failed and are not in the dataset; "
                   f"rerun the same command (e.g. with a larger --max-cycle) to retry them",
                   err=True)
        raise SystemExit(EXIT_SOME_FRAMES_FAILED)
