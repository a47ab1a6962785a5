"""The ASGI lifespan protocol: startup before the first request, shutdown after the last."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from corral.errors import AppLoadError

if TYPE_CHECKING:
    from corral.gateway.asgi import ASGIApp, Message
    from corral.logging import Logger

LIFESPAN_VERSION = {"version": "3.0", "spec_version": "2.0"}


class Lifespan:
    """Runs the app's lifespan task in one worker; ``state`` is what requests will share.

    ``mode`` is the ``lifespan`` setting: ``off`` never calls the app with this scope; ``on``
    treats any failure as fatal; ``auto`` serves an app that does not speak lifespan anyway
    (it raised before completing startup), but still stops on an explicit
    ``lifespan.startup.failed``, since the app said it cannot serve.
    """

    def __init__(self, app: ASGIApp, mode: str, log: Logger) -> None:
        self.app = app
        self.mode = mode
        self.log = log
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup: asyncio.Future[str | None] | None = None
        self._shutdown: asyncio.Future[str | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._failed_early: BaseException | None = None
        self.active = False

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer; raises AppLoadError on failure."""
        if self.mode == "off":
            return
        loop = asyncio.get_running_loop()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        scope = {"type": "lifespan", "asgi": LIFESPAN_VERSION, "state": self.state}
        self._task = loop.create_task(self._main(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        pending: list[asyncio.Future[Any]] = [self._startup, self._task]
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if self._startup.done():
            failure = self._startup.result()
            if failure is not None:
                raise AppLoadError(f"ASGI lifespan startup failed: {failure}")
            self.active = True
            return
        # The app returned or raised without answering startup.
        if self.mode == "on":
            error = self._failed_early
            detail = f"{type(error).__name__}: {error}" if error else "the app returned"
            raise AppLoadError(f"ASGI lifespan startup failed ({detail}) with lifespan = on")
        self.log.info("ASGI 'lifespan' protocol appears unsupported; serving without it.")

    async def _main(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            self._failed_early = exc
            if self._startup is not None and not self._startup.done():
                if self.mode == "on":
                    self.log.exception("Exception in ASGI lifespan startup")
                else:
                    self.log.debug("lifespan raised before startup completed", exc_info=True)
            elif self.active:
                self.log.exception("Exception in ASGI lifespan task")
                if self._shutdown is not None and not self._shutdown.done():
                    self._shutdown.set_result(f"{type(exc).__name__}: {exc}")
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        startup, shutdown = self._startup, self._shutdown
        assert startup is not None and shutdown is not None
        if kind == "lifespan.startup.complete" and not startup.done():
            startup.set_result(None)
        elif kind == "lifespan.startup.failed" and not startup.done():
            startup.set_result(str(message.get("message", "")) or "no message given")
        elif kind == "lifespan.shutdown.complete" and startup.done() and not shutdown.done():
            shutdown.set_result(None)
        elif kind == "lifespan.shutdown.failed" and startup.done() and not shutdown.done():
            shutdown.set_result(str(message.get("message", "")) or "no message given")
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")

    async def shutdown(self, timeout: float) -> None:
        """Send ``lifespan.shutdown`` and wait up to ``timeout`` seconds for the answer."""
        if not self.active or self._task is None or self._shutdown is None:
            return
        self.active = False
        await self._inbox.put({"type": "lifespan.shutdown"})
        pending: list[asyncio.Future[Any]] = [self._shutdown, self._task]
        done, _ = await asyncio.wait(
            pending,
            timeout=max(timeout, 0.1),
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not done:
            self.log.warning("ASGI lifespan shutdown did not complete within %.1fs", timeout)
        elif self._shutdown.done():
            failure = self._shutdown.result()
            if failure is not None:
                self.log.error("ASGI lifespan shutdown failed: %s", failure)
        if not self._task.done():
            self._task.cancel()
