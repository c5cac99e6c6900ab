"""i-PI PES plugin: a DenSNet model inside i-PI's own driver or ``<ffdirect>``.

i-PI loads this file by path and instantiates ``__DRIVER_CLASS__``::

    i-pi-py_driver -u -a NAME -m custom -P drivers/ipi_pes_densnet.py
                   -o model=model.pt,template=init.xyz[,device=cpu]     (one line)

    <ffdirect name='densnet'>
      <pes>custom</pes>
      <pes_path>/path/to/drivers/ipi_pes_densnet.py</pes_path>
      <parameters>{model: model.pt, template: init.xyz, device: cpu}</parameters>
    </ffdirect>

Positions arrive in Bohr; energies go back in Hartree, forces in Hartree/Bohr, and the extras
are ``{"dipole": [x, y, z]}`` in e·Bohr, exactly what ``densnet serve`` sends (same evaluator,
same conversion).  Batched calls (lists of cells and positions, i-PI ``batch_size``) are
evaluated as one model batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ipi.pes.dummy import Dummy_driver

from densnet_cli.calculator import ModelEvaluator
from densnet_cli.errors import InputError
from densnet_cli.units import bohr_to_angstrom
from drivers.potential import DenSNetPotential, to_atomic_units
from drivers.serve import read_template

__DRIVER_NAME__ = "densnet"
__DRIVER_CLASS__ = "DenSNetDriver"


class DenSNetDriver(Dummy_driver):
    """A DenSNet model file as an i-PI PES (molecular: zero virial, no periodic images).

    Args:
        model: model file.
        template: structure file with the species in i-PI's atom order.
        device: ``auto``, ``cpu`` or ``cuda``.
        dtype: ``float64`` or ``float32``.
        charge: net charge of the molecule (e).
    """

    def __init__(self, model: str, template: str, device: str = "auto",
                 dtype: str = "float64", charge: float = 0.0, *args, **kwargs) -> None:
        atoms = read_template(Path(template))
        evaluator = ModelEvaluator(model, device=device, dtype=dtype, charge=float(charge))
        evaluator.check_species(atoms.numbers, f"template {template}")
        self.potential = DenSNetPotential(evaluator, atoms.numbers)
        self.n_atoms = len(atoms)
        super().__init__(*args, **kwargs)

    def _evaluate(self, positions_bohr: np.ndarray) -> list[tuple]:
        """(energy, forces, virial, extras) in atomic units for positions (B, n, 3) Bohr."""
        if positions_bohr.shape[1] != self.n_atoms:
            raise InputError(f"i-PI sent {positions_bohr.shape[1]} atoms but the template "
                             f"has {self.n_atoms}")
        result = self.potential(bohr_to_angstrom(positions_bohr))
        bad = result.first_nonfinite()
        if bad is not None:
            raise FloatingPointError(f"DenSNet returned a non-finite {bad}")
        wire = to_atomic_units(result)
        return [(float(e), f.reshape(-1), np.zeros((3, 3)), x)
                for e, f, x in zip(wire.energy, wire.forces, wire.extras, strict=True)]

    def compute_structure(self, cell, pos):
        """One structure: positions (n, 3) Bohr."""
        return self._evaluate(np.asarray(pos, dtype=float).reshape(1, -1, 3))[0]

    def compute(self, cell, pos):
        """One structure, or lists of cells and positions evaluated as one batch."""
        if isinstance(cell, list):
            return self._evaluate(np.stack([np.asarray(p, dtype=float).reshape(-1, 3)
                                            for p in pos]))
        return self.compute_structure(cell, pos)
