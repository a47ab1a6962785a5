"""Apps for tests/compat: each answers with what it was given (mount point, environment).

- `app` (WSGI): JSON with SCRIPT_NAME, PATH_INFO, the url scheme and every COMPAT_* variable
- `asgi` (ASGI 3, with lifespan): JSON with the scope's root_path and path
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., object]) -> Iterable[bytes]:
    body = {
        "script_name": environ.get("SCRIPT_NAME"),
        "path_info": environ.get("PATH_INFO"),
        "scheme": environ.get("wsgi.url_scheme"),
        "env": {k: v for k, v in os.environ.items() if k.startswith("COMPAT_")},
        "pid": os.getpid(),
    }
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    body = json.dumps({"root_path": scope["root_path"], "path": scope["path"]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
