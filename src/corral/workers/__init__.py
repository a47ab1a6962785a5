"""Worker processes: sync, threaded and asyncio; ``resolve`` picks the class for the settings."""

from __future__ import annotations

import importlib

from corral.config.worker_names import WORKER_ALIASES, foreign_worker
from corral.errors import ConfigError
from corral.workers.base import Worker

_BUILTIN = {
    "sync": "corral.workers.sync:SyncWorker",
    "threaded": "corral.workers.threaded:ThreadedWorker",
    "asyncio": "corral.workers.aio:AsyncioWorker",
}


def resolve(worker_class: str, threads: int) -> type[Worker]:
    """The worker class for ``worker_class`` (a name or ``pkg.module.Class``) and ``threads``.

    gunicorn's names and class paths (``gthread``, ``asgi``,
    ``gunicorn.workers.gasgi.ASGIWorker``, uvicorn's workers) stand for corral's workers. As in
    gunicorn, ``threads`` above one (or ``auto``, 0) turns the default sync worker into the
    threaded one.
    """
    name = worker_class.strip()
    refused = foreign_worker(name)
    if refused is not None:
        raise ConfigError(f"worker_class = {worker_class!r}: {refused}")
    name = WORKER_ALIASES.get(name.lower().replace(":", "."), name)
    if name == "sync" and threads != 1:
        name = "threaded"
    target = _BUILTIN.get(name.lower())
    if target is None:
        if "." not in name and ":" not in name:
            choices = ", ".join(sorted({*_BUILTIN, "gthread", "asgi"}))
            raise ConfigError(
                f"worker_class = {worker_class!r}: unknown worker; use one of {choices}"
            )
        target = name if ":" in name else "{}:{}".format(*name.rsplit(".", 1))
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"worker_class = {worker_class!r}: cannot import it: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Worker)):
        if any(base.__module__.startswith("gunicorn.") for base in getattr(cls, "__mro__", ())):
            raise ConfigError(
                f"worker_class = {worker_class!r} is a gunicorn worker class; corral runs its "
                "own workers: use sync, threaded or asyncio (or a corral Worker subclass)"
            )
        raise ConfigError(f"worker_class = {worker_class!r} is not a corral Worker subclass")
    return cls
