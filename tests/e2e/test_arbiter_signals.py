"""The arbiter under real signals: TERM, INT, QUIT, HUP, TTIN, TTOU and USR1."""

from __future__ import annotations

import signal
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import CorralProcess, InFlight, free_to_connect, wait_until

Start = Callable[..., CorralProcess]
WORKERS = ["sync", "threaded"]


@pytest.mark.parametrize("worker", WORKERS)
def test_term_finishes_in_flight_request_then_exits_0(corral_factory: Start, worker: str) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "-w", "1", "-k", worker, "simple:app")
    slow = InFlight(server.addr, "/sleep?s=1.5")
    server.wait_for("simple: sleeping")
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    outcome = slow.result()
    assert not isinstance(outcome, BaseException), outcome
    assert outcome[0] == 200 and "slept 1.5" in outcome[1]
    assert free_to_connect(server.addr)
    assert "Handling signal: term" in server.log_text()


def test_term_kills_what_outlives_graceful_timeout(corral_factory: Start) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "-w", "1", "--graceful-timeout", "1", "simple:app")
    slow = InFlight(server.addr, "/sleep?s=120")
    server.wait_for("simple: sleeping")
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert isinstance(slow.result(), BaseException)
    assert "did not stop in time" in server.log_text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_int_and_quit_stop_fast(corral_factory: Start, sig: signal.Signals) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "-w", "2", "simple:app")
    slow = InFlight(server.addr, "/sleep?s=120")
    server.wait_for("simple: sleeping")
    workers = server.worker_pids()
    server.signal(sig)
    assert server.wait_exit() == 0
    assert isinstance(slow.result(), BaseException)  # cut off, not waited for
    assert all(pid not in server.worker_pids() for pid in workers)
    assert f"Handling signal: {sig.name[3:].lower()}" in server.log_text()


def test_int_during_graceful_stop_turns_it_fast(corral_factory: Start) -> None:
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "1", "--graceful-timeout", "120", "simple:app"
    )
    slow = InFlight(server.addr, "/sleep?s=120")
    server.wait_for("simple: sleeping")
    server.signal(signal.SIGTERM)
    server.wait_for("Handling signal: term")
    server.signal(signal.SIGINT)
    assert server.wait_exit() == 0
    assert isinstance(slow.result(), BaseException)
    assert "(fast shutdown)" in server.log_text()


HOOKS = textwrap.dedent(
    """
    bind = "127.0.0.1:0"
    workers = {workers}
    wsgi_app = "{app}"

    def nworkers_changed(server, new, old):
        server.log.info("hook: nworkers_changed %s -> %s", old, new)

    def on_reload(server):
        server.log.info("hook: on_reload workers=%s", server.cfg.workers)
    """
)


def write_config(path: Path, workers: int, app: str = "simple:app") -> Path:
    path.write_text(HOOKS.format(workers=workers, app=app))
    return path


def test_ttin_and_ttou(corral_factory: Start, tmp_path: Path) -> None:
    conf = write_config(tmp_path / "corral.conf.py", workers=2)
    server = corral_factory("-c", str(conf))
    server.wait_workers(lambda pids: len(pids) == 2)
    server.signal(signal.SIGTTIN)
    server.wait_for("nworkers_changed 2 -> 3")
    server.wait_workers(lambda pids: len(pids) == 3)
    server.signal(signal.SIGTTOU)
    server.wait_for("nworkers_changed 3 -> 2")
    server.wait_workers(lambda pids: len(pids) == 2)
    server.signal(signal.SIGTTOU)
    server.wait_for("nworkers_changed 2 -> 1")
    only = server.wait_workers(lambda pids: len(pids) == 1)
    server.signal(signal.SIGTTOU)  # never below one worker
    server.wait_for("Handling signal: ttou", count=3)
    assert server.get()[0] == 200
    assert server.worker_pids() == only
    assert "-> 0" not in server.log_text()
    assert server.stop() == 0


def test_ttou_retires_the_oldest(corral_factory: Start) -> None:
    # Workers are added one at a time, so their ages are known whatever order their boot
    # lines reach the log in (the children write those lines concurrently).
    server = corral_factory("-b", "127.0.0.1:0", "-w", "1", "simple:app")
    oldest = server.wait_workers(lambda pids: len(pids) == 1)
    server.signal(signal.SIGTTIN)
    two = server.wait_workers(lambda pids: len(pids) == 2)
    server.signal(signal.SIGTTIN)
    three = server.wait_workers(lambda pids: len(pids) == 3)
    server.signal(signal.SIGTTOU)
    left = server.wait_workers(lambda pids: len(pids) == 2)
    assert left == three - oldest and two - oldest <= left


def test_hup_rereads_config_and_replaces_workers(corral_factory: Start, tmp_path: Path) -> None:
    conf = write_config(tmp_path / "corral.conf.py", workers=2)
    server = corral_factory("-c", str(conf))
    old = server.wait_workers(lambda pids: len(pids) == 2)
    slow = InFlight(server.addr, "/sleep?s=1.5")
    server.wait_for("simple: sleeping")
    write_config(conf, workers=3)
    server.signal(signal.SIGHUP)
    server.wait_for("hook: on_reload workers=3")
    new = server.wait_workers(lambda pids: len(pids) == 3 and not pids & old)
    outcome = slow.result()
    assert not isinstance(outcome, BaseException) and outcome[0] == 200, outcome
    status, body = server.get()
    assert status == 200 and int(body.rsplit(" ", 1)[1]) in new
    assert server.stop() == 0


def test_hup_with_broken_config_keeps_serving(corral_factory: Start, tmp_path: Path) -> None:
    conf = write_config(tmp_path / "corral.conf.py", workers=1)
    server = corral_factory("-c", str(conf))
    before = server.wait_workers(lambda pids: len(pids) == 1)
    conf.write_text("workers = 'many'\n")
    server.signal(signal.SIGHUP)
    server.wait_for("Reload failed, the current configuration stays")
    assert server.get()[0] == 200
    assert server.worker_pids() == before
    assert server.stop() == 0


def test_hup_to_an_app_that_fails_keeps_old_workers(corral_factory: Start, tmp_path: Path) -> None:
    conf = write_config(tmp_path / "corral.conf.py", workers=2)
    server = corral_factory("-c", str(conf))
    before = server.wait_workers(lambda pids: len(pids) == 2)
    write_config(conf, workers=2, app="fails_import:app")
    server.signal(signal.SIGHUP)
    server.wait_for("App failed to load. Reload abandoned")
    status, body = server.get()
    assert status == 200 and int(body.rsplit(" ", 1)[1]) in before
    server.wait_workers(lambda pids: pids == before)
    assert server.stop() == 0


def test_hup_opens_added_binds_and_closes_removed_ones(
    corral_factory: Start, tmp_path: Path
) -> None:
    conf = tmp_path / "corral.conf.py"
    sock_path = tmp_path / "app.sock"
    conf.write_text('bind = ["127.0.0.1:0"]\nworkers = 1\nwsgi_app = "simple:app"\n')
    server = corral_factory("-c", str(conf))
    tcp = server.addr
    conf.write_text(
        f'bind = ["127.0.0.1:0", "unix:{sock_path}"]\nworkers = 1\nwsgi_app = "simple:app"\n'
    )
    server.signal(signal.SIGHUP)
    server.wait_for(f"Listening at: unix:{sock_path} ")
    assert server.get()[0] == 200  # the kept TCP listener is the same socket
    assert len(server.matches("Listening at: http://")) == 1
    assert unix_request(str(sock_path)).startswith(b"HTTP/1.1 200")
    conf.write_text(f'bind = ["unix:{sock_path}"]\nworkers = 1\nwsgi_app = "simple:app"\n')
    server.signal(signal.SIGHUP)
    server.wait_for("Handling signal: hup", count=2)
    # Once the workers holding the old socket have been replaced, nothing listens there.
    wait_until(lambda: free_to_connect(tcp), bool, 20, server.log_text)
    assert unix_request(str(sock_path)).startswith(b"HTTP/1.1 200")
    assert server.stop() == 0
    assert not sock_path.exists()


def unix_request(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return sock.recv(65536)


def test_usr1_reopens_worker_access_logs(corral_factory: Start, tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "2", "--access-logfile", str(access), "simple:app"
    )
    assert server.get("/before")[0] == 200
    wait_until(lambda: access.read_text(), lambda text: "/before" in text, 10)
    rotated = tmp_path / "access.log.1"
    access.rename(rotated)
    server.signal(signal.SIGUSR1)
    server.wait_for("Handling signal: usr1")
    # Both workers must have reopened: requests land on either, and each must reach the new file.
    wait_until(lambda: access.exists(), bool, 10)
    for i in range(6):
        assert server.get(f"/after-{i}")[0] == 200
    text = wait_until(lambda: access.read_text(), lambda t: t.count("/after-") == 6, 10)
    assert "/before" not in text
    assert "/after-" not in rotated.read_text()


def test_usr1_reopens_the_master_error_log(corral_factory: Start, tmp_path: Path) -> None:
    errors = tmp_path / "error.log"
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "1", "--error-logfile", str(errors), "simple:app", wait=False
    )
    wait_until(lambda: errors.read_text() if errors.exists() else "", lambda t: "Booting" in t, 20)
    rotated = tmp_path / "error.log.1"
    errors.rename(rotated)
    server.signal(signal.SIGUSR1)
    wait_until(lambda: errors.exists(), bool, 10)
    server.signal(signal.SIGTTIN)  # the master logs "Handling signal: ttin" after the reopen
    wait_until(lambda: errors.read_text(), lambda t: "Handling signal: ttin" in t, 10)
    assert "Handling signal: ttin" not in rotated.read_text()
    assert server.stop() == 0
