"""ASGI lifespan in the asyncio worker: startup, shutdown, state, failures, modes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.integration.test_asgi_http import Server, respond, serve

from corral.config import load
from corral.errors import AppLoadError
from corral.gateway.lifespan import Lifespan
from corral.logging import Logger

__all__ = ["serve"]  # the fixture, shared with test_asgi_http


@pytest.fixture
def log() -> Iterator[Logger]:
    logger = Logger(load([], {}))
    yield logger
    logger.close()
    for name in ("corral.error", "corral.access"):
        for handler in list(logging.getLogger(name).handlers):
            logging.getLogger(name).removeHandler(handler)


def make_app(events: list[str], startup: str = "complete", shutdown: str = "complete") -> Any:
    """A lifespan app that records what it receives and answers as told."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send, 200, repr(sorted(scope["state"].items())).encode())
            return
        assert scope["type"] == "lifespan"
        assert scope["asgi"]["version"] == "3.0"
        message = await receive()
        events.append(message["type"])
        if startup == "raise":
            raise RuntimeError("cannot start")
        if startup == "failed":
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        scope["state"]["pool"] = "ready"
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        events.append(message["type"])
        if shutdown == "failed":
            await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})
        else:
            await send({"type": "lifespan.shutdown.complete"})

    return app


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_startup_and_shutdown_run_in_order_and_fill_state(log: Logger) -> None:
    events: list[str] = []

    async def main() -> dict[str, Any]:
        lifespan = Lifespan(make_app(events), "auto", log)
        await lifespan.startup()
        assert lifespan.active
        await lifespan.shutdown(5)
        return lifespan.state

    state = run(main())
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert state == {"pool": "ready"}


def test_startup_failed_is_an_app_load_error_in_every_mode(log: Logger) -> None:
    for mode in ("auto", "on"):
        lifespan = Lifespan(make_app([], startup="failed"), mode, log)
        with pytest.raises(AppLoadError, match="no database"):
            run(lifespan.startup())


def test_app_without_lifespan_support_is_served_in_auto_mode(log: Logger) -> None:
    lifespan = Lifespan(make_app([], startup="raise"), "auto", log)
    run(lifespan.startup())
    assert not lifespan.active


def test_app_without_lifespan_support_fails_in_on_mode(log: Logger) -> None:
    lifespan = Lifespan(make_app([], startup="raise"), "on", log)
    with pytest.raises(AppLoadError, match="RuntimeError: cannot start"):
        run(lifespan.startup())


def test_off_never_calls_the_app_with_a_lifespan_scope(log: Logger) -> None:
    events: list[str] = []
    lifespan = Lifespan(make_app(events), "off", log)
    run(lifespan.startup())
    assert events == [] and not lifespan.active


def test_shutdown_failure_is_reported_not_raised(log: Logger) -> None:
    events: list[str] = []

    async def main() -> None:
        lifespan = Lifespan(make_app(events, shutdown="failed"), "on", log)
        await lifespan.startup()
        await lifespan.shutdown(5)

    run(main())
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def test_state_reaches_requests_and_shutdown_runs_on_stop(serve: Callable[..., Server]) -> None:
    events: list[str] = []
    server = serve(make_app(events))
    assert httpx.get(server.url).text == "[('pool', 'ready')]"
    assert events == ["lifespan.startup"]
    server.stop()
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def test_failed_startup_stops_the_worker_before_it_serves(
    serve: Callable[..., Server],
) -> None:
    server = serve(make_app([], startup="failed"))
    server.thread.join(10)
    assert isinstance(server.error, AppLoadError)
