"""An app moved from -k gevent with its monkey.patch_all() left in: one clear line, no loop."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.conftest import CorralProcess

Factory = Callable[..., CorralProcess]


def test_a_monkey_patched_select_stops_the_threaded_worker_with_one_line(
    corral_factory: Factory,
) -> None:
    server = corral_factory("-w", "1", "-k", "threaded", "-b", "127.0.0.1:0", "patches_select:app")
    assert server.wait_exit() == 4  # APP_LOAD_ERROR: the master stops instead of respawning
    log = server.log_text()
    assert "monkey-patches the standard library" in log
    assert log.count("Booting worker") == 1
