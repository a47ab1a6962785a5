"""Settings table, part 4: server hooks, with gunicorn's names and signatures."""

# ruff: noqa: RUF009  (setting() returns a dataclasses.Field, the documented way to attach
# metadata; it is not a default computed once and shared.)

from __future__ import annotations

from dataclasses import dataclass

from corral.config import parsers as p
from corral.config.spec import setting


def default_hook(*_args: object) -> None:
    """The default of every hook: do nothing."""


H = "Server Hooks"


@dataclass
class HookTable:
    """Server Hooks: callables set by defining functions of these names in the config file."""

    on_starting: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(1),
        help="`on_starting(server)`: in the arbiter, before it starts anything.",
    )
    on_reload: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(1),
        help="`on_reload(server)`: in the arbiter, when SIGHUP reloads the configuration.",
    )
    when_ready: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(1),
        help="`when_ready(server)`: in the arbiter, once the listeners are bound.",
    )
    pre_fork: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(2),
        help="`pre_fork(server, worker)`: in the arbiter, just before a worker is forked.",
    )
    post_fork: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(2),
        help="`post_fork(server, worker)`: in the new worker, just after the fork.",
    )
    post_worker_init: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(1),
        help="`post_worker_init(worker)`: in the worker, once the application is loaded.",
    )
    worker_int: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(1),
        help="`worker_int(worker)`: in the worker, when SIGINT or SIGQUIT stops it.",
    )
    worker_abort: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(1),
        help="`worker_abort(worker)`: in the worker, on SIGABRT (usually a timeout).",
    )
    pre_exec: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(1),
        help="`pre_exec(server)`: in the arbiter, just before it re-executes itself.",
    )
    pre_request: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(2),
        help="`pre_request(worker, req)`: in the worker, before the application is called.",
    )
    post_request: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.POST_REQUEST_HOOK,
        help="""
        `post_request(worker, req, environ, resp)`: in the worker, after the response.

        As in gunicorn, a function taking only `(worker, req)` or
        `(worker, req, environ)` is accepted; corral always calls it with four arguments.
        """,
    )
    child_exit: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(2),
        help="`child_exit(server, worker)`: in the arbiter, after a worker has exited.",
    )
    worker_exit: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(2),
        help="`worker_exit(server, worker)`: in the worker, just before it exits.",
    )
    nworkers_changed: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(3),
        help="""
        `nworkers_changed(server, new_value, old_value)`: in the arbiter, when the number
        of workers changes (`old_value` is None the first time).
        """,
    )
    on_exit: p.Hook = setting(
        default_hook,
        section=H,
        parse=p.hook(1),
        help="`on_exit(server)`: in the arbiter, just before corral exits.",
    )
