"""systemd's readiness protocol (sd_notify(3)): tell a Type=notify unit what the master does."""

from __future__ import annotations

import socket
from collections.abc import Mapping


def sd_notify(state: str, environ: Mapping[str, str]) -> bool:
    """Send `state` (e.g. "READY=1") to $NOTIFY_SOCKET; False when there is none or it fails.

    Outside systemd (no NOTIFY_SOCKET) this does nothing, so it is always safe to call.
    """
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError:
        return False
    return True
