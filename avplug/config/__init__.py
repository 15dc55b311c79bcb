"""Configs: defaults, YAML recipes with ``_BASE_``, command-line overrides, validation.

Typical use (what every tool does)::

    cfg = load_config("movie_tv.yaml", opts=["SAMPLER.K", "8"], plugins=["my.plugin"])

``load_config`` loads built-in and third-party plugins first (so plugin config hooks have added
their keys), merges the YAML and the overrides, validates, and freezes.
"""
from avplug.config.config import CONFIG_DIR, get_cfg, load_config, resolve_config_path, write_config
from avplug.config.errors import ConfigError
from avplug.config.validate import validate_cfg

__all__ = [
    "CONFIG_DIR",
    "ConfigError",
    "get_cfg",
    "load_config",
    "resolve_config_path",
    "validate_cfg",
    "write_config",
]
