"""workers = auto: the CPUs a process may use, from its affinity and its cgroup's CPU quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.arbiter.sizing import auto_workers, cgroup_cpu_quota, usable_cpus


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_takes_the_tightest_quota_on_the_path(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    _write(proc, "0::/kubepods/pod1/app\n")
    root = tmp_path / "fs"
    _write(root / "cpu.max", "max 100000\n")
    _write(root / "kubepods" / "cpu.max", "400000 100000\n")
    _write(root / "kubepods" / "pod1" / "cpu.max", "150000 100000\n")
    _write(root / "kubepods" / "pod1" / "app" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(root, proc) == 1.5
    assert usable_cpus(root, proc) == min(2, len(os.sched_getaffinity(0)))


def test_cgroup_v1_quota_under_the_cpu_controllers_mount(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    _write(proc, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    root = tmp_path / "fs"
    _write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "50000\n")
    _write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_quota(root, proc) == 0.5
    assert usable_cpus(root, proc) == 1  # never below one


@pytest.mark.parametrize(("quota", "cpus"), [("140000", 1), ("160000", 2), ("30000", 1)])
def test_a_fractional_quota_rounds_to_the_nearest_cpu(
    tmp_path: Path, quota: str, cpus: int
) -> None:
    # 1.4 CPUs of time is one CPU's worth of workers, not two (which would start 5 sync).
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs in the affinity mask")
    proc = tmp_path / "cgroup"
    _write(proc, "0::/app\n")
    _write(tmp_path / "fs" / "app" / "cpu.max", f"{quota} 100000\n")
    assert usable_cpus(tmp_path / "fs", proc) == cpus


def test_no_quota_anywhere_means_the_affinity_decides(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    _write(proc, "1:cpu:/\n0::/\n")
    root = tmp_path / "fs"
    _write(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    _write(root / "cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(root, proc) is None
    assert cgroup_cpu_quota(root, tmp_path / "missing") is None
    assert usable_cpus(root, proc) == len(os.sched_getaffinity(0))


def test_affinity_limits_the_count_in_a_real_process() -> None:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
            code = 0 if usable_cpus() == 1 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_auto_workers_by_kind() -> None:
    assert auto_workers("sync", 2) == 5
    assert auto_workers("threaded", 2) == 2
    assert auto_workers("asyncio", 4) == 4
