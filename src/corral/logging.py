"""The import path docs/design.md names for the logging contract; the code is in corral.logs."""

from corral.logs import AccessRecord, Logger, LogSettings

__all__ = ["AccessRecord", "LogSettings", "Logger"]
