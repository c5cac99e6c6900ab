"""``densnet serve`` under a real i-PI: NVE, PIMD (4 beads), batched PIMD, and the PES plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densnet_cli.calculator import ModelEvaluator
from densnet_cli.data.dipole_stream import read_dipole_stream
from densnet_cli.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV
from drivers.ipi_input import socket_forcefield
from tests.serve_data.harness import (
    direct_forcefield,
    ethanol_atoms,
    make_model,
    read_ipi_bin,
    read_ipi_extras,
    run_ipi,
    socket_name,
)

PES = Path(__file__).resolve().parents[1] / "drivers" / "ipi_pes_densnet.py"
STEPS = {"nve": 3, "pimd": 2}
BEADS = {"nve": 1, "pimd": 4}

@pytest.fixture(scope="module")
def model(ethanol, tmp_path_factory) -> Path:
    return make_model(ethanol, tmp_path_factory.mktemp("model") / "model.pt")


def _serve_run(ethanol, model: Path, work: Path, kind: str, batch_size: int = 1) -> dict:
    name = socket_name()
    args = [str(model), "--template", "init.xyz", "--unix", name, "--device", "cpu",
            "--dipoles", "dipoles.txt", "--timestep", "0.5", "--require-exit",
            "--connect-timeout", "30", "--timeout", "30"]
    return run_ipi(work, ethanol_atoms(ethanol), STEPS[kind], BEADS[kind],
                   socket_forcefield(name, batch_size), args, unix_name=name)


@pytest.fixture(scope="module", params=["nve", "pimd"])
def ipi_run(request, ethanol, model, tmp_path_factory) -> tuple[str, Path, dict]:
    work = tmp_path_factory.mktemp(request.param)
    return request.param, work, _serve_run(ethanol, model, work, request.param)


@pytest.fixture(scope="module")
def evaluator(model) -> ModelEvaluator:
    return ModelEvaluator(model, device="cpu")


def test_ipi_and_driver_exit_cleanly(ipi_run):
    _, _, result = ipi_run
    assert result["ipi_rc"] == 0, result["ipi_log"]
    assert result["serve_rc"] == 0, result["serve_log"]
    assert "ended by EXIT" in result["serve_log"]


def test_forces_and_energies_equal_the_in_process_model(ipi_run, ethanol, evaluator):
    kind, work, _ = ipi_run
    numbers = ethanol_atoms(ethanol).numbers
    potentials = np.loadtxt(work / "sim.out", ndmin=2)[:, 1:]  # (steps+1, beads) Hartree
    for bead in range(BEADS[kind]):
        positions = read_ipi_bin(work / f"sim.pos_{bead}.bin") * BOHR_TO_ANGSTROM
        forces = read_ipi_bin(work / f"sim.for_{bead}.bin") * (HARTREE_TO_EV / BOHR_TO_ANGSTROM)
        p = evaluator(numbers, positions)
        assert len(positions) == STEPS[kind] + 1
        np.testing.assert_allclose(forces, p.forces, rtol=0, atol=1e-10)
        np.testing.assert_allclose(potentials[:, bead] * HARTREE_TO_EV, p.energy, rtol=1e-13)


def test_dipole_extras_are_written_for_every_bead_in_e_bohr(ipi_run, ethanol, evaluator):
    kind, work, _ = ipi_run
    numbers = ethanol_atoms(ethanol).numbers
    for bead in range(BEADS[kind]):
        extras = read_ipi_extras(work / f"sim.dipole_{bead}")
        positions = read_ipi_bin(work / f"sim.pos_{bead}.bin") * BOHR_TO_ANGSTROM
        expected = evaluator(numbers, positions).dipole / BOHR_TO_ANGSTROM
        np.testing.assert_allclose(extras, expected, rtol=0, atol=1e-12)


def test_dipole_stream_is_complete_and_matches_the_extras(ipi_run):
    kind, work, _ = ipi_run
    stream = read_dipole_stream(work / "dipoles.txt")
    assert stream.warnings == []
    assert stream.dipoles.shape == (BEADS[kind], STEPS[kind] + 1, 3)
    np.testing.assert_array_equal(stream.steps, np.arange(STEPS[kind] + 1))
    np.testing.assert_allclose(stream.times_fs, 0.5 * stream.steps)
    for bead in range(BEADS[kind]):
        extras = read_ipi_extras(work / f"sim.dipole_{bead}") * BOHR_TO_ANGSTROM
        np.testing.assert_allclose(stream.dipoles[bead], extras, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def pimd_reference(ipi_run) -> np.ndarray:
    """Bead potentials of the unbatched 4-bead run (skips for the NVE parameter)."""
    kind, work, _ = ipi_run
    if kind != "pimd":
        pytest.skip("compared with the PIMD run only")
    return np.loadtxt(work / "sim.out", ndmin=2)


def test_batched_pimd_follows_the_same_trajectory(pimd_reference, ethanol, model,
                                                  tmp_path):
    result = _serve_run(ethanol, model, tmp_path, "pimd", batch_size=4)
    assert result["serve_rc"] == 0, result["serve_log"]
    np.testing.assert_allclose(np.loadtxt(tmp_path / "sim.out", ndmin=2), pimd_reference,
                               rtol=1e-11)


def test_pes_plugin_in_ffdirect_follows_the_same_trajectory(pimd_reference, ethanol, model,
                                                            tmp_path):
    atoms = ethanol_atoms(ethanol)
    template = tmp_path / "template.xyz"
    atoms.write(template)
    result = run_ipi(tmp_path, atoms, STEPS["pimd"], BEADS["pimd"],
                     direct_forcefield(PES, model, template))
    assert result["ipi_rc"] == 0, result["ipi_log"]
    np.testing.assert_allclose(np.loadtxt(tmp_path / "sim.out", ndmin=2), pimd_reference,
                               rtol=1e-11)
