"""The control socket's framing, commands, client-side parsing and text output, without a server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from corral.arbiter import commands
from corral.arbiter.commands import CommandError, CommandFailed, Pending, StackCollection, execute
from corral.ctl import protocol, render
from corral.ctl.client import connect_error, parse_command

# -- framing -----------------------------------------------------------------------------------


def test_a_message_is_a_big_endian_length_then_json() -> None:
    frame = protocol.encode({"id": 1, "command": "show workers", "args": []})
    assert frame[:4] == len(frame[4:]).to_bytes(4, "big")
    assert json.loads(frame[4:]) == {"id": 1, "command": "show workers", "args": []}


def test_the_decoder_waits_for_whole_messages() -> None:
    decoder = protocol.Decoder(1024)
    frames = protocol.encode({"a": 1}) + protocol.encode({"b": 2})
    for byte in frames[:-1]:
        decoder.feed(bytes([byte]))
    assert decoder.next() == {"a": 1}
    assert decoder.next() is None and decoder.partial
    decoder.feed(frames[-1:])
    assert decoder.next() == {"b": 2}
    assert not decoder.partial


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"x" * 2000, "message too large: 2000 bytes"),
        (b"{nope", "invalid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe", "invalid JSON"),
    ],
)
def test_the_decoder_refuses_bad_messages(payload: bytes, error: str) -> None:
    decoder = protocol.Decoder(1024)
    decoder.feed(protocol.HEADER.pack(len(payload)) + payload[:10])
    if "too large" not in error:
        decoder.feed(payload[10:])
    with pytest.raises(protocol.FrameError, match=error):
        decoder.next()


def test_default_socket_path_is_gunicorns(tmp_path: Path) -> None:
    runtime = str(tmp_path)
    assert protocol.default_socket_path({"XDG_RUNTIME_DIR": runtime, "HOME": "/h"}) == os.path.join(
        runtime, "gunicorn.ctl"
    )
    missing = str(tmp_path / "gone")
    assert protocol.default_socket_path({"XDG_RUNTIME_DIR": missing, "HOME": "/h"}) == (
        "/h/.gunicorn/gunicorn.ctl"
    )
    assert protocol.default_socket_path({"HOME": "/h"}) == "/h/.gunicorn/gunicorn.ctl"


def test_load_gives_the_default_path_from_the_environment_it_is_given(tmp_path: Path) -> None:
    from corral.config import Config, load

    cfg = load([], {"XDG_RUNTIME_DIR": str(tmp_path)})
    assert cfg.control_socket == str(tmp_path / "gunicorn.ctl")
    assert cfg.source_of("control_socket") == "default"
    assert load(["--control-socket", "x.ctl"], {}).control_socket == "x.ctl"
    assert load(["--no-control-socket"], {}).control_socket_disable is True
    assert load(["--control-socket-mode", "0660"], {}).control_socket_mode == 0o660
    assert Config().control_socket == ""  # made in code: no socket unless one is set


# -- commands ----------------------------------------------------------------------------------


class FakeTarget:
    """A ControlTarget that records what the commands asked of it."""

    def __init__(self) -> None:
        self.pid = 100
        self.workers = 2
        self.calls: list[tuple[str, object]] = []
        self.pending: Pending | None = None

    def workers_view(self) -> list[dict[str, object]]:
        return [{"pid": 101, "age": 1, "state": "serving"}, {"pid": 102, "age": 2}]

    def stats_view(self) -> dict[str, object]:
        return {"pid": self.pid, "workers_current": 2}

    def config_view(self) -> dict[str, object]:
        return {"workers": self.workers}

    def listeners_view(self) -> list[dict[str, object]]:
        return [{"address": "http://127.0.0.1:8000", "fd": 5, "type": "tcp"}]

    def add_workers(self, count: int) -> tuple[int, int]:
        previous, self.workers = self.workers, self.workers + count
        return previous, self.workers

    def remove_workers(self, count: int) -> tuple[int, int]:
        previous, self.workers = self.workers, max(1, self.workers - count)
        return previous, self.workers

    def kill_worker(self, pid: int) -> bool:
        self.calls.append(("kill", pid))
        return pid in (101, 102)

    def reload(self) -> None:
        self.calls.append(("reload", None))

    def reopen(self) -> None:
        self.calls.append(("reopen", None))

    def shutdown(self, graceful: bool) -> None:
        self.calls.append(("shutdown", graceful))

    def dump_stacks(self) -> Pending:
        if self.pending is None:
            raise CommandFailed("dump is not available yet")
        return self.pending


def run(line: str, target: FakeTarget | None = None, args: list[object] | None = None) -> Any:
    return execute(line, args or [], target or FakeTarget())


def test_show_commands_have_gunicorns_shapes() -> None:
    target = FakeTarget()
    assert run("show workers", target)["count"] == 2
    assert run("SHOW listeners", target) == {
        "listeners": [{"address": "http://127.0.0.1:8000", "fd": 5, "type": "tcp"}],
        "count": 1,
    }
    assert run("show stats", target) == {"pid": 100, "workers_current": 2}
    assert run("show config", target) == {"workers": 2}
    assert run("show dirty", target) == {"enabled": False, "pid": None, "workers": [], "apps": []}
    everything = run("show all", target)
    assert everything["arbiter"] == {"pid": 100, "type": "arbiter", "role": "master"}
    assert [w["type"] for w in everything["web_workers"]] == ["web", "web"]
    assert (everything["web_worker_count"], everything["dirty_arbiter"]) == (2, None)


def test_worker_add_and_remove_count_as_gunicorn_does() -> None:
    target = FakeTarget()
    assert run("worker add", target) == {"added": 1, "previous": 2, "total": 3}
    assert run("worker add", target, [2]) == {"added": 2, "previous": 3, "total": 5}
    assert run("worker add 0", target) == {"added": 1, "previous": 5, "total": 6}
    assert run("worker remove 10", target) == {"removed": 5, "previous": 6, "total": 1}
    assert run("worker remove", target) == {"removed": 0, "previous": 1, "total": 1}


def test_worker_kill_only_kills_our_workers() -> None:
    target = FakeTarget()
    assert run("worker kill 101", target) == {"success": True, "killed": 101}
    assert run("worker kill 1", target) == {"success": False, "error": "Worker 1 not found"}
    assert target.calls == [("kill", 101), ("kill", 1)]


def test_signals_as_commands() -> None:
    target = FakeTarget()
    assert run("reload", target) == {"status": "reloading"}
    assert run("reopen", target) == {"status": "reopening"}
    assert run("shutdown", target) == {"status": "shutting_down", "mode": "graceful"}
    assert run("shutdown quick", target) == {"status": "shutting_down", "mode": "quick"}
    assert target.calls == [
        ("reload", None),
        ("reopen", None),
        ("shutdown", True),
        ("shutdown", False),
    ]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("", "Empty command"),
        ("bogus", "Unknown command: bogus"),
        ("show", "Missing show target"),
        ("show nothing", "Unknown show target: nothing"),
        ("worker", "Missing worker action"),
        ("worker fire", "Unknown worker action: fire"),
        ("worker kill", "Missing PID for worker kill"),
        ("worker kill abc", "invalid literal for int()"),
        ("worker add two", "invalid literal for int()"),
        ("shutdown now", "shutdown mode must be graceful or quick"),
        ("dirty", "Missing dirty action"),
        ("dirty explode", "Unknown dirty action"),
    ],
)
def test_bad_commands_are_refused_without_side_effects(line: str, error: str) -> None:
    target = FakeTarget()
    with pytest.raises(CommandError, match=error):
        run(line, target)
    assert target.calls == [] and target.workers == 2


def test_dirty_commands_answer_as_gunicorn_without_a_dirty_arbiter() -> None:
    assert run("dirty add 2") == {"success": False, "error": "Dirty arbiter not running"}


def test_help_lists_every_command() -> None:
    listed = run("help")["commands"]
    for name in ("show workers", "worker add [N]", "worker kill <PID>", "dump", "shutdown"):
        assert any(key.startswith(name) for key in listed), name


def test_dump_is_pending_until_every_worker_answered() -> None:
    texts: dict[int, str | None] = {101: None, 102: None}
    stacks = StackCollection(
        [(pid, age, lambda pid=pid: texts[pid]) for age, pid in enumerate(texts, 1)], 10.0
    )
    target = FakeTarget()
    target.pending = stacks
    assert run("dump", target) is stacks
    assert stacks.poll(1.0) is None
    texts[101] = "Thread main:\n  ..."
    assert stacks.poll(2.0) is None
    texts[102] = "Thread main:\n  other"
    reply = stacks.poll(3.0)
    assert reply == {
        "workers": [
            {"pid": 101, "age": 1, "text": "Thread main:\n  ..."},
            {"pid": 102, "age": 2, "text": "Thread main:\n  other"},
        ],
        "count": 2,
    }


def test_dump_answers_at_its_deadline_with_the_silent_workers_marked() -> None:
    stacks = StackCollection([(101, 1, lambda: "ok"), (102, 2, lambda: None)], 10.0)
    assert stacks.poll(9.9) is None
    reply = stacks.poll(10.0)
    assert reply is not None
    rows: list[dict[str, object]] = reply["workers"]  # type: ignore[assignment]
    assert rows[0] == {"pid": 101, "age": 1, "text": "ok"}
    assert rows[1]["text"] is None and "no answer within" in str(rows[1]["error"])


def test_dump_without_the_workers_side_says_so() -> None:
    with pytest.raises(CommandFailed, match="not available yet"):
        run("dump")


def test_server_stats_view() -> None:
    stats = commands.ServerStats(spawned=3, killed=1, reloads=2)
    view = stats.view(100, 2, 4)
    assert view["pid"] == 100 and view["workers_current"] == 2 and view["workers_target"] == 4
    assert (view["workers_spawned"], view["workers_killed"], view["reloads"]) == (3, 1, 2)
    assert isinstance(view["uptime"], float) and view["dirty_arbiter_pid"] is None


def test_config_view_has_gunicorns_keys_as_plain_json() -> None:
    from corral.config import load

    view = commands.config_view(load(["--no-control-socket"], {"HOME": "/h"}))
    assert set(view) == set(commands.CONFIG_KEYS)
    assert view["control_socket"] == "/h/.gunicorn/gunicorn.ctl"
    json.dumps(view)


# -- the client's side -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("show workers", ("show workers", [])),
        ("worker add 2", ("worker add", ["2"])),
        ("worker kill 1234", ("worker kill", ["1234"])),
        ("shutdown quick", ("shutdown quick", [])),
        ("worker add -1", ("worker add", ["-1"])),
        ("", ("", [])),
    ],
)
def test_parse_command_splits_as_gunicornc(line: str, parsed: tuple[str, list[str]]) -> None:
    assert parse_command(line) == parsed


@pytest.mark.parametrize(
    ("errno_name", "text"),
    [
        ("ENOENT", "no control socket at /x.ctl"),
        ("EACCES", "permission denied: /x.ctl"),
        ("ECONNREFUSED", "nothing listens at /x.ctl"),
        ("ENOTSOCK", "/x.ctl is not a socket"),
        ("EIO", "cannot connect to /x.ctl"),
    ],
)
def test_connect_errors_are_one_clear_line(errno_name: str, text: str) -> None:
    import errno

    code = getattr(errno, errno_name)
    line = connect_error("/x.ctl", OSError(code, os.strerror(code)))
    assert line.startswith(text) and "\n" not in line


# -- text output -------------------------------------------------------------------------------

CORRAL_WORKER = {
    "pid": 4242,
    "age": 3,
    "booted": True,
    "aborted": False,
    "last_heartbeat": 0.25,
    "state": "serving",
    "uptime": 12.5,
    "requests": 17,
    "capacity": 4,
    "threads": [
        {"state": "busy", "requests": 9, "method": "GET", "path": "/slow", "age": 2.5},
        {"state": "idle", "requests": 8},
    ],
}


def test_workers_table_keeps_gunicornc_columns_first() -> None:
    text = render.format_response("show workers", {"workers": [CORRAL_WORKER], "count": 1})
    lines = text.splitlines()
    assert lines[0].split() == ["PID", "AGE", "BOOTED", "LAST_BEAT", "STATE", "REQUESTS", "BUSY"]
    assert lines[2].split() == ["4242", "3", "yes", "0.25s", "ago", "serving", "17", "1/4"]
    assert lines[3].split() == ["busy", "2.500s", "GET", "/slow"]  # its running request
    assert lines[-1] == "Total: 1 workers"
    booting = {**CORRAL_WORKER, "booted": False, "state": "booting", "requests": None}
    del booting["threads"]  # before its first scoreboard
    assert render.format_workers({"workers": [booting]}).splitlines()[2].endswith("booting   n/a")


def test_workers_table_of_a_gunicorn_server_is_gunicornc_s() -> None:
    row = {"pid": 7, "age": 1, "booted": False, "last_heartbeat": None}
    text = render.format_workers({"workers": [row], "count": 1})
    assert text.splitlines()[:3] == [
        "PID        AGE    BOOTED   LAST_BEAT",
        "-" * 40,
        "7          1      no       n/a",
    ]
    assert render.format_workers({"workers": []}) == "No workers running"


def test_stats_text() -> None:
    text = render.format_stats({"uptime": 3725.0, "pid": 9, "workers_current": 2})
    assert text.splitlines()[0] == "Uptime:           1h 2m 5s"
    assert "PID:              9" in text and "Workers current:  2" in text
    assert render.format_stats({"uptime": None}).startswith("Uptime:           unknown")
    assert render.format_stats({"uptime": 75}).startswith("Uptime:           1m 15s")


def test_listeners_config_help_all_and_others() -> None:
    listeners = render.format_response(
        "show listeners", {"listeners": [{"address": "unix:/s", "type": "unix", "fd": 3}]}
    )
    assert listeners.splitlines()[2].split() == ["unix:/s", "unix", "3"]
    config = render.format_response("show config", {"workers": 2, "bind": ["a", "b"]})
    assert config == "bind: a, b\nworkers: 2"
    helped = render.format_response("help", {"commands": {"reload": "Graceful reload (HUP)"}})
    assert helped == "Available commands:\n\n  reload   Graceful reload (HUP)"
    everything = render.format_response(
        "show all", commands.show_all(1, [CORRAL_WORKER])
    ).splitlines()
    assert everything[:2] == ["ARBITER (master)", "  PID: 1"]
    assert "WEB WORKERS (1)" in everything and everything[-1] == "  (not running)"
    assert render.format_response("worker add", {"added": 1}) == '{\n  "added": 1\n}'
    assert render.format_response("reload", {}) == "OK"
    assert render.format_response("show dirty", {"enabled": False}) == "Dirty arbiter not running"


def test_dump_text_names_each_worker() -> None:
    data = {
        "workers": [
            {"pid": 1, "age": 1, "text": "Thread main:\n  File x\n"},
            {"pid": 2, "age": 2, "text": None, "error": "no answer within 5 s"},
        ]
    }
    assert render.format_response("dump", data) == (
        "=== worker 1 (age 1) ===\nThread main:\n  File x\n\n"
        "=== worker 2 (age 2) ===\n(no answer within 5 s)"
    )
