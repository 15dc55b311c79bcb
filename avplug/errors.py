"""The root of every error that is the user's to fix, not a bug in avplug.

A :class:`UserError`'s message is the whole story for the person at the terminal: it names the
config key, file, store or title at fault and, where there is one, the fix.  Entry points print it
as one ``tool.py: message`` line and exit with status 2 (the traceback goes to the log file only);
any other exception is a bug and keeps its traceback.  Every layer's error types derive from it:
``ConfigError`` (config), ``MediaError`` / ``StoreError`` / ``CatalogError`` (data),
``CheckpointFormatError`` (models), ``SweepError`` (experiments), ``SlurmError`` (jobs).
"""
import errno
import re


class UserError(Exception):
    """A problem with the user's input, files or environment; the message names it and the fix."""


# OS errors that a user causes and fixes (a path, a permission, a full or read-only disk), by errno.
_USER_ERRNOS = {
    errno.ENOENT: "no such file or directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}
_USER_OS_ERRORS = (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError)
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` or an exception it was raised from is a full disk or exhausted quota."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# How torch's DataLoader re-raises an error of a worker process (torch._utils.ExceptionWrapper).
_LOADER_WORKER = re.compile(r"Caught (?P<name>\w+) in DataLoader worker process \d+\.\nOriginal Traceback")


def _user_error_names() -> set[str]:
    names, todo = {cls.__name__ for cls in _USER_OS_ERRORS}, [UserError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for ``exc`` if it is the user's to fix, else None (a bug).

    User errors are :class:`UserError` and the OS errors of ``_USER_ERRNOS`` (a missing input path,
    permission denied, no space left on device ...), whose message names the path, also when a
    DataLoader worker raised it (torch then re-raises it with the worker's traceback as message).
    Only the first line of a message is kept.
    """
    from_worker = _LOADER_WORKER.match(str(exc))
    if from_worker:  # torch re-raises a loader worker's error with its traceback as the message
        if from_worker["name"] not in _user_error_names():
            return None
        last = [line for line in str(exc).splitlines() if line.strip()][-1]
        text = last.split(f"{from_worker['name']}: ", 1)[-1]
    elif isinstance(exc, UserError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.errno in _USER_ERRNOS:
        paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        text = f"{paths}: {_USER_ERRNOS[exc.errno]}" if paths else str(exc)
    elif isinstance(exc, _USER_OS_ERRORS):  # raised by avplug with its own message naming the path
        text = str(exc)
    else:
        return None
    return (text.strip().splitlines() or [type(exc).__name__])[0]
