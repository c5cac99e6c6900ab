"""The PySCF layer: SCF retries land on the same solution."""

import numpy as np

from densnet_cli import units
from densnet_cli.reference.dft import LevelOfTheory, run_dft
from tests.conftest import WATER


def test_robust_scf_retry_converges_to_the_same_state():
    lot = LevelOfTheory(basis="def2-SVP", grid_level=2)
    positions = units.angstrom_to_bohr(WATER.positions)
    plain, _ = run_dft(WATER.numbers, positions, lot)
    assert plain.strategy == "diis"
    # Three iterations are too few for DIIS and for the damped retry: Newton must take over.
    retried, _ = run_dft(WATER.numbers, positions, lot, max_cycle=3)
    assert retried.strategy == "newton"
    assert abs(retried.energy - plain.energy) < 1e-9
    np.testing.assert_allclose(retried.gradient, plain.gradient, atol=1e-6)
    np.testing.assert_allclose(retried.dipole, plain.dipole, atol=1e-6)
