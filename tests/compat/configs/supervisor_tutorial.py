# The Django-on-a-VPS tutorial style: a supervisor line copied into the gunicorn config
# (`command`), pythonpath, a fixed bind and raw_env for the settings module.
command = "/home/deploy/venv/bin/gunicorn"
pythonpath = "/home/deploy/myproject"
bind = "127.0.0.1:8001"
workers = 3
raw_env = ["DJANGO_SETTINGS_MODULE=myproject.settings.production", "COMPAT_FROM=raw_env"]
timeout = 90
errorlog = "-"
loglevel = "warning"
