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
        if mode in ("true", "false", "toggle"):
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
        elif self.mode == "optional" and values is None:
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
    return parser


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
    return {name: given for name, given in vars(namespace).items() if isinstance(given, Given)}
