"""What one setting is: its section, parser, flags and help, attached to a dataclass field."""

from __future__ import annotations

import copy
import inspect
from dataclasses import Field, dataclass, field
from typing import Any, Literal, TypeVar, cast

from corral.config.parsers import Parser

T = TypeVar("T")

# Sections in the order the docs and --help present them.
SECTIONS = (
    "Config File",
    "Server Socket",
    "Worker Processes",
    "Security",
    "Server Mechanics",
    "Debugging",
    "Logging",
    "Process Naming",
    "WebSocket",
    "SSL",
    "HTTP/2",
    "Server Hooks",
    "Control",
    "Not Implemented",
)

# How a setting's command-line flag behaves:
#   store     FLAG VALUE
#   append    FLAG VALUE, repeatable; the command line's list replaces any other source's
#   true      FLAG alone sets True (gunicorn's store_true flags)
#   false     FLAG alone sets False (gunicorn's --no-sendfile)
#   toggle    --name sets True and --no-name sets False (corral's settings that default to True)
#   optional  FLAG [VALUE]; FLAG alone means `const`
FlagMode = Literal["store", "append", "true", "false", "toggle", "optional"]

SPEC_KEY = "corral.setting"
ENV_PREFIX = "CORRAL_"


@dataclass(frozen=True)
class Spec:
    """Everything but the name and default of one setting."""

    section: str
    parse: Parser[Any]
    help: str
    cli: tuple[str, ...] = ()
    metavar: str | None = None
    mode: FlagMode = "store"
    const: object = None
    doc_default: str | None = None
    # Set when corral's default differs from gunicorn's: gunicorn's default and why we differ.
    gunicorn_default: str | None = None
    differs_because: str | None = None
    corral_only: bool = False
    # Set when corral accepts the name (so gunicorn config files parse) but cannot honour a
    # value other than the default yet: using it is a ConfigError, never a silent no-op.
    unsupported: str | None = None
    # gunicorn reads a few plain environment variables as defaults (PORT, WEB_CONCURRENCY...).
    legacy_env: str | None = None
    legacy_env_format: str = "{}"
    # Another setting's name for the same value (gunicorn's asgi_loop for corral's loop):
    # setting either sets both, so each source's precedence holds whichever name it used.
    same_as: str | None = None

    @property
    def short(self) -> str:
        """The first paragraph of the help, on one line."""
        return " ".join(self.help.split("\n\n", 1)[0].split())


def setting(
    default: T,
    *,
    section: str,
    parse: Parser[T],
    help: str,
    cli: tuple[str, ...] = (),
    metavar: str | None = None,
    mode: FlagMode = "store",
    const: object = None,
    doc_default: str | None = None,
    gunicorn_default: str | None = None,
    differs_because: str | None = None,
    corral_only: bool = False,
    unsupported: str | None = None,
    legacy_env: str | None = None,
    legacy_env_format: str = "{}",
    same_as: str | None = None,
) -> T:
    """Declare one setting as a dataclass field; the field's metadata carries its Spec."""
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}")
    spec = Spec(
        section=section,
        parse=parse,
        help=inspect.cleandoc(help),
        cli=cli,
        metavar=metavar,
        mode=mode,
        const=const,
        doc_default=doc_default,
        gunicorn_default=gunicorn_default,
        differs_because=differs_because,
        corral_only=corral_only,
        unsupported=unsupported,
        legacy_env=legacy_env,
        legacy_env_format=legacy_env_format,
        same_as=same_as,
    )
    metadata = {SPEC_KEY: spec}
    made: Any
    if isinstance(default, (list, dict)):
        # Mutable defaults are copied per Config, so one instance cannot change another's.
        pristine: Any = copy.deepcopy(default)
        made = field(default_factory=lambda: copy.deepcopy(pristine), metadata=metadata)
    else:
        made = field(default=default, metadata=metadata)
    # The dataclass machinery replaces the Field with the default on the class; typed as T so
    # each attribute keeps its setting's type.
    return cast(T, made)


def spec_of(item: Field[Any]) -> Spec:
    """The Spec of a dataclass field declared with `setting()`."""
    spec = item.metadata[SPEC_KEY]
    assert isinstance(spec, Spec)
    return spec


def env_name(name: str) -> str:
    """The environment variable of a setting: CORRAL_<NAME>."""
    return ENV_PREFIX + name.upper()
