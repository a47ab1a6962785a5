# A gunicorn.conf.py as found in a typical deployment; corral must run it unchanged.
import multiprocessing
import os

bind = os.environ.get("TEST_BIND", "127.0.0.1:0")
workers = min(2, multiprocessing.cpu_count())
threads = 4
timeout = 60
graceful_timeout = 20
keepalive = 5
max_requests = 1000
max_requests_jitter = 50
accesslog = os.environ.get("TEST_ACCESS_LOG", "-")
errorlog = "-"
loglevel = "info"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'
proc_name = "deployment-test"
forwarded_allow_ips = "127.0.0.1"


def on_starting(server):
    server.log.info("hook: on_starting")


def when_ready(server):
    server.log.info("hook: when_ready")


def post_fork(server, worker):
    server.log.info("hook: post_fork worker %s", worker.pid)


def pre_request(worker, req):
    worker.log.debug("%s %s", req.method, req.path)


def post_request(worker, req, environ, resp):
    worker.log.info("hook: post_request %s", req.path)


def worker_exit(server, worker):
    server.log.info("hook: worker_exit %s", worker.pid)
