"""Apply `logconfig_dict`, `logconfig_json` or `logconfig` (ini) through logging.config."""

from __future__ import annotations

import configparser
import copy
import json
import logging.config
import os
from collections.abc import Mapping
from typing import Any

from corral.logs.settings import LogSettings

ERROR_LOGGER = "corral.error"
ACCESS_LOGGER = "corral.access"

# An existing gunicorn logging config names gunicorn's loggers; they configure ours.
GUNICORN_ALIASES = {"gunicorn.error": ERROR_LOGGER, "gunicorn.access": ACCESS_LOGGER}

_GENERIC_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
_GENERIC_DATEFMT = "%Y-%m-%d %H:%M:%S %z"


def default_dict_config() -> dict[str, Any]:
    """What a user's dict is laid over, key by top-level key, as gunicorn does.

    Unlike gunicorn, our two loggers do not propagate, so a line is not printed twice
    by the root handler.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            ERROR_LOGGER: {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            ACCESS_LOGGER: {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "generic",
                "stream": "ext://sys.stdout",
            },
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "generic",
                "stream": "ext://sys.stderr",
            },
        },
        "formatters": {"generic": {"format": _GENERIC_FORMAT, "datefmt": _GENERIC_DATEFMT}},
    }


def alias_gunicorn_loggers(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a dictConfig dict with gunicorn's logger names renamed to ours.

    When a config names both, ours wins and the gunicorn entry is dropped.
    """
    result = copy.deepcopy(dict(config))
    loggers = result.get("loggers")
    if not isinstance(loggers, dict):
        return result
    for old, new in GUNICORN_ALIASES.items():
        if old in loggers:
            entry = loggers.pop(old)
            if new not in loggers:
                if isinstance(entry, dict) and entry.get("qualname") == old:
                    entry["qualname"] = new
                loggers[new] = entry
    return result


def apply_dict_config(user_config: Mapping[str, Any], source: str) -> None:
    """Lay the user's dict over the defaults and apply it; ValueError names `source`.

    As in gunicorn, each top-level key of the user's dict replaces the default's, so a user
    "loggers" or "root" is taken whole. "handlers" and "formatters" are merged by name
    instead: the default root names "console", which a user's own handlers would otherwise
    leave undefined (gunicorn fails there).
    """
    config = default_dict_config()
    user = alias_gunicorn_loggers(user_config)
    for key in ("handlers", "formatters"):
        if isinstance(user.get(key), dict):
            user[key] = {**config[key], **user[key]}
    config.update(user)
    try:
        logging.config.dictConfig(config)
    except (ValueError, TypeError, AttributeError, ImportError, KeyError) as exc:
        raise ValueError(f"{source}: {exc}") from exc


def apply_json_config(path: str) -> None:
    """Read a dictConfig dict from a JSON file and apply it."""
    try:
        with open(path, encoding="utf-8") as fh:
            loaded = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"logconfig_json {path!r}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ValueError(f"logconfig_json {path!r}: expected a JSON object")
    apply_dict_config(loaded, f"logconfig_json {path!r}")


def apply_ini_config(path: str) -> None:
    """Apply a `logging.config.fileConfig` ini file, renaming gunicorn qualnames to ours."""
    if not os.path.exists(path):
        raise ValueError(f"logconfig {path!r}: file not found")
    parser = configparser.ConfigParser(
        defaults={"__file__": os.path.abspath(path), "here": os.path.dirname(os.path.abspath(path))}
    )
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
        for section in parser.sections():
            if section.startswith("logger_") and parser.has_option(section, "qualname"):
                qualname = parser.get(section, "qualname", raw=True).strip()
                if qualname in GUNICORN_ALIASES:
                    parser.set(section, "qualname", GUNICORN_ALIASES[qualname])
        logging.config.fileConfig(parser, disable_existing_loggers=False)
    except (OSError, configparser.Error, ValueError, TypeError, KeyError, ImportError) as exc:
        raise ValueError(f"logconfig {path!r}: {exc!r}") from exc


def apply_logconfig(cfg: LogSettings) -> bool:
    """Apply whichever logging config is set (dict, then JSON, then ini, as gunicorn does).

    Returns whether one was applied.
    """
    if cfg.logconfig_dict:
        apply_dict_config(cfg.logconfig_dict, "logconfig_dict")
    elif cfg.logconfig_json:
        apply_json_config(cfg.logconfig_json)
    elif cfg.logconfig:
        apply_ini_config(cfg.logconfig)
    else:
        return False
    return True
