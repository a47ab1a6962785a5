"""Value parsers: what each accepts, what it turns it into, and what it refuses."""

from __future__ import annotations

import os
from typing import Any

import pytest

from corral.config import parsers as p
from corral.config.table_mechanics import PROXY_PROTOCOL
from corral.config.worker_names import WORKER_CLASS
from corral.http.connection import ServerConnection


def refuses(parser: p.Parser[Any], value: object) -> str:
    with pytest.raises(p.Invalid) as info:
        parser(value)
    return str(info.value)


def test_integers() -> None:
    assert p.INT("12") == 12 and p.INT(" 0 ") == 0 and p.INT(7) == 7
    assert refuses(p.INT, "abc") == "expected an integer"
    assert refuses(p.INT, "-1") == "expected an integer >= 0"
    assert refuses(p.POSITIVE_INT, 0) == "expected an integer >= 1"
    for bad in (True, 1.5, "1.0", "", None, "0x10"):
        assert refuses(p.INT, bad) == "expected an integer"


def test_workers_takes_a_count_or_auto() -> None:
    assert p.WORKERS("4") == 4 and p.WORKERS(3) == 3
    assert p.WORKERS("auto") == 0 and p.WORKERS(" AUTO ") == 0 and p.WORKERS(0) == 0
    for bad in ("lots", "-1", 1.5, True):
        assert refuses(p.WORKERS, bad) == "expected an integer >= 0 (0 = auto), or auto"


def test_seconds() -> None:
    positive = p.seconds(allow_zero=False)
    assert positive("2.5") == 2.5 and positive(3) == 3.0
    assert "> 0" in refuses(positive, 0)
    assert p.seconds(allow_zero=True)(0) == 0.0
    for bad in ("nan", "inf", -1, True, "x"):
        assert refuses(positive, bad).startswith("expected a number of seconds")


@pytest.mark.parametrize("text", ["true", "1", "YES", "on", " y "])
def test_true_words(text: str) -> None:
    assert p.BOOL(text) is True


@pytest.mark.parametrize("text", ["false", "0", "no", "Off", "n"])
def test_false_words(text: str) -> None:
    assert p.BOOL(text) is False


def test_bool_refuses_other_values() -> None:
    assert refuses(p.BOOL, "maybe").startswith("expected a boolean")
    assert refuses(p.BOOL, 1).startswith("expected a boolean")


def test_string_lists() -> None:
    assert p.STRING_LIST("a") == ["a"]
    assert p.STRING_LIST(("a", " b ")) == ["a", "b"]
    assert p.STRING_LIST.from_text("a 'b c'") == ["a", "b c"]
    assert refuses(p.STRING_LIST, [1]) == "expected a list of strings"


@pytest.mark.parametrize(
    "bind",
    [
        "127.0.0.1:8000",
        "0.0.0.0",
        "localhost:80",
        ":8000",
        "[::1]:8000",
        "[::]",
        "unix:/x.sock",
        "unix:/run/app.sock",
        "fd://3",
        "example.com:65535",
    ],
)
def test_binds_accepted(bind: str) -> None:
    assert p.BIND_LIST(bind) == [bind]


@pytest.mark.parametrize("bind", ["127.0.0.1:http", "host:65536", "", "unix:", "fd://x", "a b:1"])
def test_binds_refused(bind: str) -> None:
    assert refuses(p.BIND_LIST, [bind]).startswith("expected HOST:PORT")


def test_key_value_pairs() -> None:
    assert p.PAIRS(["A=1", "B=x=y", "C="]) == ["A=1", "B=x=y", "C="]
    assert refuses(p.PAIRS, ["NOEQUALS"]) == "expected KEY=VALUE, got 'NOEQUALS'"
    assert refuses(p.PAIRS, ["=1"]) == "expected KEY=VALUE, got '=1'"


def test_address_lists() -> None:
    assert p.ADDRESS_LIST("127.0.0.1, ::1,10.0.0.0/8") == ["127.0.0.1", "::1", "10.0.0.0/8"]
    assert p.ADDRESS_LIST("*") == ["*"]
    assert p.ADDRESS_LIST(["192.168.0.0/16"]) == ["192.168.0.0/16"]
    assert "got 'nope'" in refuses(p.ADDRESS_LIST, "127.0.0.1,nope")
    # Host bits set under a network mask are a mistake, as gunicorn says too.
    assert "192.168.1.1/24" in refuses(p.ADDRESS_LIST, "192.168.1.1/24")


def test_comma_list() -> None:
    assert p.COMMA_LIST("SCRIPT_NAME, PATH_INFO,") == ["SCRIPT_NAME", "PATH_INFO"]
    assert p.COMMA_LIST([]) == []


def test_choice_with_aliases() -> None:
    parse = p.choice(("off", "on"), {"0": "off"})
    assert parse(" ON ") == "on" and parse("0") == "off"
    assert refuses(parse, "maybe") == "expected one of off, on"
    assert PROXY_PROTOCOL(True) == "auto" and PROXY_PROTOCOL("false") == "off"


def test_worker_class() -> None:
    assert WORKER_CLASS("gthread") == "threaded"
    assert WORKER_CLASS("gunicorn.workers.sync.SyncWorker") == "sync"
    assert WORKER_CLASS("uvicorn.workers.UvicornWorker") == "asyncio"
    assert WORKER_CLASS("asgi") == "asyncio"
    assert WORKER_CLASS("mypkg.workers:Custom") == "mypkg.workers:Custom"
    assert WORKER_CLASS("gunicorn.workers.gasgi.ASGIWorker") == "asyncio"
    assert "dotted path" in refuses(WORKER_CLASS, "meinheld")
    # gevent, eventlet and tornado pass the parser: Config.check refuses them once every
    # source is read (test_config_sources), so -k threaded can still replace a file's gevent.
    assert WORKER_CLASS("gunicorn.workers.ggevent.GeventWorker") == (
        "gunicorn.workers.ggevent.GeventWorker"
    )
    # gunicorn also takes the class object itself.
    assert WORKER_CLASS(ServerConnection) == "corral.http.connection.ServerConnection"


@pytest.mark.parametrize(
    ("value", "mask"), [("0022", 0o22), ("0o027", 0o27), ("0x12", 0x12), ("18", 18), (0o77, 0o77)]
)
def test_umask(value: object, mask: int) -> None:
    assert p.UMASK(value) == mask


@pytest.mark.parametrize("value", ["0999", "rw", 0o1000, -1, True])
def test_umask_refused(value: object) -> None:
    assert refuses(p.UMASK, value).startswith("expected a file mode mask")


def test_hooks_check_arity_and_import_paths() -> None:
    two = p.hook(2)

    def good(server: object, worker: object) -> None:
        pass

    def flexible(*args: object) -> None:
        pass

    def bad(server: object) -> None:
        pass

    assert two(good) is good and two(flexible) is flexible
    assert refuses(two, bad) == "expected a callable taking 2 positional arguments"
    assert refuses(two, 3) == "expected a callable"
    assert two("os.path.join") is os.path.join
    assert two("os.path:join") is os.path.join
    assert "cannot import 'no_such_pkg_x'" in refuses(two, "no_such_pkg_x.f")
    assert "has no attribute 'nope'" in refuses(two, "os.nope")
    assert "dotted import path" in refuses(two, "justaname")


def test_post_request_is_adapted_to_four_arguments() -> None:
    calls: list[tuple[object, ...]] = []

    def two(worker: object, req: object) -> None:
        calls.append((worker, req))

    def three(worker: object, req: object, environ: object) -> None:
        calls.append((worker, req, environ))

    p.POST_REQUEST_HOOK(two)(1, 2, 3, 4)
    p.POST_REQUEST_HOOK(three)(1, 2, 3, 4)
    assert calls == [(1, 2), (1, 2, 3)]
    assert "2, 3 or 4" in refuses(p.POST_REQUEST_HOOK, lambda w: None)


def test_dicts() -> None:
    assert p.MAPPING({"version": 1}) == {"version": 1}
    assert p.MAPPING.from_text('{"a": [1]}') == {"a": [1]}
    assert refuses(p.MAPPING, [("a", 1)]) == "expected a dict with string keys"
    assert p.HEADER_DICT({"X-Forwarded-Proto": "https"}) == {"X-FORWARDED-PROTO": "https"}
    assert "string value" in refuses(p.HEADER_DICT, {"X": 1})


def test_users_and_groups() -> None:
    assert p.USER(None) is None and p.USER(1000) == 1000 and p.USER("1000") == 1000
    assert p.USER("root") == 0 and p.GROUP("0") == 0
    assert refuses(p.USER, "no-such-user-corral") == "no such user: 'no-such-user-corral'"
    assert refuses(p.GROUP, "no-such-group-corral") == "no such group: 'no-such-group-corral'"
    assert "user name or id" in refuses(p.USER, -1)


def test_directory(tmp_path: Any) -> None:
    assert p.DIRECTORY(str(tmp_path)) == str(tmp_path)
    assert "not one" in refuses(p.DIRECTORY, str(tmp_path / "missing"))


def test_statsd_address() -> None:
    for good in ("localhost", "localhost:8125", "10.0.0.1:9125", "[::1]:8125", "unix:/tmp/s"):
        assert p.STATSD_ADDRESS(good) == good
    assert refuses(p.STATSD_ADDRESS, "host:port") == "expected HOST, HOST:PORT or unix:PATH"


def test_import_object_forms() -> None:
    assert p.import_object("os.path.join") is os.path.join
    assert p.import_object("os:sep") == os.sep
