"""The one error a bad config raises, wherever it is found (loading, merging or validating)."""


class ConfigError(ValueError):
    """An impossible or unknown config value; the message names the key."""
