"""``densnet serve`` driven by a real ASE SocketIOCalculator (the server side)."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import ase.units
import numpy as np
import pytest
from ase.calculators.socketio import SocketIOCalculator
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from densnet_cli.calculator import DenSNetCalculator
from densnet_cli.data.dipole_stream import read_dipole_stream
from densnet_cli.units import BOHR_TO_ANGSTROM
from tests.serve_data.harness import DENSNET, ENV, ethanol_atoms, make_model, socket_name

TIMEOUT = 30  # s, for every socket wait and the driver process


@pytest.fixture(scope="module")
def model(ethanol, tmp_path_factory) -> Path:
    return make_model(ethanol, tmp_path_factory.mktemp("model") / "model.pt")


def _drive(model: Path, template: Path, run, tmp: Path, inet: bool = False) -> dict:
    """Run ``run(calc)`` with a SocketIOCalculator served by ``densnet serve``."""
    if inet:
        with socket.socket() as probe:  # a free port
            probe.bind(("localhost", 0))
            port = probe.getsockname()[1]
        server_kw: dict = {"port": port}
        address = ["--host", "localhost", "--port", str(port)]
    else:
        name = socket_name()
        server_kw = {"unixsocket": name}
        address = ["--unix", name]
    args = [str(DENSNET), "serve", str(model), "--template", str(template), *address,
            "--device", "cpu", "--dipoles", str(tmp / "dipoles.txt"),
            "--connect-timeout", str(TIMEOUT), "--timeout", str(TIMEOUT)]
    proc = None
    try:
        with SocketIOCalculator(timeout=TIMEOUT, **server_kw) as calc:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, env=ENV)
            out = run(calc)
        stdout, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return {"rc": proc.returncode, "log": stdout, **out}


def _md_through_socket(ethanol, model: Path, tmp: Path, inet: bool = False) -> dict:
    atoms = ethanol_atoms(ethanol)
    template = tmp / "template.xyz"
    atoms.write(template)
    reference = DenSNetCalculator(model, device="cpu")

    def run(calc) -> dict:
        atoms.calc = calc
        rows = []
        dyn = VelocityVerlet(atoms, timestep=0.5 * ase.units.fs)

        def compare() -> None:
            direct = atoms.copy()
            direct.calc = reference
            rows.append({"e_socket": atoms.get_potential_energy(),
                         "e_direct": direct.get_potential_energy(),
                         "f_socket": atoms.get_forces(), "f_direct": direct.get_forces(),
                         "extras": bytes(calc.results["morebytes"]),
                         "mu_direct": direct.get_dipole_moment()})

        dyn.attach(compare, interval=1)
        dyn.run(4)
        return {"rows": rows}

    return {**_drive(model, template, run, tmp, inet), "stream": tmp / "dipoles.txt"}


@pytest.fixture(scope="module")
def md(ethanol, model, tmp_path_factory) -> dict:
    return _md_through_socket(ethanol, model, tmp_path_factory.mktemp("md"))


def test_driver_ends_cleanly_when_ase_closes_the_socket(md):
    assert md["rc"] == 0, md["log"]
    assert "ended by EOF" in md["log"]


def test_md_energies_and_forces_match_the_in_process_calculator(md):
    assert len(md["rows"]) == 5
    for row in md["rows"]:
        assert abs(row["e_socket"] - row["e_direct"]) < 1e-10 * abs(row["e_direct"])
        np.testing.assert_allclose(row["f_socket"], row["f_direct"], rtol=0, atol=1e-10)


def test_extras_carry_the_dipole_in_e_bohr(md):
    for row in md["rows"]:
        mu = np.array(json.loads(row["extras"].decode())["dipole"]) * BOHR_TO_ANGSTROM
        np.testing.assert_allclose(mu, row["mu_direct"], rtol=0, atol=1e-12)


def test_dipole_stream_has_one_record_per_evaluation(md):
    stream = read_dipole_stream(md["stream"])
    assert stream.dipoles.shape == (1, 5, 3)
    np.testing.assert_allclose(stream.dipoles[0],
                               [row["mu_direct"] for row in md["rows"]], atol=1e-9)
    assert np.isnan(stream.times_fs).all()  # no --timestep given


def test_bfgs_over_tcp_matches_the_in_process_optimisation(ethanol, model, tmp_path):
    atoms = ethanol_atoms(ethanol)
    template = tmp_path / "template.xyz"
    atoms.write(template)
    direct = atoms.copy()
    direct.calc = DenSNetCalculator(model, device="cpu")
    BFGS(direct, logfile=None).run(fmax=1e-3, steps=3)

    def run(calc) -> dict:
        atoms.calc = calc
        BFGS(atoms, logfile=None).run(fmax=1e-3, steps=3)
        return {"positions": atoms.positions.copy()}

    out = _drive(model, template, run, tmp_path, inet=True)
    assert out["rc"] == 0, out["log"]
    np.testing.assert_allclose(out["positions"], direct.positions, rtol=0, atol=1e-10)
