"""What a gateway needs of one request's exchange: an HTTP/1.1 connection's, or an HTTP/2
stream's (`drivers/h2exchange.py`)."""

from __future__ import annotations

from typing import Protocol

from corral.http.events import Event, Sentinel


class Exchange(Protocol):
    """The request body as events, and the response as bytes for the driver to write (an
    HTTP/2 stream writes its frames itself and returns b"")."""

    body_suppressed: bool

    def send_continue(self) -> bytes: ...

    def next_event(self) -> Event | Sentinel: ...

    def end_of_message(self) -> bool:
        """Take the next event; whether it was the request's end (a body piece taken is lost:
        for a request whose body was read, or that has none)."""
        ...

    def receive_data(self, data: bytes) -> None: ...

    @property
    def keep_alive(self) -> bool: ...

    @property
    def body_allowed(self) -> bool: ...

    def send_full(
        self, status: int, headers: list[tuple[str, str]], body: bytes, reason: str | None = None
    ) -> bytes: ...

    def send_full_parts(
        self, status: int, headers: list[tuple[str, str]], body: bytes, reason: str | None = None
    ) -> tuple[bytes, bytes]: ...

    def send_response(
        self, status: int, headers: list[tuple[str, str]], reason: str | None = None
    ) -> bytes: ...

    def send_data(self, data: bytes) -> bytes: ...

    def send_end(self, trailers: list[tuple[str, str]] | None = None) -> bytes: ...

    def count_body_bytes(self, n: int) -> None: ...

    def error_page(self, status: int, server: bytes | None) -> bytes:
        """An error response for ``status`` (the one rendering, `http/errors.render_error`)."""
        ...
