"""The behaviours app, from a module that sets a process-wide default socket timeout.

Some apps (or their HTTP client libraries) call socket.setdefaulttimeout(); the sockets the
worker accepts afterwards must still behave as the worker set them up.
"""

from __future__ import annotations

import socket

from behaviours import app

socket.setdefaulttimeout(0.3)

__all__ = ["app"]
