#!/usr/bin/env python3
"""The floor of a pure-Python threaded server: what Python's threads and GIL cost by themselves.

A thread per connection, a blocking ``recv``, an optional sleep standing in for the app's wait,
and a canned 13-byte response: no parsing, no WSGI, no pool. Forked into ``--workers``
processes sharing one listener, as corral's workers share theirs. Not a server (it answers
whatever arrives with the same bytes, one response per read); only a measuring stick for the
`io` row of docs/performance.md:

    python benchmarks/floor.py --port 8000 --sleep-ms 10 &
    wrk -t2 -c256 -d10s --latency http://127.0.0.1:8000/

It prints ``Listening at: http://127.0.0.1:PORT`` once the workers are forked, and stops on
SIGTERM or SIGINT, stopping its workers by their PIDs.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"


def serve_connection(conn: socket.socket, pause: float) -> None:
    """Answer every read on ``conn`` with the canned response, after ``pause`` seconds."""
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while conn.recv(65536):
                if pause:
                    time.sleep(pause)
                conn.sendall(RESPONSE)
        except OSError:
            pass  # the client reset the connection: nothing to answer


def worker(listener: socket.socket, pause: float) -> None:
    """Accept forever, a thread for each connection."""
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(conn, pause), daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="on 127.0.0.1 [0: any free one]")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sleep-ms", type=float, default=0.0, help="the app's wait [0]")
    args = parser.parse_args()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(1024)
    pids = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            worker(listener, args.sleep_ms / 1000)
        pids.append(pid)
    stops = {signal.SIGTERM, signal.SIGINT}
    # Blocked after the forks (the workers keep the default actions) and before the address is
    # told: a stop sent as soon as it is known waits here rather than orphaning the workers.
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    print(f"Listening at: http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    signal.sigwait(stops)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    for pid in pids:
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
