# gunicorn's Docker advice: heartbeat files in memory, logs to stdout, stdio kept.
worker_tmp_dir = "/dev/shm"
workers = 2
threads = 2
accesslog = "-"
errorlog = "-"
capture_output = True
enable_stdio_inheritance = True
