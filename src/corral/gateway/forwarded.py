"""Trusted proxies: which peers may tell the original scheme and address (gunicorn's rules)."""

from __future__ import annotations

import ipaddress
from typing import Any

from corral.http.errors import ProtocolError


class TrustedPeers:
    """``forwarded_allow_ips``: which peers may set the scheme and forwarder headers."""

    def __init__(self, spec: list[str]) -> None:
        items = [s.strip() for s in spec]
        self.everyone = "*" in items
        self.networks = []
        self.unix = False
        for item in items:
            if not item or item == "*":
                continue
            if item.startswith("unix:") or item == "unix":
                self.unix = True
                continue
            self.networks.append(ipaddress.ip_network(item, strict=False))

    def trusts(self, addr: str) -> bool:
        """True when requests from ``addr`` (an IP, or "" for a unix socket peer) are trusted."""
        if self.everyone:
            return True
        if not addr:
            return self.unix
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


def _environ_key(name: str) -> str:
    """The PEP 3333 environ key of a request field with a dashed (or plain) name."""
    upper = name.upper()
    if upper in ("CONTENT-TYPE", "CONTENT-LENGTH"):
        return upper.replace("-", "_")  # the two fields without an HTTP_ prefix
    return "HTTP_" + upper.replace("-", "_")


class SchemeHeaders:
    """``secure_scheme_headers``: the fields a trusted proxy uses to say the request was HTTPS."""

    def __init__(self, spec: dict[str, str]) -> None:
        self._secure = {name.lower(): value.lower() for name, value in (spec or {}).items()}
        self._lower: dict[str, str] = {}
        # The environ keys these fields arrive under: a request whose environ has none of them
        # carries no scheme field, and scanning its headers again can be skipped. None when a
        # name holds "_", whose field may be dropped from the environ (see header_map).
        self.environ_keys: frozenset[str] | None = (
            None
            if any("_" in name for name in self._secure)
            else frozenset(_environ_key(name) for name in self._secure)
        )

    def __bool__(self) -> bool:
        return bool(self._secure)

    def may_be_in(self, environ: dict[str, Any]) -> bool:
        """False only when the request behind ``environ`` carries none of these fields."""
        keys = self.environ_keys
        # Asked of the dict's view, isdisjoint() walks the smaller side (these few keys).
        return keys is None or not environ.keys().isdisjoint(keys)

    def scheme(self, headers: list[tuple[str, str]]) -> str | None:
        """``https`` or ``http`` as the request's scheme fields say; None when none is present.

        Each field counts on its own (a repeated field is not joined first); fields that
        disagree make the request ambiguous: 400, as gunicorn answers.
        """
        secure_values = self._secure
        lower = self._lower
        found = None
        for name, value in headers:
            lname = lower.get(name)
            if lname is None:
                lname = name.lower()
                if len(lower) < 512:
                    lower[name] = lname
            secure = secure_values.get(lname)
            if secure is None:
                continue
            this = "https" if value.strip().lower() == secure else "http"
            if found is not None and found != this:
                raise ProtocolError(400, "contradictory scheme headers")
            found = this
        return found
