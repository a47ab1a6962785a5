"""The one error ladder both gateways answer with (gateway/ladder.py)."""

from __future__ import annotations

import asyncio
import builtins
import sys
from typing import Any

import pytest

from corral.gateway.ladder import ClientDisconnected, RequestTimeout, answer
from corral.http.connection import Limits, ServerConnection
from corral.http.errors import LocalProtocolError, ProtocolError
from corral.http.events import Request


class Log:
    def __init__(self) -> None:
        self.levels: list[str] = []

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.levels.append("debug")

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.levels.append("error")

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.levels.append("exception")


def req() -> Request:
    conn = ServerConnection(Limits())
    conn.receive_data(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    event = conn.next_event()
    assert isinstance(event, Request)
    return event


@pytest.mark.parametrize(
    ("exc", "status", "level"),
    [
        (ClientDisconnected("reset"), None, "debug"),
        (ProtocolError(413, "too big"), 413, "debug"),
        (LocalProtocolError("bad header"), 500, "error"),
        (ValueError("app bug"), 500, "exception"),
    ],
)
def test_each_rung(exc: BaseException, status: int | None, level: str) -> None:
    log = Log()
    assert answer(exc, log, req()) == status
    assert log.levels == [level]


def test_a_client_disconnect_is_an_oserror_as_asgi_asks() -> None:
    assert issubclass(ClientDisconnected, OSError)


def test_an_app_failing_after_the_client_left_is_no_news() -> None:
    log = Log()
    assert answer(ValueError("late"), log, req(), gone=True) == 500
    assert log.levels == ["debug"]


def test_stops_answer_504_alone_or_in_a_task_group() -> None:
    stops = (asyncio.CancelledError, RequestTimeout)
    assert answer(RequestTimeout(), Log(), req(), stops=stops) == 504
    if sys.version_info >= (3, 11):  # task groups and their exception groups
        group_type = vars(builtins)["BaseExceptionGroup"]
        group = group_type("tg", [asyncio.CancelledError(), RequestTimeout()])
        assert answer(group, Log(), req(), stops=stops) == 504
        mixed = group_type("tg", [asyncio.CancelledError(), KeyboardInterrupt()])
        with pytest.raises(group_type):
            answer(mixed, Log(), req(), stops=stops)


@pytest.mark.parametrize("exc", [SystemExit(0), asyncio.CancelledError(), RequestTimeout()])
def test_what_is_not_the_requests_is_raised_again(exc: BaseException) -> None:
    with pytest.raises(type(exc)):
        answer(exc, Log(), req())  # no stops given: the worker is exiting
