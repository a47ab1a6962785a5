# Preloaded app, no sendfile (a VirtualBox shared folder), a pid file.
preload_app = True
reuse_port = True
sendfile = False
pidfile = "app.pid"
workers = 2
proc_name = "compat-app"
