"""The WSGI gateway and HTTP behaviour of the sync and threaded workers, over real sockets."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.apps.behaviours import FILE_BODY, LARGE_BODY
from tests.e2e.conftest import CorralProcess, wait_until
from tests.e2e.rawhttp import RawClient, request

WORKERS = {
    "sync": ["-k", "sync"],
    "threaded": ["-k", "threaded", "--threads", "4"],
}


@pytest.fixture(scope="module", params=sorted(WORKERS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CorralProcess]:
    cwd: Path = tmp_path_factory.mktemp("gateway")
    proc = CorralProcess(
        [
            *WORKERS[request.param],
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--limit-request-body",
            "1000000",
            "--header-timeout",
            "2",
            "behaviours:app",
        ],
        cwd=cwd,
    )
    proc.kind = request.param  # type: ignore[attr-defined]
    yield proc
    proc.stop()


def kind(server: CorralProcess) -> str:
    return str(server.kind)  # type: ignore[attr-defined]


def get(server: CorralProcess, path: str, headers: dict[str, str] | None = None) -> tuple:
    with RawClient(server.addr) as c:
        c.send(request("GET", path, headers))
        return c.read_response(), c


def test_get_has_date_server_length_and_connection_rules(server: CorralProcess) -> None:
    with RawClient(server.addr) as c:
        c.send(request("GET", "/"))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == b"hello /"
        assert resp.header("server") == "corral"
        assert resp.header(
            "date",
        ).endswith("GMT")
        assert resp.header("content-length") == "7"
        if kind(server) == "sync":
            # One request per connection on the sync worker, as in gunicorn.
            assert resp.header("connection") == "close"
            assert c.at_eof()
        else:
            assert resp.header("connection") is None
            c.send(request("GET", "/again"))
            assert c.read_response().body == b"hello /again"


def test_pipelined_requests_are_answered_in_order(server: CorralProcess) -> None:
    with RawClient(server.addr) as c:
        c.send(b"".join(request("GET", f"/p{i}") for i in range(3)))
        first = c.read_response()
        assert first.body == b"hello /p0"
        if kind(server) == "sync":
            assert c.at_eof()
            return
        assert [c.read_response().body for _ in range(2)] == [b"hello /p1", b"hello /p2"]


def test_malformed_request_gets_400_and_nothing_after_it_reaches_the_app(
    server: CorralProcess,
) -> None:
    with RawClient(server.addr) as c:
        c.send(b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n" + request("GET", "/closing"))
        resp = c.read_response()
        assert resp.status == 400
        assert resp.header("connection") == "close"
        assert c.at_eof()
        assert c.buf == b""  # the pipelined request got no answer


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host on HTTP/1.1 (RFC 9112 3.2)
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: br\r\n\r\n", 501),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ],
)
def test_rejections_carry_their_status(server: CorralProcess, raw: bytes, status: int) -> None:
    with RawClient(server.addr) as c:
        c.send(raw)
        assert c.read_response().status == status
        assert c.at_eof()


def test_request_body_is_streamed_by_content_length_and_chunked(server: CorralProcess) -> None:
    body = bytes(range(256)) * 2000  # 512000 bytes
    expected = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
    with RawClient(server.addr) as c:
        c.send(request("POST", "/read", body=body))
        assert c.read_response().body == expected
    chunked = b"".join(
        b"%x\r\n" % len(part) + part + b"\r\n"
        for part in (body[i : i + 70000] for i in range(0, len(body), 70000))
    )
    with RawClient(server.addr) as c:
        c.send(request("POST", "/read", {"Transfer-Encoding": "chunked"}) + chunked + b"0\r\n\r\n")
        assert c.read_response().body == expected


def test_readline_iteration_over_wsgi_input(server: CorralProcess) -> None:
    with RawClient(server.addr) as c:
        c.send(request("POST", "/lines", body=b"one\ntwo\nthree"))
        assert json.loads(c.read_response().body) == ["one\n", "two\n", "three"]


def test_body_over_limit_request_body_gets_413(server: CorralProcess) -> None:
    with RawClient(server.addr) as c:
        c.send(request("POST", "/read", {"Content-Length": "2000000"}))
        assert c.read_response().status == 413
        assert c.at_eof()


def test_expect_100_continue_is_sent_only_when_the_app_reads(server: CorralProcess) -> None:
    with RawClient(server.addr) as c:
        c.send(request("POST", "/read", {"Expect": "100-continue", "Content-Length": "5"}))
        interim = c.read_interim_or_final()
        assert interim.status == 100
        c.send(b"hello")
        resp = c.read_response()
        assert resp.body.startswith(b"5 ")
    with RawClient(server.addr) as c:
        c.send(request("POST", "/", {"Expect": "100-continue", "Content-Length": "5"}))
        resp = c.read_response()
        assert resp.status == 200 and resp.interim == []


def test_app_exception_gives_500_without_traceback_and_logs_it(server: CorralProcess) -> None:
    with RawClient(server.addr) as c:
        c.send(request("GET", "/crash"))
        resp = c.read_response()
    assert resp.status == 500
    assert b"boom" not in resp.body and b"Traceback" not in resp.body
    server.wait_for("RuntimeError: boom: the app failed on purpose")


def test_crlf_in_app_header_gives_500_never_a_split_response(server: CorralProcess) -> None:
    with RawClient(server.addr) as c:
        c.send(request("GET", "/bad-header"))
        resp = c.read_response()
        assert resp.status == 500
        assert b"stolen" not in resp.raw_head and b"never be sent" not in resp.body
    server.wait_for("Invalid response from the app")


def test_the_apps_status_line_is_checked_every_time_it_is_sent(server: CorralProcess) -> None:
    """PEP 3333: three digits, then a space and the reason, or nothing. A line that passed is
    remembered by the gateway; one that did not gets 500 however often it comes."""
    for _ in range(2):
        for line, expected in (("201 Created", 201), ("299 Our Own", 299), ("204", 204)):
            resp, _ = get(server, "/status?" + urllib.parse.quote(line))
            assert resp.status == expected, line
            if line == "299 Our Own":
                assert resp.raw_head.startswith(b"HTTP/1.1 299 Our Own\r\n")
        for line in ("20 OK", "2000 OK", "200OK", "\uff12\uff10\uff10 OK", "abc OK", ""):
            resp, _ = get(server, "/status?" + urllib.parse.quote(line))
            assert resp.status == 500, line
    # The log lines come through the server's output, read on another thread: waited for.
    server.wait_for("invalid status line from the app", count=12)


@pytest.mark.parametrize("given", ["cl", "none"])
def test_a_large_body_given_whole_is_framed_as_a_small_one(
    server: CorralProcess, given: str
) -> None:
    """A body past JOIN_MAX leaves after its head rather than joined to it: the same bytes,
    the same Content-Length (added when the app gave none), and the connection goes on."""
    with RawClient(server.addr) as c:
        c.send(request("GET", "/large?" + given) + request("HEAD", "/large?" + given))
        resp = c.read_response()
        assert resp.status == 200 and resp.body == LARGE_BODY
        assert resp.header("content-length") == str(len(LARGE_BODY))
        assert resp.header("transfer-encoding") is None
        if kind(server) == "threaded":  # the sync worker closes after each response
            head = c.read_response("HEAD")
            assert head.status == 200 and head.body == b""
            assert head.header("content-length") == str(len(LARGE_BODY))
            c.send(request("GET", "/next"))
            assert c.read_response().body == b"hello /next"  # nothing stray was sent


def test_a_large_body_whose_length_the_app_got_wrong_is_a_500(server: CorralProcess) -> None:
    resp, _ = get(server, "/large?wrong")
    assert resp.status == 500 and LARGE_BODY[:1000] not in resp.body
    server.wait_for("Content-Length does not match the body")


def test_head_and_204_carry_no_body(server: CorralProcess) -> None:
    with RawClient(server.addr) as c:
        c.send(request("HEAD", "/abc"))
        resp = c.read_response("HEAD")
        assert resp.status == 200 and resp.header("content-length") == "10"
        if kind(server) == "threaded":
            c.send(request("GET", "/no-content"))
            resp = c.read_response()
            assert resp.status == 204 and resp.header("content-length") is None
            c.send(request("GET", "/next"))
            assert c.read_response().body == b"hello /next"  # nothing stray was sent
    server.wait_for("body was dropped")


def test_streamed_response_is_chunked_on_http11_and_close_delimited_on_http10(
    server: CorralProcess,
) -> None:
    with RawClient(server.addr) as c:
        c.send(request("GET", "/stream"))
        resp = c.read_response()
        assert resp.header("transfer-encoding") == "chunked"
        assert resp.body == b"chunk 0\nchunk 1\nchunk 2\n"
    with RawClient(server.addr) as c:
        c.send(b"GET /stream HTTP/1.0\r\n\r\n")
        resp = c.read_response()
        assert resp.header("transfer-encoding") is None
        assert resp.body == b"chunk 0\nchunk 1\nchunk 2\n"


def test_legacy_write_callable(server: CorralProcess) -> None:
    resp, _ = get(server, "/write")
    assert resp.body == b"written returned"


def test_file_wrapper_sends_the_whole_file(server: CorralProcess) -> None:
    resp, _ = get(server, "/file")
    assert resp.header("content-length") == str(len(FILE_BODY))
    assert resp.body == FILE_BODY


def test_file_wrapper_never_sends_past_the_apps_content_length(server: CorralProcess) -> None:
    with RawClient(server.addr) as c:
        c.send(request("GET", "/file-short") + request("GET", "/after"))
        first = c.read_response()
        assert first.body == FILE_BODY[:5]
        if kind(server) == "threaded":
            # The next response starts right after those 5 bytes, not inside the file.
            assert c.read_response().body == b"hello /after"
        else:
            # The sync worker closes after each response: nothing past the 5 bytes comes first.
            assert c.at_eof() and c.buf == b""


def test_iterable_close_is_always_called(server: CorralProcess) -> None:
    before = int(get(server, "/closed-count")[0].body)
    assert get(server, "/closing")[0].body == b"closing"
    assert int(get(server, "/closed-count")[0].body) == before + 1


def test_environ_follows_pep_3333(server: CorralProcess) -> None:
    with RawClient(server.addr) as c:
        c.send(
            b"GET /environ?a=1&b=%20 HTTP/1.1\r\nHost: example.com:8080\r\nX-Multi: 1\r\n"
            b"X-Multi: 2\r\nX_Forwarded_For: 6.6.6.6\r\nContent-Type: text/x\r\n\r\n"
        )
        env = json.loads(c.read_response().body)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=1&b=%20"
    assert env["RAW_URI"] == "/environ?a=1&b=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert env["HTTP_X_MULTI"] == "1, 2"
    assert env["CONTENT_TYPE"] == "text/x"
    assert "HTTP_X_FORWARDED_FOR" not in env  # the underscore twin was dropped
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.multithread"] is (kind(server) == "threaded")
    assert env["SCRIPT_NAME"] == ""


def test_path_info_is_percent_decoded_as_latin1_bytes(server: CorralProcess) -> None:
    resp, _ = get(server, "/caf%C3%A9%20x")
    assert resp.body == "hello /café x".encode()


def test_client_stalling_in_the_head_is_cut_off(server: CorralProcess) -> None:
    with RawClient(server.addr) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        resp = c.read_response()
        assert resp.status == 408
        assert c.at_eof()
    # The worker is free again afterwards.
    assert get(server, "/after")[0].body == b"hello /after"


def test_forwarded_proto_from_a_trusted_proxy_sets_the_scheme(server: CorralProcess) -> None:
    resp, _ = get(server, "/environ", {"X-Forwarded-Proto": "https"})
    assert json.loads(resp.body)["wsgi.url_scheme"] == "https"
    resp, _ = get(server, "/environ", {"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "off"})
    assert resp.status == 400


def test_worker_survives_all_of_the_above(server: CorralProcess) -> None:
    pids = wait_until(server.worker_pids, lambda p: len(p) == 1, timeout=5)
    assert len(pids) == 1


@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_each_connection_names_its_listener_and_its_own_client(
    corral_factory: Callable[..., CorralProcess], worker: str
) -> None:
    """SERVER_NAME and SERVER_PORT are the listener's (the gateway keeps them per listener),
    REMOTE_ADDR and REMOTE_PORT each connection's own."""
    server = corral_factory(
        *WORKERS[worker], "-w", "1", "-b", "127.0.0.1:0", "-b", "[::1]:0", "behaviours:app",
        listeners=2,
    )  # fmt: skip
    addrs = []
    for url in server.urls:
        host, _, port = url.partition("://")[2].rpartition(":")
        addrs.append((host.strip("[]"), int(port)))
    assert {host for host, _ in addrs} == {"127.0.0.1", "::1"}
    for _ in range(2):
        for host, port in addrs:
            with RawClient((host, port)) as c:
                c.send(request("GET", "/environ"))
                env = json.loads(c.read_response().body)
                mine = c.sock.getsockname()
            assert (env["SERVER_NAME"], env["SERVER_PORT"]) == (host, str(port))
            assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (mine[0], str(mine[1]))
            assert env["wsgi.url_scheme"] == "http"
