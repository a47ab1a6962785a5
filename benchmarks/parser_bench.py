#!/usr/bin/env python3
"""Micro-benchmark: corral's HTTP/1.1 parser beside gunicorn's pure-Python parser.

Both parse the same bytes in the same run; the table gives µs per request (the median
of several timeit repeats) and gunicorn's time divided by corral's.

    python benchmarks/parser_bench.py [--repeat 7] [--number 20000]

Columns:
  corral parse   a fresh ServerConnection per request: receive_data, next_event
                 until EndOfMessage (the body included)
  corral cycle   one kept-alive ServerConnection: receive_data, next_event until
                 EndOfMessage, send_full of a small response, start_next_cycle
  gunicorn parse one kept-alive gunicorn RequestParser (http_parser = "python") over
                 a source that hands it one request per read: next(parser), then
                 the body read to its end
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import timeit
from collections.abc import Callable

from corral.http.connection import ServerConnection
from corral.http.events import Data, EndOfMessage, Request

BROWSER_GET = (
    b"GET /catalog/shoes/running?color=blue&size=42&sort=price HTTP/1.1\r\n"
    b"Host: shop.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Referer: https://shop.example.com/catalog/shoes\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: sessionid=8c1f2e4b9a7d4c0e; csrftoken=Qm9vdHN0cmFwVG9rZW4xMjM0NTY3ODkw\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"\r\n"
)

_FORM_BODY = b"username=alice&email=alice%40example.com&plan=pro&remember=on&next=%2Fhome"
FORM_POST = (
    b"POST /account/signup HTTP/1.1\r\n"
    b"Host: shop.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: %d\r\n"
    b"Origin: https://shop.example.com\r\n"
    b"Cookie: csrftoken=Qm9vdHN0cmFwVG9rZW4xMjM0NTY3ODkw\r\n"
    b"\r\n%s" % (len(_FORM_BODY), _FORM_BODY)
)

CASES = {"browser GET (12 headers)": BROWSER_GET, "form POST (body)": FORM_POST}
_RESPONSE_HEADERS = [("Content-Type", "text/plain")]


def corral_parse(data: bytes) -> Callable[[], None]:
    """One request through a fresh ServerConnection."""

    def run() -> None:
        conn = ServerConnection()
        conn.receive_data(data)
        event = conn.next_event()
        while type(event) is not EndOfMessage:
            event = conn.next_event()

    return run


def corral_cycle(data: bytes) -> Callable[[], None]:
    """One request and a small response on a kept-alive ServerConnection."""
    conn = ServerConnection()

    def run() -> None:
        conn.receive_data(data)
        event = conn.next_event()
        while type(event) is not EndOfMessage:
            event = conn.next_event()
        conn.send_full(200, _RESPONSE_HEADERS, b"ok")
        conn.start_next_cycle()

    return run


def gunicorn_parse(data: bytes) -> Callable[[], None] | None:
    """One request through gunicorn's pure-Python parser, or None without gunicorn."""
    try:
        from gunicorn.config import Config  # type: ignore[import-untyped]
        from gunicorn.http.parser import RequestParser  # type: ignore[import-untyped]
    except ImportError:
        return None
    cfg = Config()
    cfg.set("http_parser", "python")  # never its optional C parser
    parser = RequestParser(cfg, itertools.repeat(data), ("127.0.0.1", 50000))

    def run() -> None:
        request = next(parser)
        request.body.read()

    return run


def per_request_us(fn: Callable[[], None], number: int, repeat: int) -> float:
    """Median over ``repeat`` runs of ``number`` calls, in µs per call."""
    fn()  # warm up (and fail early)
    times = timeit.repeat(fn, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def check_same_request(data: bytes) -> None:
    """Both parsers must see the whole request, or the comparison means nothing."""
    conn = ServerConnection()
    conn.receive_data(data)
    request = conn.next_event()
    assert isinstance(request, Request) and len(request.headers) >= 7, request
    body = b""
    event = conn.next_event()
    while isinstance(event, Data):
        body += event.data
        event = conn.next_event()
    assert isinstance(event, EndOfMessage)
    assert body == data.partition(b"\r\n\r\n")[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--number", type=int, default=20000, help="calls per repeat")
    ap.add_argument("--repeat", type=int, default=7, help="repeats (the median is shown)")
    args = ap.parse_args(argv)
    print(
        f"Python {sys.version.split()[0]}; µs per request, median of {args.repeat} x {args.number}"
    )
    try:
        import gunicorn  # type: ignore[import-untyped]

        print(f"gunicorn {gunicorn.__version__} (pure-Python parser)")
    except ImportError:
        print("gunicorn is not importable: its column is skipped")
    header = f"| {'request':26} | corral parse | corral cycle | gunicorn parse | gunicorn/corral |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, data in CASES.items():
        check_same_request(data)
        ours = per_request_us(corral_parse(data), args.number, args.repeat)
        cycle = per_request_us(corral_cycle(data), args.number, args.repeat)
        theirs_fn = gunicorn_parse(data)
        if theirs_fn is None:
            theirs_s, ratio_s = "skipped", "-"
        else:
            theirs = per_request_us(theirs_fn, args.number, args.repeat)
            theirs_s, ratio_s = f"{theirs:.2f}", f"{theirs / ours:.1f}x"
        print(f"| {name:26} | {ours:12.2f} | {cycle:12.2f} | {theirs_s:>14} | {ratio_s:>15} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
