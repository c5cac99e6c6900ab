"""Helpers for the serve tests: model files, i-PI runs, a scripted server, i-PI output readers.

Every wait is bounded; every process started is killed and every socket file removed in
``finally`` blocks, also when a test fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from densnet_cli.model.densnet import DenSNet, ModelConfig
from densnet_cli.model.io import save_model
from drivers.ipi_input import ipi_input, write_ipi_xyz

BIN = Path(sys.executable).parent
DENSNET = BIN / "densnet"
SMALL = ModelConfig(density_features=8, density_layers=1, energy_features=8, energy_layers=1,
                    radial_hidden=8, lmax_edge=2)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def make_model(ethanol, path: Path) -> Path:
    """A real, untrained DenSNet model file whose outputs are far from trivial."""
    torch.manual_seed(1)
    model = DenSNet(ethanol.basis, ethanol.sad, SMALL).double().eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(2)
        for p in model.parameters():  # untrained heads start at zero: make them matter
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        model.energy.reference_energy.copy_(torch.tensor([-13.0, -1030.0, -2040.0]))
    save_model(model, path)
    return path


def ethanol_atoms(ethanol, frame: int = 0) -> Atoms:
    """One ethanol frame of the committed dataset as ASE Atoms (Å)."""
    f = ethanol[frame]
    return Atoms(numbers=f.numbers, positions=f.positions)


def socket_name() -> str:
    """A socket name no other test (or leftover file) uses."""
    return f"densnet-test-{uuid.uuid4().hex[:12]}"


HARNESS_OUTPUTS = """
    <trajectory filename='dipole' stride='1' extra_type='dipole'> extras </trajectory>
    <trajectory filename='pos' stride='1' format='bin'> positions </trajectory>
    <trajectory filename='for' stride='1' format='bin'> forces </trajectory>
    <properties filename='out' stride='1'> [ step, bead_potentials ] </properties>"""


def direct_forcefield(pes: Path, model: Path, template: Path) -> str:
    """An i-PI <ffdirect> running the DenSNet PES plugin in-process."""
    return (f"<ffdirect name='densnet' pbc='false'><pes>custom</pes><pes_path>{pes}</pes_path>"
            f"<parameters>{{model: {model}, template: {template}, device: cpu}}</parameters>"
            f"</ffdirect>")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
    if proc is not None:
        proc.wait(timeout=10)


def run_ipi(work: Path, atoms: Atoms, steps: int, beads: int, forcefield: str,
            driver_args: list[str] | None = None, unix_name: str | None = None,
            on_driver_start: Callable[[subprocess.Popen, subprocess.Popen], None] | None = None,
            timeout: float = 60) -> dict:
    """Run i-PI (and ``densnet serve DRIVER_ARGS`` when given) in ``work``; all bounded.

    ``unix_name`` names i-PI's unix socket, whose file is removed afterwards.

    Returns return codes and logs: ``ipi_rc``, ``serve_rc``, ``ipi_log``, ``serve_log``.
    """
    write_ipi_xyz(atoms, work / "init.xyz")
    (work / "input.xml").write_text(ipi_input(steps=steps, beads=beads, forcefield=forcefield,
                                              outputs=HARNESS_OUTPUTS))
    server = driver = None
    try:
        with open(work / "ipi.log", "w") as ipi_log, open(work / "serve.log", "w") as log:
            server = subprocess.Popen([str(BIN / "i-pi"), "input.xml"], cwd=work,
                                      stdout=ipi_log, stderr=subprocess.STDOUT, env=ENV)
            if driver_args is not None:  # serve waits for the socket itself
                driver = subprocess.Popen([str(DENSNET), "serve", *driver_args], cwd=work,
                                          stdout=log, stderr=subprocess.STDOUT, env=ENV)
                if on_driver_start is not None:
                    on_driver_start(server, driver)
            server.wait(timeout=timeout)
            if driver is not None:
                driver.wait(timeout=20)
    finally:
        _stop(driver)
        _stop(server)
        if unix_name is not None:
            Path(f"/tmp/ipi_{unix_name}").unlink(missing_ok=True)
    return {"ipi_rc": server.returncode,
            "serve_rc": None if driver is None else driver.returncode,
            "ipi_log": (work / "ipi.log").read_text(),
            "serve_log": (work / "serve.log").read_text()}


def read_ipi_bin(path: Path) -> np.ndarray:
    """Frames (F, n, 3) of an i-PI binary trajectory, in atomic units, full precision."""
    data = path.read_bytes()
    n = int(np.frombuffer(data, np.int64, 1, 72)[0])
    names = int(np.frombuffer(data, np.int64, 1, 80 + 24 * n)[0])
    fixed = 80 + 24 * n + 8 + 4 * names
    nxt = data.find(data[:72], fixed)  # the (constant) cell opens the next frame
    size = nxt if nxt > 0 else len(data)
    frames = [np.frombuffer(data, np.float64, 3 * n, k + 80).reshape(n, 3)
              for k in range(0, len(data), size)]
    return np.stack(frames)


def read_ipi_extras(path: Path) -> np.ndarray:
    """Dipoles (F, 3) e·Bohr of an i-PI ``extra_type='dipole'`` output file."""
    rows = [line.split() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    return np.array(rows, dtype=float)


@contextmanager
def scripted_server(script: Callable[[socket.socket], None], timeout: float = 20
                    ) -> Iterator[tuple[str, dict]]:
    """A unix-socket server in a thread that runs ``script(conn)`` on the first connection.

    Yields (socket name, outcome) with outcome["error"] set if the script failed.
    """
    name = socket_name()
    path = f"/tmp/ipi_{name}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(timeout)
    outcome: dict = {}

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(timeout)
                script(conn)
        except Exception as exc:  # reported to the test through outcome
            outcome["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield name, outcome
        thread.join(timeout=timeout)
    finally:
        listener.close()
        Path(path).unlink(missing_ok=True)


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` every 50 ms until true or ``timeout`` s; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
