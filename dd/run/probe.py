"""Is a Ray cluster answering at an address? Asked before ``ray.init`` (which would hang for
minutes on a closed port or a silent listener) by ``dd.run.cluster`` and by the warm
instance's check (``dd.run.warm``)."""

from __future__ import annotations

import socket

from dd.spec.errors import DDError

# an HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, the Ray
# client server) answers with its own frames; a silent listener does not
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def probe_address(address: str, timeout: float) -> None:
    """Raise a one-line DDError unless a gRPC server answers at ``address`` within
    ``timeout`` seconds (``host:port`` or ``ray://host:port``; ``auto`` and ``local`` are
    not probed)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise DDError(f"--address {address}: give host:port (or ray://host:port)")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(HTTP2_PREFACE)
            if not sock.recv(9):
                raise ConnectionError("the connection was closed without an answer")
    except TimeoutError:
        raise DDError(
            f"--address {address}: no answer within {timeout:g}s; is a Ray head "
            "running there? (wait longer with --connect-timeout or "
            "$DD_CONNECT_TIMEOUT)"
        ) from None
    except OSError as e:
        raise DDError(
            f"--address {address}: cannot reach a Ray cluster ({e.strerror or e})"
        ) from None
