"""DenSNetCalculator: ASE properties, their conventions, and ASE MD with dipoles on file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ase.units
import numpy as np
import pytest
from ase.io import Trajectory
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

from densnet_cli.errors import InputError
from tests.serve_data.harness import ethanol_atoms, make_model


@pytest.fixture(scope="module")
def model(ethanol, tmp_path_factory) -> Path:
    return make_model(ethanol, tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="module")
def calc(model):
    from densnet_cli import DenSNetCalculator

    return DenSNetCalculator(model, device="cpu")


@pytest.fixture
def atoms(ethanol, calc):
    a = ethanol_atoms(ethanol)
    a.calc = calc
    return a


def test_results_have_the_documented_shapes(atoms):
    atoms.get_potential_energy()
    r = atoms.calc.results
    assert r["free_energy"] == r["energy"]
    assert r["forces"].shape == (9, 3) and r["dipole"].shape == (3,)
    assert r["populations"].shape == (9,) and r["coefficients"].ndim == 1
    assert len(r["coefficients"]) > 9


def test_charges_are_nuclear_charge_minus_population(atoms):
    charges = atoms.get_charges()
    np.testing.assert_allclose(charges, atoms.numbers - atoms.calc.results["populations"])
    assert abs(charges.sum()) < 1e-10  # neutral molecule: the density holds N electrons


def test_dipole_is_in_e_angstrom_and_translation_covariant(atoms):
    mu = atoms.get_dipole_moment().copy()
    atoms.positions += [0.7, -0.3, 1.1]
    np.testing.assert_allclose(atoms.get_dipole_moment(), mu, atol=1e-10)  # neutral


def test_forces_are_minus_the_energy_gradient(atoms):
    forces = atoms.get_forces().copy()
    h = 1e-4
    for atom, axis in [(0, 0), (2, 1), (5, 2)]:
        energies = []
        for sign in (1, -1):
            a = atoms.copy()
            a.calc = atoms.calc
            a.positions[atom, axis] += sign * h
            energies.append(a.get_potential_energy())
        assert abs(-(energies[0] - energies[1]) / (2 * h) - forces[atom, axis]) < 1e-6


def test_velocity_verlet_writes_dipoles_into_the_trajectory(atoms, tmp_path):
    with Trajectory(tmp_path / "md.traj", "w", atoms) as traj:
        dyn = VelocityVerlet(atoms, timestep=0.5 * ase.units.fs)
        dyn.attach(traj.write, interval=1)
        dyn.run(3)
    frames = list(Trajectory(tmp_path / "md.traj"))
    assert len(frames) == 4
    for frame in frames:
        direct = frame.copy()
        direct.calc = atoms.calc
        np.testing.assert_allclose(frame.get_dipole_moment(), direct.get_dipole_moment(),
                                   atol=1e-12)


def test_langevin_md_runs_and_stays_finite(atoms):
    dyn = Langevin(atoms, 0.5 * ase.units.fs, temperature_K=300, friction=0.01, fixcm=False,
                   rng=np.random.default_rng(0))
    dyn.run(3)
    assert np.isfinite(atoms.get_forces()).all()


def test_unknown_element_is_refused_clearly(ethanol, calc):
    a = ethanol_atoms(ethanol)
    a.numbers[0] = 11  # Na
    a.calc = calc
    with pytest.raises(InputError, match="contains Na"):
        a.get_potential_energy()


def test_importing_the_package_does_not_load_torch():
    code = "import sys, densnet_cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
