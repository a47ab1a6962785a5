"""corral's own request corpus (tests/unit/http_corpus), whole, byte by byte, split at random."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.http.connection import Limits, ServerConnection
from corral.http.errors import ProtocolError
from corral.http.events import (
    NEED_DATA,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Request,
)

CORPUS = Path(__file__).parent / "http_corpus"
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)")
_SIMPLE_ESCAPES = {"r": "\r", "n": "\n", "t": "\t", "0": "\0", "\\": "\\"}
SPLITS = ["whole", "bytes", *(f"random-{seed}" for seed in range(5))]


@dataclasses.dataclass(frozen=True)
class Case:
    file: str
    name: str
    raw: bytes
    limits: Limits
    status: int | None
    accepted: int
    expects: list[dict[str, Any]]


def decode_raw(text: str) -> bytes:
    """Layout newlines are dropped; escapes give the bytes (see http_corpus/README.md)."""
    assert text.isascii(), "raw request text must be ASCII; use \\xHH"

    def replace(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc[0] == "x":
            return chr(int(esc[1:], 16))
        if esc not in _SIMPLE_ESCAPES:
            raise ValueError(f"unknown escape \\{esc}")
        return _SIMPLE_ESCAPES[esc]

    return _ESCAPE.sub(replace, text.replace("\n", "")).encode("latin-1")


def load(path: Path) -> list[Case]:
    cases = []
    for block in re.split(r"^### ", path.read_text("utf-8"), flags=re.M)[1:]:
        title, _, rest = block.partition("\n")
        meta, sep, raw = rest.partition("\n---\n")
        assert sep, f"{path.name}: case {title!r} has no --- line"
        limits: dict[str, Any] = {}
        status = None
        accepted = 0
        expects = []
        for line in meta.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            key, _, value = line.partition(":")
            if key == "limits":
                limits = json.loads(value)
            elif key == "status":
                status = int(value)
            elif key == "accepted":
                accepted = int(value)
            elif key == "expect":
                expects.append(json.loads(value))
            else:
                raise AssertionError(f"{path.name}: unknown key {key!r} in {title!r}")
        assert (status is None) != (not expects), f"{title!r}: give status or expect"
        cases.append(
            Case(
                path.stem,
                title.strip(),
                decode_raw(raw),
                Limits(**limits),
                status,
                accepted,
                expects,
            )
        )
    return cases


CASES = [case for path in sorted(CORPUS.glob("*.http")) for case in load(path)]


def pieces(data: bytes, split: str) -> list[bytes]:
    if split == "whole":
        return [data]
    if split == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(int(split.rpartition("-")[2]))
    out, pos = [], 0
    while pos < len(data):
        size = rng.randint(1, 16)
        out.append(data[pos : pos + size])
        pos += size
    return out


@dataclasses.dataclass
class Outcome:
    requests: list[tuple[Request, bytes, list[tuple[str, str]]]]
    error: ProtocolError | None = None
    closed: bool = False


def drive(raw: bytes, limits: Limits, split: str) -> Outcome:
    """Feed the bytes then EOF; answer each request with a small response."""
    conn = ServerConnection(limits)
    feed: Iterator[bytes] = iter([*pieces(raw, split), b""])
    outcome = Outcome([])
    request: Request | None = None
    body: list[bytes] = []
    for _ in range(4 * len(raw) + 50):
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            outcome.error = exc
            with pytest.raises(ProtocolError) as again:
                conn.next_event()
            assert again.value.status == exc.status  # the connection stays dead
            assert not conn.keep_alive
            return outcome
        if event is NEED_DATA:
            conn.receive_data(next(feed))
        elif isinstance(event, Request):
            request, body = event, []
        elif isinstance(event, Data):
            assert event.data, "no empty Data events"
            body.append(event.data)
        elif isinstance(event, EndOfMessage):
            assert request is not None
            outcome.requests.append((request, b"".join(body), event.trailers))
            conn.send_full(200, [], b"ok")
            if not conn.keep_alive:
                return outcome
            conn.start_next_cycle()
        else:
            assert isinstance(event, ConnectionClosed), event
            outcome.closed = True
            return outcome
    raise AssertionError("the connection never settled")


def check_request(request: Request, body: bytes, trailers: list[Any], want: dict[str, Any]) -> None:
    got = {
        name: getattr(request, name)
        for name in want
        if name not in ("headers", "body", "trailers", "version")
    }
    expected = {k: v for k, v in want.items() if k in got}
    assert got == expected
    if "version" in want:
        assert request.http_version == want["version"]
    if "headers" in want:
        assert request.headers == [tuple(h) for h in want["headers"]]
    if "body" in want:
        assert body == want["body"].encode("latin-1")
    if "trailers" in want:
        assert trailers == [tuple(t) for t in want["trailers"]]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("case", CASES, ids=[f"{c.file}:{c.name}" for c in CASES])
def test_corpus_case(case: Case, split: str) -> None:
    outcome = drive(case.raw, case.limits, split)
    if case.status is not None:
        assert outcome.error is not None, "accepted an invalid request"
        assert (outcome.error.status, len(outcome.requests)) == (case.status, case.accepted)
        return
    assert outcome.error is None, f"rejected: {outcome.error}"
    assert len(outcome.requests) == len(case.expects)
    for (request, body, trailers), want in zip(outcome.requests, case.expects, strict=True):
        check_request(request, body, trailers, want)
    last = outcome.requests[-1][0]
    assert outcome.closed == last.keep_alive


def test_corpus_is_loaded_and_names_are_unique() -> None:
    names = [(c.file, c.name) for c in CASES]
    assert len(names) == len(set(names))
    assert {c.file for c in CASES} >= {
        "invalid_chunked",
        "invalid_framing",
        "invalid_headers",
        "invalid_host",
        "invalid_request_line",
        "limits",
        "valid",
    }
    statuses = {c.status for c in CASES if c.status is not None}
    assert statuses == {400, 413, 414, 417, 431, 501, 505}


def test_raw_decoding() -> None:
    assert decode_raw("A\\r\\n\nB\\x00\\t\\0\\\\") == b"A\r\nB\x00\t\x00\\"
    with pytest.raises(ValueError, match="unknown escape"):
        decode_raw('\\"')


def _mutate(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(data) + 1)
        byte = rng.choice(b'\r\n\t :;,0a\x00\x80\xff-_/?#"\\')
        op = rng.randrange(3)
        if op == 0:
            data.insert(pos, byte)
        elif pos < len(data):
            if op == 1:
                del data[pos]
            else:
                data[pos] = byte
    return bytes(data)


def _summary(outcome: Outcome) -> tuple[object, ...]:
    requests = [
        (r.method, r.target, r.http_version, tuple(r.headers), body, tuple(trailers))
        for r, body, trailers in outcome.requests
    ]
    return outcome.error is None, requests, outcome.closed


def test_mutated_requests_give_the_same_events_in_every_split() -> None:
    """Seeded mutations of the valid cases: how the bytes arrive never changes the outcome.

    The status may differ only when a bare LF meets another violation: the split that
    sees the other one first names it, as a reader of that stream would.
    """
    rng = random.Random(2)
    valid = [c for c in CASES if c.status is None]
    for _ in range(400):
        case = rng.choice(valid)
        raw = _mutate(case.raw, rng)
        outcomes = [drive(raw, case.limits, split) for split in ("whole", "bytes", "random-1")]
        assert len({repr(_summary(o)) for o in outcomes}) == 1, raw
        statuses = {o.error.status for o in outcomes if o.error is not None}
        bare_lf = raw.count(b"\n") != raw.count(b"\r\n")
        assert len(statuses) <= 1 or bare_lf, (raw, statuses)
