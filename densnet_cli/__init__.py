"""DenSNet: density-first machine-learned electronic structure.

Stages (one subpackage each, in data-flow order):

* :mod:`densnet_cli.basis` – the atom-centred Gaussian density basis and its conventions;
* :mod:`densnet_cli.reference` – reference data: PySCF DFT, density fitting, SAD prior
  (``densnet fit-density``);
* :mod:`densnet_cli.data` – geometry input and the HDF5 dataset format;
* :mod:`densnet_cli.cli` – the ``densnet`` command line.
"""

__version__ = "0.1.0"
