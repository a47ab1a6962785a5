"""ASGI applications of every shape the loader has to recognise."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Generator
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"asgi"})


class Router:
    """Like a Starlette or FastAPI instance: an object with an async __call__."""

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await app(scope, receive, send)


class SubRouter(Router):
    """Inherits the async __call__."""


router = Router()
sub_router = SubRouter()


class AwaitableApp:
    """ASGI 3 as a class: AwaitableApp(scope, receive, send) is awaited."""

    def __init__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        self.args = (scope, receive, send)

    def __await__(self) -> Generator[Any, None, None]:
        return app(*self.args).__await__()


class DoubleCallable:
    """ASGI 2: DoubleCallable(scope) is an instance awaited with (receive, send)."""

    seen: list[dict[str, Any]] = []

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        DoubleCallable.seen.append(self.scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})


async def _with_prefix(prefix: str, scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await app(scope, receive, send)


partial_app = functools.partial(_with_prefix, "/api")
