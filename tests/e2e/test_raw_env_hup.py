"""raw_env on HUP: the new workers see the config file's new raw_env, and dropped names go."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import CorralProcess, wait_until

Start = Callable[..., CorralProcess]
RELOAD_WAIT = 15.0


def write_config(path: Path, raw_env: list[str]) -> None:
    path.write_text(f"workers = 2\nraw_env = {raw_env!r}\n")


def served(server: CorralProcess) -> tuple[int, str]:
    """(pid of the worker that answered, the variables it saw)."""
    status, body = server.get()
    assert status == 200, body
    pid, _, shown = body.partition(" ")
    return int(pid), shown


def hup_until(server: CorralProcess, expected: str, old: set[int]) -> set[int]:
    """HUP, then wait until only new workers run and they answer `expected`."""
    server.signal(signal.SIGHUP)
    new = server.wait_workers(lambda pids: len(pids) == 2 and not pids & old, RELOAD_WAIT)
    for _ in range(4):  # either worker may answer: every one must show the new value
        pid, shown = served(server)
        assert pid in new and shown == expected
    return new


def test_raw_env_changes_take_effect_on_hup(corral_factory: Start, tmp_path: Path) -> None:
    config = tmp_path / "env.conf.py"
    write_config(config, ["GREETING=one"])
    # GREETING is also in corral's own environment: raw_env overrides it while it names it.
    server = corral_factory(
        "-b", "127.0.0.1:0", "-c", str(config), "env_echo:app", env={"GREETING": "shell"}
    )  # fmt: skip
    first = server.wait_workers(lambda pids: len(pids) == 2)
    assert served(server)[1] == "GREETING=one EXTRA=<unset>"

    write_config(config, ["GREETING=two", "EXTRA=added"])
    second = hup_until(server, "GREETING=two EXTRA=added", first)

    # Dropped from raw_env: EXTRA is unset again, GREETING is the shell's once more.
    write_config(config, [])
    hup_until(server, "GREETING=shell EXTRA=<unset>", second)
    assert server.stop() == 0


def test_a_failed_reload_keeps_the_raw_env(corral_factory: Start, tmp_path: Path) -> None:
    config = tmp_path / "env.conf.py"
    write_config(config, ["GREETING=kept"])
    server = corral_factory("-b", "127.0.0.1:0", "-c", str(config), "env_echo:app")
    first = server.wait_workers(lambda pids: len(pids) == 2)
    config.write_text("raw_env = ['GREETING=lost']\nraise RuntimeError('half-edited')\n")
    server.signal(signal.SIGHUP)
    server.wait_for("Reload failed, the current configuration stays")
    # A worker forked now (TTIN) inherits the master's environment: still the old raw_env.
    server.signal(signal.SIGTTIN)
    both = server.wait_workers(lambda pids: len(pids) == 3 and first < pids)
    newest = (both - first).pop()
    seen = wait_until(lambda: served(server), lambda got: got[0] == newest, RELOAD_WAIT)
    assert seen[1] == "GREETING=kept EXTRA=<unset>"
    assert server.stop() == 0
