"""The one error a bad config raises, wherever it is found (loading, merging or validating)."""
from avplug.errors import UserError


class ConfigError(UserError, ValueError):
    """An impossible or unknown config value; the message names the key."""
