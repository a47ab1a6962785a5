"""Compare `corral --print-config` with `gunicorn --print-config` for the settings both have.

Values are compared as corral would read gunicorn's: gunicorn's printed value is parsed with
corral's parser for the setting (so `gthread` and `threaded`, `warn` and `warning` agree), then
compared with corral's value. Hooks are compared by function name. The differences left are
intended, and listed: INTENDED below, and every setting whose `differs_because` in the table
explains its default (keepalive 75 against 2...), while corral's value is that default.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from corral.config import settings_table
from corral.config.parsers import Invalid

# Differences that are not a setting's default, each with its reason.
INTENDED = {
    "wsgi_app": "corral's APP argument sets wsgi_app; gunicorn keeps the argument apart",
    "sendfile": (
        "gunicorn's default None means 'use sendfile when the platform has it'; corral "
        "prints what that comes to, True"
    ),
    "print_config": "not a setting anyone configures",
}
_GUNICORN_HOOK = re.compile(r"<(?:(\w+)\.)?(\w+)\(\)>")
_CORRAL_DEFAULT_HOOKS = ("default_hook", "default_ssl_context")


def parse_gunicorn(text: str) -> dict[str, str]:
    """gunicorn's `name = value` lines (values as printed, with str())."""
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition(" = ")
        if sep and re.fullmatch(r"\w+", name.strip()):
            values[name.strip()] = value.strip()
    return values


def parse_corral(text: str) -> dict[str, tuple[str, str]]:
    """corral's `name = repr  # source` lines: name -> (repr, source)."""
    values = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(" = ")
        if sep and re.fullmatch(r"\w+", name.strip()):
            value, _, source = rest.rpartition("  # ")
            values[name.strip()] = (value.strip(), source.strip())
    return values


def _hook_name(text: str, corral: bool) -> str:
    if corral:
        qualname = text.strip("<>").rsplit(".", 1)[-1]
        return "default" if qualname in _CORRAL_DEFAULT_HOOKS else qualname
    match = _GUNICORN_HOOK.fullmatch(text)
    assert match, f"unexpected hook text {text!r}"
    # gunicorn's defaults are methods of the setting's class; a config's hook is a function.
    return "default" if match.group(1) else match.group(2)


def _as_corral(name: str, text: str) -> Any:
    """gunicorn's printed value, read by corral's parser for `name`."""
    parse = settings_table()[name].spec.parse
    candidates: list[object] = []
    try:
        candidates.append(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        pass
    candidates.append(text)
    if name == "statsd_host" and isinstance(candidates[0], tuple):
        host, port = candidates[0]
        candidates.insert(0, f"{host}:{port}")
    for candidate in candidates:
        try:
            return parse(candidate)
        except Invalid:
            continue
    raise AssertionError(f"{name}: corral cannot read gunicorn's value {text!r}")


def _corral_value(name: str, text: str) -> Any:
    value = ast.literal_eval(text)
    if name == "statsd_host" and isinstance(value, str) and ":" not in value:
        value += ":8125"  # gunicorn prints the port it fills in
    return value


def differences(corral_out: str, gunicorn_out: str) -> list[str]:
    """Settings both print whose values differ, beyond the intended differences."""
    ours, theirs = parse_corral(corral_out), parse_gunicorn(gunicorn_out)
    missing = sorted(set(theirs) - set(ours))
    found = [f"corral lacks gunicorn's setting {name}" for name in missing]
    for name in sorted(set(theirs) & set(ours)):
        text, source = ours[name]
        row = settings_table()[name]
        if name in INTENDED:
            continue
        if row.spec.differs_because and source == "default":
            continue  # the table says why this default differs
        if row.spec.parse.type_name.startswith("callable"):
            mine, other = _hook_name(text, True), _hook_name(theirs[name], False)
        else:
            mine, other = _corral_value(name, text), _as_corral(name, theirs[name])
        if mine != other:
            found.append(f"{name}: corral {text} ({source}), gunicorn {theirs[name]}")
    return found
