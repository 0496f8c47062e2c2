"""The two exceptions that command-line tools turn into one line and exit status 2, and the
check that work fits in this machine's memory.

Every layer raises them for bad input; only the command-line front ends catch
them (:func:`gluon_asymmnet.cli.run`), print ``PROG: error: MESSAGE`` and exit
with argparse's status for bad usage.
"""

import os

__all__ = ['UsageError', 'DataError', 'physical_memory', 'check_memory']


class UsageError(ValueError):
    """A bad command line, model, parameter file or output path: a one-line message."""


class DataError(ValueError):
    """Bad data input: a one-line message that names the offending file or folder."""


def physical_memory():
    """Bytes of memory of this machine."""
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def check_memory(need, what):
    """Raise a one-line :class:`UsageError` when ``need`` bytes exceed this machine's memory.

    Parameters
    ----------
    need : int
        Bytes the work needs at least.
    what : str
        The work, as the message's subject (``'the digits at 4096 px'``).
    """
    have = physical_memory()
    if need > have:
        raise UsageError('%s needs at least %.1f GB of memory; this machine has %.1f GB'
                         % (what, need / 2 ** 30, have / 2 ** 30))
