"""corral's own WebSocket frame layer against wsproto (+ h11): what a worker pays for each.

    python benchmarks/ws_engine.py [--rounds 7]

Prints one JSON object:
- import: the time and RSS that importing wsproto's connection, events and extensions (and so
  h11, which wsproto.connection pulls in) adds to a process that already has corral's asyncio
  worker imported, against importing corral's own frame modules on top of their dependencies;
  each the median over fresh interpreters (best time too), and the memory tracemalloc sees
  those modules take (RSS moves by whole pages and arenas, so it is the noisier figure).
- per_message_us: the cost of taking in one client message, in process (best of `--rounds`):
  a 16-byte masked text frame, the same in three fragments with a ping between, and a
  compressed (permessage-deflate) 16-byte and 1 KiB message; through corral's FrameReader and
  through a wsproto Connection (receive_data + events), wsproto with its PerMessageDeflate.
- deflate_kib_per_connection: RSS added per connection holding a compressor and decompressor
  as agreed by default (12-bit windows, memLevel 5) after one message each way.
- lines: non-blank, non-comment source lines of wsproto, of h11, and of corral's frame layer.

wsproto is in the `bench` extra for this comparison only; corral does not need it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import timeit
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OURS = ["ws_frames.py", "ws_reader.py", "ws_deflate.py", "ws_handshake.py"]
_PROBE = """
import sys, time, tracemalloc
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
import corral.gateway.asgi, corral.http.connection, corral.drivers.policy
{before}
r0 = rss(); t0 = time.perf_counter()
{what}
t1 = time.perf_counter(); r1 = rss()
tracemalloc.start()
{what_again}
print((t1 - t0) * 1e3, r1 - r0, tracemalloc.get_traced_memory()[0] / 1024)
"""
WSPROTO = "import wsproto.connection, wsproto.events, wsproto.extensions"
CORRAL = "import corral.gateway.ws_frames, corral.gateway.ws_reader, corral.gateway.ws_deflate"


def import_cost(what: str, before: str, runs: int) -> dict[str, float]:
    """Milliseconds and KiB that `what` adds after `before`, over fresh interpreters."""
    times, rss, traced = [], [], []
    # The traced figure imports the same modules afresh (dropped from sys.modules first) with
    # tracemalloc on: the Python objects they hold, page-independent, unlike RSS.
    again = f"[sys.modules.pop(m) for m in list(sys.modules) if m not in _before]\n{what}"
    probe = _PROBE.replace("{before}", "{before}\n_before = set(sys.modules)")
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", probe.format(before=before, what=what, what_again=again)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        times.append(float(out[0]))
        rss.append(float(out[1]))
        traced.append(float(out[2]))
    return {
        "ms_median": round(statistics.median(times), 2),
        "ms_best": round(min(times), 2),
        "rss_kib_median": statistics.median(rss),
        "traced_kib": round(statistics.median(traced)),
    }


class _Sink:
    def __init__(self) -> None:
        self.count = 0

    def deliver(self, message: Any) -> None:
        self.count += 1

    def ping(self, payload: bytes) -> None:
        pass

    def peer_closed(self, code: int, reason: str) -> None:
        raise AssertionError("closed")

    def fail(self, code: int, reason: str) -> None:
        raise AssertionError(f"failed {code} {reason}")


def frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    """One masked client frame (RFC 6455 §5.2), with the shortest length form."""
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    key = (mask * (n // 4 + 1))[:n]
    return head + mask + bytes(a ^ b for a, b in zip(payload, key, strict=True))


def _client_deflate(data: bytes, compressor: Any) -> bytes:
    return bytes(compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def _inputs() -> dict[str, list[bytes]]:
    """Per case, a list of messages' bytes; compressed ones share one client context."""
    small = b"0123456789abcdef"
    kib = (b'{"user": 1234, "event": "update", "fields": ["a", "b", "c"]} ' * 17)[:1024]
    fragmented = frame(0x1, small[:5], fin=False) + frame(0x9, b"p")
    fragmented += frame(0x0, small[5:10], fin=False) + frame(0x0, small[10:])
    out: dict[str, list[bytes]] = {"text16": [frame(0x1, small)] * 1000}
    out["fragmented16+ping"] = [fragmented] * 1000
    for name, data in (("deflate16", small), ("deflate1k", kib)):
        compressor = zlib.compressobj(6, zlib.DEFLATED, -12, 5)
        out[name] = [frame(0x1, _client_deflate(data, compressor), rsv=0x40) for _ in range(1000)]
    return out


def _ours(messages: list[bytes], deflate: bool) -> int:
    from corral.gateway.ws_deflate import Deflate, negotiate
    from corral.gateway.ws_reader import FrameReader

    agreed = negotiate(["permessage-deflate; client_max_window_bits"]) if deflate else None
    sink = _Sink()
    reader = FrameReader(sink, 1 << 24, Deflate(agreed) if agreed else None)
    for data in messages:
        reader.feed(data)
    return sink.count


def _wsproto(messages: list[bytes], deflate: bool) -> int:
    from wsproto.connection import Connection, ConnectionType
    from wsproto.extensions import PerMessageDeflate

    extensions: list[Any] = []
    if deflate:
        pmd = PerMessageDeflate()
        pmd.accept("permessage-deflate; client_max_window_bits=12")
        extensions = [pmd]
    conn = Connection(ConnectionType.SERVER, extensions=extensions)
    count = 0
    for data in messages:
        conn.receive_data(data)
        for _event in conn.events():
            count += 1
    return count


def per_message(rounds: int) -> dict[str, dict[str, float]]:
    """Microseconds per message, best of `rounds` passes over 1000 messages."""
    results: dict[str, dict[str, float]] = {}
    for case, messages in _inputs().items():
        deflate = case.startswith("deflate")
        row = {}
        for name, fn in (("corral", _ours), ("wsproto", _wsproto)):
            run = functools.partial(fn, messages, deflate)
            best = min(timeit.repeat(run, number=1, repeat=rounds))
            row[name] = round(best / len(messages) * 1e6, 2)
        row["ratio"] = round(row["wsproto"] / row["corral"], 2)
        results[case] = row
    return results


def deflate_memory(connections: int = 2000) -> float:
    """KiB of RSS per connection with permessage-deflate agreed, after a message each way."""
    from corral.gateway.ws_deflate import Deflate, negotiate

    agreed = negotiate(["permessage-deflate; client_max_window_bits"])
    assert agreed is not None
    message = b"x" * 200
    payload = _client_deflate(message, zlib.compressobj(6, zlib.DEFLATED, -12, 5))
    with open("/proc/self/status") as f:
        before = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
    keep = []
    for _ in range(connections):
        codec = Deflate(agreed)
        codec.compress(message)
        codec.decompress(payload, True, 1 << 20)
        keep.append(codec)
    with open("/proc/self/status") as f:
        after = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
    return round((after - before) / connections, 1)


def source_lines(path: Path) -> int:
    """Lines that are neither blank nor comments (docstrings count)."""
    files = [path] if path.is_file() else sorted(path.rglob("*.py"))
    return sum(
        1
        for f in files
        for line in f.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    )


def lines() -> dict[str, int]:
    import h11
    import wsproto

    gateway = ROOT / "src" / "corral" / "gateway"
    return {
        "wsproto": source_lines(Path(wsproto.__file__).parent),
        "h11": source_lines(Path(h11.__file__).parent),
        "corral_frame_layer": sum(source_lines(gateway / name) for name in OURS),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    report = {
        "import": {
            "wsproto+h11": import_cost(WSPROTO, "import corral.workers.aio", args.rounds),
            # zlib: a worker has it loaded already (other standard modules import it).
            "corral": import_cost(CORRAL, "import zlib", args.rounds),
        },
        "per_message_us": per_message(args.rounds),
        "deflate_kib_per_connection": deflate_memory(),
        "lines": lines(),
        "python": sys.version.split()[0],
        "load_average": os.getloadavg(),
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
