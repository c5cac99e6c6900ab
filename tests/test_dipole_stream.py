"""The dipole stream: what the writer writes, the reader returns; crashes lose nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densnet_cli.data.dipole_stream import MAGIC, DipoleStreamWriter, read_dipole_stream
from densnet_cli.errors import InputError


def _write(path: Path, n_steps: int, n_beads: int, dt: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(0)
    dipoles = rng.normal(size=(n_beads, n_steps, 3))
    with DipoleStreamWriter(path, {"timestep_fs": dt, "source": "test"}) as w:
        for step in range(n_steps):
            for bead in range(n_beads):
                w.write(step, bead, step * dt, dipoles[bead, step])
    return dipoles


def test_round_trip_returns_per_bead_series(tmp_path):
    path = tmp_path / "d.dipoles"
    dipoles = _write(path, 7, 3)
    stream = read_dipole_stream(path)
    np.testing.assert_allclose(stream.dipoles, dipoles, rtol=1e-10)
    np.testing.assert_array_equal(stream.steps, np.arange(7))
    np.testing.assert_allclose(stream.times_fs, 0.5 * np.arange(7))
    assert stream.timestep_fs == 0.5 and stream.header["source"] == "test"
    assert not stream.warnings


def test_every_line_is_on_disk_before_close(tmp_path):
    path = tmp_path / "d.dipoles"
    w = DipoleStreamWriter(path)
    w.write(0, 0, float("nan"), np.ones(3))
    text = path.read_text()  # read while the writer is still open: a crash here loses nothing
    w.close()
    assert text.startswith(MAGIC + "\n") and text.rstrip().endswith("1.0000000000e+00")


def test_unknown_time_is_nan(tmp_path):
    path = tmp_path / "d.dipoles"
    with DipoleStreamWriter(path) as w:
        w.write(0, 0, float("nan"), np.zeros(3))
    assert np.isnan(read_dipole_stream(path).times_fs[0])


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "d.dipoles"
    _write(path, 5, 1)
    with open(path, "a") as f:
        f.write("5 0 2.5 0.1 0.2")  # killed mid-line
    stream = read_dipole_stream(path)
    assert stream.dipoles.shape == (1, 5, 3)
    assert len(stream.warnings) == 1 and ":" in stream.warnings[0]


def test_incomplete_last_step_of_a_path_integral_is_dropped(tmp_path):
    path = tmp_path / "d.dipoles"
    _write(path, 4, 2)
    with open(path, "a") as f:
        f.write("4 0 2.0 0.1 0.2 0.3\n")  # bead 1 of step 4 never written
    stream = read_dipole_stream(path)
    assert stream.dipoles.shape == (2, 4, 3) and "incomplete step 4" in stream.warnings[0]


def test_malformed_middle_line_names_the_line(tmp_path):
    path = tmp_path / "d.dipoles"
    _write(path, 5, 1)
    lines = path.read_text().splitlines()
    lines[6] = "3 0 1.5 0.1 oops 0.3"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"d\.dipoles:7: malformed"):
        read_dipole_stream(path)


def test_missing_bead_in_a_step_is_an_error(tmp_path):
    path = tmp_path / "d.dipoles"
    _write(path, 3, 2)
    lines = path.read_text().splitlines()
    del lines[-3]  # bead 1 of step 1
    lines.append("3 1 1.5 0 0 0")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="exactly once"):
        read_dipole_stream(path)


def test_other_files_are_rejected(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("0 0 0 1 2 3\n")
    with pytest.raises(InputError, match="not a dipole stream"):
        read_dipole_stream(path)
