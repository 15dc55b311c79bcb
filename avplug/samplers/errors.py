"""The error a sampling policy raises for settings that cannot work with the catalog it was given."""
from __future__ import annotations

from avplug.errors import UserError


class SamplerError(UserError, ValueError):
    """A sampler setting that the training titles cannot satisfy; the message names the key and a value that works."""
