#!/usr/bin/env python3
"""CPU instructions per request on corral's WSGI hot path, counted by callgrind: noise-free.

Timings on a shared machine move by 10-20 % from one minute to the next; instruction counts
do not (the same count twice, whatever else runs). This drives the same in-process loop as
hotpath.py (client send, Session.read_ready, client recv) under `valgrind --tool=callgrind`
twice, with two request counts, and divides the difference, so start-up and imports cancel:

    python benchmarks/instructions.py [--requests 2000] [--stages]

Two requests: wrk's (a request line and Host) and a browser's (ten header fields), each sent
again and again, so the parser's memo answers for them as it does under a load generator; and
the browser's once more as a head never seen before (``browser-new``: the memo is emptied
before every request), which is what varied traffic costs. Counts are
user-space instructions of the whole process, the client's few included; the kernel's work is
not counted. ``--stages`` also counts hotpath.py's stages for wrk's request, each step alone
(so a row is the same split as hotpath.py's table, in instructions instead of µs). Needs
valgrind (`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import hotpath
from corral.http import readers

REQUESTS = {
    "wrk": hotpath.REQUEST,
    "browser": (
        b"GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
        b"Accept: text/html,application/xhtml+xml\r\n"
        b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n"
        b"Connection: keep-alive\r\nCookie: session=abc123; theme=dark\r\n"
        b"Upgrade-Insecure-Requests: 1\r\nCache-Control: max-age=0\r\n\r\n"
    ),
}
REQUESTS["browser-new"] = REQUESTS["browser"]
WARMUP = 200  # requests served before the counted ones, in both runs


def serve(step: str, count: int, request: bytes, *, new_heads: bool = False) -> None:
    """`count` calls of one of hotpath.py's steps over `request` ("whole": a real Session).

    With ``new_heads``, the parser's memo is emptied before each call, so every head is parsed.
    """
    call = hotpath.stage_calls(request)[step]
    forget = readers._PARSED.clear
    for _ in range(count):
        if new_heads:
            forget()
        call()


def counted(args: list[str]) -> int:
    """Instructions callgrind counts for a whole run of this script with ``args``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
        done = subprocess.run(
            [*argv, __file__, *args],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind failed for {' '.join(args)}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_request(args: list[str], requests: int) -> float:
    """Instructions per request: two runs, WARMUP and WARMUP + requests, differenced."""
    base = counted([*args, str(WARMUP)])
    return (counted([*args, str(WARMUP + requests)]) - base) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="counted requests per run")
    parser.add_argument("--stages", action="store_true", help="also count hotpath.py's stages")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--step", nargs=2, metavar=("STEP", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind = args.serve[0]
        serve("whole", int(args.serve[1]), REQUESTS[kind], new_heads=kind.endswith("-new"))
        return 0
    if args.step:
        serve(args.step[0], int(args.step[1]), REQUESTS["wrk"])
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind not found (apt-get install valgrind)", file=sys.stderr)
        return 2
    print(f"python {sys.version.split()[0]}, {args.requests} requests counted")
    print("| request | instructions per request |\n|---|---|")
    for kind in REQUESTS:
        print(f"| {kind} | {per_request(['--serve', kind], args.requests):,.0f} |")
    if args.stages:
        print("\n| stage (wrk's request) | instructions per request |\n|---|---|")
        for name, value in hotpath.by_stage(
            lambda step: per_request(["--step", step], args.requests)
        ):
            print(f"| {name} | {value:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
