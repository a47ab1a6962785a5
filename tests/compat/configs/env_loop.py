# Any GUNICORN_* environment variable becomes a setting: a loop in the config file.
import os

for k, v in os.environ.items():
    if k.startswith("GUNICORN_") and k != "GUNICORN_CMD_ARGS":
        key = k.split("_", 1)[1].lower()
        locals()[key] = v
