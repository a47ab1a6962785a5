"""The Config object: the settings table as typed attributes, with the source of each value."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
from collections.abc import Iterable
from typing import Any, NamedTuple

from corral.config.parsers import Invalid
from corral.config.spec import Spec, env_name, spec_of
from corral.config.table_compat import CompatTable
from corral.config.table_debug import DebugTable
from corral.config.table_hooks import HookTable
from corral.config.table_logging import LoggingTable
from corral.config.table_mechanics import MechanicsTable
from corral.config.table_server import ServerTable
from corral.config.table_timeouts import TimeoutTable
from corral.config.table_tls import TLSTable
from corral.config.unknown import Unknown
from corral.config.worker_names import foreign_worker
from corral.errors import ConfigError
from corral.gateway.loader import paste_uri

DEFAULT_SOURCE = "default"


class Setting(NamedTuple):
    """One row of the settings table."""

    name: str
    spec: Spec

    @property
    def default(self) -> Any:
        return default_of(self.name)

    @property
    def env(self) -> str:
        return env_name(self.name)


def did_you_mean(word: str, candidates: Iterable[str], template: str = "{}") -> str:
    """ " (did you mean X?)" for the closest candidate, or "" when none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {template.format(close[0])}?)" if close else ""


def show_value(value: object, limit: int = 80) -> str:
    """A value as the error messages and --print-config show it."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"<{getattr(value, '__module__', '?')}.{value.__qualname__}>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclasses.dataclass
class Config(
    CompatTable,
    HookTable,
    LoggingTable,
    MechanicsTable,
    DebugTable,
    ServerTable,
    TimeoutTable,
    TLSTable,
):
    """Every setting as a typed attribute named as in gunicorn; see docs/settings.md."""

    def __post_init__(self) -> None:
        self._sources: dict[str, str] = {}
        self._given: dict[str, object] = {}
        self._unknown: list[Unknown] = []

    def set(
        self, name: str, value: object, source: str = "set in code", *, from_text: bool = False
    ) -> None:
        """Parse `value` for setting `name` and record where it came from.

        With `from_text`, `value` is the text of an environment variable (lists are split
        like a shell command line, dicts are JSON).
        """
        row = settings_table().get(name)
        if row is None:
            hint = did_you_mean(name, settings_table(), "{!r}")
            raise ConfigError(f"unknown setting {name!r} (from {source}){hint}")
        try:
            parse = row.spec.parse
            parsed = parse.from_text(str(value)) if from_text else parse(value)
        except Invalid as exc:
            raise ConfigError(f"{name} = {show_value(value)} (from {source}): {exc}") from None
        for each in (name, row.spec.same_as):
            if each:
                setattr(self, each, parsed)
                self._sources[each] = source
                self._given[each] = value

    def note_unknown(self, unknown: Unknown) -> None:
        """Record a name that is not a setting (from a config file or the environment)."""
        self._unknown.append(unknown)

    @property
    def unknown(self) -> list[Unknown]:
        """The names that were not settings, in the order they were met."""
        return list(self._unknown)

    def source_of(self, name: str) -> str:
        """Where the value of `name` came from: default, config file, env or command line."""
        if name not in settings_table():
            raise KeyError(name)
        return self._sources.get(name, DEFAULT_SOURCE)

    def given(self, name: str) -> object:
        """The value of `name` as its source wrote it, before parsing (None for a default).

        Lets the arbiter say what an alias stood for, e.g. uvicorn's worker class path.
        """
        if name not in settings_table():
            raise KeyError(name)
        return self._given.get(name)

    @property
    def is_ssl(self) -> bool:
        """Whether connections are TLS (a certificate is set); gunicorn's name, for hooks."""
        return bool(self.certfile)

    @property
    def scheme(self) -> str:
        """``https`` when serving TLS, else ``http``: how the listeners are announced."""
        return "https" if self.certfile else "http"

    @property
    def app_uri(self) -> str | None:
        """The application to load: a `paste` file, else the APP argument or `wsgi_app`."""
        if self.paste:
            return paste_uri(self.paste, self.raw_paste_global_conf)
        return self.wsgi_app

    def check(self) -> None:
        """Checks across settings, run once every source is applied."""
        if self.strict_config:
            for unknown in self._unknown:
                fatal = unknown.fatal()
                if fatal:
                    raise ConfigError(fatal)
        for name, row in settings_table().items():
            value = getattr(self, name)
            if row.spec.unsupported and not _is_default(name, value):
                raise ConfigError(
                    f"{name} = {show_value(value)} (from {self.source_of(name)}): "
                    f"{row.spec.unsupported}"
                )
        self._check_gunicorn_features()
        self._check_http2()
        if self.max_threads and self.max_threads < self.threads:
            raise ConfigError(
                f"max_threads = {self.max_threads} (from {self.source_of('max_threads')}): "
                f"expected 0 or at least threads ({self.threads})"
            )

    def _check_http2(self) -> None:
        """h2 asked for: the library must be there, and h2c needs h2 in http_protocols."""
        if "h2" in self.http_protocols and importlib.util.find_spec("h2") is None:
            raise ConfigError(
                f"http_protocols = {show_value(self.http_protocols)} (from "
                f"{self.source_of('http_protocols')}): HTTP/2 needs the h2 library: "
                "pip install 'corral[h2]'"
            )
        if self.http2_cleartext != "off" and "h2" not in self.http_protocols:
            raise ConfigError(
                f"http2_cleartext = {self.http2_cleartext!r} (from "
                f"{self.source_of('http2_cleartext')}): needs h2 in http_protocols "
                f"(now {show_value(self.http_protocols)}), e.g. http_protocols = 'h2,h1'"
            )

    def _check_gunicorn_features(self) -> None:
        """Settings that ask for a gunicorn feature corral lacks, alone or together."""
        refused = foreign_worker(self.worker_class)
        if refused is not None:
            raise ConfigError(
                f"worker_class = {self.worker_class!r} (from {self.source_of('worker_class')}): "
                f"{refused}"
            )
        if self.dirty_workers > 0 and self.dirty_apps:
            raise ConfigError(
                f"dirty_workers = {self.dirty_workers} (from {self.source_of('dirty_workers')}): "
                "corral has no dirty worker pool; run the dirty apps in a task queue or a "
                "service of their own, and set dirty_workers = 0"
            )

    def dump(self) -> str:
        """Every setting, its value and its source, one per line (for --print-config)."""
        width = max(len(name) for name in settings_table())
        lines = []
        for name in settings_table():
            # Whole values (no ellipsis): the output is compared with gunicorn's, line by line.
            value = show_value(getattr(self, name), limit=1 << 20)
            lines.append(f"{name:<{width}} = {value}  # {self.source_of(name)}")
        return "\n".join(lines)


@functools.cache
def settings_table() -> dict[str, Setting]:
    """Every setting by name, in the order of the table (grouped by section)."""
    return {f.name: Setting(f.name, spec_of(f)) for f in dataclasses.fields(Config)}


def default_of(name: str) -> Any:
    """The default value of a setting (a fresh copy for lists and dicts)."""
    item = next(f for f in dataclasses.fields(Config) if f.name == name)
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return item.default


def _is_default(name: str, value: object) -> bool:
    default = default_of(name)
    return value is default if callable(default) else bool(value == default)
