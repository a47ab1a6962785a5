# The threaded worker, gunicorn's gthread.
worker_class = "gthread"
workers = 2
threads = 4
worker_connections = 200
keepalive = 5
