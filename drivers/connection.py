"""Opening the driver's socket: unix (``PREFIX + NAME``) or inet, with a bounded wait.

i-PI is often started just before its drivers and takes a second or two to open its socket,
so :func:`connect` retries until ``wait_s`` has passed, then fails with a message that says
where it looked.  Inet sockets get ``TCP_NODELAY``: the protocol's messages are tiny, and
without it each round trip waits for Nagle's algorithm (measured ~92 ms vs ~1 ms here).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from densnet_cli.errors import DenSNetError, InputError

RETRY_INTERVAL_S = 0.2


@dataclass(frozen=True)
class Address:
    """Where the server listens: a unix socket path, or host and port."""

    unix_path: str | None = None
    host: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, unix: str | None, prefix: str, host: str | None, port: int | None
              ) -> Address:
        """From the CLI: ``--unix NAME`` (with ``--unix-prefix``) or ``--host``/``--port``."""
        if unix and (host or port is not None):
            raise InputError("give either --unix NAME or --host/--port, not both")
        if unix:
            return cls(unix_path=prefix + unix)
        if port is None:
            raise InputError("no server address: give --unix NAME, or --port PORT "
                             "(and --host, default localhost)")
        if not 0 < port < 65536:
            raise InputError(f"--port {port} is not a TCP port (1-65535)")
        return cls(host=host or "localhost", port=port)

    def __str__(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"inet:{self.host}:{self.port}"


def _open(address: Address) -> socket.socket:
    if address.unix_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: str | tuple[str, int] = address.unix_path
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        target = (str(address.host), int(address.port or 0))
    try:
        sock.settimeout(max(RETRY_INTERVAL_S, 2.0))
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock


def connect(address: Address, wait_s: float) -> socket.socket:
    """A socket connected to ``address``, retrying for up to ``wait_s`` seconds.

    Raises:
        DenSNetError: nobody accepted the connection in time (the message says where).
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _open(address)
        except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as exc:
            last = exc
        except socket.gaierror as exc:
            raise InputError(f"cannot resolve host {address.host!r}: {exc}") from None
        if time.monotonic() >= deadline:
            why = ("no such socket file" if isinstance(last, FileNotFoundError)
                   else type(last).__name__)
            raise DenSNetError(f"could not connect to the server at {address} within "
                               f"{wait_s:g} s ({why}); start i-PI (or the ASE "
                               f"SocketIOCalculator) first, or raise --connect-timeout")
        time.sleep(RETRY_INTERVAL_S)
