"""The HTTP/2 settings a connection announces, and which ways in are open (no h2 import)."""

from __future__ import annotations

from dataclasses import dataclass

# RFC 9113 §3.4: what a client speaking HTTP/2 from the start sends first.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass(frozen=True)
class H2Settings:
    """gunicorn 27's HTTP/2 settings, with its defaults."""

    max_concurrent_streams: int = 100
    initial_window_size: int = 65535
    max_frame_size: int = 16384
    max_header_list_size: int = 65536


@dataclass(frozen=True)
class HTTP2Policy:
    """Where HTTP/2 is served: over TLS by ALPN, and in clear text (h2c) by prior knowledge
    (the preface first) or by ``Upgrade: h2c``."""

    settings: H2Settings
    prior_knowledge: bool = False
    upgrade: bool = False
