"""corral tune's request mix: --url and the JSON Lines requests file, and the bytes sent."""

from __future__ import annotations

import pytest

from corral.errors import ConfigError
from corral.tune.requests import RequestSpec, from_url, parse_request_line, requests_from
from corral.tune.server import without_bind


def test_default_is_get_root_with_host():
    (spec,) = requests_from([], None)
    assert spec.encode("127.0.0.1:8000") == b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"


def test_urls_keep_path_and_query():
    assert from_url("/items?page=2").path == "/items?page=2"
    assert from_url("http://example.com/a/b?x=1").path == "/a/b?x=1"
    with pytest.raises(ConfigError):
        from_url("items")
    with pytest.raises(ConfigError):
        from_url("/a b")


def test_request_file_lines(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text(
        "# a comment\n"
        '{"method": "POST", "path": "/items", "json": {"name": "x"}}\n'
        "\n"
        '{"method": "put", "path": "/raw", "headers": {"Content-Type": "text/plain", '
        '"Host": "app.test"}, "body": "héllo"}\n'
        '{"path": "/health", "method": "HEAD"}\n'
    )
    post, put, head = requests_from(["/extra"], str(path))[:3]
    wire = post.encode("h")
    assert wire.startswith(b"POST /items HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n")
    assert wire.endswith(b'Content-Length: 13\r\n\r\n{"name": "x"}')
    assert put.method == "PUT" and b"Host: h" not in put.encode("h")
    assert put.encode("h").endswith(b"Content-Length: 6\r\n\r\n" + "héllo".encode())
    assert head.method == "HEAD" and b"Content-Length" not in head.encode("h")
    assert requests_from(["/extra"], str(path))[-1].path == "/extra"


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "[1, 2]",
        '{"verb": "GET"}',
        '{"method": "G T"}',
        '{"path": "nope"}',
        '{"headers": {"Content-Length": "3"}}',
        '{"headers": {"X": "a\\r\\nb"}}',
        '{"body": "x", "json": 1}',
        '{"body": 3}',
    ],
)
def test_bad_lines_are_refused_with_the_line(line):
    with pytest.raises(ConfigError, match="line 7"):
        parse_request_line(line, "--requests f line 7")


def test_empty_or_missing_file(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no requests"):
        requests_from([], str(empty))
    with pytest.raises(ConfigError, match="missing"):
        requests_from([], str(tmp_path / "missing"))


def test_post_without_body_says_length_zero():
    assert b"Content-Length: 0" in RequestSpec("POST", "/x").encode("h")


def test_address_flags_are_dropped_for_loopback():
    args = ["-b", "0.0.0.0:80", "app:app", "--bind=unix:/s", "-b:9000", "--host", "h", "--port=1"]
    assert without_bind([*args, "-w", "3", "--backlog", "5"]) == [
        "app:app",
        "-w",
        "3",
        "--backlog",
        "5",
    ]
