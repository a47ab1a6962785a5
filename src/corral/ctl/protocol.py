"""The control socket's wire format, gunicorn 27's: a 4-byte big-endian length, then JSON."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from typing import Any

# Request:  {"id": 1, "command": "worker add", "args": [2]}
# Replies:  {"id": 1, "status": "ok", "data": {...}} or {"id": 1, "status": "error", "error": "..."}
# gunicornc and gunicorn's server speak exactly this, so each side works with the other's.

HEADER = struct.Struct(">I")
MAX_REPLY = 16 * 1024 * 1024  # gunicorn's limit for any message; a dump of many workers is long
SOCKET_NAME = "gunicorn.ctl"  # gunicorn's name, so that gunicornc finds corral where it looks

Message = dict[str, Any]


class FrameError(Exception):
    """A message that cannot be read: too long, not JSON, or not a JSON object."""


def default_socket_path(environ: Mapping[str, str] | None = None) -> str:
    """gunicorn's default control_socket: $XDG_RUNTIME_DIR/gunicorn.ctl when that directory
    exists, else ~/.gunicorn/gunicorn.ctl."""
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, SOCKET_NAME)
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".gunicorn", SOCKET_NAME)


def encode(message: Mapping[str, object]) -> bytes:
    """One framed message."""
    payload = json.dumps(message).encode("utf-8")
    return HEADER.pack(len(payload)) + payload


def request(request_id: int, command: str, args: list[object] | None = None) -> Message:
    return {"id": request_id, "command": command, "args": args or []}


def ok(request_id: object, data: Mapping[str, object]) -> Message:
    return {"id": request_id, "status": "ok", "data": dict(data)}


def error(request_id: object, text: str) -> Message:
    return {"id": request_id, "status": "error", "error": text}


class Decoder:
    """Splits a byte stream into messages; refuses one longer than `limit` before reading it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def partial(self) -> bool:
        """Bytes of a message that is not whole yet."""
        return bool(self._buffer)

    def next(self) -> Message | None:
        """The next whole message, None until one is in; FrameError for a bad one."""
        if len(self._buffer) < HEADER.size:
            return None
        (length,) = HEADER.unpack_from(self._buffer)
        if length > self.limit:
            raise FrameError(f"message too large: {length} bytes (at most {self.limit})")
        end = HEADER.size + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[HEADER.size : end])
        del self._buffer[:end]
        try:
            message = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise FrameError(f"invalid JSON: {exc}") from None
        if not isinstance(message, dict):
            raise FrameError("a message must be a JSON object")
        return message
