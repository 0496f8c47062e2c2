"""The one exception type for bad data input."""

__all__ = ['DataError']


class DataError(ValueError):
    """Bad data input: a one-line message that names the offending file or folder.

    Command-line tools print ``str(error)`` and exit with status 2 (argparse's
    status for bad usage) instead of showing a traceback.
    """
