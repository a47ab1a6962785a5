"""Settings table, part 2: server mechanics (process setup, proxies, header handling)."""

# ruff: noqa: RUF009  (setting() returns a dataclasses.Field, the documented way to attach
# metadata; it is not a default computed once and shared.)

from __future__ import annotations

from dataclasses import dataclass

from corral.config import parsers as p
from corral.config.spec import setting

_SAME_EFFECT = (
    "same effect; corral's default is a constant meaning 'leave it as it is', rather than a "
    "value read from the process when the settings module is imported."
)

_PROXY_PROTOCOL_WORDS = {
    "false": "off",
    "0": "off",
    "none": "off",
    "true": "auto",
    "1": "auto",
}


def _proxy_protocol(value: object) -> str:
    # gunicorn also takes a bool here: True means auto-detect the version, False means off.
    if isinstance(value, bool):
        return "auto" if value else "off"
    return _PROXY_PROTOCOL_CHOICE(value)


_PROXY_PROTOCOL_CHOICE = p.choice(("off", "v1", "v2", "auto"), _PROXY_PROTOCOL_WORDS)
PROXY_PROTOCOL = p.Parser(_PROXY_PROTOCOL_CHOICE.type_name, _proxy_protocol)


@dataclass
class MechanicsTable:
    """Server Mechanics settings."""

    preload_app: bool = setting(
        False,
        section="Server Mechanics",
        parse=p.BOOL,
        cli=("--preload",),
        mode="true",
        help="""
        Import the application in the arbiter, before forking the workers.

        Saves memory and boot time; but a code change then needs a full restart, not just a
        worker restart.
        """,
    )
    sendfile: bool = setting(
        True,
        section="Server Mechanics",
        parse=p.BOOL,
        cli=("--no-sendfile",),
        mode="false",
        legacy_env="SENDFILE",
        doc_default="True, or $SENDFILE when set",
        help="""
        Use `os.sendfile()` for `wsgi.file_wrapper` responses; `--no-sendfile` turns it off.

        As in gunicorn, the `SENDFILE` environment variable gives the default.
        """,
    )
    reuse_port: bool = setting(
        False,
        section="Server Mechanics",
        parse=p.BOOL,
        cli=("--reuse-port",),
        mode="true",
        help="""
        Set `SO_REUSEPORT` on the listening sockets.
        """,
    )
    chdir: str | None = setting(
        None,
        section="Server Mechanics",
        parse=p.DIRECTORY,
        cli=("--chdir",),
        metavar="DIR",
        doc_default="None (stay in the current directory)",
        gunicorn_default="the current directory",
        differs_because=_SAME_EFFECT,
        help="""
        Change to this directory before loading the application.

        The directory (or the current one) is put first on `sys.path`, so `APP` is imported
        from it.
        """,
    )
    daemon: bool = setting(
        False,
        section="Server Mechanics",
        parse=p.BOOL,
        cli=("-D", "--daemon"),
        mode="true",
        help="""
        Detach from the terminal and run in the background.

        Not needed under systemd, supervisord or a container runtime.
        """,
    )
    raw_env: list[str] = setting(
        [],
        section="Server Mechanics",
        parse=p.PAIRS,
        cli=("-e", "--env"),
        metavar="ENV",
        mode="append",
        help="""
        Environment variables to set before the application loads, as `KEY=VALUE`.

        Repeat the flag for several: `-e FOO=1 -e BAR=2`; in a config file,
        `raw_env = ["FOO=1", "BAR=2"]`. Applied again on HUP: new workers see the new values;
        names dropped from it return to corral's own environment.
        """,
    )
    pidfile: str | None = setting(
        None,
        section="Server Mechanics",
        parse=p.OPTIONAL_STRING,
        cli=("-p", "--pid"),
        metavar="FILE",
        help="""
        Write the arbiter's PID to this file; none is written when unset.
        """,
    )
    worker_tmp_dir: str | None = setting(
        None,
        section="Server Mechanics",
        parse=p.OPTIONAL_STRING,
        cli=("--worker-tmp-dir",),
        metavar="DIR",
        help="""
        Directory for the workers' heartbeat files; the system temporary directory if unset.

        Prefer a memory file system (such as `/dev/shm`) when the default is on a disk.
        """,
    )
    user: int | None = setting(
        None,
        section="Server Mechanics",
        parse=p.USER,
        cli=("-u", "--user"),
        metavar="USER",
        doc_default="None (keep the current user)",
        gunicorn_default="os.geteuid()",
        differs_because=_SAME_EFFECT,
        help="""
        Switch the worker processes to this user (a name or a numeric id).
        """,
    )
    group: int | None = setting(
        None,
        section="Server Mechanics",
        parse=p.GROUP,
        cli=("-g", "--group"),
        metavar="GROUP",
        doc_default="None (keep the current group)",
        gunicorn_default="os.getegid()",
        differs_because=_SAME_EFFECT,
        help="""
        Switch the worker processes to this group (a name or a numeric id).
        """,
    )
    umask: int = setting(
        0,
        section="Server Mechanics",
        parse=p.UMASK,
        cli=("-m", "--umask"),
        metavar="INT",
        help="""
        The umask of the server's processes; it also sets unix socket permissions.

        On the command line a leading 0 means octal (`0022`); `0o22` and `0x12` work too.
        """,
    )
    initgroups: bool = setting(
        False,
        section="Server Mechanics",
        parse=p.BOOL,
        cli=("--initgroups",),
        mode="true",
        help="""
        With `user`, also give the workers every supplementary group of that user.
        """,
    )
    tmp_upload_dir: str | None = setting(
        None,
        section="Server Mechanics",
        parse=p.OPTIONAL_STRING,
        help="""
        Directory for temporary request data; the system temporary directory if unset.

        gunicorn keeps this setting but no longer uses it; neither does corral, which
        accepts it so that gunicorn config files load.
        """,
    )
    secure_scheme_headers: dict[str, str] = setting(
        {"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"},
        section="Server Mechanics",
        parse=p.HEADER_DICT,
        help="""
        Headers (and their values) by which a trusted proxy says the request came over HTTPS.

        Only honoured from addresses in `forwarded_allow_ips`; then a match sets the URL
        scheme to `https`. Header names are matched case-insensitively, values exactly.
        From the environment, give a JSON object.
        """,
    )
    forwarded_allow_ips: list[str] = setting(
        ["127.0.0.1", "::1"],
        section="Server Mechanics",
        parse=p.ADDRESS_LIST,
        cli=("--forwarded-allow-ips",),
        metavar="STRING",
        legacy_env="FORWARDED_ALLOW_IPS",
        doc_default="['127.0.0.1', '::1'], or $FORWARDED_ALLOW_IPS when set",
        help="""
        Proxy addresses or networks trusted to set `secure_scheme_headers` and
        `forwarder_headers` (comma-separated; `*` trusts everyone).

        Unix socket peers are always trusted. As in gunicorn, the `FORWARDED_ALLOW_IPS`
        environment variable gives the default.
        """,
    )
    proxy_headers: bool = setting(
        False,
        section="Server Mechanics",
        parse=p.BOOL,
        cli=("--proxy-headers",),
        mode="true",
        corral_only=True,
        help="""
        Take the client's address from `X-Forwarded-For` (or RFC 7239 `Forwarded`) sent by a
        peer in `forwarded_allow_ips`: the rightmost address in it that is not a trusted proxy
        becomes `REMOTE_ADDR` (WSGI) and the ASGI scope's `client`, as uvicorn's
        `--proxy-headers` does. Off by default, as in gunicorn, where `REMOTE_ADDR` is the
        peer (the proxy) and the app reads the header itself.
        """,
    )
    pythonpath: str | None = setting(
        None,
        section="Server Mechanics",
        parse=p.OPTIONAL_STRING,
        cli=("--pythonpath", "--app-dir"),
        metavar="STRING",
        help="""
        Comma-separated directories to put first on `sys.path` before the app is imported.
        """,
    )
    paste: str | None = setting(
        None,
        section="Server Mechanics",
        parse=p.OPTIONAL_STRING,
        cli=("--paste", "--paster"),
        metavar="STRING",
        help="""
        Load the application from a PasteDeploy config file (`production.ini`, or
        `production.ini#name` for an app other than `main`), as `paste.deploy.loadapp` does.

        It takes the place of APP. Needs PasteDeploy (`pip install 'corral[paste]'`). As in
        gunicorn, when the file has a `[loggers]` section and `logconfig` is unset, logging is
        configured from it, and the process title names the file. The path is made absolute
        when the settings are read.
        """,
    )
    raw_paste_global_conf: list[str] = setting(
        [],
        section="Server Mechanics",
        parse=p.PAIRS,
        cli=("--paste-global",),
        metavar="CONF",
        mode="append",
        help="""
        PasteDeploy global config variables as `KEY=VALUE`; repeatable.
        """,
    )
    proxy_protocol: str = setting(
        "off",
        section="Server Mechanics",
        parse=PROXY_PROTOCOL,
        cli=("--proxy-protocol",),
        metavar="MODE",
        mode="optional",
        const="auto",
        help="""
        Accept the PROXY protocol preamble: `off`, `v1`, `v2` or `auto` (either).

        `--proxy-protocol` alone means `auto`. Only peers in `proxy_allow_ips` may send it.
        """,
    )
    proxy_allow_ips: list[str] = setting(
        ["127.0.0.1", "::1"],
        section="Server Mechanics",
        parse=p.ADDRESS_LIST,
        cli=("--proxy-allow-from",),
        metavar="STRING",
        help="""
        Addresses or networks allowed to send a PROXY protocol preamble (comma-separated;
        `*` allows everyone).
        """,
    )
    permit_obsolete_folding: bool = setting(
        False,
        section="Server Mechanics",
        parse=p.BOOL,
        cli=("--permit-obsolete-folding",),
        mode="true",
        help="""
        Accept header lines folded onto several lines (obs-fold, RFC 9112 section 5.2).

        Off by default: a server must reject or unfold them, and folding has been used to
        smuggle requests past proxies.
        """,
    )
    strip_header_spaces: bool = setting(
        False,
        section="Server Mechanics",
        parse=p.BOOL,
        cli=("--strip-header-spaces",),
        mode="true",
        help="""
        Accept whitespace between a header name and its colon, and strip it.

        RFC 9112 section 5.1 requires rejecting such headers; accepting them opens the door
        to request smuggling. For diagnosing broken clients only.
        """,
    )
    permit_unconventional_http_method: bool = setting(
        False,
        section="Server Mechanics",
        parse=p.BOOL,
        cli=("--permit-unconventional-http-method",),
        mode="true",
        help="""
        Accept methods that are valid tokens but unconventional (lower case, very short or
        long, containing `#`).
        """,
    )
    permit_unconventional_http_version: bool = setting(
        False,
        section="Server Mechanics",
        parse=p.BOOL,
        cli=("--permit-unconventional-http-version",),
        mode="true",
        unsupported="corral serves HTTP/1.0 and HTTP/1.1 only; other versions get 505",
        help="""
        Accept HTTP/1.x versions other than 1.0 and 1.1 instead of refusing them.
        """,
    )
    casefold_http_method: bool = setting(
        False,
        section="Server Mechanics",
        parse=p.BOOL,
        cli=("--casefold-http-method",),
        mode="true",
        help="""
        Upper-case request methods before the application sees them.

        Methods are case-sensitive (RFC 9110 section 9.1); this is for old clients only.
        """,
    )
    forwarder_headers: list[str] = setting(
        ["SCRIPT_NAME", "PATH_INFO"],
        section="Server Mechanics",
        parse=p.COMMA_LIST,
        cli=("--forwarder-headers",),
        metavar="STRING",
        help="""
        Headers a trusted proxy may set to fill the WSGI environ variables of the same name
        (comma-separated; for example `SCRIPT_NAME`, `PATH_INFO`, `REMOTE_USER`).

        Only honoured from addresses in `forwarded_allow_ips`.
        """,
    )
    header_map: str = setting(
        "drop",
        section="Server Mechanics",
        parse=p.choice(("drop", "refuse", "dangerous")),
        cli=("--header-map",),
        metavar="drop|refuse|dangerous",
        help="""
        What to do with header names containing `_`, which would map onto the same environ
        key as their `-` spelling.

        `drop` ignores them, `refuse` answers 400, `dangerous` maps them anyway (letting
        `X_Forwarded_For` pose as `X-Forwarded-For`). Names in `forwarder_headers` from a
        trusted proxy are always mapped.
        """,
    )
    server_header: str = setting(
        "corral",
        section="Server Mechanics",
        parse=p.STRING,
        cli=("--server-header",),
        metavar="STRING",
        corral_only=True,
        help="""
        The value of the `Server` response header; an empty string sends none.
        """,
    )
