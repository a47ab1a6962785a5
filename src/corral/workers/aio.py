"""The asyncio worker: ASGI 3 apps (HTTP, lifespan, WebSocket) on asyncio or uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import traceback
from types import FrameType
from typing import Any

from corral.drivers.accept import Acceptor
from corral.drivers.aio import AioContext
from corral.drivers.awaits import await_stack
from corral.errors import WORKER_BOOT_ERROR
from corral.gateway.asgi import ASGIGateway
from corral.gateway.lifespan import Lifespan
from corral.gateway.loader import LoadedApp
from corral.gateway.websocket import WSSettings
from corral.gateway.wsgi import mount_point
from corral.http.events import Request
from corral.metrics import make_metrics
from corral.workers.base import Worker
from corral.workers.context import connection_policy
from corral.workers.loopwatch import LoopWatch

STOP_POLL = 0.1  # seconds between checks while in-flight work finishes on a graceful stop


class AsyncioWorker(Worker):
    """One event loop serving many connections; the app's coroutines run on it.

    Every connection is an ``asyncio.Protocol`` feeding the shared HTTP core; a task runs
    each request's ASGI cycle, one at a time per connection (pipelined requests wait their
    turn). Once a second a task notifies the heartbeat and enforces deadlines, so a loop
    blocked by the app stops the heartbeat and the arbiter replaces the worker.
    """

    interface = "asgi"
    kind = "asyncio"
    serves_h2 = True

    loop: asyncio.AbstractEventLoop | None = None
    ctx: AioContext | None = None
    _stop: asyncio.Event | None = None
    loop_watch: LoopWatch | None = None

    def serve(self, app: LoadedApp) -> None:
        loop = self._new_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        try:
            loop.run_until_complete(self._main(app))
        finally:
            self.loop = None
            loop.close()

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        """uvloop for ``loop = auto`` when it is installed, or when asked for by name."""
        choice = self.cfg.loop
        if choice in ("auto", "uvloop"):
            try:
                import uvloop
            except ImportError:
                if choice == "uvloop":
                    self.log.error(
                        "loop = uvloop, but uvloop is not installed: "
                        "pip install 'corral[uvloop]', or use --loop asyncio"
                    )
                    sys.exit(WORKER_BOOT_ERROR)
            else:
                new_loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
                return new_loop
        return asyncio.new_event_loop()

    def wake(self) -> None:
        """Called from the TERM handler (and when max_requests is spent): begin stopping."""
        loop, stop = self.loop, self._stop
        if loop is None or stop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(stop.set)

    async def _main(self, app: LoadedApp) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        cfg = self.cfg
        lifespan = Lifespan(app.app, cfg.lifespan, self.log)
        await lifespan.startup()  # AppLoadError on failure: the worker exits with APP_LOAD_ERROR
        ctx = self._context(app, lifespan.state)
        ctx.tls = self.tls_context
        self.ctx = ctx
        self.scoreboard.running = self._running
        acceptor = Acceptor(loop, self.listeners, ctx, cfg.worker_connections)
        deadline = 0.0
        self._watch_loop(ctx)
        try:
            acceptor.start()
            await self._run_until_stopped(ctx)
            deadline = loop.time() + max(cfg.graceful_timeout, 0)
            await self._finish_in_flight(ctx, acceptor, deadline)
        finally:
            acceptor.stop()
            tasks = [task for p in ctx.connections for task in p.tasks()]
            for proto in list(ctx.connections):
                proto.abort(cancel=True)
            if tasks:  # let the cancelled app tasks unwind before the loop closes
                await asyncio.wait(tasks, timeout=1.0)
            if self.loop_watch is not None:
                self.loop_watch.stop()
        await lifespan.shutdown(max(deadline - loop.time(), 1.0))

    def _running(self) -> list[tuple[Request, float]]:
        """The requests in flight and when their apps were called (the scoreboard's rows)."""
        ctx = self.ctx
        if ctx is None:
            return []
        return [(c.req, c.t0) for p in list(ctx.connections) for c, _ in p.running()]

    def dump_requests(self, current: FrameType | None) -> str:
        """Each request in flight with its age and the chain of awaits its task waits in; and,
        when app code holds the loop, where it runs now."""
        now = time.monotonic()
        blocks = []
        running = [r for p in list(self.ctx.connections) for r in p.running()] if self.ctx else []
        for cycle, task in running:
            if not cycle.t0:
                continue
            where = "running now" if task is asyncio.current_task(self.loop) else "awaiting"
            stack = await_stack(task.get_coro()) if where == "awaiting" else ""
            blocks.append(
                f"{cycle.req.method} {cycle.req.path} running {now - cycle.t0:.3f}s, "
                f"{where}:\n{stack}"
            )
        if current is not None and not _in_loop_wait(current):
            blocks.append("the event loop runs:\n" + "".join(traceback.format_stack(current)))
        return "\n".join(blocks) or "no request running"

    def _context(self, app: LoadedApp, state: dict[str, Any]) -> AioContext:
        cfg = self.cfg
        gateway = ASGIGateway(app.app, self, make_metrics(cfg, self.tally), state, mount_point(cfg))
        websocket = WSSettings(
            max_message_size=cfg.websocket_max_message_size,
            ping_interval=float(cfg.websocket_ping_interval),
            ping_timeout=float(cfg.websocket_ping_timeout),
            per_message_deflate=cfg.websocket_per_message_deflate,
        )
        return AioContext(
            gateway=gateway,
            policy=connection_policy(cfg, self),
            websocket=websocket,
            request_timeout=float(cfg.request_timeout),
        )

    def _watch_loop(self, ctx: AioContext) -> None:
        """request_timeout: a thread that notices app code holding the loop (LoopWatch)."""
        if ctx.request_timeout > 0:
            self.loop_watch = LoopWatch(
                ctx.request_timeout, self.log, asyncio.get_running_loop(), ctx.claim_late
            )
            self.loop_watch.start()

    def _tick(self) -> float:
        """How often connections are swept: the heartbeat's pace, or request_timeout's."""
        limit: float = self.cfg.request_timeout
        tick = self.heartbeat_interval()
        return min(tick, max(0.05, limit / 4)) if limit > 0 else tick

    async def _run_until_stopped(self, ctx: AioContext) -> None:
        loop = asyncio.get_running_loop()
        stop = self._stop
        assert stop is not None
        tick = self._tick()
        while self.alive and self.parent_alive():
            self.heartbeat.notify()
            if self.loop_watch is not None:
                self.loop_watch.beat()
            now = loop.time()
            for proto in list(ctx.connections):
                proto.tick(now)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), tick)

    async def _finish_in_flight(self, ctx: AioContext, acceptor: Acceptor, deadline: float) -> None:
        """Graceful stop: requests in flight finish by ``deadline``, idle connections soon.

        A retiring worker stops accepting at once. When the whole server drains, a worker goes
        on accepting while it has connections open or queued: it is alive for those anyway,
        and a connection still queued when the last worker lets go of the listeners would be
        reset. New requests are answered with Connection: close.
        """
        loop = asyncio.get_running_loop()
        ctx.policy.begin_stop(loop.time())
        if not self.stopping():
            acceptor.stop()
        for proto in list(ctx.connections):
            proto.shutdown()
        next_tick = 0.0
        tick = self._tick()
        while loop.time() < deadline:
            if acceptor.running and not (ctx.connections or acceptor.backlog()):
                acceptor.stop()
            # A connection accepted just before the stop may still be in its TLS handshake
            # (acceptor.pending): it is not in ctx.connections yet, and leaving now would cut
            # it off mid-handshake. header_timeout bounds that wait.
            if not (acceptor.running or ctx.connections or acceptor.pending):
                break
            now = loop.time()
            if now >= next_tick:
                next_tick = now + tick
                self.heartbeat.notify()
                if self.loop_watch is not None:
                    self.loop_watch.beat()
                for proto in list(ctx.connections):
                    proto.tick(now)
            await asyncio.sleep(STOP_POLL)
        acceptor.stop()
        if ctx.connections:
            self.log.warning(
                "graceful_timeout: dropping %d connection(s) still open", len(ctx.connections)
            )


def _in_loop_wait(frame: FrameType) -> bool:
    """Whether the signal found the loop in its own machinery (waiting for I/O, running its
    callbacks, corral's protocol code) rather than in the app's code holding it."""
    name = frame.f_code.co_filename
    return any(part in name for part in _LOOP_FILES)


# Where the loop's own frames live: asyncio, selectors, uvloop's Python side, corral itself.
_LOOP_FILES = (
    f"{os.sep}asyncio{os.sep}",
    "selectors.py",
    f"{os.sep}uvloop{os.sep}",
    f"{os.sep}corral{os.sep}",
)
