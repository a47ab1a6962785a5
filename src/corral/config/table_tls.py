"""The settings table, TLS part: certificates, client verification, versions, the context hook."""

# ruff: noqa: RUF009  (setting() returns a dataclasses.Field, the documented way to attach
# a spec to a dataclass field)

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from corral.config import parsers as p
from corral.config.spec import TLS_UNSUPPORTED, setting


def _ssl_version(value: object) -> object:
    # gunicorn ignores ssl_version and takes an int or an ssl.PROTOCOL_* name; corral only
    # needs to tell the default (ssl.PROTOCOL_TLS, 2) from anything else.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return value
    raise p.Invalid("expected an int or an ssl.PROTOCOL_* name")


SSL_VERSION: p.Parser[object] = p.Parser("int or name", _ssl_version)


def default_ssl_context(_config: object, default_ssl_context_factory: Callable[[], Any]) -> Any:
    """The default ssl_context hook: the context built from the settings, unchanged."""
    return default_ssl_context_factory()


@dataclass
class TLSTable:
    """gunicorn's SSL settings, with its names and meanings."""

    keyfile: str | None = setting(
        None,
        section="SSL",
        parse=p.OPTIONAL_STRING,
        cli=("--keyfile",),
        metavar="FILE",
        unsupported=TLS_UNSUPPORTED,
        help="TLS private key file.",
    )
    certfile: str | None = setting(
        None,
        section="SSL",
        parse=p.OPTIONAL_STRING,
        cli=("--certfile",),
        metavar="FILE",
        unsupported=TLS_UNSUPPORTED,
        help="TLS certificate file.",
    )
    ssl_version: object = setting(
        2,
        section="SSL",
        parse=SSL_VERSION,
        cli=("--ssl-version",),
        metavar="VERSION",
        unsupported=TLS_UNSUPPORTED,
        doc_default="2 (ssl.PROTOCOL_TLS)",
        help="TLS protocol version (deprecated in gunicorn, which ignores it).",
    )
    cert_reqs: int = setting(
        0,
        section="SSL",
        parse=p.INT,
        cli=("--cert-reqs",),
        metavar="INT",
        unsupported=TLS_UNSUPPORTED,
        help="Whether client certificates are required (0 none, 1 optional, 2 required).",
    )
    ca_certs: str | None = setting(
        None,
        section="SSL",
        parse=p.OPTIONAL_STRING,
        cli=("--ca-certs",),
        metavar="FILE",
        unsupported=TLS_UNSUPPORTED,
        help="CA certificates file for verifying clients.",
    )
    suppress_ragged_eofs: bool = setting(
        True,
        section="SSL",
        parse=p.BOOL,
        cli=("--suppress-ragged-eofs",),
        mode="true",
        unsupported=TLS_UNSUPPORTED,
        help="Treat a TLS connection closed without close_notify as a normal end.",
    )
    do_handshake_on_connect: bool = setting(
        False,
        section="SSL",
        parse=p.BOOL,
        cli=("--do-handshake-on-connect",),
        mode="true",
        unsupported=TLS_UNSUPPORTED,
        help="Do the TLS handshake when the connection is accepted.",
    )
    ciphers: str | None = setting(
        None,
        section="SSL",
        parse=p.OPTIONAL_STRING,
        cli=("--ciphers",),
        metavar="STRING",
        unsupported=TLS_UNSUPPORTED,
        help="TLS cipher suites, in OpenSSL cipher list format.",
    )
    ssl_context: p.Hook = setting(
        default_ssl_context,
        section="Server Hooks",  # where gunicorn documents it
        parse=p.hook(2),
        unsupported=TLS_UNSUPPORTED,
        help="""
        `ssl_context(config, default_ssl_context_factory)`: returns the `ssl.SSLContext`
        to serve TLS with.
        """,
    )
