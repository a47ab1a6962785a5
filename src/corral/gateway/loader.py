"""Import the application named by APP and tell whether it speaks WSGI or ASGI."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from corral.errors import AppLoadError

INTERFACES = ("wsgi", "asgi")
_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_BARE_MODULE_NAMES = ("application", "app")
_MAX_FRAMES = 8
_IMPORTLIB_DIR = os.path.dirname(importlib.__file__)
# An APP that names a PasteDeploy config file (`paste` setting): "paste:" + the quoted absolute
# path (with its "#name"), then "?" and the global conf. A module:attr never has "/" after ":".
PASTE_SCHEME = "paste:/"
PASTE_MISSING = "PasteDeploy is not installed: pip install 'corral[paste]'"


@dataclass(frozen=True)
class LoadedApp:
    """An imported application callable and the interface it was detected to speak."""

    app: Callable[..., Any]
    interface: str


def paste_uri(config: str, global_conf: Sequence[str] = ()) -> str:
    """The APP for a PasteDeploy file (`config.ini` or `config.ini#name`) and `KEY=VALUE`s."""
    uri = "paste:" + quote(os.path.abspath(config), safe="/#:@+,=~")
    pairs = [item.partition("=")[::2] for item in global_conf]
    return uri + ("?" + urlencode(pairs) if pairs else "")


def load_app(uri: str) -> LoadedApp:
    """Import `module:attr`, `module:factory(literal args)` or bare `module` (its `application`
    or `app`), or load a PasteDeploy app (`paste_uri`). Raises AppLoadError with a readable
    message; never exits the process."""
    if uri.startswith(PASTE_SCHEME):
        app = _load_paste(uri)
        return LoadedApp(app, _detect(app))
    module_name, _, expression = uri.partition(":")
    if not _MODULE.fullmatch(module_name) or (":" in uri and not expression.strip()):
        raise AppLoadError(
            f"APP {uri!r} is not of the form module:attr, module:factory(args) or module"
        )
    module = _import(module_name, uri)
    app = _evaluate(module, expression.strip(), uri) if expression else _bare(module, uri)
    if not callable(app):
        raise AppLoadError(
            f"APP {uri!r} is not callable: it is {type(app).__name__} {_short_repr(app)}"
        )
    kind = _detect(app)
    if kind == "asgi2":
        return LoadedApp(_single_callable(app), "asgi")
    return LoadedApp(app, kind)


def _load_paste(uri: str) -> Any:
    quoted, _, query = uri.removeprefix("paste:").partition("?")
    config = unquote(quoted)
    try:
        from paste.deploy import loadapp  # type: ignore[import-untyped]
    except ImportError:
        raise AppLoadError(f"paste = {config!r}: {PASTE_MISSING}") from None
    global_conf = dict(parse_qsl(query, keep_blank_values=True)) or None
    try:
        # As gunicorn's --paste: relative paths inside the file are relative to the cwd.
        return loadapp("config:" + config, relative_to=os.getcwd(), global_conf=global_conf)
    except Exception as exc:
        raise AppLoadError(_failure(f"cannot load the PasteDeploy app {config!r}", exc)) from exc


def resolve_interface(app: object, setting: str) -> str:
    """The interface to serve `app` with: the `interface` setting, or detection for `auto`."""
    if setting in INTERFACES:
        return setting
    if setting != "auto":
        raise ValueError(f"interface must be auto, wsgi or asgi, not {setting!r}")
    return "wsgi" if _detect(app) == "wsgi" else "asgi"


def _import(module_name: str, uri: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise AppLoadError(
                f"cannot find module {module_name!r} for APP {uri!r} (looked in the current "
                f"directory {os.getcwd()!r} and sys.path; see --chdir and --pythonpath)"
            ) from None
        raise AppLoadError(_failure(f"cannot import module {module_name!r}", exc)) from exc
    except (Exception, SystemExit) as exc:
        raise AppLoadError(_failure(f"cannot import module {module_name!r}", exc)) from exc


def _bare(module: Any, uri: str) -> Any:
    for name in _BARE_MODULE_NAMES:
        if hasattr(module, name):
            return getattr(module, name)
    raise AppLoadError(
        f"module {uri!r} has neither 'application' nor 'app'; name the callable as {uri}:NAME"
    )


def _evaluate(module: Any, expression: str, uri: str) -> Any:
    try:
        node = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise AppLoadError(
            f"APP {uri!r}: {expression!r} is neither an attribute name nor a factory call"
        ) from None
    if isinstance(node, ast.Call):
        factory = _lookup(module, _dotted(node.func, uri), uri)
        args, kwargs = _literal_arguments(node, uri)
        if not callable(factory):
            raise AppLoadError(f"APP {uri!r}: the factory is not callable")
        try:
            return factory(*args, **kwargs)
        except Exception as exc:
            raise AppLoadError(_failure(f"APP {uri!r}: the factory raised", exc)) from exc
    return _lookup(module, _dotted(node, uri), uri)


def _dotted(node: ast.expr, uri: str) -> list[str]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise AppLoadError(
            f"APP {uri!r}: expected an attribute name such as app or a factory call such as "
            f"create_app()"
        )
    parts.append(node.id)
    return parts[::-1]


def _literal_arguments(call: ast.Call, uri: str) -> tuple[list[Any], dict[str, Any]]:
    try:
        args = [ast.literal_eval(arg) for arg in call.args]
        kwargs = {}
        for keyword in call.keywords:
            if keyword.arg is None:
                raise ValueError("**kwargs")
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
    except ValueError:
        raise AppLoadError(
            f"APP {uri!r}: factory arguments must be Python literals (strings, numbers, "
            f"True/False/None, lists, dicts...)"
        ) from None
    return args, kwargs


def _lookup(module: Any, path: list[str], uri: str) -> Any:
    target = module
    for depth, name in enumerate(path, 1):
        try:
            target = getattr(target, name)
        except AttributeError:
            found = ".".join(path[:depth])
            raise AppLoadError(
                f"module {module.__name__!r} has no attribute {found!r} (APP {uri!r})"
            ) from None
    return target


def _detect(app: object) -> str:
    """ "wsgi", "asgi", or "asgi2" for a class instantiated per connection scope."""
    if inspect.isclass(app):
        if hasattr(app, "__await__"):
            return "asgi"  # App(scope, receive, send) returns an awaitable
        if _is_coroutine_function(vars(app).get("__call__") or _inherited_call(app)):
            return "asgi2"  # App(scope) returns an instance awaited with (receive, send)
        return "wsgi"  # PEP 3333 allows a class: App(environ, start_response) is iterable
    if _is_coroutine_function(app):
        return "asgi"
    if not inspect.isroutine(app) and _is_coroutine_function(_inherited_call(type(app))):
        return "asgi"
    return "wsgi"


def _inherited_call(cls: type) -> object:
    """The `__call__` that instances of `cls` use (None for plain classes)."""
    for klass in cls.__mro__:
        if klass is not object and "__call__" in vars(klass):
            return vars(klass)["__call__"]
    return None


def _is_coroutine_function(func: object) -> bool:
    if func is None:
        return False
    if inspect.iscoroutinefunction(func):
        return True
    # Before Python 3.12, asgiref and others marked sync-looking callables with asyncio's
    # private marker; it can only be set if asyncio was imported.
    coroutines = sys.modules.get("asyncio.coroutines")
    marker = getattr(coroutines, "_is_coroutine", None)
    return marker is not None and getattr(func, "_is_coroutine", None) is marker


def _single_callable(app_class: Any) -> Callable[..., Any]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        instance = app_class(scope)
        await instance(receive, send)

    return app


def _failure(headline: str, exc: BaseException) -> str:
    """The headline, the exception, and the traceback frames inside the user's code."""
    lines = [f"{headline}: {type(exc).__name__}: {exc}"]
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _internal(f.filename)]
    if frames:
        lines.append("Traceback (most recent call last, importlib and corral frames left out):")
        lines.extend(line.rstrip("\n") for line in traceback.format_list(frames[-_MAX_FRAMES:]))
    if isinstance(exc, SyntaxError):
        # The offending line with its caret; the last line repeats the headline.
        detail = traceback.format_exception_only(type(exc), exc)[:-1]
        lines.extend(line.rstrip("\n") for line in detail)
    return "\n".join(lines)


def _internal(filename: str) -> bool:
    return (
        filename.startswith("<frozen ")
        or filename.startswith(_IMPORTLIB_DIR)
        or filename == __file__
    )


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
