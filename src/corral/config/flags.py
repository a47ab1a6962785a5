"""The command-line parser, generated from the settings table."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NamedTuple, NoReturn, cast

from corral import __version__
from corral.config.model import did_you_mean, settings_table
from corral.config.spec import SECTIONS, Spec
from corral.errors import ConfigError

USAGE = "%(prog)s [OPTIONS] APP"
APP_FLAG = "APP"


class Given(NamedTuple):
    """A value from the command line and the flag (or APP) that gave it."""

    value: object
    flag: str


class Shorthand(NamedTuple):
    """A flag alone that stands for one value of a setting (uvicorn's `--no-access-log`)."""

    flag: str
    setting: str
    value: object
    help: str


# uvicorn's flags that are not one setting's flag under another name (those are in the table).
SHORTHANDS = (
    Shorthand("--no-access-log", "accesslog", None, "no access log (corral's default)"),
    Shorthand("--access-log", "accesslog", "-", "access log on stdout (accesslog = '-')"),
    Shorthand(
        "--no-proxy-headers",
        "forwarded_allow_ips",
        "",
        "trust no proxy's scheme headers (forwarded_allow_ips = '')",
    ),
    Shorthand("--no-server-header", "server_header", "", "send no Server header"),
)
# uvicorn's (and granian's) TLS flags, by the setting each sets (when corral has it).
TLS_FLAGS = {
    "keyfile": ("--ssl-keyfile",),
    "certfile": ("--ssl-certfile", "--ssl-certificate"),
    "keyfile_password": ("--ssl-keyfile-password",),
    "ca_certs": ("--ssl-ca-certs",),
    "cert_reqs": ("--ssl-cert-reqs",),
    "ciphers": ("--ssl-ciphers",),
}
# uvicorn's --host/--port/--uds/--fd make one `bind` address; the pieces' argparse dests.
_ADDRESS = {"--host": "_host", "--port": "_port", "--uds": "_uds", "--fd": "_fd"}
_DEFAULT_HOST, _DEFAULT_PORT = "127.0.0.1", "8000"


class _Refused(Exception):
    """argparse reported a usage error."""


class _ArgumentParser(argparse.ArgumentParser):
    # argparse prints and exits on a usage error; corral turns it into a ConfigError so that
    # load() stays a library function and the message gets the source it came from.
    def error(self, message: str) -> NoReturn:
        raise _Refused(message)


class _SettingAction(argparse.Action):
    """Stores Given(value, flag) so each value keeps the flag it came from."""

    def __init__(self, option_strings: Sequence[str], dest: str, mode: str, **kwargs: Any):
        self.mode = mode
        if mode in ("true", "false", "toggle", "const"):
            kwargs["nargs"] = 0
        elif mode == "optional":
            kwargs["nargs"] = "?"
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        flag = option_string or APP_FLAG
        value: object = values
        if self.mode in ("true", "false"):
            value = self.mode == "true"
        elif self.mode == "toggle":
            value = not flag.startswith("--no-")
        elif self.mode == "const" or (self.mode == "optional" and values is None):
            value = self.const
        elif self.mode == "append":
            previous = getattr(namespace, self.dest, None)
            earlier = list(cast(list[str], previous.value)) if isinstance(previous, Given) else []
            value = [*earlier, values]
        setattr(namespace, self.dest, Given(value, flag))


def _flags(spec: Spec) -> tuple[str, ...]:
    if spec.mode == "toggle":
        return (*spec.cli, *(f"--no-{f[2:]}" for f in spec.cli if f.startswith("--")))
    return spec.cli


def _help(spec: Spec, default: object) -> str:
    shown = spec.doc_default if spec.doc_default is not None else repr(default)
    return f"{spec.short} [default: {shown}]".replace("%", "%%")


def build_parser(prog: str = "corral") -> argparse.ArgumentParser:
    """An argparse parser with one option per setting that has flags, grouped by section."""
    parser = _ArgumentParser(
        prog=prog,
        usage=USAGE,
        description="Serve a WSGI or ASGI application with a pre-fork server.",
        epilog="Every setting can also come from a config file or a CORRAL_<NAME> environment "
        "variable; see docs/settings.md.",
        allow_abbrev=False,
    )
    parser.add_argument("-v", "--version", action="version", version=f"{prog} {__version__}")
    parser.add_argument(
        "wsgi_app",
        metavar=APP_FLAG,
        nargs="?",
        action=_SettingAction,
        mode="store",
        help="the application: module:attr, module:factory(args) or module",
    )
    groups = {section: parser.add_argument_group(section) for section in SECTIONS}
    for name, row in settings_table().items():
        if not row.spec.cli:
            continue
        kwargs: dict[str, Any] = {"dest": name, "mode": row.spec.mode}
        if row.spec.metavar and row.spec.mode in ("store", "append", "optional"):
            kwargs["metavar"] = row.spec.metavar
        if row.spec.mode == "optional":
            kwargs["const"] = row.spec.const
        groups[row.spec.section].add_argument(
            *_flags(row.spec),
            action=_SettingAction,
            help=_help(row.spec, row.default),
            **kwargs,
        )
    _add_uvicorn_flags(parser)
    return parser


def _add_uvicorn_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "uvicorn's flags", "uvicorn's names for the same settings, so its command lines work."
    )
    for flag, dest in _ADDRESS.items():
        group.add_argument(
            flag,
            dest=dest,
            mode="store",
            action=_SettingAction,
            metavar=dest[1:].upper(),
            help=f"with the others of --host, --port, --uds, --fd: one bind address "
            f"[default: {_DEFAULT_HOST}:{_DEFAULT_PORT}]",
        )
    for short in SHORTHANDS:
        group.add_argument(
            short.flag,
            dest=short.setting,
            mode="const",
            const=short.value,
            action=_SettingAction,
            help=short.help,
        )
    table, known = settings_table(), set(all_flags(parser))
    for name, flags in TLS_FLAGS.items():
        # The TLS table may already spell a flag uvicorn's way.
        new = [flag for flag in flags if flag not in known]
        if name in table and new:
            group.add_argument(
                *new,
                dest=name,
                mode="store",
                action=_SettingAction,
                metavar="VALUE",
                help=f"sets {name}",
            )


def _bind_from_address(given: dict[str, Given], where: str) -> None:
    """uvicorn's --host/--port (or --uds, --fd) become one `bind` address."""
    parts = {dest: given.pop(dest) for dest in _ADDRESS.values() if dest in given}
    if not parts:
        return
    flags = "/".join(part.flag for part in parts.values())
    if "bind" in given:
        raise ConfigError(
            f"{where}: {flags} and {given['bind'].flag} both give the address; use one"
        )
    values = {dest: str(part.value).strip() for dest, part in parts.items()}
    if "_uds" in values:
        address = "unix:" + values["_uds"]
    elif "_fd" in values:
        if not values["_fd"].isdigit():
            raise ConfigError(f"{where}: --fd {values['_fd']!r}: expected a file descriptor number")
        address = "fd://" + values["_fd"]
    else:
        host = values.get("_host", _DEFAULT_HOST)
        port = values.get("_port", _DEFAULT_PORT)
        if not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"{where}: --port {port!r}: expected a port number from 0 to 65535")
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    given["bind"] = Given([address], flags)


def all_flags(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string the parser knows."""
    return [flag for action in parser._actions for flag in action.option_strings]


def parse_flags(args: Sequence[str], where: str) -> dict[str, Given]:
    """Parse command-line style `args`; `where` names them in errors ("command line")."""
    parser = build_parser()
    try:
        namespace, extras = parser.parse_known_args(list(args))
    except _Refused as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if extras:
        first = extras[0]
        if first.startswith("-"):
            hint = did_you_mean(first.split("=", 1)[0], all_flags(parser), "{}")
            raise ConfigError(f"{where}: unrecognized option {first!r}{hint}")
        raise ConfigError(f"{where}: unexpected argument {first!r} (only one APP is taken)")
    given = {name: value for name, value in vars(namespace).items() if isinstance(value, Given)}
    _bind_from_address(given, where)
    return given
