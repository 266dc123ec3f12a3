"""The user-facing errors of dd: each carries a one-line message and an exit code.

The CLI prints ``str(error)`` and exits with ``error.exit_code``; no traceback unless --debug.
"""


class DDError(Exception):
    """Base of every error that is the user's input, not a bug in dd."""

    exit_code = 2


class SpecError(DDError):
    """A sweep spec field is missing, unknown or out of range.

    ``path`` is the dotted field path (``grid.model.width[3]``); ``message`` says what is wrong
    and, where the values are few, which are allowed.
    """

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)

    def __reduce__(self):  # raised on a Ray worker, it must unpickle on the driver
        return SpecError, (self.path, self.message)


class DataError(DDError):
    """A data file is missing, unreadable or not in the expected format."""


class StoreError(DDError):
    """The results location cannot be read or written."""

    exit_code = 1


def one_line(error: BaseException) -> str:
    """An error (or the cause a Ray error wraps) as ``Type: first line``, for a message."""
    cause = getattr(error, "cause", None) or error
    text = f"{type(cause).__name__}: {cause}".strip().splitlines()
    return text[0] if text else type(cause).__name__


class Cancelled(DDError):
    """A sweep stopped by ``SweepHandle.cancel`` (finished packs are kept; rerun to resume)."""
