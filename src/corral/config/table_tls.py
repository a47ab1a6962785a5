"""The settings table, TLS part: certificates, client verification, versions, the context hook."""

# ruff: noqa: RUF009  (setting() returns a dataclasses.Field, the documented way to attach
# a spec to a dataclass field)

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from corral.config import parsers as p
from corral.config.spec import setting


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
        help="""
        TLS private key file (PEM); may be left out when `certfile` holds the key too.
        """,
    )
    keyfile_password: str | None = setting(
        None,
        section="SSL",
        parse=p.OPTIONAL_STRING,
        cli=("--keyfile-password", "--ssl-keyfile-password"),
        metavar="PASSWORD",
        corral_only=True,
        help="""
        The password of an encrypted `keyfile` (uvicorn's `--ssl-keyfile-password`). Prefer
        the config file or `CORRAL_KEYFILE_PASSWORD` to the command line, which other users
        of the machine can read.
        """,
    )
    ssl_min_version: str = setting(
        "TLSv1.2",
        section="SSL",
        parse=p.choice(
            ("TLSv1.2", "TLSv1.3"),
            {"tlsv1.2": "TLSv1.2", "tlsv1.3": "TLSv1.3", "1.2": "TLSv1.2", "1.3": "TLSv1.3"},
        ),
        cli=("--ssl-min-version",),
        metavar="TLSv1.2|TLSv1.3",
        corral_only=True,
        help="""
        The lowest TLS version a client may use; older ones fail the handshake.
        """,
    )
    certfile: str | None = setting(
        None,
        section="SSL",
        parse=p.OPTIONAL_STRING,
        cli=("--certfile",),
        metavar="FILE",
        help="""
        TLS certificate file (PEM, the server's certificate then its chain). Setting it serves
        HTTPS on every listener, in every worker. HUP reloads it with the key: new workers use
        the new certificate, and one that fails to load leaves the previous one serving, with
        an error in the log.
        """,
    )
    ssl_version: object = setting(
        2,
        section="SSL",
        parse=SSL_VERSION,
        cli=("--ssl-version",),
        metavar="VERSION",
        doc_default="2 (ssl.PROTOCOL_TLS)",
        help="""
        Deprecated in gunicorn. A value that pinned a version (`PROTOCOL_TLSv1_2`, 5) is taken
        as a minimum, never below `ssl_min_version`; the others negotiate the best version.
        """,
    )
    cert_reqs: int = setting(
        0,
        section="SSL",
        parse=p.INT,
        cli=("--cert-reqs",),
        metavar="INT",
        help="""
        Client certificates (mTLS): 0 none, 1 optional (verified against `ca_certs` when
        given), 2 required. The verified certificate reaches the app as `SSL_CLIENT_*`
        environ keys (WSGI) and the ASGI `tls` extension.
        """,
    )
    ca_certs: str | None = setting(
        None,
        section="SSL",
        parse=p.OPTIONAL_STRING,
        cli=("--ca-certs",),
        metavar="FILE",
        help="CA certificates file for verifying clients.",
    )
    suppress_ragged_eofs: bool = setting(
        True,
        section="SSL",
        parse=p.BOOL,
        cli=("--suppress-ragged-eofs",),
        mode="true",
        help="""
        Treat a TLS connection closed without close_notify as a normal end; off, such a
        close is a client error, as a reset is.
        """,
    )
    do_handshake_on_connect: bool = setting(
        False,
        section="SSL",
        parse=p.BOOL,
        cli=("--do-handshake-on-connect",),
        mode="true",
        help="""
        Accepted for gunicorn configs. corral always completes the handshake as soon as the
        client sends its hello, without blocking the acceptor or other connections, and drops
        a client that has not finished it within `header_timeout`.
        """,
    )
    ciphers: str | None = setting(
        None,
        section="SSL",
        parse=p.OPTIONAL_STRING,
        cli=("--ciphers",),
        metavar="STRING",
        help="TLS cipher suites, in OpenSSL cipher list format.",
    )
    ssl_context: p.Hook = setting(
        default_ssl_context,
        section="Server Hooks",  # where gunicorn documents it
        parse=p.hook(2),
        help="""
        `ssl_context(config, default_ssl_context_factory)`: returns the `ssl.SSLContext`
        to serve TLS with.
        """,
    )
