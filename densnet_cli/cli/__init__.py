"""The ``densnet`` command: a Click group whose subcommands are the pipeline's stages.

User mistakes and other actionable failures (:class:`~densnet_cli.errors.DenSNetError`) become a
one-line ``Error: ...`` and exit code 1; Ctrl-C exits with 130; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import click

from densnet_cli import __version__
from densnet_cli.cli.active_learn import active_learn
from densnet_cli.cli.build import build_oligothiophene
from densnet_cli.cli.evaluate import evaluate_command
from densnet_cli.cli.fit_density import fit_density
from densnet_cli.cli.sample import sample
from densnet_cli.cli.serve import serve
from densnet_cli.cli.spectrum import spectrum
from densnet_cli.cli.train import train
from densnet_cli.errors import DenSNetError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DenSNetError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted; finished work is kept, rerun the same command to resume",
                       err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"],
                                           "max_content_width": 100})
@click.version_option(__version__, prog_name="densnet")
def main() -> None:
    """DenSNet: learn electron densities, energies and dipoles from DFT; run MD with them.

    Units: Å, eV, eV/Å and e·Å in files and the Python API; atomic units only where PySCF
    and i-PI need them.
    """


main.add_command(fit_density)
main.add_command(sample)
main.add_command(evaluate_command)
main.add_command(spectrum)
main.add_command(train)
main.add_command(serve)
main.add_command(build_oligothiophene)
main.add_command(active_learn)
