"""Value parsers: turn a setting's raw value (Python object or text) into its typed value."""

from __future__ import annotations

import contextlib
import grp
import importlib
import inspect
import ipaddress
import json
import os
import pwd
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Hook = Callable[..., Any]


class Invalid(ValueError):
    """A raw value does not fit its setting; the message reads "expected ..."."""


@dataclass(frozen=True)
class Parser(Generic[T]):
    """How one kind of setting value is checked and converted.

    `convert` takes what a config file holds (any Python object) or a single string from the
    command line or the environment. `split_text` turns one environment string into the raw
    value when the setting holds a list or a dict.
    """

    type_name: str
    convert: Callable[[object], T]
    split_text: Callable[[str], object] | None = None

    def __call__(self, value: object) -> T:
        return self.convert(value)

    def from_text(self, text: str) -> T:
        """Parse the text of an environment variable."""
        return self.convert(self.split_text(text) if self.split_text else text)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid("expected a string")
    return value.strip()


def integer(minimum: int = 0) -> Parser[int]:
    """Whole numbers at or above `minimum`; bools and floats are refused."""
    bound = f"an integer >= {minimum}"

    def convert(value: object) -> int:
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("expected an integer")
        if value < minimum:
            raise Invalid(f"expected {bound}")
        return value

    return Parser(bound.removeprefix("an "), convert)


def seconds(*, allow_zero: bool) -> Parser[float]:
    """A duration in seconds (int or float); zero only where it means "off"."""
    want = "a number of seconds >= 0" if allow_zero else "a number of seconds > 0"

    def convert(value: object) -> float:
        if isinstance(value, bool):
            raise Invalid(f"expected {want}")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise Invalid(f"expected {want}") from None
        if not isinstance(value, (int, float)) or value != value:  # NaN
            raise Invalid(f"expected {want}")
        if value < 0 or (value == 0 and not allow_zero) or value == float("inf"):
            raise Invalid(f"expected {want}")
        return float(value)

    return Parser("seconds", convert)


_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise Invalid("expected a boolean (true/false, yes/no, on/off, 1/0)")


def _string(value: object) -> str:
    return _text(value)


def _optional_string(value: object) -> str | None:
    return None if value is None else _text(value)


def _string_list(value: object) -> list[str]:
    # A single string stands for a one-element list, as gunicorn accepts `bind = "0.0.0.0:80"`.
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise Invalid("expected a list of strings")
    return [v.strip() for v in value]


_TCP_BIND = re.compile(r"(?:\[[0-9A-Fa-f:.%\w]+\]|[^\s:\[\]/]*)(?::(\d{1,5}))?")


def _binds(value: object) -> list[str]:
    items = _string_list(value)
    for item in items:
        if item.startswith("unix:") and len(item) > len("unix:"):
            continue
        if re.fullmatch(r"fd://\d+", item):
            continue
        match = _TCP_BIND.fullmatch(item)
        if not item or match is None or int(match.group(1) or 0) > 65535:
            raise Invalid(f"expected HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N, got {item!r}")
    return items


def _optional_bind(value: object) -> str | None:
    text = _optional_string(value)
    return None if text is None or not text.strip() else _binds(text.strip())[0]


def _pairs(value: object) -> list[str]:
    items = _string_list(value)
    for item in items:
        if "=" not in item or not item.split("=", 1)[0]:
            raise Invalid(f"expected KEY=VALUE, got {item!r}")
    return items


def _comma_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise Invalid("expected a comma-separated string or a list of strings")


def _address_list(value: object) -> list[str]:
    items = _comma_list(value)
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item)
        except ValueError:
            raise Invalid(f"expected IP addresses or networks or '*', got {item!r}") from None
    return items


def choice(options: Iterable[str], aliases: Mapping[str, str] | None = None) -> Parser[str]:
    """One word out of `options` (case-insensitive); `aliases` map other words onto them."""
    allowed = tuple(options)
    mapping = {o: o for o in allowed} | dict(aliases or {})

    def convert(value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in mapping:
            return mapping[value.strip().lower()]
        raise Invalid("expected one of " + ", ".join(allowed))

    return Parser(" | ".join(allowed), convert)


def _umask(value: object) -> int:
    # gunicorn's rule: a string with a leading 0 is octal ("0022"); "0o22" and "0x12" also work.
    if isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"0[0-7]+", text):
            text = "0o" + text[1:]
        try:
            value = int(text, 0)
        except ValueError:
            raise Invalid("expected a file mode mask such as 0o022 or 0022") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise Invalid("expected a file mode mask such as 0o022 or 0022")
    return value


def import_object(path: str) -> object:
    """Import `pkg.mod.name` or `pkg.mod:name`."""
    module, sep, name = path.partition(":") if ":" in path else path.rpartition(".")
    if not sep or not module or not name:
        raise Invalid(f"expected a dotted import path such as package.module.name, got {path!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise Invalid(f"cannot import {module!r}: {exc}") from None
    except AttributeError:
        raise Invalid(f"module {module!r} has no attribute {name!r}") from None


def _accepts(func: Hook, count: int) -> bool:
    try:
        inspect.signature(func).bind(*range(count))
    except TypeError:
        return False
    except ValueError:  # no signature (some builtins): trust the caller
        return True
    return True


def _resolve_callable(value: object) -> Hook:
    if isinstance(value, str):
        value = import_object(value.strip())
    if not callable(value):
        raise Invalid("expected a callable")
    return value


def hook(arity: int) -> Parser[Hook]:
    """A server hook: a callable taking `arity` positional arguments, or its import path."""
    plural = "argument" if arity == 1 else "arguments"

    def convert(value: object) -> Hook:
        func = _resolve_callable(value)
        if not _accepts(func, arity):
            raise Invalid(f"expected a callable taking {arity} positional {plural}")
        return func

    return Parser(f"callable({arity} args)", convert)


def _named_like(func: Hook, wrapper: Hook) -> Hook:
    """`wrapper` under `func`'s name, so --print-config shows the user's hook. No __wrapped__
    (functools.wraps): the arity checks would then see `func`'s signature, not the wrapper's."""
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        with contextlib.suppress(AttributeError, TypeError):
            setattr(wrapper, attr, getattr(func, attr))
    return wrapper


def _post_request(value: object) -> Hook:
    # gunicorn lets post_request take (worker, req), (worker, req, environ) or all four.
    func = _resolve_callable(value)
    if _accepts(func, 4):
        return func
    if _accepts(func, 3):
        return _named_like(func, lambda worker, req, environ, _resp: func(worker, req, environ))
    if _accepts(func, 2):
        return _named_like(func, lambda worker, req, _environ, _resp: func(worker, req))
    raise Invalid("expected a callable taking 2, 3 or 4 positional arguments")


def _json_object(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        raise Invalid("expected a JSON object") from None


def _mapping(value: object) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise Invalid("expected a dict with string keys")
    return dict(value)


def _header_dict(value: object) -> dict[str, str]:
    table = _mapping(value)
    if not all(isinstance(v, str) for v in table.values()):
        raise Invalid("expected a dict of header name to string value")
    return {k.strip().upper(): v for k, v in table.items()}


def _account(value: object, lookup: Callable[[str], int], what: str) -> int | None:
    if value is None or isinstance(value, bool):
        if value is None:
            return None
        raise Invalid(f"expected a {what} name or id")
    if isinstance(value, int):
        if value < 0:
            raise Invalid(f"expected a {what} name or id")
        return value
    name = _text(value)
    if name.isdigit():
        return int(name)
    try:
        return lookup(name)
    except KeyError:
        raise Invalid(f"no such {what}: {name!r}") from None


def _user(value: object) -> int | None:
    return _account(value, lambda n: pwd.getpwnam(n).pw_uid, "user")


def _group(value: object) -> int | None:
    return _account(value, lambda n: grp.getgrnam(n).gr_gid, "group")


def _directory(value: object) -> str | None:
    if value is None:
        return None
    path = os.path.abspath(_text(value))
    if not os.path.isdir(path):
        raise Invalid(f"expected an existing directory, {path!r} is not one")
    return path


def _statsd_address(value: object) -> str | None:
    if value is None:
        return None
    text = _text(value)
    if text.startswith("unix:") and len(text) > len("unix:"):
        return text
    if re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+)(:\d{1,5})?", text):
        return text
    raise Invalid("expected HOST, HOST:PORT or unix:PATH")


def _dotted_path(value: object) -> str:
    text = _text(value)
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+", text):
        raise Invalid("expected a dotted path such as package.module.Class")
    return text


INT = integer(0)
POSITIVE_INT = integer(1)


def _workers(value: object) -> int:
    """A worker count, or `auto` (0): sized to the machine by the arbiter (arbiter/sizing.py)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return 0
    try:
        return INT.convert(value)
    except Invalid:
        raise Invalid("expected an integer >= 0 (0 = auto), or auto") from None


WORKERS = Parser("an integer (0 = auto), or auto", _workers)


def _threads(value: object) -> int:
    """A thread count (at least 1), or `auto` (0): a pool that sizes itself (workers/pool.py)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return 0
    try:
        return POSITIVE_INT.convert(value)
    except Invalid:
        raise Invalid("expected an integer >= 1, or auto") from None


THREADS = Parser("an integer >= 1, or auto", _threads)
BOOL: Parser[bool] = Parser("boolean", _boolean)
STRING: Parser[str] = Parser("string", _string)
OPTIONAL_STRING: Parser[str | None] = Parser("string", _optional_string)
STRING_LIST: Parser[list[str]] = Parser("list of strings", _string_list, shlex.split)
BIND_LIST: Parser[list[str]] = Parser("list of addresses", _binds, shlex.split)
OPTIONAL_BIND: Parser[str | None] = Parser("address", _optional_bind)
PAIRS: Parser[list[str]] = Parser("list of KEY=VALUE", _pairs, shlex.split)
COMMA_LIST: Parser[list[str]] = Parser("comma-separated list", _comma_list)
ADDRESS_LIST: Parser[list[str]] = Parser("comma-separated IPs/networks", _address_list)
UMASK: Parser[int] = Parser("octal mode", _umask)
POST_REQUEST_HOOK: Parser[Hook] = Parser("callable(2-4 args)", _post_request)
MAPPING: Parser[dict[str, Any]] = Parser("dict", _mapping, _json_object)
HEADER_DICT: Parser[dict[str, str]] = Parser("dict of str to str", _header_dict, _json_object)
USER: Parser[int | None] = Parser("user name or uid", _user)
GROUP: Parser[int | None] = Parser("group name or gid", _group)
DIRECTORY: Parser[str | None] = Parser("directory", _directory)
STATSD_ADDRESS: Parser[str | None] = Parser("address", _statsd_address)
DOTTED_PATH: Parser[str] = Parser("dotted path", _dotted_path)
