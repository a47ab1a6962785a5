"""A real Flask app for the e2e tests: a page, a form POST, a 404 and a streamed response."""

from collections.abc import Iterator

from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "flask index"


@app.post("/form")
def form() -> dict[str, str]:
    return {"name": request.form.get("name", ""), "count": request.form.get("count", "")}


@app.get("/stream")
def stream() -> Response:
    def parts() -> Iterator[str]:
        for i in range(5):
            yield f"part {i}\n"

    return Response(stream_with_context(parts()), mimetype="text/plain")
