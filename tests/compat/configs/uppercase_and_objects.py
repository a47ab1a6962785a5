# Constants, imported names and objects beside the settings.
import logging
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
LOG = logging.getLogger("config")
DEFAULT_WORKERS = 2
workers = int(os.environ.get("COMPAT_WORKERS", DEFAULT_WORKERS))
chdir = str(BASE_DIR)
reload = False
reload_extra_files = []
timeout = 30
