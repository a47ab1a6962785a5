"""ASGI twin of the conformance runner's WSGI echo app: the same JSON, from an ASGI scope.

The runner judges requests in WSGI terms, so the scope is translated the way a WSGI server
would present it: PATH_INFO is the percent-decoded raw path as latin-1, headers become
``HTTP_*`` keys (repeats joined with ", "; names with "_" are already left out of the scope
by corral under the default header_map), and the body is read to its end.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes


def _environ_headers(scope: dict[str, Any]) -> tuple[dict[str, str], str | None, str | None]:
    headers: dict[str, str] = {}
    ctype = clen = None
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").upper()
        value = raw_value.decode("latin-1")
        if name == "CONTENT-TYPE":
            ctype = value if ctype is None else ctype + ", " + value
        elif name == "CONTENT-LENGTH":
            clen = value if clen is None else clen + ", " + value
        else:
            key = "HTTP_" + name.replace("-", "_")
            headers[key] = headers[key] + ", " + value if key in headers else value
    return headers, ctype, clen


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request with 200 and the JSON document echo_app.py produces."""
    if scope["type"] != "http":
        return  # no lifespan, no WebSocket: lifespan=auto serves on without it
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return  # the server already answered a broken body itself
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raw_path = scope["raw_path"].decode("latin-1")
    query = scope["query_string"].decode("latin-1")
    headers, ctype, clen = _environ_headers(scope)
    client = scope.get("client")
    doc = {
        "method": scope["method"],
        "script_name": scope.get("root_path", ""),
        "path": unquote_to_bytes(raw_path).decode("latin-1"),
        "query": query,
        "protocol": "HTTP/" + scope["http_version"],
        "raw_uri": raw_path + ("?" + query if query else ""),
        "url_scheme": scope["scheme"],
        "remote_addr": client[0] if client else None,
        "remote_port": str(client[1]) if client else None,
        "headers": headers,
        "content_type": ctype,
        "content_length": clen,
        "input_terminated": True,
        "body": b"".join(chunks).decode("latin-1"),
    }
    out = json.dumps(doc, sort_keys=True).encode("ascii")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(out)).encode()),
                (b"x-echo-app", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": out})


application = app
