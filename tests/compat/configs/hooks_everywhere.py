# Hooks as gunicorn's example config has them, logging through server.log and worker.log.
# ruff: noqa: UP031, B007  (worker_int kept as gunicorn's example writes it)
import os
import signal
import sys

bind = "127.0.0.1:8000"
workers = 2
loglevel = "info"


def on_starting(server):
    server.log.info("compat-hook on_starting")


def when_ready(server):
    server.log.info("compat-hook when_ready")


def pre_fork(server, worker):
    pass


def post_fork(server, worker):
    server.log.info("compat-hook post_fork %s", worker.pid)


def post_worker_init(worker):
    worker.log.info("compat-hook post_worker_init")


def pre_request(worker, req):
    worker.log.info("compat-hook pre_request %s %s", req.method, req.path)


def post_request(worker, req, environ, resp):
    worker.log.info("compat-hook post_request %s", req.path)


def worker_int(worker):
    worker.log.info("worker received INT or QUIT signal")
    import threading
    import traceback

    id2name = {th.ident: th.name for th in threading.enumerate()}
    code = []
    for thread_id, stack in sys._current_frames().items():
        code.append("\n# Thread: %s(%d)" % (id2name.get(thread_id, ""), thread_id))
        for filename, lineno, name, line in traceback.extract_stack(stack):
            code.append('File: "%s", line %d, in %s' % (filename, lineno, name))
    worker.log.debug("\n".join(code))


def worker_abort(worker):
    worker.log.info("worker received SIGABRT signal")


def worker_exit(server, worker):
    server.log.info("compat-hook worker_exit")


def child_exit(server, worker):
    server.log.info("compat-hook child_exit")


def nworkers_changed(server, new_value, old_value):
    server.log.info("compat-hook nworkers_changed %s %s", new_value, old_value)


def on_exit(server):
    server.log.info("compat-hook on_exit")


def pre_exec(server):
    server.log.info("Forked child, re-executing.")


_unused = (os, signal)
