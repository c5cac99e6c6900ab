"""The driver's side of one i-PI connection: a header-driven state machine.

States and what moves between them (answers to ``STATUS`` in capitals)::

    NEEDINIT ──INIT──► READY ──POSDATA (evaluate)──► HAVEDATA ──GETFORCE (reply)──► NEEDINIT
                                                                                    (or READY)

* i-PI 3.3 fuses POSDATA and GETFORCE into one send, without STATUS in between; ASE's
  SocketIOCalculator asks STATUS before each of them.  Both work, since every message is
  handled by its header alone.
* With ``tag_beads`` (default) the driver asks for INIT again after every reply; i-PI then
  sends the request (bead) index with each request, which numbers the dipole stream.  ASE
  sends bead 0.  The cost is one more small round trip per request.
* ``EXIT`` ends the run; so does EOF between requests (ASE just closes its socket), unless
  ``require_exit``.  EOF inside a message or while a request is in flight is an error.
* Every POSDATA is checked (atom count, finite numbers); every result is checked before it
  is sent: NaN/Inf never goes on the wire.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from densnet_cli.errors import DenSNetError
from densnet_cli.units import bohr_to_angstrom
from drivers.potential import Evaluation, Potential, to_atomic_units
from drivers.protocol import (
    PosData,
    ProtocolError,
    ServerClosed,
    header,
    pack_forceready,
    recv_header,
    recv_init,
    recv_posdata,
)

PAYLOAD_TIMEOUT_S = 30.0  # once a header has arrived, its body must follow within this


class NonFiniteError(DenSNetError):
    """NaN/Inf in the positions received or in the results; nothing was sent."""


# called with (positions (B, n, 3) Å, reason) when a geometry must be kept for diagnosis;
# returns where it was written
Diagnose = Callable[[np.ndarray, str], str]
# called once per structure evaluated: (step, bead, dipole (3,) e·Å)
Record = Callable[[int, int, np.ndarray], None]


@dataclass
class SessionStats:
    """Counts and times of one session (wall-clock seconds)."""

    requests: int = 0  # answered or in flight; request k (0-based) is the (k+1)-th POSDATA
    structures: int = 0
    model_s: float = 0.0  # inside the potential
    first_posdata: float | None = None  # time.perf_counter() of the first POSDATA
    last_reply: float | None = None  # ... and of the last reply sent
    steps: dict[int, int] = field(default_factory=dict)  # bead → structures seen so far

    def as_dict(self) -> dict[str, float | int | None]:
        """Plain data, with per-request averages in ms."""
        span = (self.last_reply - self.first_posdata
                if self.first_posdata is not None and self.last_reply is not None else 0.0)
        out: dict[str, float | int | None] = {
            "requests": self.requests, "structures": self.structures, "wall_s": span,
            "model_s": self.model_s, "wall_ms_per_request": None,
            "model_ms_per_request": None, "overhead_ms_per_request": None}
        if self.requests:
            per = 1e3 / self.requests
            out.update(wall_ms_per_request=span * per, model_ms_per_request=self.model_s * per,
                       overhead_ms_per_request=(span - self.model_s) * per)
        return out


class Session:
    """Serve one connection until EXIT or EOF.

    Args:
        sock: a connected socket.
        potential: what to evaluate (ASE units).
        n_atoms: atoms every POSDATA must carry (those of the template).
        max_batch: the largest i-PI ``batch_size`` accepted.
        diagnose: keeps an offending geometry; its return value goes into the error message.
        record: receives each structure's dipole with its step and bead (optional).
        tag_beads: ask for INIT before every request, to learn its bead index.
        require_exit: EOF without EXIT is an error (for i-PI, which always sends EXIT).
        idle_timeout: seconds to wait for the next request (None: forever).
    """

    def __init__(self, sock: socket.socket, potential: Potential, n_atoms: int, *,
                 max_batch: int, diagnose: Diagnose, record: Record | None = None,
                 tag_beads: bool = True, require_exit: bool = False,
                 idle_timeout: float | None = None) -> None:
        self.sock = sock
        self.potential = potential
        self.n_atoms = n_atoms
        self.max_batch = max_batch
        self.diagnose = diagnose
        self.record = record
        self.tag_beads = tag_beads
        self.require_exit = require_exit
        self.idle_timeout = idle_timeout
        self.state = "NEEDINIT"
        self.batch_size = 1
        self.bead = 0
        self.stats = SessionStats()
        self._reply = b""

    def run(self) -> str:
        """Handle messages until the server ends the run; returns ``"EXIT"`` or ``"EOF"``.

        Raises:
            ProtocolError, ServerClosed, NonFiniteError, DenSNetError: the run cannot go on.
        """
        while True:
            self.sock.settimeout(self.idle_timeout)
            try:
                name = recv_header(self.sock)
            except ServerClosed as exc:
                if exc.mid_message or self.state == "HAVEDATA" or self.require_exit:
                    raise self._closed_error(exc) from None
                return "EOF"
            except TimeoutError:
                raise DenSNetError(f"no message from the server for {self.idle_timeout:g} s "
                                   f"(--timeout); giving up") from None
            if name == "EXIT":
                return "EXIT"
            self.sock.settimeout(PAYLOAD_TIMEOUT_S)
            try:
                self._handle(name)
            except TimeoutError:
                raise ProtocolError(f"the body of a {name} message did not arrive within "
                                    f"{PAYLOAD_TIMEOUT_S:g} s") from None
            except ServerClosed as exc:
                raise self._closed_error(exc) from None
            except (BrokenPipeError, ConnectionResetError):
                raise ServerClosed(f"the server closed the connection while the driver was "
                                   f"answering {name} (after request "
                                   f"{self.stats.requests - 1})",
                                   mid_message=True) from None

    def _closed_error(self, exc: ServerClosed) -> ServerClosed:
        if self.state == "HAVEDATA":
            why = (f"with request {self.stats.requests - 1} in flight (positions received, forces "
                   f"not collected): the server died mid-run")
        elif exc.mid_message:
            why = str(exc).removeprefix("the server closed the connection ")
        else:
            why = "without EXIT (--require-exit): did the server crash?"
        return ServerClosed(f"the server closed the connection {why}", mid_message=True)

    def _handle(self, name: str) -> None:
        if name == "STATUS":
            self.sock.sendall(header(self.state))
        elif name == "INIT":
            self._init()
        elif name == "POSDATA":
            if self.state == "HAVEDATA":
                raise ProtocolError("POSDATA arrived before the previous results were "
                                    "collected with GETFORCE")
            self._evaluate(recv_posdata(self.sock, self.batch_size))
            self.state = "HAVEDATA"
        elif name == "GETFORCE":
            if self.state != "HAVEDATA":
                raise ProtocolError(f"GETFORCE arrived in state {self.state}, before any "
                                    f"POSDATA")
            self.sock.sendall(self._reply)
            self.stats.last_reply = time.perf_counter()
            self.state = "NEEDINIT" if self.tag_beads else "READY"

    def _init(self) -> None:
        init = recv_init(self.sock)
        if self.state == "HAVEDATA":
            raise ProtocolError("INIT arrived before the previous results were collected")
        if not 1 <= init.batch_size <= self.max_batch:
            raise ProtocolError(f"the server asks for batched requests of batch_size "
                                f"{init.batch_size}, but this driver accepts 1 to "
                                f"{self.max_batch} structures per request (--max-batch)")
        self.batch_size = init.batch_size
        self.bead = init.request_id
        self.state = "READY"

    def _evaluate(self, data: PosData) -> None:
        stats = self.stats
        if stats.first_posdata is None:
            stats.first_posdata = time.perf_counter()
        n = data.positions.shape[1]
        positions = bohr_to_angstrom(data.positions)
        if n != self.n_atoms:
            path = self.diagnose(positions, f"server sent {n} atoms")
            raise ProtocolError(f"the server sent {n} atoms but the template has "
                                f"{self.n_atoms} (geometry written to {path}); --template "
                                f"must hold the server's atoms in the server's order")
        if not (np.isfinite(data.positions).all() and np.isfinite(data.cells).all()):
            path = self.diagnose(positions, "non-finite positions or cell received")
            raise NonFiniteError(f"the server sent non-finite positions or cell in request "
                                 f"{stats.requests} (geometry written to {path})")
        start = time.perf_counter()
        result: Evaluation = self.potential(positions)
        stats.model_s += time.perf_counter() - start
        bad = result.first_nonfinite()
        if bad is not None:
            path = self.diagnose(positions, f"non-finite {bad}")
            raise NonFiniteError(f"the model returned a non-finite {bad} in request "
                                 f"{stats.requests}; nothing was sent (geometry written to "
                                 f"{path})")
        wire = to_atomic_units(result)
        self._reply = pack_forceready(wire.energy, wire.forces, wire.extras,
                                      batched=self.batch_size > 1)
        stats.requests += 1
        self._record(positions, result.dipole)

    def _record(self, positions: np.ndarray, dipoles: np.ndarray) -> None:
        """Number the structures (bead = request id + position in the batch) and record."""
        for i in range(len(positions)):
            if i > 0 and np.array_equal(positions[i], positions[i - 1]):
                break  # i-PI pads a short batch by repeating its last structure
            bead = self.bead + i
            step = self.stats.steps.get(bead, 0)
            self.stats.steps[bead] = step + 1
            self.stats.structures += 1
            if self.record is not None:
                self.record(step, bead, dipoles[i])
