"""Every input format gives the same series; bad input gives one clear error and no files."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from densnet_cli.data.dipole_stream import DipoleStreamWriter
from densnet_cli.errors import InputError
from densnet_cli.spectrum.readers import read_inputs
from densnet_cli.units import BOHR_TO_ANGSTROM, DEBYE_TO_E_ANGSTROM
from tests.conftest import run_cli

DT = 0.5
N = 400


@pytest.fixture
def dipoles() -> np.ndarray:
    """Two lines (1200 and 3000 cm⁻¹) in e·Å, (N, 3)."""
    t = np.arange(N) * DT
    w1, w2 = 2 * np.pi * 2.99792458e-5 * np.array([1200.0, 3000.0])
    return np.column_stack([0.05 * np.cos(w1 * t), 0.02 * np.sin(w2 * t), 0.3 + 0 * t])


def _frames(dipoles: np.ndarray) -> list[Atoms]:
    frames = []
    for mu in dipoles:
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
        atoms.calc = SinglePointCalculator(atoms, energy=0.0, dipole=mu)
        frames.append(atoms)
    return frames


def test_dipole_stream(tmp_path, dipoles):
    path = tmp_path / "md.dipoles"
    with DipoleStreamWriter(path) as w:
        for step, mu in enumerate(dipoles):
            w.write(10 + 2 * step, 0, (10 + 2 * step) * 0.25, mu)
    (series,) = read_inputs([path], dt_fs=None)
    np.testing.assert_allclose(series.dipoles[0], dipoles, atol=1e-10)
    assert series.dt_fs == pytest.approx(DT)


def test_dipole_stream_without_times_uses_steps_and_dt(tmp_path, dipoles):
    path = tmp_path / "md.dipoles"
    with DipoleStreamWriter(path) as w:
        for step, mu in enumerate(dipoles):
            w.write(5 * step, 0, float("nan"), mu)
    (series,) = read_inputs([path], dt_fs=0.1)
    assert series.dt_fs == pytest.approx(DT)  # stride 5 × 0.1 fs


@pytest.mark.parametrize("name", ["md.traj", "md.xyz"])
def test_ase_trajectory_and_extxyz(tmp_path, dipoles, name):
    path = tmp_path / name
    ase.io.write(path, _frames(dipoles))
    (series,) = read_inputs([path], dt_fs=DT)
    np.testing.assert_allclose(series.dipoles[0], dipoles, atol=1e-8)


def test_text_with_time_column(tmp_path, dipoles):
    path = tmp_path / "mu.dat"
    np.savetxt(path, np.column_stack([np.arange(N) * DT, dipoles]), header="t mx my mz")
    (series,) = read_inputs([path], dt_fs=None)
    np.testing.assert_allclose(series.dipoles[0], dipoles, atol=1e-12)
    assert series.dt_fs == pytest.approx(DT)


def test_csv_with_header_in_debye(tmp_path, dipoles):
    path = tmp_path / "mu.csv"
    np.savetxt(path, dipoles / DEBYE_TO_E_ANGSTROM, delimiter=",", header="mx,my,mz",
               comments="")
    (series,) = read_inputs([path], dt_fs=DT, dipole_unit="debye")
    np.testing.assert_allclose(series.dipoles[0], dipoles, atol=1e-12)


def test_npy_in_atomic_units(tmp_path, dipoles):
    path = tmp_path / "mu.npy"
    np.save(path, dipoles / BOHR_TO_ANGSTROM)
    (series,) = read_inputs([path], dt_fs=DT, dipole_unit="e*bohr")
    np.testing.assert_allclose(series.dipoles[0], dipoles, atol=1e-12)


def test_cli_writes_header_and_columns(tmp_path, dipoles):
    src = tmp_path / "mu.npy"
    np.save(src, dipoles)
    out = tmp_path / "s.csv"
    code, stdout, _ = run_cli("spectrum", src, "--dt", DT, "-o", out, "--plot",
                              tmp_path / "s.png", "--max-lag", 80)
    assert code == 0, stdout
    assert out.read_text().splitlines()[0] == "wavenumber_cm1,intensity,intensity_stderr"
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert np.all(np.diff(table[:, 0]) > 0) and table[:, 1].max() == pytest.approx(1.0)
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert (tmp_path / "s.peaks.csv").read_text().startswith("position_cm1,height,integrated")


def _error(tmp_path, *args) -> str:
    """Run the CLI expecting a user error: one line, exit 1, no output files left behind."""
    before = set(tmp_path.iterdir())
    code, _, stderr = run_cli("spectrum", *args, "-o", tmp_path / "out.csv", "--plot",
                                   tmp_path / "out.png")
    assert code == 1
    assert stderr.startswith("Error: ") and len(stderr.strip().splitlines()) == 1
    assert set(tmp_path.iterdir()) == before
    return stderr


def test_nan_is_reported_with_its_line(tmp_path, dipoles):
    path = tmp_path / "mu.dat"
    dipoles[17, 1] = np.nan
    np.savetxt(path, dipoles)
    assert "line 18 has a non-finite dipole" in _error(tmp_path, path, "--dt", DT)


def test_missing_frame_is_a_non_uniform_time_step(tmp_path, dipoles):
    path = tmp_path / "mu.dat"
    times = np.delete(np.arange(N) * DT, 100)
    np.savetxt(path, np.column_stack([times, np.delete(dipoles, 100, axis=0)]))
    assert "non-uniform time step: line 101" in _error(tmp_path, path)


def test_missing_time_step_asks_for_dt(tmp_path, dipoles):
    path = tmp_path / "mu.npy"
    np.save(path, dipoles)
    assert "pass --dt" in _error(tmp_path, path)


def test_series_too_short_for_the_requested_resolution(tmp_path, dipoles):
    path = tmp_path / "mu.npy"
    np.save(path, dipoles)
    message = _error(tmp_path, path, "--dt", DT, "--max-lag", 500)
    assert "too short for the requested resolution" in message


def test_files_with_different_time_steps_are_mismatched(tmp_path, dipoles):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, np.column_stack([np.arange(N) * DT, dipoles]))
    np.save(b, np.column_stack([np.arange(N) * 1.0, dipoles]))
    assert "mismatched files" in _error(tmp_path, a, b)


def test_dt_contradicting_the_file_times(tmp_path, dipoles):
    path = tmp_path / "mu.dat"
    np.savetxt(path, np.column_stack([np.arange(N) * DT, dipoles]))
    assert "--dt is 1 fs" in _error(tmp_path, path, "--dt", 1.0)


def test_missing_input_file(tmp_path):
    assert "does not exist" in _error(tmp_path, tmp_path / "nope.dat", "--dt", DT)


def test_corrections_other_than_harmonic_need_a_temperature(tmp_path, dipoles):
    path = tmp_path / "mu.npy"
    np.save(path, dipoles)
    assert "needs --temperature" in _error(tmp_path, path, "--dt", DT, "--correction", "kubo")


def test_mismatched_ipi_bead_files(tmp_path):
    for bead, n in ((0, 40), (1, 39)):
        lines = [f" #EXTRAS(dipole)# Step: {s:10d} \n 0.1 0.2 {0.01 * s}" for s in range(n)]
        (tmp_path / f"sim.dipole_{bead}").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="mismatched bead files"):
        read_inputs([tmp_path / "sim.dipole_0", tmp_path / "sim.dipole_1"], dt_fs=DT)
