"""What every command-line front end shares: one-line errors, range checks, common flags.

Each command (``train_imagenet.py``, ``eval.py``, ``export``, ``quantize``,
``convert``, ``summary``, ``plot``, ``prepare``) parses with
:class:`OneLineParser`, checks its numeric flags with :func:`check_ranges`, and
runs its body through :func:`run`, which turns the package's
:class:`~gluon_asymmnet.errors.UsageError` and
:class:`~gluon_asymmnet.errors.DataError` (and an ``OSError`` of a file that
could not be written) into ``PROG: error: MESSAGE`` and exit status 2.
"""
import _thread
import argparse
import math
import signal
import sys
import threading

from .errors import DataError, UsageError

__all__ = ['OneLineParser', 'check_ranges', 'run', 'add_zoo_model_flags', 'add_data_flags',
           'validation_source', 'add_gpus_flag', 'gpu_devices', 'DATA_RANGES']


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
    every result atomically, so nothing partial is left), wherever they land
    (see :class:`_Interrupts`).

    Returns
    -------
    The result of ``body`` (0 when it returns None).
    """
    with _Interrupts() as interrupts:
        try:
            result = body(*args)
        except (KeyboardInterrupt, Exception) as error:
            # SIGINT/SIGTERM: the KeyboardInterrupt, or what a library made of it (an
            # ImportError from an except around an import...)
            if interrupts.received or isinstance(error, KeyboardInterrupt):
                interrupts.stop()
                parser.exit(130, '%s: interrupted; no partial output was left\n' % parser.prog)
            if isinstance(error, (UsageError, DataError)):
                parser.exit(2, '%s: error: %s\n' % (parser.prog, error))
            if isinstance(error, OSError):   # what could not be written: full disk, read-only
                parser.exit(2, '%s: error: %s\n' % (parser.prog, _os_message(error)))
            raise
    return 0 if result is None else result


def _os_message(error):
    if error.filename and error.strerror:
        return '%s: %s' % (error.filename, error.strerror)
    return str(error)


class _Interrupts:
    """While a command works, SIGINT and SIGTERM raise KeyboardInterrupt, and raise it again
    every :attr:`REPEAT_S` seconds until the command ends.

    Python drops an exception raised in a ``__del__`` method (and prints it):
    MXNet's data iterators free their C++ side there, so a single
    KeyboardInterrupt can be lost and the command run on to its end. Libraries
    also turn it into their own errors (an ``except:`` around an import): once a
    signal came, :func:`run` reports any error as the interruption. Dropped
    KeyboardInterrupts are not printed.
    """
    REPEAT_S = 0.5
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        #: The first signal received, or None.
        self.received = None
        self._done = threading.Event()
        self._repeater = None
        self._hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self._done.is_set():
            return   # a repeat that came as the command ended
        if self.received is None:
            self.received = signum
            self._repeater = threading.Thread(target=self._repeat, daemon=True)
            self._repeater.start()
        raise KeyboardInterrupt

    def _repeat(self):
        while not self._done.wait(self.REPEAT_S):
            _thread.interrupt_main(self.received)

    def _unraisable(self, unraisable):
        if not issubclass(unraisable.exc_type, KeyboardInterrupt):
            self._hook(unraisable)

    def stop(self):
        """No more repeats (a repeat already on its way is handled, as a no-op, here)."""
        self._done.set()
        if self._repeater is not None:
            self._repeater.join()

    def __exit__(self, *exc_info):
        self.stop()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = self._hook


def add_zoo_model_flags(group):
    """``--params-file --classes --width-scale --asymmrate``: a zoo model and its weights."""
    group.add_argument('--params-file',
                       help='weights of --model: a checkpoint, an export\'s or a converted '
                            'file; a training checkpoint alone names its model, input size, '
                            'crop ratio and class names')
    group.add_argument('--classes', type=int, default=None,
                       help='outputs of --model (default: from --params-file)')
    group.add_argument('--width-scale', type=float, default=None, help='width multiplier')
    group.add_argument('--asymmrate', type=int, default=None, help='reused input copies per side')


def add_gpus_flag(group, what):
    """``--gpus IDS``: the GPUs ``what`` runs on (default None: the CPU); checked by
    :func:`gluon_asymmnet.deploy.runtime.devices`."""
    group.add_argument('--gpus', default=None,
                       help='GPU ids %s, e.g. 0 or 0,1 (default: the CPU; needs a CUDA build '
                            'of MXNet)' % what)


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


def validation_source(args):
    """``(DataSource, class names or None)`` of the flags of :func:`add_data_flags`.

    Raises
    ------
    UsageError
        No data flag given.
    """
    from .data import DataSource, prepare_digits
    if args.dataset == 'digits':
        digits = prepare_digits(args.digits_root, size=32)
        return DataSource(rec_val=digits.val_rec, rec_val_idx=digits.val_idx), digits.classes
    if not (args.rec_val or args.data_dir):
        raise UsageError('no data: give --rec-val/--rec-val-idx, --data-dir or --dataset digits')
    return DataSource(rec_val=args.rec_val, rec_val_idx=args.rec_val_idx,
                      data_dir=args.data_dir), None


def gpu_devices(gpus):
    """The devices of a ``--gpus`` flag: ``'0,1'`` gives ``[gpu(0), gpu(1)]``, None the CPU.

    Raises
    ------
    UsageError
        Not GPU ids, or a GPU that MXNet does not see (a CPU build of MXNet sees none).
    """
    import mxnet as mx
    if gpus is None:
        return [mx.cpu()]
    try:
        ids = [int(part) for part in gpus.split(',')]
    except ValueError:
        ids = [-1]
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise UsageError('--gpus must be distinct GPU ids such as 0 or 0,1, not %r' % gpus)
    visible = mx.context.num_gpus()
    if max(ids) >= visible:
        raise UsageError('--gpus %s, but MXNet sees %d GPU(s) here%s' % (
            gpus, visible, ' (a CPU build of MXNet: see README, "Training on GPUs")'
            if visible == 0 else ''))
    return [mx.gpu(i) for i in ids]
