"""``densnet evaluate``: the command-line face of :mod:`densnet_cli.evaluation.report`."""

from __future__ import annotations

from pathlib import Path

import click

from densnet_cli.evaluation.report import EvaluateConfig, evaluate


@click.command("evaluate")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--report", type=click.Path(path_type=Path), required=True,
              help="JSON report to write: energy_mae_meV (per molecule), "
                   "force_mae_meV_per_A, dipole_mae_D (per component), density_l1_percent "
                   "(∫|ρ_pred − ρ_ref|/N on a DFT grid), coulomb_error_mHa, n_frames, ...")
@click.option("--plot", type=click.Path(path_type=Path),
              help="Parity plots (energy, forces, dipole) as PNG.")
@click.option("--density-frames", default=-1, show_default=True,
              help="Frames whose real-space density error is integrated (-1: all).")
@click.option("--dft-frames", default=0, show_default=True,
              help="Frames whose density error against the true DFT density is measured: from "
                   "the stored DFT density matrix, or re-run with PySCF at the dataset's level "
                   "of theory where the dataset has none (≈10 s each for ethanol).")
@click.option("--batch-size", default=16, show_default=True, help="Molecules per batch.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def evaluate_command(**options) -> None:
    """Errors of MODEL on DATASET.h5 (energies eV→meV, forces meV/Å, dipoles D, density %)."""
    cfg = EvaluateConfig(**options)
    report = evaluate(cfg)
    click.echo(f"wrote {cfg.report}: " + ", ".join(
        f"{k} {v:.4g}" for k, v in report.items()
        if isinstance(v, float) and k.endswith(("meV", "meV_per_A", "_D", "percent")))
        + ("" if report["energy_trained"] else
           " (density-only model: no energy stage ran, so no energies or forces)"))
