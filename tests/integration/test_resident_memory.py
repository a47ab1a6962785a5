"""The arbiter's reading of a worker's resident memory, on real processes."""

from __future__ import annotations

import os
import subprocess
import sys

from corral.arbiter.children import resident_bytes

MIB = 1024 * 1024


def vm_rss(pid: int) -> int:
    """VmRSS from /proc/PID/status, in bytes: the kernel's other account of the same number."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def test_it_reads_what_the_kernel_reports_and_follows_growth() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; print('ready', flush=True); sys.stdin.readline(); "
            "kept = b'x' * (64 * 2**20); "
            "print('grown', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdin is not None and child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        before = resident_bytes(child.pid)
        assert before > 0 and abs(before - vm_rss(child.pid)) < 2 * MIB
        child.stdin.write("grow\n")
        child.stdin.flush()
        assert child.stdout.readline() == "grown\n"
        after = resident_bytes(child.pid)
        assert after - before >= 60 * MIB
        assert abs(after - vm_rss(child.pid)) < 2 * MIB
        child.stdin.write("exit\n")
        child.stdin.flush()
    finally:
        child.kill()  # by its pid; after "exit" it is already gone
        child.wait(timeout=10)


def test_a_pid_with_no_process_reads_as_zero() -> None:
    # A reaped child's pid may be reused at any moment; one past pid_max cannot be live.
    with open("/proc/sys/kernel/pid_max") as limit:
        never = int(limit.read()) + 1
    assert resident_bytes(never) == 0
    assert resident_bytes(os.getpid()) > 0
