"""The `flask` workload: one Flask route returning the hello body."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index() -> str:
    """Return the same 13 bytes as the plain `hello` app, through Flask's routing and response."""
    return "Hello, World!"
