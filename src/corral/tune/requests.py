"""The requests `corral tune` sends: `--url PATH` (GET) and `--requests FILE` (JSON Lines)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from corral.errors import ConfigError

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_KEYS = {"method", "path", "headers", "body", "json"}
# Framing is the generator's job: a request file may not set these.
_RESERVED = {"content-length", "transfer-encoding", "connection"}


@dataclass(frozen=True)
class RequestSpec:
    """One request: method, target (path and query), extra headers, body."""

    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    body: bytes = b""

    def encode(self, host: str) -> bytes:
        """The request on the wire (HTTP/1.1, keep-alive), with `host` unless a Host is given."""
        lines = [f"{self.method} {self.path} HTTP/1.1"]
        names = {name.lower() for name, _ in self.headers}
        if "host" not in names:
            lines.append(f"Host: {host}")
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("latin-1") + self.body


def from_url(text: str) -> RequestSpec:
    """`--url`: a path (`/items?page=2`), or a URL whose path and query are taken."""
    if not text.startswith("/"):
        parts = urlsplit(text)
        if not parts.scheme:
            raise ConfigError(f"--url {text!r}: give a path starting with / (or a URL)")
        text = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return RequestSpec(path=_checked_path(text, f"--url {text!r}"))


def _checked_path(path: str, where: str) -> str:
    if not path.startswith("/") or any(c in path for c in " \r\n\t"):
        raise ConfigError(f"{where}: the path must start with / and hold no spaces or newlines")
    return path


def parse_request_line(line: str, where: str) -> RequestSpec:
    """One line of a requests file: a JSON object (see docs/tuning.md)."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not JSON: {exc}") from None
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    unknown = set(item) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    method = str(item.get("method", "GET"))
    if not _TOKEN.match(method):
        raise ConfigError(f"{where}: method {method!r} is not an HTTP token")
    path = _checked_path(str(item.get("path", "/")), where)
    headers = _headers(item.get("headers", {}), where)
    body = b""
    if "json" in item:
        if "body" in item:
            raise ConfigError(f"{where}: give either body or json, not both")
        body = json.dumps(item["json"]).encode()
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers = (*headers, ("Content-Type", "application/json"))
    elif "body" in item:
        if not isinstance(item["body"], str):
            raise ConfigError(f"{where}: body must be a string (UTF-8)")
        body = item["body"].encode()
    return RequestSpec(method.upper(), path, headers, body)


def _headers(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: headers must be an object of name: value")
    headers = []
    for name, text in value.items():
        if not _TOKEN.match(str(name)) or any(c in str(text) for c in "\r\n"):
            raise ConfigError(f"{where}: bad header {name!r}: {text!r}")
        if str(name).lower() in _RESERVED:
            raise ConfigError(f"{where}: header {name} is set by corral tune itself")
        headers.append((str(name), str(text)))
    return tuple(headers)


def read_requests_file(path: str) -> list[RequestSpec]:
    """Every request of a requests file; blank lines and lines starting with # are skipped."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"--requests {path}: {exc.strerror or exc}") from None
    specs = [
        parse_request_line(line, f"--requests {path} line {number}")
        for number, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not specs:
        raise ConfigError(f"--requests {path}: no requests in the file")
    return specs


def requests_from(urls: list[str], requests_file: str | None) -> list[RequestSpec]:
    """The request mix: the file's requests, then each `--url`; `GET /` when neither is given."""
    specs = read_requests_file(requests_file) if requests_file else []
    specs += [from_url(url) for url in urls]
    return specs or [RequestSpec()]
