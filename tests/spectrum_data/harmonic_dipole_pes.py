"""i-PI python-driver PES for the spectrum tests: isotropic harmonic wells, dipole = q Σ r.

Used as ``i-pi-py_driver -m custom -P harmonic_dipole_pes.py -o K,Q`` (atomic units: K in
Hartree/Bohr², Q in e).  The dipole goes back in the extras JSON, in e·Bohr, as DenSNet's
``serve`` does, so that i-PI's ``extra_type='dipole'`` output works.
"""

import json

import numpy as np
from ipi.pes.dummy import Dummy_driver

__DRIVER_NAME__ = "harmonic_dipole"
__DRIVER_CLASS__ = "HarmonicDipole"


class HarmonicDipole(Dummy_driver):
    """V = K/2 Σ r², F = −K r, μ = Q Σ r (all atomic units)."""

    def __init__(self, k=0.1, q=0.5, *args, **kwargs):
        self.k = float(k)
        self.q = float(q)
        super().__init__(*args, **kwargs)

    def compute_structure(self, cell, pos):
        pos = np.asarray(pos, dtype=float).reshape(-1, 3)
        energy = 0.5 * self.k * float(np.sum(pos**2))
        force = -self.k * pos
        dipole = (self.q * pos.sum(axis=0)).tolist()
        return energy, force.reshape(-1), np.zeros((3, 3)), json.dumps({"dipole": dipole})
