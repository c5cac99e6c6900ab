"""Options shared by several subcommands, declared once."""

from __future__ import annotations

import click

# The level of theory of the reference DFT (fit-density, sample): names, defaults and meaning
# match densnet_cli.reference.dft.LevelOfTheory.
LEVEL_OF_THEORY_OPTIONS = [
    click.option("--xc", default="PBE", show_default=True,
                 help="Exchange-correlation functional."),
    click.option("--basis", default="def2-SVP", show_default=True, help="Orbital basis set."),
    click.option("--scf-auxbasis", default="", help="J-fitting basis of the SCF "
                 "[default: PySCF's choice for --basis, def2-universal-jkfit for def2 bases]."),
    click.option("--charge", default=0, show_default=True, help="Molecular charge (e)."),
    click.option("--spin", default=0, show_default=True,
                 help="2S = N_alpha - N_beta; non-zero runs UKS."),
    click.option("--grid-level", default=4, show_default=True, type=click.IntRange(0, 9),
                 help="PySCF DFT grid level."),
    click.option("--conv-tol", default=1e-10, show_default=True, type=click.FloatRange(min=0),
                 help="SCF energy convergence threshold (Hartree)."),
]


def level_of_theory_options(command):
    """Decorate ``command`` with :data:`LEVEL_OF_THEORY_OPTIONS`."""
    for option in reversed(LEVEL_OF_THEORY_OPTIONS):
        command = option(command)
    return command
