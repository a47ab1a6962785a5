"""TLS for every worker: the server context from the settings, what a handshake tells the app."""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from corral.errors import ConfigError

if TYPE_CHECKING:
    from corral.config import Config

# ALPN names (RFC 7301) of http_protocols' entries.
_ALPN = {"h1": "http/1.1", "h2": "h2"}
_VERSIONS = {
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
# gunicorn's deprecated ssl_version (an ssl.PROTOCOL_* number or name): the versions some of
# them pinned are now a minimum, never below ssl_min_version; the rest mean "negotiate".
_PINNED = {
    3: ssl.TLSVersion.TLSv1,  # PROTOCOL_TLSv1
    4: ssl.TLSVersion.TLSv1_1,  # PROTOCOL_TLSv1_1
    5: ssl.TLSVersion.TLSv1_2,  # PROTOCOL_TLSv1_2
    "PROTOCOL_TLSv1": ssl.TLSVersion.TLSv1,
    "PROTOCOL_TLSv1_1": ssl.TLSVersion.TLSv1_1,
    "PROTOCOL_TLSv1_2": ssl.TLSVersion.TLSv1_2,
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1_1": ssl.TLSVersion.TLSv1_1,
    "TLSv1_2": ssl.TLSVersion.TLSv1_2,
}


def enabled(cfg: Config) -> bool:
    """Whether the settings ask for TLS (a certificate)."""
    return cfg.is_ssl


def min_version(cfg: Config) -> ssl.TLSVersion:
    """The lowest TLS version served: ssl_min_version, raised by a pinned ssl_version."""
    floor = _VERSIONS[str(cfg.ssl_min_version).lower()]
    pinned = _PINNED.get(cfg.ssl_version)
    return max(floor, pinned) if pinned is not None else floor


def alpn_protocols(cfg: Config, h2: bool) -> list[str]:
    """The protocols offered by ALPN, in http_protocols' order of preference; h2 only where
    the worker serves it. HTTP/1.1 is always offered: a client without h2 still connects."""
    names = [_ALPN[p] for p in cfg.http_protocols if h2 or p != "h2"]
    return names if "http/1.1" in names else [*names, "http/1.1"]


def build_context(cfg: Config, h2: bool = False) -> ssl.SSLContext:
    """The server context the settings describe, passed through the ssl_context hook.

    One context per configuration, made before the workers fork: its session cache and its
    ticket keys are then the same in every worker, so a client resumes its session (RFC 8446
    §2.2) whichever worker it reaches. Raises ConfigError naming the setting that failed.
    """
    factory: Callable[[], ssl.SSLContext] = lambda: _default_context(cfg, h2)  # noqa: E731
    try:
        context = cfg.ssl_context(cfg, factory)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"ssl_context (from {cfg.source_of('ssl_context')}) failed: {exc}"
        ) from exc
    if not isinstance(context, ssl.SSLContext):
        raise ConfigError(
            f"ssl_context (from {cfg.source_of('ssl_context')}) returned "
            f"{type(context).__name__}, not an ssl.SSLContext"
        )
    return context


def _default_context(cfg: Config, h2: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = min_version(cfg)
    password = cfg.keyfile_password or None
    try:
        context.load_cert_chain(str(cfg.certfile), cfg.keyfile or None, password)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"certfile = {cfg.certfile!r} (from {cfg.source_of('certfile')}), keyfile = "
            f"{cfg.keyfile!r}: cannot load the certificate and key: {exc}"
        ) from None
    if cfg.ca_certs:
        try:
            context.load_verify_locations(cafile=cfg.ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"ca_certs = {cfg.ca_certs!r} (from {cfg.source_of('ca_certs')}): {exc}"
            ) from None
    if cfg.cert_reqs not in (0, 1, 2):
        raise ConfigError(
            f"cert_reqs = {cfg.cert_reqs} (from {cfg.source_of('cert_reqs')}): expected 0 (no "
            "client certificate), 1 (optional) or 2 (required)"
        )
    context.verify_mode = ssl.VerifyMode(cfg.cert_reqs)
    if cfg.ciphers:
        try:
            context.set_ciphers(cfg.ciphers)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"ciphers = {cfg.ciphers!r} (from {cfg.source_of('ciphers')}): {exc}"
            ) from None
    context.set_alpn_protocols(alpn_protocols(cfg, h2))
    if cfg.suppress_ragged_eofs:
        # A client that closes without close_notify (most do) ends the connection cleanly:
        # for the asyncio worker's streams too, and the session stays in the cache.
        context.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return context


class Stamp(NamedTuple):
    """What a context was built from: the files' identities and the settings that shape it."""

    files: tuple[tuple[str, int, int, int], ...]
    settings: tuple[Any, ...]


def stamp(cfg: Config, h2: bool = False) -> Stamp:
    """The files (path, inode, size, mtime) and settings a context depends on."""
    files = []
    for path in (cfg.certfile, cfg.keyfile, cfg.ca_certs):
        if path:
            try:
                st = os.stat(path)
                files.append((path, st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                files.append((path, -1, -1, -1))
    settings = (
        cfg.cert_reqs,
        cfg.ciphers,
        cfg.ssl_min_version,
        cfg.ssl_version,
        cfg.keyfile_password,
        cfg.ssl_context,
        alpn_protocols(cfg, h2),
    )
    return Stamp(tuple(files), settings)


class ContextCache:
    """The master's TLS context, rebuilt when the certificate files or settings change (HUP).

    A new certificate that fails to load leaves the previous context serving, with one clear
    error, so a bad renewal does not take the site down.
    """

    def __init__(self) -> None:
        self._stamp: Stamp | None = None
        self._context: ssl.SSLContext | None = None

    def get(
        self, cfg: Config, log_error: Callable[[str], None], *, h2: bool = False
    ) -> ssl.SSLContext | None:
        """The context for ``cfg`` (None without TLS), offering h2 by ALPN when ``h2``;
        raises ConfigError when there is none to fall back on."""
        if not enabled(cfg):
            return None
        current = stamp(cfg, h2)
        if self._context is not None and current == self._stamp:
            return self._context
        try:
            context = build_context(cfg, h2)
        except ConfigError as exc:
            if self._context is None:
                raise
            log_error(f"TLS: keeping the previous certificate: {exc}")
            self._stamp = current  # reported once, not at every spawn
            return self._context
        self._stamp, self._context = current, context
        return context


# The arbiter's one cache (workers are built there, then fork): see ContextCache.
TLS_CONTEXTS = ContextCache()


def wsgi_environ(sock: ssl.SSLSocket | ssl.SSLObject) -> dict[str, str]:
    """The environ keys of a TLS connection, named as mod_ssl and mod_wsgi name them."""
    env = {"HTTPS": "on", "SSL_PROTOCOL": sock.version() or ""}
    cipher = sock.cipher()
    if cipher:
        env["SSL_CIPHER"] = cipher[0]
    cert = sock.getpeercert()
    der = sock.getpeercert(binary_form=True)
    if not cert or not der:
        env["SSL_CLIENT_VERIFY"] = "NONE"
        return env
    env["SSL_CLIENT_VERIFY"] = "SUCCESS"
    env["SSL_CLIENT_S_DN"] = _dn(cert.get("subject", ()))
    env["SSL_CLIENT_I_DN"] = _dn(cert.get("issuer", ()))
    env["SSL_CLIENT_M_SERIAL"] = str(cert.get("serialNumber", ""))
    env["SSL_CLIENT_V_START"] = str(cert.get("notBefore", ""))
    env["SSL_CLIENT_V_END"] = str(cert.get("notAfter", ""))
    env["SSL_CLIENT_CERT"] = ssl.DER_cert_to_PEM_cert(der)
    return env


def asgi_extension(sock: ssl.SSLSocket | ssl.SSLObject) -> dict[str, Any]:
    """The ASGI ``tls`` scope extension (ASGI TLS extension spec)."""
    der = sock.getpeercert(binary_form=True)
    cert = sock.getpeercert() if der else None
    cipher = sock.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": _dn(cert.get("subject", ())) if cert else None,
        "client_cert_error": None,
        "tls_version": _TLS_NUMBERS.get(sock.version() or ""),
        "cipher_suite": None if cipher is None else _cipher_ids().get(cipher[0]),
    }


_TLS_NUMBERS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@functools.cache
def _cipher_ids() -> dict[str, int]:
    """OpenSSL's cipher names to their 16-bit IANA numbers (the low half of OpenSSL's id)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    return {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}


def _dn(rdns: Any) -> str:
    """A distinguished name in the RFC 4514 order and form mod_ssl uses (``/CN=x/O=y`` style)."""
    parts = []
    for rdn in rdns:
        for key, value in rdn:
            parts.append(f"{_SHORT.get(key, key)}={value}")
    return "/" + "/".join(parts) if parts else ""


_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "emailAddress": "emailAddress",
}
