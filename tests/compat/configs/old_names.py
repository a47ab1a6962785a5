# Settings from old gunicorn versions and their tutorials.
debug = True
logfile = "/tmp/gunicorn.log"
django_settings = "myproject.settings"
workers = 1
loglevel = "debug"
