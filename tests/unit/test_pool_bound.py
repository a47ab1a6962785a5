"""``threads`` caps a threaded worker's pool as in gunicorn; unset or ``auto`` it sizes itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.config import load
from corral.workers import resolve
from corral.workers.sync import SyncWorker
from corral.workers.threaded import ThreadedWorker, pool_bound


@pytest.mark.parametrize(
    ("argv", "bound"),
    [
        ([], 0),  # unset: the tuner's automatic bound (160)
        (["--threads", "auto"], 0),
        (["--threads", "auto", "--max-threads", "32"], 32),
        (["--threads", "8"], 8),  # gunicorn's meaning: at most 8 at once
        (["--threads", "1"], 1),
        (["--threads", "4", "--max-threads", "64"], 64),  # corral's max_threads raises it
    ],
)
def test_pool_bound(argv: list[str], bound: int) -> None:
    assert pool_bound(load([*argv, "app:app"], {})) == bound


def test_threads_from_a_config_file_caps_too(tmp_path: Path) -> None:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("threads = 4\n")
    assert pool_bound(load(["-c", str(conf), "app:app"], {})) == 4


@pytest.mark.parametrize(
    ("threads", "cls"), [(1, SyncWorker), (2, ThreadedWorker), (0, ThreadedWorker)]
)
def test_sync_with_threads_above_one_or_auto_is_the_threaded_worker(
    threads: int, cls: type
) -> None:
    assert resolve("sync", threads) is cls
