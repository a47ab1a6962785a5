"""A WSGI module with `application`, a dotted attribute, factories and a non-callable."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


class Holder:
    """An app reachable only through a dotted attribute path."""

    inner = staticmethod(application)


def create_app(greeting: str = "hi", *, status: int = 200) -> Callable[..., Iterable[bytes]]:
    """A factory whose arguments the tests can see in the app it returns."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response(f"{status} X", [])
        return [greeting.encode()]

    app.greeting = greeting  # type: ignore[attr-defined]
    app.status = status  # type: ignore[attr-defined]
    return app


def failing_factory() -> None:
    raise RuntimeError("factory says no")


def not_an_app_factory() -> int:
    return 3


not_callable = 42


class ClassApp:
    """PEP 3333 allows a class as the application: it is called per request, then iterated."""

    def __init__(self, environ: dict[str, Any], start_response: StartResponse) -> None:
        start_response("200 OK", [])

    def __iter__(self) -> Iterable[bytes]:
        yield b"class"
