"""The app loader: APP forms, WSGI/ASGI detection, and readable errors."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from corral.errors import APP_LOAD_ERROR, AppLoadError
from corral.gateway.loader import load_app, resolve_interface

APPS = Path(__file__).parent / "apps"


@pytest.fixture(autouse=True)
def _apps_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(APPS))


def _error(uri: str) -> str:
    with pytest.raises(AppLoadError) as info:
        load_app(uri)
    assert info.value.exit_code == APP_LOAD_ERROR
    return str(info.value)


def test_module_attr() -> None:
    module = importlib.import_module("corral_testapp_wsgi")

    loaded = load_app("corral_testapp_wsgi:application")
    assert loaded.app is module.application
    assert loaded.interface == "wsgi"


def test_dotted_attribute() -> None:
    module = importlib.import_module("corral_testapp_wsgi")

    assert load_app("corral_testapp_wsgi:Holder.inner").app is module.application


def test_bare_module_prefers_application_then_app() -> None:
    wsgi = importlib.import_module("corral_testapp_wsgi")
    bare = importlib.import_module("corral_testapp_bare")
    assert load_app("corral_testapp_wsgi").app is wsgi.application
    assert load_app("corral_testapp_bare").app is bare.app


def test_factory_with_literal_arguments() -> None:
    app: Any = load_app("corral_testapp_wsgi:create_app('hello', status=201)").app
    assert (app.greeting, app.status) == ("hello", 201)
    default: Any = load_app("corral_testapp_wsgi:create_app()").app
    assert (default.greeting, default.status) == ("hi", 200)


@pytest.mark.parametrize(
    "uri",
    [
        "corral_testapp_wsgi:create_app(__import__('os'))",
        "corral_testapp_wsgi:create_app(greeting=name)",
        "corral_testapp_wsgi:create_app(*args)",
        "corral_testapp_wsgi:create_app(**kw)",
    ],
)
def test_factory_arguments_must_be_literals(uri: str) -> None:
    assert "must be Python literals" in _error(uri)


@pytest.mark.parametrize("uri", ["corral_testapp_wsgi:1 + 2", "corral_testapp_wsgi:app[0]"])
def test_other_expressions_are_refused(uri: str) -> None:
    assert "expected an attribute name" in _error(uri)


@pytest.mark.parametrize("uri", ["", ":app", "my-module:app", "corral_testapp_wsgi:", "a..b:c"])
def test_malformed_uri(uri: str) -> None:
    assert "is not of the form module:attr" in _error(uri)


def test_missing_module_names_it_and_the_search_path() -> None:
    message = _error("corral_testapp_nowhere:app")
    assert "cannot find module 'corral_testapp_nowhere'" in message
    assert "--pythonpath" in message
    assert "Traceback" not in message


def test_missing_attribute_names_what_was_looked_for() -> None:
    message = _error("corral_testapp_wsgi:Holder.missing")
    assert "no attribute 'Holder.missing'" in message
    assert "'corral_testapp_wsgi'" in message


def test_bare_module_without_app() -> None:
    message = _error("corral_testapp_empty")
    assert "neither 'application' nor 'app'" in message


def test_not_callable() -> None:
    message = _error("corral_testapp_wsgi:not_callable")
    assert "not callable" in message and "int" in message
    assert "not callable" in _error("corral_testapp_wsgi:not_an_app_factory()")


def test_import_failure_has_short_user_traceback() -> None:
    message = _error("corral_testapp_broken:app")
    lines = message.splitlines()
    assert lines[0] == (
        "cannot import module 'corral_testapp_broken': ZeroDivisionError: division by zero"
    )
    assert sum("corral_testapp_broken.py" in line for line in lines) == 2  # both user frames
    assert "return 1 / 0" in message
    assert "importlib" not in message.replace("importlib and corral frames left out", "")
    assert "loader.py" not in message
    assert len(lines) < 10


def test_import_failure_inside_user_code_is_not_a_missing_app() -> None:
    message = _error("corral_testapp_missing_dep:app")
    assert message.startswith("cannot import module 'corral_testapp_missing_dep'")
    assert "No module named 'corral_testapp_no_such_dependency'" in message
    assert "corral_testapp_missing_dep.py" in message


def test_syntax_error_shows_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "corral_testapp_syntax.py").write_text("x = 1\ndef broken(:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = _error("corral_testapp_syntax:app")
    assert "SyntaxError" in message.splitlines()[0]
    assert "def broken(:" in message
    assert "line 2" in message


def test_factory_exception_is_reported_with_its_frame() -> None:
    message = _error("corral_testapp_wsgi:failing_factory()")
    assert "the factory raised: RuntimeError: factory says no" in message
    assert 'raise RuntimeError("factory says no")' in message


def test_failure_leaves_no_half_imported_module() -> None:
    _error("corral_testapp_broken:app")
    assert "corral_testapp_broken" not in sys.modules


@pytest.mark.parametrize(
    "attr", ["app", "router", "sub_router", "AwaitableApp", "partial_app", "DoubleCallable"]
)
def test_asgi_shapes_are_detected(attr: str) -> None:
    loaded = load_app(f"corral_testapp_asgi:{attr}")
    assert loaded.interface == "asgi"
    assert resolve_interface(loaded.app, "auto") == "asgi"


@pytest.mark.parametrize("attr", ["application", "ClassApp", "Holder.inner"])
def test_wsgi_shapes_are_detected(attr: str) -> None:
    loaded = load_app(f"corral_testapp_wsgi:{attr}")
    assert loaded.interface == "wsgi"
    assert resolve_interface(loaded.app, "auto") == "wsgi"


def test_asgi2_class_is_adapted_to_a_single_callable() -> None:
    module = importlib.import_module("corral_testapp_asgi")

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    loaded = load_app("corral_testapp_asgi:DoubleCallable")
    asyncio.run(loaded.app({"type": "http", "path": "/x"}, receive, send))
    assert module.DoubleCallable.seen[-1]["path"] == "/x"
    assert sent == [{"type": "http.response.start", "status": 204, "headers": []}]


def test_interface_setting_overrides_detection() -> None:
    loaded = load_app("corral_testapp_wsgi:application")
    assert resolve_interface(loaded.app, "asgi") == "asgi"
    assert resolve_interface(load_app("corral_testapp_asgi:app").app, "wsgi") == "wsgi"
    with pytest.raises(ValueError):
        resolve_interface(loaded.app, "cgi")


def test_asyncio_marked_function_is_asgi() -> None:
    # How asgiref marked sync-looking callables before Python 3.12.
    import asyncio.coroutines

    marker = getattr(asyncio.coroutines, "_is_coroutine", None)
    if marker is None:
        pytest.skip("this Python has no asyncio coroutine marker")

    def wrapped(scope: object, receive: object, send: object) -> Any:
        return None

    wrapped._is_coroutine = marker  # type: ignore[attr-defined]
    assert resolve_interface(wrapped, "auto") == "asgi"


def test_real_frameworks_are_detected() -> None:
    starlette = pytest.importorskip("starlette.applications")
    flask = pytest.importorskip("flask")
    assert resolve_interface(starlette.Starlette(), "auto") == "asgi"
    assert resolve_interface(flask.Flask("corral_test"), "auto") == "wsgi"


# --- PasteDeploy (paste / --paste) ------------------------------------------------------------

PASTE_INI = """\
[app:main]
use = call:corral_testapp_paste:make_app
greeting = hello

[app:other]
use = call:corral_testapp_paste:make_app
greeting = other
"""

PASTE_APP = """\
def make_app(global_conf, **local_conf):
    text = local_conf["greeting"] + " " + global_conf.get("who", "nobody")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text.encode()]

    return app
"""


def _call(app: Any) -> bytes:
    return b"".join(app({"REQUEST_METHOD": "GET"}, lambda status, headers: None))


def test_paste_config_loads_with_pastedeploy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from corral.gateway.loader import paste_uri

    (tmp_path / "corral_testapp_paste.py").write_text(PASTE_APP)
    (tmp_path / "my app.ini").write_text(PASTE_INI)
    monkeypatch.syspath_prepend(str(tmp_path))
    ini = str(tmp_path / "my app.ini")
    loaded = load_app(paste_uri(ini, ["who=world"]))
    assert loaded.interface == "wsgi"
    assert _call(loaded.app) == b"hello world"
    assert _call(load_app(paste_uri(ini + "#other")).app) == b"other nobody"
    message = _error(paste_uri(str(tmp_path / "my app.ini#nope")))
    assert message.startswith(f"cannot load the PasteDeploy app '{ini}#nope': LookupError")
