"""A Starlette app for the asyncio worker's e2e tests: routes, streaming, WebSocket, lifespan."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
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
        WebSocketRoute("/ws", ws_echo),
    ],
    lifespan=lifespan,
)
