"""A real i-PI run (path integrals, 2 beads) whose dipole extras files ``spectrum`` reads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import ase.units
import numpy as np
import pytest

from densnet_cli.spectrum.readers import read_inputs
from densnet_cli.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV, SPEED_OF_LIGHT_CM_PER_FS
from drivers.ipi_input import ipi_input, socket_forcefield
from tests.conftest import run_densnet

PES = Path(__file__).parent / "spectrum_data" / "harmonic_dipole_pes.py"
K_AU, Q_E = 0.05, 0.5  # Hartree/Bohr², e
MASS_AMU = 1.00794  # H, i-PI's mass for the label H
N_STEPS, DT_FS = 1000, 0.5
BIN = Path(sys.executable).parent

OUTPUTS = """<trajectory filename='dipole' stride='1' extra_type='dipole'> extras </trajectory>
    <trajectory filename='pos' stride='1' format='xyz'> positions{angstrom} </trajectory>"""
INIT_XYZ = """1
# CELL(abcABC): 50.0 50.0 50.0 90.0 90.0 90.0 cell{angstrom} positions{angstrom}
H 0.10 0.05 -0.08
"""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ipi_run(tmp_path_factory) -> Path:
    """Run i-PI + the python driver; returns the run directory with sim.dipole_{0,1}."""
    work = tmp_path_factory.mktemp("ipi")
    socket = f"densnet-spt-{uuid.uuid4().hex[:10]}"
    (work / "input.xml").write_text(ipi_input(
        steps=N_STEPS, beads=2, timestep_fs=DT_FS, forcefield=socket_forcefield(socket),
        outputs=OUTPUTS, fixcom=False))
    (work / "init.xyz").write_text(INIT_XYZ)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    socket_file = Path(f"/tmp/ipi_{socket}")
    with open(work / "ipi.log", "w") as log:
        server = subprocess.Popen([str(BIN / "i-pi"), "input.xml"], cwd=work, stdout=log,
                                  stderr=subprocess.STDOUT, env=env)
        driver = None
        try:
            deadline = time.monotonic() + 30
            while not socket_file.exists():
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"i-PI did not open its socket: {(work / 'ipi.log').read_text()}")
                time.sleep(0.1)
            driver = subprocess.Popen(
                [str(BIN / "i-pi-py_driver"), "-u", "-a", socket, "-m", "custom",
                 "-P", str(PES), "-o", f"{K_AU},{Q_E}"],
                cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env)
            server.wait(timeout=60)
            driver.wait(timeout=10)
        finally:
            for proc in (driver, server):
                if proc is not None:
                    _stop(proc)
            socket_file.unlink(missing_ok=True)
    assert server.returncode == 0, (work / "ipi.log").read_text()
    return work


def _positions(path: Path) -> np.ndarray:
    """Positions (Å) of the single atom per frame of an i-PI xyz trajectory."""
    lines = path.read_text().splitlines()
    return np.array([[float(v) for v in line.split()[1:4]] for line in lines[2::3]])


def test_ipi_extras_are_read_per_bead_in_e_angstrom(ipi_run):
    (series,) = read_inputs([ipi_run / "sim.dipole_1", ipi_run / "sim.dipole_0"], dt_fs=DT_FS)
    assert series.n_beads == 2 and series.dt_fs == DT_FS
    for bead in range(2):
        positions = _positions(ipi_run / f"sim.pos_{bead}.xyz")
        np.testing.assert_allclose(series.dipoles[bead], Q_E * positions, atol=1e-6)


def test_ipi_centroid_spectrum_peaks_at_the_harmonic_frequency(ipi_run, tmp_path):
    out = tmp_path / "ipi.csv"
    result = run_densnet("spectrum", ipi_run / "sim.dipole_0", ipi_run / "sim.dipole_1",
                         "--dt", DT_FS, "--max-lag", 150, "-o", out, timeout=60)
    assert result.returncode == 0, result.stderr
    peaks = np.loadtxt(tmp_path / "ipi.peaks.csv", delimiter=",", skiprows=1, ndmin=2)
    k = K_AU * HARTREE_TO_EV / BOHR_TO_ANGSTROM**2  # eV/Å²
    omega = np.sqrt(k / MASS_AMU) * ase.units.fs  # rad/fs
    nu0 = omega / (2 * np.pi * SPEED_OF_LIGHT_CM_PER_FS)  # the centroid's frequency
    assert peaks.shape[0] == 1
    assert abs(peaks[0, 0] - nu0) < 0.01 * nu0
