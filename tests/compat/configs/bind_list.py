# Several listeners: TCP on all interfaces, IPv6 and a unix socket for the local proxy.
bind = ["0.0.0.0:8000", "[::]:8000", "unix:/tmp/corral-compat-app.sock"]
workers = 2
backlog = 1024
umask = 0o007
