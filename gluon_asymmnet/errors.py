"""The two exceptions that command-line tools turn into one line and exit status 2.

Every layer raises them for bad input; only the command-line front ends catch
them (:func:`gluon_asymmnet.cli.run`), print ``PROG: error: MESSAGE`` and exit
with argparse's status for bad usage.
"""

__all__ = ['UsageError', 'DataError']


class UsageError(ValueError):
    """A bad command line, model, parameter file or output path: a one-line message."""


class DataError(ValueError):
    """Bad data input: a one-line message that names the offending file or folder."""
