"""What the threaded worker promises beyond plain HTTP: threads are only held by whole requests."""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import CorralProcess, InFlight, threads_of
from tests.e2e.rawhttp import RawClient, request

Factory = Callable[..., CorralProcess]

ONE_THREAD = ["-k", "threaded", "-w", "1", "--threads", "1", "--max-threads", "1"]
# Two fixed threads: one can follow its connection while the other watches epoll.
TWO_THREADS = ["-k", "threaded", "-w", "1", "--threads", "2", "--max-threads", "2"]


def in_parallel(count: int, client: Callable[[], None]) -> list[BaseException]:
    """Run ``client`` in ``count`` threads at once; what they raised."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            client()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a client is still running"
    return failures


def test_idle_keepalive_connection_holds_no_thread(corral_factory: Factory) -> None:
    server = corral_factory(*ONE_THREAD, "-b", "127.0.0.1:0", "behaviours:app")
    with RawClient(server.addr) as idle, RawClient(server.addr, timeout=5) as other:
        idle.send(request("GET", "/first"))
        assert idle.read_response().body == b"hello /first"
        # The idle connection stays open, yet the only thread serves another client.
        other.send(request("GET", "/second"))
        assert other.read_response().body == b"hello /second"
        idle.send(request("GET", "/third"))
        assert idle.read_response().body == b"hello /third"


def test_client_trickling_its_head_holds_no_thread(corral_factory: Factory) -> None:
    server = corral_factory(*ONE_THREAD, "-b", "127.0.0.1:0", "behaviours:app")
    with RawClient(server.addr) as slow, RawClient(server.addr, timeout=5) as other:
        slow.send(b"GET /slow HTTP/1.1\r\nHo")
        other.send(request("GET", "/fast"))
        assert other.read_response().body == b"hello /fast"
        slow.send(b"st: a\r\n\r\n")
        assert slow.read_response().body == b"hello /slow"


def test_idle_keepalive_connection_is_closed_after_keepalive_seconds(
    corral_factory: Factory,
) -> None:
    server = corral_factory(*ONE_THREAD, "--keep-alive", "1", "-b", "127.0.0.1:0", "behaviours:app")
    with RawClient(server.addr) as c:
        c.send(request("GET", "/"))
        assert c.read_response().status == 200
        assert c.at_eof(timeout=5)


def test_worker_connections_bounds_open_connections(corral_factory: Factory) -> None:
    server = corral_factory(
        *ONE_THREAD, "--worker-connections", "1", "-b", "127.0.0.1:0", "behaviours:app"
    )
    first = RawClient(server.addr)
    first.send(request("GET", "/one"))
    assert first.read_response().status == 200
    with RawClient(server.addr, timeout=1) as second:
        second.send(request("GET", "/two"))
        # While the first connection is open, the second waits in the listen queue...
        assert not second.at_eof(timeout=0.5) and second.buf == b""
        first.close()
        # ...and is served once the first one ends.
        second.sock.settimeout(5)
        assert second.read_response().body == b"hello /two"


def test_graceful_stop_closes_idle_connections_and_finishes_in_flight(
    corral_factory: Factory, tmp_path: Path
) -> None:
    # keep-alive far past the test: only the graceful stop closes the idle connection.
    server = corral_factory(
        "-k", "threaded", "-w", "1", "--threads", "2", "--keep-alive", "60",
        "-b", "127.0.0.1:0", "behaviours:app",
    )  # fmt: skip
    gate = tmp_path / "open"  # both requests stay in the app until this file exists
    with RawClient(server.addr) as idle:
        idle.send(request("GET", "/"))
        assert idle.read_response().status == 200
        other = InFlight(server.addr, f"/gate?{gate}")
        with RawClient(server.addr, timeout=20) as busy:
            busy.send(request("GET", f"/gate?{gate}"))
            server.wait_for(rf"gate: entered {re.escape(str(gate))}", count=2)
            server.signal(signal.SIGTERM)
            # The worker is stopping while both requests are still inside the app: it closes
            # the idle connection meanwhile (after STOP_KEEPALIVE_LINGER, in case a request
            # was on its way), and lets the two finish.
            assert idle.at_eof(timeout=10)
            assert server.proc.poll() is None
            gate.touch()
            resp = busy.read_response()
            assert resp.status == 200 and resp.body == b"passed"
            # Its head went out before the stop could say close: the connection ends idle,
            # a moment later (the policy's STOP_KEEPALIVE_LINGER), not under a new request.
            assert busy.at_eof(timeout=10)
        assert other.result() == (200, "passed")
    assert server.wait_exit() == 0


def test_pool_grows_while_every_thread_waits(corral_factory: Factory) -> None:
    # One thread to start with; four requests can only meet inside the app if it grows.
    server = corral_factory(
        "-k", "threaded", "-w", "1", "--threads", "1", "--max-threads", "8",
        "-b", "127.0.0.1:0", "behaviours:app",
    )  # fmt: skip
    meetings = [InFlight(server.addr, "/barrier") for _ in range(4)]
    assert [m.result() for m in meetings] == [(200, "met")] * 4


def test_requests_ready_together_do_not_wait_behind_a_blocked_thread(
    corral_factory: Factory, tmp_path: Path
) -> None:
    # The lone thread takes every ready event from epoll at once (HARVEST). If the first of them
    # blocks in the app, the others must still reach the threads the pool adds: here the four
    # requests can only answer once all four are inside the app together.
    server = corral_factory(
        "-k", "threaded", "-w", "1", "--threads", "1", "--max-threads", "8",
        "-b", "127.0.0.1:0", "behaviours:app",
    )  # fmt: skip
    gate = tmp_path / "open"
    clients = [RawClient(server.addr, timeout=30) for _ in range(5)]
    try:
        for c in clients:  # accepted and registered: later requests arrive as epoll events
            c.send(request("GET", "/warm"))
            assert c.read_response().body == b"hello /warm"
        busy, *meeting = clients
        busy.send(request("GET", f"/busy-gate?{gate}"))  # holds the lone thread, computing
        server.wait_for(rf"busy-gate: entered {re.escape(str(gate))}")
        for c in meeting:
            c.send(request("GET", "/barrier"))
        gate.touch()  # the thread comes back to epoll and finds all four ready
        assert busy.read_response().body == b"passed"
        assert [c.read_response().body for c in meeting] == [b"met"] * 4
    finally:
        for c in clients:
            c.close()


def test_connections_outnumbering_threads_take_turns(corral_factory: Factory) -> None:
    # Five busy keep-alive clients, two threads. A thread only stays with its connection while
    # the other one watches epoll; otherwise the clients that came first would be served again
    # and again while the rest wait.
    server = corral_factory(*TWO_THREADS, "-b", "127.0.0.1:0", "behaviours:app")
    rounds = 10
    firsts: list[float] = []
    lasts: list[float] = []
    all_connected = threading.Barrier(5, timeout=30)

    def client() -> None:
        with RawClient(server.addr, timeout=30) as c:
            all_connected.wait()  # no client gets a head start while the others connect
            for n in range(rounds):
                c.send(request("GET", "/sleep?0.01"))
                assert c.read_response().body == b"slept"
                if n == 0:
                    firsts.append(time.monotonic())
            lasts.append(time.monotonic())

    assert in_parallel(5, client) == [] and len(lasts) == 5
    # Every client had its first answer before any client had its tenth.
    assert max(firsts) < min(lasts)


def test_followed_connection_after_a_pause_and_after_a_burst(corral_factory: Factory) -> None:
    server = corral_factory(*TWO_THREADS, "-b", "127.0.0.1:0", "behaviours:app")
    with RawClient(server.addr) as c:
        for n in range(20):  # back to back: the thread that answered waits for the next one
            c.send(request("GET", f"/burst{n}"))
            assert c.read_response().body == f"hello /burst{n}".encode()
        time.sleep(0.3)  # past the follow window: the connection went back to epoll
        c.send(request("GET", "/after"))
        assert c.read_response().body == b"hello /after"
        c.send(request("GET", "/a") + request("GET", "/b"))  # pipelined
        assert c.read_response().body == b"hello /a"
        assert c.read_response().body == b"hello /b"


def test_head_trickling_on_a_followed_connection_still_times_out(
    corral_factory: Factory,
) -> None:
    server = corral_factory(
        *TWO_THREADS, "--header-timeout", "1", "-b", "127.0.0.1:0", "behaviours:app"
    )
    with RawClient(server.addr) as c:
        c.send(request("GET", "/"))
        assert c.read_response().status == 200
        c.send(b"GET /late HTTP/1.1\r\nHo")  # within the follow window, then nothing more
        started = time.monotonic()
        assert c.read_response().status == 408
        assert time.monotonic() - started < 5
        assert c.at_eof()


def test_default_socket_timeout_set_by_the_app_does_not_close_keepalive(
    corral_factory: Factory,
) -> None:
    server = corral_factory(*TWO_THREADS, "-b", "127.0.0.1:0", "default_timeout:app")
    with RawClient(server.addr) as c:
        c.send(request("GET", "/one"))
        assert c.read_response().body == b"hello /one"
        time.sleep(0.6)  # twice the app's default timeout
        c.send(request("GET", "/two"))
        assert c.read_response().body == b"hello /two"


def test_client_that_stops_reading_a_sent_file_is_given_up_after_the_timeout(
    corral_factory: Factory,
) -> None:
    # Sockets are in blocking mode here, and os.sendfile takes no flags: a blocking sendfile
    # would wait for the client forever, where the transport must give up after send_timeout.
    server = corral_factory(
        *TWO_THREADS, "--send-timeout", "2", "-b", "127.0.0.1:0", "behaviours:app"
    )
    with RawClient(server.addr) as probe:
        probe.send(request("GET", "/pid"))
        worker = probe.read_response().body
    with socket.socket() as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(server.addr)
        c.sendall(request("GET", "/file?32"))  # 32 MiB, far more than both socket buffers
        time.sleep(6)  # not reading: the server's writes stall, and it gives up
        c.settimeout(10)
        received = 0
        while chunk := c.recv(1 << 20):
            received += len(chunk)
    assert 0 < received < 32 * (1 << 20)
    # The write was given up, not the worker: the same process answers, and the arbiter never
    # saw it hang.
    with RawClient(server.addr) as other:
        other.send(request("GET", "/pid"))
        assert other.read_response().body == worker
    assert "WORKER TIMEOUT" not in server.log_text()


def test_clients_thinking_between_requests_do_not_grow_the_pool(corral_factory: Factory) -> None:
    # Twenty keep-alive clients, each pausing 2 ms between quick requests. The threads following
    # them wait on the clients, not on the app: the pool must not mistake that for blocked
    # requests and grow (it grows only for requests that wait, see pool.py). Counting that
    # wait as busy time grew this pool to 8 threads.
    server = corral_factory(
        "-k", "threaded", "-w", "1", "--threads", "2", "--max-threads", "16",
        "-b", "127.0.0.1:0", "behaviours:app",
    )  # fmt: skip
    with RawClient(server.addr) as probe:
        probe.send(request("GET", "/pid"))
        worker = int(probe.read_response().body)

    def client() -> None:
        with RawClient(server.addr) as c:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                c.send(request("GET", "/quick"))
                assert c.read_response().body == b"hello /quick"
                time.sleep(0.002)

    assert in_parallel(20, client) == []
    # The worker's main thread and at most two pool threads (the pool starts with one), where
    # counting the clients' pauses as busy time grew it to 8.
    assert len(threads_of(worker)) <= 3


def test_head_left_behind_by_a_pipelined_request_gets_header_timeout(
    corral_factory: Factory,
) -> None:
    server = corral_factory(
        *ONE_THREAD, "--header-timeout", "1", "--keep-alive", "60",
        "-b", "127.0.0.1:0", "behaviours:app",
    )  # fmt: skip
    with RawClient(server.addr) as c:
        # One whole request and the start of the next, in one send; then nothing.
        c.send(request("GET", "/first") + b"GET /second HTTP/1.1\r\nHo")
        assert c.read_response().body == b"hello /first"
        started = time.monotonic()
        assert c.read_response().status == 408  # header_timeout, not keep-alive's 60 s
        assert time.monotonic() - started < 5


def test_many_heads_expiring_at_once_are_answered_together(corral_factory: Factory) -> None:
    # The monitor expires them in one sweep; lingering half a second after each 408 there
    # would spread the answers over seconds and hold up the heartbeat meanwhile.
    server = corral_factory(
        *ONE_THREAD, "--header-timeout", "1", "-b", "127.0.0.1:0", "behaviours:app"
    )
    clients = [RawClient(server.addr, timeout=10) for _ in range(8)]
    try:
        for c in clients:
            c.send(b"GET /slow HTTP/1.1\r\nHo")
        answered = []
        for c in clients:
            assert c.read_response().status == 408
            answered.append(time.monotonic())
        # Lingering would spread them over 8 x 0.5 s; a sweep (once a second) falling between
        # two deadlines may split them over two sweeps, which is still well under that.
        assert max(answered) - min(answered) < 2.0
    finally:
        for c in clients:
            c.close()
