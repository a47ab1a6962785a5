"""The settings table, its value parsers, and loading settings with their provenance."""

from corral.config.model import Config, Setting, settings_table
from corral.config.sources import load
from corral.config.spec import SECTIONS, Spec

__all__ = ["SECTIONS", "Config", "Setting", "Spec", "load", "settings_table"]
