"""DenSNet: density-first machine-learned electronic structure.

Stages (one subpackage each, in data-flow order):

* :mod:`densnet_cli.basis` – the atom-centred Gaussian density basis and its conventions;
* :mod:`densnet_cli.reference` – reference data: PySCF DFT, density fitting, SAD prior
  (``densnet fit-density``);
* :mod:`densnet_cli.data` – geometry input and the HDF5 dataset format;
* :mod:`densnet_cli.cli` – the ``densnet`` command line.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy exports, so that ``import densnet_cli`` does not load torch."""
    if name == "DenSNetCalculator":
        from densnet_cli.calculator import DenSNetCalculator

        return DenSNetCalculator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
