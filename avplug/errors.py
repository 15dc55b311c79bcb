"""The root of every error that is the user's to fix, not a bug in avplug.

A :class:`UserError`'s message is the whole story for the person at the terminal: it names the
config key, file, store or title at fault and, where there is one, the fix.  Entry points print it
as one ``tool.py: message`` line and exit with status 2 (the traceback goes to the log file only);
any other exception is a bug and keeps its traceback.  Every layer's error types derive from it:
``ConfigError`` (config), ``MediaError`` / ``StoreError`` / ``CatalogError`` (data),
``CheckpointFormatError`` (models), ``SweepError`` (experiments), ``SlurmError`` (jobs).
"""


class UserError(Exception):
    """A problem with the user's input, files or environment; the message names it and the fix."""
