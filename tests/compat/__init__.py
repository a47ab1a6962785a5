"""Drop-in compatibility: gunicorn config files, GUNICORN_CMD_ARGS and uvicorn's flags."""
