"""What every command-line front end shares: one-line errors, range checks, common flags.

Each command (``train_imagenet.py``, ``eval.py``, ``export``, ``quantize``,
``convert``, ``summary``, ``plot``, ``prepare``) parses with
:class:`OneLineParser`, checks its numeric flags with :func:`check_ranges`, and
runs its body through :func:`run`, which turns the package's
:class:`~gluon_asymmnet.errors.UsageError` and
:class:`~gluon_asymmnet.errors.DataError` (and an ``OSError`` of a file that
could not be written) into ``PROG: error: MESSAGE`` and exit status 2.
"""
import argparse
import math
import signal

from .errors import DataError, UsageError

__all__ = ['OneLineParser', 'check_ranges', 'run', 'add_zoo_model_flags', 'add_data_flags',
           'DATA_RANGES']


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, '%s: error: %s (see --help)\n' % (self.prog, message))


def check_ranges(parser, args, ranges):
    """Check numeric flags; a value out of range is ``parser.error`` (one line, status 2).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    args : argparse.Namespace
    ranges : sequence of tuple
        ``(dest, lowest, highest, lowest allowed, highest allowed)``; ``None``
        bounds are open. Flags left unset (``None``) are not checked.
    """
    for name, low, high, low_ok, high_ok in ranges:
        value = getattr(args, name, None)
        if value is None:
            continue
        flag = '--' + name.replace('_', '-')
        if isinstance(value, float) and not math.isfinite(value):
            parser.error('%s must be a finite number, not %s' % (flag, value))
        if low is not None and (value < low or value == low and not low_ok):
            parser.error('%s must be %s %s, not %s' % (flag, '>=' if low_ok else '>', low, value))
        if high is not None and (value > high or value == high and not high_ok):
            parser.error('%s must be %s %s, not %s'
                         % (flag, '<=' if high_ok else '<', high, value))


def run(parser, body, *args):
    """``body(*args)``; a bad input ends the command with one line and status 2.

    SIGINT and SIGTERM end it with one line and status 130 (the package writes
    every result atomically, so nothing partial is left).

    Returns
    -------
    The result of ``body`` (0 when it returns None).
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)   # SIGTERM ends it as SIGINT does
    try:
        result = body(*args)
    except (UsageError, DataError) as error:
        parser.exit(2, '%s: error: %s\n' % (parser.prog, error))
    except OSError as error:   # what could not be written: full disk, read-only folder...
        parser.exit(2, '%s: error: %s\n' % (parser.prog, _os_message(error)))
    except KeyboardInterrupt:   # SIGINT or SIGTERM: results are written atomically
        parser.exit(130, '%s: interrupted; no partial output was left\n' % parser.prog)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if result is None else result


def _os_message(error):
    if error.filename and error.strerror:
        return '%s: %s' % (error.filename, error.strerror)
    return str(error)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def add_zoo_model_flags(group):
    """``--params-file --classes --width-scale --asymmrate``: a zoo model and its weights."""
    group.add_argument('--params-file', help='weights of --model (save_parameters)')
    group.add_argument('--classes', type=int, default=None,
                       help='outputs of --model (default: from --params-file)')
    group.add_argument('--width-scale', type=float, default=None, help='width multiplier')
    group.add_argument('--asymmrate', type=int, default=None, help='reused input copies per side')


#: Ranges of the flags of :func:`add_data_flags` and :func:`add_zoo_model_flags`.
DATA_RANGES = (('input_size', 16, None, True, True), ('crop_ratio', 0, 1, False, True),
               ('batch_size', 1, None, True, True), ('num_workers', 0, None, True, True),
               ('classes', 1, None, True, True), ('width_scale', 0, None, False, True),
               ('asymmrate', 0, None, True, True))


def add_data_flags(parser, digits_root):
    """The validation-data flags (``--dataset``, ``--rec-val``, ``--data-dir``,
    ``--input-size``...) of ``eval.py`` and the quantize command.

    ``--input-size`` and ``--crop-ratio`` default to None: the model's record
    (or the export's ``-info.json``) says what the model takes.
    """
    data = parser.add_argument_group('data')
    data.add_argument('--dataset', default='imagenet', choices=['imagenet', 'digits'])
    data.add_argument('--digits-root', default=digits_root,
                      help='cache folder of the digits data set (default: %(default)s)')
    data.add_argument('--rec-val', help='validation RecordIO (.rec)')
    data.add_argument('--rec-val-idx', help='its index (.idx)')
    data.add_argument('--data-dir', help='folder with train/ and val/ class folders')
    data.add_argument('--input-size', type=int, default=None,
                      help="input side (default: the export's or the model's)")
    data.add_argument('--crop-ratio', type=float, default=None,
                      help="centre-crop ratio (default: the export's or the model's)")
    data.add_argument('--batch-size', type=int, default=32)
    data.add_argument('-j', '--num-data-workers', dest='num_workers', type=int, default=4)
