"""What a WSGI server loads without TLS: neither asyncio nor ctypes, which would add ~6 MiB to
each worker, nor ssl (OpenSSL: ~3 MiB in the arbiter, ~1 MiB in each worker)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
import corral.cli, corral.arbiter.arbiter, corral.workers.{module}
heavy = sorted(name for name in ("asyncio", "ctypes", "ssl") if name in sys.modules)
print(",".join(heavy))
"""


@pytest.mark.parametrize("module", ["sync", "threaded"])
def test_a_wsgi_worker_does_not_import_asyncio_ctypes_or_ssl(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.strip() == ""
