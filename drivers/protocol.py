"""The i-PI wire protocol: message framing, headers and array packing (no model, no state).

Every message starts with a 12-byte ASCII header, upper case, padded with spaces.  Numbers are
native-endian int32 and float64; arrays are C-ordered.  What follows each header:

server → driver
    ``STATUS``    nothing; the driver answers ``READY``, ``NEEDINIT`` or ``HAVEDATA``
    ``INIT``      int32 request id (the bead), int32 length, that many bytes of parameters
                  (i-PI appends ``batch_size:N`` when it wants the batched protocol)
    ``POSDATA``   single: cell h (3×3), inverse cell (3×3), int32 n_atoms, positions (n, 3)
                  batched: int32 n_atoms, B × (h, h⁻¹), positions (B, n, 3)
    ``GETFORCE``  nothing; the driver answers ``FORCEREADY`` and the results below
    ``EXIT``      nothing; the run is over (ASE's server just closes the socket instead)

driver → server, after ``FORCEREADY``
    single:  float64 energy, int32 n, forces (n, 3), virial (3×3), int32 length, extras
    batched: B energies, int32 n, forces (B, n, 3), B virials, B × (int32 length, extras)

Lengths in Bohr, energies in Hartree, forces in Hartree/Bohr.  This module only moves bytes;
:mod:`drivers.session` decides what to do with them.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import numpy as np

from densnet_cli.errors import DenSNetError

HDRLEN = 12
SERVER_MESSAGES = ("STATUS", "INIT", "POSDATA", "GETFORCE", "EXIT")
MAX_INIT_BYTES = 1 << 20  # a longer INIT string is a corrupted stream, not parameters
MAX_ATOMS = 10_000_000


class ProtocolError(DenSNetError):
    """The server sent something the protocol does not allow (the message says what)."""


class ServerClosed(DenSNetError):
    """The server closed the connection (EOF); ``mid_message`` when it did so inside one."""

    def __init__(self, message: str, mid_message: bool) -> None:
        super().__init__(message)
        self.mid_message = mid_message


def header(name: str) -> bytes:
    """The 12-byte header for message ``name``."""
    return name.upper().ljust(HDRLEN).encode("ascii")


def recv_exact(sock: socket.socket, n: int, what: str) -> bytes:
    """Exactly ``n`` bytes of ``what``; raises :class:`ServerClosed` on EOF."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ServerClosed(f"the server closed the connection in the middle of {what} "
                               f"({got} of {n} bytes received)", mid_message=got > 0)
        got += k
    return bytes(buf)


def recv_header(sock: socket.socket) -> str:
    """The next header's name; :class:`ProtocolError` if it is not one a server may send."""
    raw = recv_exact(sock, HDRLEN, "a message header")
    name = raw.decode("ascii", errors="replace").strip()
    if name not in SERVER_MESSAGES or raw != header(name):
        raise ProtocolError(f"malformed header {raw!r} from the server (expected one of "
                            f"{', '.join(SERVER_MESSAGES)}, 12 bytes, space padded)")
    return name


def _array(sock: socket.socket, dtype: type, count: int, what: str) -> np.ndarray:
    itemsize = np.dtype(dtype).itemsize
    return np.frombuffer(recv_exact(sock, itemsize * count, what), dtype=dtype).copy()


def _n_atoms(value: int, what: str) -> int:
    if not 0 < value <= MAX_ATOMS:
        raise ProtocolError(f"{what}: atom count {value} is impossible (corrupted stream?)")
    return value


@dataclass(frozen=True)
class Init:
    """An INIT message: the request (bead) index and the parameter string."""

    request_id: int
    parameters: str

    @property
    def batch_size(self) -> int:
        """``N`` of a ``batch_size:N`` token (i-PI's batched protocol), else 1."""
        for token in self.parameters.split(","):
            key, sep, value = token.partition(":")
            if sep and key.strip() == "batch_size":
                try:
                    return int(value.strip())
                except ValueError:
                    raise ProtocolError(f"INIT: unreadable batch size {value.strip()!r}"
                                        ) from None
        return 1


def recv_init(sock: socket.socket) -> Init:
    """The body of an INIT message."""
    request_id, length = (int(v) for v in _array(sock, np.int32, 2, "INIT"))
    if not 0 <= length <= MAX_INIT_BYTES:
        raise ProtocolError(f"INIT: parameter string length {length} is impossible")
    text = recv_exact(sock, length, "INIT").decode("utf-8", errors="replace").strip("\x00 ")
    return Init(request_id, text)


@dataclass(frozen=True)
class PosData:
    """A POSDATA message: cells (B, 3, 3) and positions (B, n, 3), both in Bohr."""

    cells: np.ndarray
    positions: np.ndarray


def recv_posdata(sock: socket.socket, batch_size: int) -> PosData:
    """The body of a POSDATA message, single (``batch_size`` 1) or batched layout."""
    if batch_size == 1:
        cells = _array(sock, np.float64, 18, "POSDATA").reshape(1, 2, 3, 3)[:, 0]
        n = _n_atoms(int(_array(sock, np.int32, 1, "POSDATA")[0]), "POSDATA")
    else:
        n = _n_atoms(int(_array(sock, np.int32, 1, "POSDATA")[0]), "POSDATA")
        cells = _array(sock, np.float64, 18 * batch_size, "POSDATA").reshape(
            batch_size, 2, 3, 3)[:, 0]
    positions = _array(sock, np.float64, 3 * n * batch_size, "POSDATA")
    return PosData(cells=cells, positions=positions.reshape(batch_size, n, 3))


def pack_forceready(energies: np.ndarray, forces: np.ndarray, extras: list[str],
                    batched: bool) -> bytes:
    """FORCEREADY and the results: energies (B,) Hartree, forces (B, n, 3) Hartree/Bohr.

    The virial is sent as zero: DenSNet models are molecular (no periodic cell).
    """
    energies = np.ascontiguousarray(energies, dtype=np.float64).reshape(-1)
    forces = np.ascontiguousarray(forces, dtype=np.float64)
    n_struct, n = forces.shape[0], forces.shape[1]
    encoded = [e.encode("utf-8") for e in extras]
    zero_virials = np.zeros((n_struct, 3, 3), dtype=np.float64)
    if not batched:
        if n_struct != 1:
            raise ValueError("the single-structure reply carries exactly one structure")
        return b"".join([header("FORCEREADY"), energies.tobytes(), np.int32(n).tobytes(),
                         forces.tobytes(), zero_virials.tobytes(),
                         np.int32(len(encoded[0])).tobytes(), encoded[0]])
    parts = [header("FORCEREADY"), energies.tobytes(), np.int32(n).tobytes(), forces.tobytes(),
             zero_virials.tobytes()]
    for blob in encoded:
        parts += [np.int32(len(blob)).tobytes(), blob]
    return b"".join(parts)
