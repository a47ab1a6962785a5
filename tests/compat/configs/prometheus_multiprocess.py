# prometheus_client's documented multiprocess setup: each dead worker's files are cleaned up.
import os

from prometheus_client import multiprocess

bind = "127.0.0.1:8000"
workers = 2
raw_env = [f"PROMETHEUS_MULTIPROC_DIR={os.environ.get('PROMETHEUS_MULTIPROC_DIR', '/tmp')}"]


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
