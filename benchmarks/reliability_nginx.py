"""nginx as a reverse proxy in front of the server, with kept-alive upstream connections.

It runs in the foreground from a temporary prefix of its own (conf, pid, logs, temp paths), so it
needs no root-owned path. `retry_twice` lists the server twice in the upstream: nginx then has a
"next upstream" to retry an idempotent request on when a connection to a killed worker fails, as
it would with two backends in production. Otherwise nginx only retries a request that failed on a
cached kept-alive connection (ngx_http_upstream_next counts that try as not taken).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

from benchmarks.reliability_clients import wait_listening
from benchmarks.reliability_servers import HOST, free_port

UPSTREAM_KEEPALIVE = 16


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def nginx_conf(prefix: Path, listen: int, upstream: tuple[str, int], retry_twice: bool) -> str:
    server = f"        server {upstream[0]}:{upstream[1]} max_fails=0;\n"
    temp_paths = "".join(
        f"    {kind}_temp_path {prefix}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    access_log off;\n"
        f"{temp_paths}"
        "    upstream app {\n"
        f"{server * (2 if retry_twice else 1)}"
        f"        keepalive {UPSTREAM_KEEPALIVE};\n"
        "    }\n"
        "    server {\n"
        f"        listen {HOST}:{listen};\n"
        "        location / {\n"
        "            proxy_pass http://app;\n"
        "            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n'
        "            proxy_read_timeout 15s;\n"
        "        }\n"
        "    }\n"
        "}\n"
    )


class Nginx:
    """One nginx process proxying HOST:<port> to `upstream`; stop() closes its upstream links."""

    def __init__(self, prefix: Path, upstream: tuple[str, int], *, retry_twice: bool) -> None:
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError("nginx is not installed")
        prefix.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_conf(prefix, port, upstream, retry_twice))
        self.proc = subprocess.Popen(
            [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addr = (HOST, port)
        try:
            wait_listening(self.addr, 10.0)
        except BaseException:
            self.stop()
            raise

    def error_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.prefix / "error.log").read_text(errors="replace")
        return ""

    def stop(self) -> None:
        """QUIT (graceful), then KILL after 10 s; its worker exits with the master."""
        if self.proc.poll() is None:
            self.proc.send_signal(3)  # SIGQUIT: nginx's graceful shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # The worker process may outlive the master by a moment; its pid file is gone with it.
        deadline = time.monotonic() + 5
        while (self.prefix / "nginx.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
