"""Trusted proxies: which peers may tell the original scheme and address (gunicorn's rules)."""

from __future__ import annotations

import ipaddress

from corral.http.errors import ProtocolError

TRUSTS_MEMO_MAX = 4096


class TrustedPeers:
    """``forwarded_allow_ips``: which peers may set the scheme and forwarder headers."""

    def __init__(self, spec: list[str]) -> None:
        items = [s.strip() for s in spec]
        self.everyone = "*" in items
        # Each peer's answer, since ipaddress parsing costs about 8 µs per new connection. Full,
        # it is emptied, so a flood of new addresses pays one parse each as before.
        self._answers: dict[str, bool] = {}
        self.networks = []
        for item in items:
            # "unix" is accepted as older corral configs wrote it; unix peers need no entry.
            if not item or item == "*" or item == "unix" or item.startswith("unix:"):
                continue
            self.networks.append(ipaddress.ip_network(item, strict=False))

    def trusts(self, addr: str) -> bool:
        """True when requests from ``addr`` (an IP, or "" for a unix socket peer) are trusted.

        A unix socket peer always is, as in gunicorn 27: only a local process can reach the
        socket, behind the file's permissions, and it is how nginx on the same host connects.
        """
        if self.everyone or not addr:
            return True
        answer = self._answers.get(addr)
        if answer is None:
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                return False
            answer = any(ip in net for net in self.networks)
            if len(self._answers) >= TRUSTS_MEMO_MAX:
                self._answers.clear()
            self._answers[addr] = answer
        return answer


class SchemeHeaders:
    """``secure_scheme_headers``: the fields a trusted proxy uses to say the request was HTTPS."""

    def __init__(self, spec: dict[str, str]) -> None:
        self._secure = {name.lower(): value.lower() for name, value in (spec or {}).items()}
        self._lower: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self._secure)

    @property
    def names(self) -> frozenset[str]:
        """The configured field names, lower-cased."""
        return frozenset(self._secure)

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


def forwarded_client(headers: list[tuple[str, str]], peers: TrustedPeers) -> str | None:
    """The client's address as a trusted proxy chain reports it (``proxy_headers``).

    RFC 7239 ``Forwarded`` (its ``for=`` parameters) when present, else ``X-Forwarded-For``,
    read from the right: each hop appends the address it received from, so the rightmost
    address that is not one of our trusted proxies is the client, and anything left of it
    could have been written by the client itself. None when neither field names one.
    """
    hops = _forwarded_for(headers) or _x_forwarded_for(headers)
    for addr in reversed(hops):
        if not peers.trusts(addr):
            return addr
    return hops[0] if hops else None


def _x_forwarded_for(headers: list[tuple[str, str]]) -> list[str]:
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == "x-forwarded-for":
            hops += [_address(part) for part in value.split(",") if part.strip()]
    return [hop for hop in hops if hop]


def _forwarded_for(headers: list[tuple[str, str]]) -> list[str]:
    hops: list[str] = []
    for name, value in headers:
        if name.lower() != "forwarded":
            continue
        for element in value.split(","):
            for pair in element.split(";"):
                key, _, val = pair.partition("=")
                if key.strip().lower() == "for":
                    hops.append(_address(val))
    return [hop for hop in hops if hop]


def _address(token: str) -> str:
    """An address from a hop: quotes, IPv6 brackets and a port removed (RFC 7239 §6)."""
    text = token.strip().strip('"')
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else ""
    if text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return ""  # "unknown", an obfuscated identifier (_hidden), or garbage: no address
