"""A Starlette app for the asyncio worker's e2e tests: routes, streaming, WebSocket, lifespan,
a plain ``def`` endpoint (run on anyio's thread pool) and a BaseHTTPMiddleware (an anyio task
group around every request), the two that need the request's own task to be current."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
    yield {"greeting": "hello from lifespan"}


async def home(request: Request) -> JSONResponse:
    return JSONResponse({"greeting": request.state.greeting, "path": request.url.path})


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["item_id"], "q": request.query_params.get("q")})


async def echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"{len(body)}:{body.decode()}", status_code=201)


async def stream(request: Request) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for i in range(5):
            yield json.dumps({"n": i}).encode() + b"\n"

    return StreamingResponse(numbers(), media_type="application/x-ndjson")


def blocking(request: Request) -> JSONResponse:
    """A sync endpoint: Starlette runs it in a worker thread, not on the event loop."""
    return JSONResponse({"on_loop_thread": threading.current_thread() is threading.main_thread()})


class Stamp(BaseHTTPMiddleware):
    """Adds a header to every response, from inside the task group this middleware opens."""

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["x-stamped"] = "yes"
        return response


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="echo" if websocket.scope["subprotocols"] else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text("echo: " + message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


app = Starlette(
    routes=[
        Route("/", home),
        Route("/items/{item_id:int}", item),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        Route("/blocking", blocking),
        WebSocketRoute("/ws", ws_echo),
    ],
    middleware=[Middleware(Stamp)],
    lifespan=lifespan,
)
