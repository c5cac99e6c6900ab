"""Protocol faults and bad input: each is one clear error, a non-zero exit and no hang."""

from __future__ import annotations

import math
import signal
import socket
import subprocess
from pathlib import Path

import ase.io
import numpy as np
import pytest

from densnet_cli.data.dipole_stream import read_dipole_stream
from densnet_cli.errors import DenSNetError
from drivers.ipi_input import socket_forcefield
from drivers.potential import Evaluation
from drivers.protocol import HDRLEN, header
from drivers.session import NonFiniteError, Session
from tests.conftest import run_cli
from tests.serve_data.harness import (
    DENSNET,
    ENV,
    ethanol_atoms,
    make_model,
    run_ipi,
    scripted_server,
    socket_name,
    wait_for,
)

BOHR = 1.8897261258369282  # Bohr per Å, for building positions in the scripts


@pytest.fixture(scope="module")
def model(ethanol, tmp_path_factory) -> Path:
    return make_model(ethanol, tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="module")
def template(ethanol, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "ethanol.xyz"
    ethanol_atoms(ethanol).write(path)
    return path


def _init(conn: socket.socket, params: bytes = b"") -> None:
    conn.sendall(header("STATUS"))
    assert conn.recv(HDRLEN) == header("NEEDINIT")
    conn.sendall(header("INIT") + np.int32(0).tobytes() + np.int32(len(params)).tobytes()
                 + params)


def _posdata(positions_bohr: np.ndarray) -> bytes:
    cell = np.diag([50.0, 50.0, 50.0]) * BOHR
    return (header("POSDATA") + cell.tobytes() + np.linalg.inv(cell).tobytes()
            + np.int32(len(positions_bohr)).tobytes()
            + np.ascontiguousarray(positions_bohr, dtype=np.float64).tobytes())


def _recv_reply(conn: socket.socket, n_atoms: int) -> bytes:
    size = HDRLEN + 8 + 4 + 24 * n_atoms + 72 + 4
    data = b""
    while len(data) < size:
        data += conn.recv(size - len(data))
    extra = int(np.frombuffer(data[-4:], np.int32)[0])
    while len(data) < size + extra:
        data += conn.recv(size + extra - len(data))
    return data


def _serve(model: Path, template: Path, name: str, tmp: Path, *extra: str):
    return run_cli("serve", model, "--template", template, "--unix", name, "--device", "cpu",
                   "--connect-timeout", "10", "--timeout", "10",
                   "--diagnosis", tmp / "failure.xyz", *extra)


def _one_line_error(stderr: str, *needles: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    for needle in needles:
        assert needle in lines[0], stderr


def test_server_dying_mid_run_is_an_error_of_the_driver_process(ethanol, model, template,
                                                                tmp_path):
    positions = ethanol_atoms(ethanol).positions * BOHR

    def script(conn):
        _init(conn)
        for _ in range(2):  # two good steps, then POSDATA and death
            conn.sendall(_posdata(positions) + header("GETFORCE"))
            _recv_reply(conn, len(positions))
        conn.sendall(_posdata(positions))

    with scripted_server(script) as (name, outcome):
        proc = subprocess.run([str(DENSNET), "serve", str(model), "--template", str(template),
                               "--unix", name, "--device", "cpu", "--timeout", "10"],
                              capture_output=True, text=True, timeout=60, env=ENV)
    assert "error" not in outcome, outcome
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    _one_line_error(proc.stderr, "request 2 in flight", "died mid-run")


def test_malformed_header_is_named(model, template, tmp_path):
    def script(conn):
        _init(conn)
        conn.sendall(b"HELLO WORLD!")
        conn.recv(1)  # until the driver hangs up

    with scripted_server(script) as (name, _):
        code, _, stderr = _serve(model, template, name, tmp_path)
    assert code == 1
    _one_line_error(stderr, "malformed header b'HELLO WORLD!'")


def test_wrong_atom_count_is_refused_and_the_geometry_kept(model, template, tmp_path):
    def script(conn):
        _init(conn)
        conn.sendall(_posdata(np.zeros((5, 3))) + header("GETFORCE"))
        conn.recv(1)

    with scripted_server(script) as (name, _):
        code, _, stderr = _serve(model, template, name, tmp_path)
    assert code == 1
    _one_line_error(stderr, "sent 5 atoms but the template has 9", "failure.xyz")
    assert len(ase.io.read(tmp_path / "failure.xyz")) == 5


def test_non_finite_positions_are_refused_and_the_geometry_kept(ethanol, model, template,
                                                                tmp_path):
    positions = ethanol_atoms(ethanol).positions * BOHR
    positions[3, 1] = np.nan

    def script(conn):
        _init(conn)
        conn.sendall(_posdata(positions) + header("GETFORCE"))
        try:
            reply = conn.recv(HDRLEN)
        except ConnectionResetError:  # the driver hung up with GETFORCE unread
            reply = b""
        assert reply == b""  # no FORCEREADY

    with scripted_server(script) as (name, outcome):
        code, _, stderr = _serve(model, template, name, tmp_path)
    assert "error" not in outcome, outcome
    assert code == 1
    _one_line_error(stderr, "non-finite positions", "failure.xyz")
    assert (tmp_path / "failure.xyz").is_file()


def test_batch_size_beyond_max_batch_is_refused(model, template, tmp_path):
    def script(conn):
        _init(conn, b"batch_size:8")
        conn.recv(1)

    with scripted_server(script) as (name, _):
        code, _, stderr = _serve(model, template, name, tmp_path, "--max-batch", "4")
    assert code == 1
    _one_line_error(stderr, "batch_size 8", "--max-batch")


def test_missing_server_fails_after_the_connect_timeout(model, template, tmp_path):
    code, _, stderr = run_cli("serve", model, "--template", template, "--unix", socket_name(),
                              "--connect-timeout", "0.3")
    assert code == 1
    _one_line_error(stderr, "could not connect", "within 0.3 s")


def test_template_with_unknown_element_is_refused_before_connecting(model, tmp_path):
    path = tmp_path / "salt.xyz"
    path.write_text("2\n\nNa 0 0 0\nCl 0 0 2.4\n")
    code, _, stderr = run_cli("serve", model, "--template", path, "--unix", socket_name(),
                              "--connect-timeout", "30")
    assert code == 1
    _one_line_error(stderr, "Cl, Na", "salt.xyz")


class NaNPotential:
    """Harmonic wells whose energy turns NaN when an atom leaves the unit sphere."""

    def __call__(self, positions: np.ndarray) -> Evaluation:
        r2 = (positions**2).sum(axis=(1, 2))
        energy = np.where(np.abs(positions).max(axis=(1, 2)) > 1.0, math.nan, 0.5 * r2)
        return Evaluation(energy=energy, forces=-positions, dipole=positions.sum(axis=1))


def test_non_finite_result_is_never_sent():
    kept: list[str] = []
    server, client = socket.socketpair()
    with server, client:
        server.settimeout(10)
        session = Session(client, NaNPotential(), 2, max_batch=1,
                          diagnose=lambda pos, why: kept.append(why) or "kept.xyz")
        server.sendall(header("INIT") + np.int32(0).tobytes() + np.int32(0).tobytes()
                       + _posdata(np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]))
                       + header("GETFORCE"))
        with pytest.raises(NonFiniteError, match=r"non-finite energy of structure 0.*kept\.xyz"):
            session.run()
        client.shutdown(socket.SHUT_WR)
        assert server.recv(HDRLEN) == b""  # nothing was sent
    assert kept == ["non-finite energy of structure 0"]


def test_idle_timeout_bounds_the_wait_for_a_frozen_server():
    server, client = socket.socketpair()
    with server, client:
        session = Session(client, NaNPotential(), 2, max_batch=1,
                          diagnose=lambda pos, why: "unused", idle_timeout=0.2)
        with pytest.raises(DenSNetError, match=r"no message from the server for 0\.2 s"):
            session.run()


def test_dipole_stream_is_readable_after_the_driver_is_killed(ethanol, model, tmp_path):
    name = socket_name()
    stream = tmp_path / "dipoles.txt"
    args = [str(model), "--template", "init.xyz", "--unix", name,
            "--device", "cpu", "--dipoles", str(stream), "--connect-timeout", "120"]
    streaming = []

    def kill_when_streaming(server: subprocess.Popen, driver: subprocess.Popen) -> None:
        # Generous bounds: on a loaded machine i-PI alone can take tens of seconds to start.
        streaming.append(wait_for(
            lambda: stream.is_file() and stream.read_text().count("\n") > 9, 120))
        driver.send_signal(signal.SIGKILL)
        server.kill()  # i-PI would wait for a new driver

    result = run_ipi(tmp_path, ethanol_atoms(ethanol), 1000, 2, socket_forcefield(name), args,
                     unix_name=name, on_driver_start=kill_when_streaming, timeout=150)
    assert streaming == [True], result["serve_log"][-2000:]
    assert result["serve_rc"] == -signal.SIGKILL, result["serve_log"][-2000:]
    data = read_dipole_stream(stream)
    assert data.dipoles.shape[0] == 2 and data.dipoles.shape[1] >= 2
