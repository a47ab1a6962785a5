"""worker_class values: corral's workers, gunicorn's and uvicorn's names for them, and refusals."""

from __future__ import annotations

import inspect
import re

from corral.config import parsers as p

# gunicorn's worker class names, and the class paths of gunicorn's and uvicorn's workers
# (written with a dot or a colon before the class), that one of corral's workers stands in for.
# uvicorn's workers run ASGI apps (FastAPI, Starlette): corral's asyncio worker serves those.
WORKER_ALIASES = {
    "gthread": "threaded",
    "asgi": "asyncio",
    "gunicorn.workers.sync.syncworker": "sync",
    "gunicorn.workers.gthread.threadworker": "threaded",
    "gunicorn.workers.gasgi.asgiworker": "asyncio",
    "uvicorn.workers.uvicornworker": "asyncio",
    "uvicorn.workers.uvicornh11worker": "asyncio",
    "uvicorn_worker.uvicornworker": "asyncio",
    "uvicorn_worker.uvicornh11worker": "asyncio",
}

_WORKER_CHOICE = p.choice(("sync", "threaded", "asyncio"), WORKER_ALIASES)

# gunicorn's workers built on other concurrency libraries, by name and class path.
_GREEN = (
    "corral has no {} worker; use -k threaded, which serves many waiting requests per "
    "process without monkey-patching, with threads set to the requests a worker must hold "
    "waiting at once (see docs/migrating.md, section gevent)"
)
_TORNADO = (
    "corral has no tornado worker; serve a WSGI app with -k threaded (a "
    "tornado.web.Application needs tornado's own server)"
)
_FOREIGN_WORKERS = {
    "gevent": _GREEN.format("gevent"),
    "gevent_wsgi": _GREEN.format("gevent"),
    "gevent_pywsgi": _GREEN.format("gevent"),
    "gunicorn.workers.ggevent.geventworker": _GREEN.format("gevent"),
    "gunicorn.workers.ggevent.geventpywsgiworker": _GREEN.format("gevent"),
    "eventlet": _GREEN.format("eventlet"),
    "gunicorn.workers.geventlet.eventletworker": _GREEN.format("eventlet"),
    "tornado": _TORNADO,
    "gunicorn.workers.gtornado.tornadoworker": _TORNADO,
}


def foreign_worker(name: str) -> str | None:
    """Why corral cannot run gunicorn's worker `name` (gevent, eventlet, tornado), or None."""
    return _FOREIGN_WORKERS.get(name.strip().lower().replace(":", "."))


def _worker_class(value: object) -> str:
    if inspect.isclass(value):
        # gunicorn also takes the class itself (`worker_class = UvicornWorker`).
        value = f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, str):
        text = value.strip()
        if foreign_worker(text) is not None:
            # Refused by Config.check once every source is read: a later source (-k threaded
            # on the command line) may replace a config file's gevent.
            return text
        alias = WORKER_ALIASES.get(text.lower().replace(":", "."))
        if alias is not None:
            return alias
        # Any other dotted path names a corral Worker subclass of the user's;
        # corral.workers.resolve imports and checks it.
        if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*[.:][A-Za-z_]\w*", text):
            return text
    try:
        return _WORKER_CHOICE(value)
    except p.Invalid:
        raise p.Invalid(
            "expected sync, threaded, asyncio, or the dotted path of a corral Worker class"
        ) from None


WORKER_CLASS = p.Parser("sync | threaded | asyncio | dotted path", _worker_class)
