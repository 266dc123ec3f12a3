"""The Ray cluster a sweep runs on: is it reachable, and can one of its nodes hold a pack?

Both are asked before anything is submitted or written. An unreachable address (a closed
port, or a listener that never answers) would otherwise hang ``ray.init`` for minutes, and a
pack no node can hold would wait forever behind the autoscaler's messages.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from dd.errors import DDError, SpecError
from dd.spec import Resources

DEFAULT_CONNECT_TIMEOUT_S = 30.0
# an HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, the Ray
# client server) answers with its own frames; a silent listener does not
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def connect_timeout(setting: float | None = None) -> float:
    """Seconds to wait for a cluster to answer: ``setting``, else $DD_CONNECT_TIMEOUT, else 30."""
    if setting is not None:
        return setting
    text = os.environ.get("DD_CONNECT_TIMEOUT")
    if text is None:
        return DEFAULT_CONNECT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DDError(f"$DD_CONNECT_TIMEOUT: must be a number of seconds > 0, got {text!r}")
    return value


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


def check_fits(resources: Resources, nodes: list[dict[str, Any]]) -> None:
    """Raise a SpecError (exit 2) unless one alive node of ``nodes`` (``ray.nodes()``) has
    the CPUs, GPUs and memory one pack asks for."""
    wanted = {"CPU": resources.cpus, "GPU": resources.gpus, "memory": resources.memory_gb * 2**30}
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    if any(all(have.get(k, 0.0) >= v for k, v in wanted.items() if v > 0) for have in alive):
        return
    largest = {k: max((have.get(k, 0.0) for have in alive), default=0.0) for k in wanted}
    asked = f"cpus {resources.cpus:g}, gpus {resources.gpus:g}, memory_gb {resources.memory_gb:g}"
    offered = (
        f"CPUs {largest['CPU']:g}, GPUs {largest['GPU']:g}, "
        f"memory {largest['memory'] / 2**30:.1f} GB"
    )
    raise SpecError(
        "resources",
        f"no node of the cluster can hold one pack ({asked}); its "
        f"{len(alive)} node{'' if len(alive) == 1 else 's'} offer at most {offered}; "
        "lower resources or add a node that has them",
    )
