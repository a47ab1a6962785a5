"""benchmarks/ab.py end to end: this checkout against a revision, one short round each."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_head_against_itself_gives_a_ratio_and_leaves_no_worktree() -> None:
    before = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ab.py"), "--base", "HEAD",
         "--workloads", "hello", "--kinds", "sync", "--runs", "1", "--duration", "1",
         "--warmup", "1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = re.search(
        r"hello x corral-sync: [\d,]+ vs [\d,]+ req/s; per-round ratio median (\S+)", done.stdout
    )
    assert line is not None, done.stdout + done.stderr
    assert float(line.group(1)) > 0
    after = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert after == before
