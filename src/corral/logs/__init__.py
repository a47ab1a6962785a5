"""corral's error and access logs: one AccessRecord rendered to gunicorn-format text or JSON."""

from corral.logs.logger import Logger
from corral.logs.record import AccessRecord
from corral.logs.settings import LogSettings

__all__ = ["AccessRecord", "LogSettings", "Logger"]
