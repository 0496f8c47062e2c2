"""What every command-line front end shares: one-line errors, range checks, common flags.

Each command (``train_imagenet.py``, ``eval.py``, ``export``, ``quantize``,
``convert``, ``summary``, ``plot``, ``prepare``) parses with
:class:`OneLineParser`, checks its numeric flags with :func:`check_ranges`, and
runs its body through :func:`run`, which turns the package's
:class:`~gluon_asymmnet.errors.UsageError` and
:class:`~gluon_asymmnet.errors.DataError` (and an ``OSError`` of a file that
could not be written) into ``PROG: error: MESSAGE`` and exit status 2.

Signals have one rule for every command, training and the launcher included:
SIGINT or SIGTERM ends it with one line and status :data:`EXIT_INTERRUPTED`
(130), from its first instruction (:func:`hear_signals_from_start`, called by
the package's ``__init__``) through its work (:func:`run`; :class:`StopFlag`
where the work stops at a safe point, as training does) to its exit.
"""
import _thread
import argparse
import json
import math
import os
import signal
import sys
import threading

from .errors import DataError, UsageError, check_memory

__all__ = ['OneLineParser', 'check_ranges', 'run', 'StopFlag', 'hear_signals_from_start',
           'EXIT_INTERRUPTED', 'add_zoo_model_flags', 'add_data_flags', 'validation_source',
           'add_gpus_flag', 'gpu_devices', 'DATA_RANGES', 'MAX_INPUT_SIZE', 'MAX_DATA_WORKERS',
           'MAX_BATCH_SIZE', 'check_batch_memory', 'OUTPUT_KINDS', 'check_output',
           'add_force_flag']


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default after its help, unless the help already speaks of its default
    or there is none to show (None, False)."""

    def _get_help_string(self, action):
        text = action.help or ''
        if action.default is None or action.default is False or 'default' in text:
            return text
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), exit status 2, and whose
    ``--help`` shows every flag's default."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('formatter_class', _DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

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
        flag = _flag(parser, name)
        if isinstance(value, float) and not math.isfinite(value):
            parser.error('%s must be a finite number, not %s' % (flag, value))
        if low is not None and (value < low or value == low and not low_ok):
            parser.error('%s must be %s %s, not %s' % (flag, '>=' if low_ok else '>', low, value))
        if high is not None and (value > high or value == high and not high_ok):
            parser.error('%s must be %s %s, not %s'
                         % (flag, '<=' if high_ok else '<', high, value))


#: Exit status of a command stopped by SIGINT or SIGTERM (whichever: as a shell reports
#: Ctrl-C), from its first instruction to its last.
EXIT_INTERRUPTED = 130


def _flag(parser, dest):
    """How the command line spells the flag of ``dest`` (``-j/--num-data-workers``)."""
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return '/'.join(action.option_strings)
    return '--' + dest.replace('_', '-')


#: The largest image side a command takes (ImageNet models take 224; this is 84 times the
#: pixels, and more memory than a batch of them fits in on most machines).
MAX_INPUT_SIZE = 2048
#: The most data-loading threads a command starts (``-j``): a few per core.
MAX_DATA_WORKERS = max(8, 4 * (os.cpu_count() or 1))
#: The most images in one batch.
MAX_BATCH_SIZE = 65536
#: Bytes of working memory per byte of a float32 input batch, at least (measured on
#: AsymmNet-L at 224 px: 26 for inference, 220 for a training step; these lower figures
#: refuse only what cannot fit).
MEMORY_PER_INPUT_BYTE = {'inference': 4, 'training': 50}


def check_batch_memory(parser, batch_size, input_size, work):
    """``parser.error`` (one line, status 2) when a batch of ``batch_size`` images of
    ``input_size`` pixels cannot fit in memory for ``work`` (``'inference'``/``'training'``)."""
    need = batch_size * 3 * input_size ** 2 * 4 * MEMORY_PER_INPUT_BYTE[work]
    try:
        check_memory(need, 'a %s batch of --batch-size %d at --input-size %d'
                     % (work, batch_size, input_size))
    except UsageError as error:
        parser.error(str(error))


def run(parser, body, *args):
    """``body(*args)``; a bad input ends the command with one line and status 2.

    SIGINT and SIGTERM end it with one line and status :data:`EXIT_INTERRUPTED`
    (the package writes every result atomically, so nothing partial is left),
    wherever they land (see :class:`_Interrupts`); a body that stops gracefully
    (:class:`StopFlag`) returns that status itself. An exception with an
    ``exit_status`` attribute ends it with its message and that status.

    Parameters
    ----------
    parser : argparse.ArgumentParser or str
        The command's parser, or its name (``prog``).
    body : callable
    *args
        Passed to ``body``.

    Returns
    -------
    The result of ``body`` (0 when it returns None).
    """
    prog = getattr(parser, 'prog', parser)
    _STATE['prog'] = prog
    with _Interrupts() as interrupts:
        try:
            result = body(*args)
        except (KeyboardInterrupt, Exception) as error:
            # SIGINT/SIGTERM: the KeyboardInterrupt, or what a library made of it (an
            # ImportError from an except around an import...)
            if interrupts.received or isinstance(error, KeyboardInterrupt):
                interrupts.stop()
                _exit(EXIT_INTERRUPTED, '%s: interrupted; no partial output was left' % prog)
            if isinstance(error, (UsageError, DataError, OSError)):
                # OSError: what could not be written (full disk, read-only folder)
                _exit(2, '%s: error: %s' % (prog, _os_message(error)
                                            if isinstance(error, OSError) else error))
            if hasattr(error, 'exit_status'):
                _exit(error.exit_status, '%s: error: %s' % (prog, error))
            raise
        finally:
            _STATE['phase'] = 'ended'
    return 0 if result is None else result


def _exit(status, line):
    sys.stderr.write(line + '\n')
    sys.exit(status)


def _os_message(error):
    if error.filename and error.strerror:
        return '%s: %s' % (error.filename, error.strerror)
    return str(error)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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

    def __enter__(self):
        #: The first signal received, or None.
        self.received = None
        self._done = threading.Event()
        self._repeater = None
        self._hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        self._previous = {signum: signal.signal(signum, self._handle) for signum in _SIGNALS}
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


class StopFlag:
    """A graceful stop: while installed (``with StopFlag() as stop``), the first SIGINT or
    SIGTERM sets :attr:`signal_name` and the work stops at its next safe point (a
    training after the current batch, with a checkpoint) and returns
    :data:`EXIT_INTERRUPTED`; a second one raises KeyboardInterrupt (inside
    :func:`run`: the command ends at once, one line and the same status).
    """

    def __init__(self):
        #: ``'SIGINT'`` or ``'SIGTERM'`` once one came, else None.
        self.signal_name = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __enter__(self):
        for signum in _SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


#: The command this process runs (its ``prog``) and where it stands: ``'loading'`` until
#: :func:`run` has run its body, then ``'ended'``.
_STATE = {'prog': None, 'phase': 'loading'}
#: The scripts at the repository's root, which run one command each.
_SCRIPTS = ('eval.py', 'train_imagenet.py')


def _command_prog(orig_argv, argv):
    """The name of the package's command that this process runs, or None (another program
    imports the package)."""
    options = iter(orig_argv[1:])
    for option in options:
        if option == '-m':
            module = next(options, '')
            return 'python -m ' + module if module.split('.')[0] == __package__ else None
        if option in ('-X', '-W', '--check-hash-based-pycs'):
            next(options, None)
        elif option == '-c' or not option.startswith('-'):
            break
    name = os.path.basename(argv[0]) if argv else ''
    return name if name.startswith('asymmnet-') or name in _SCRIPTS else None


def hear_signals_from_start():
    """Make SIGINT and SIGTERM end this process with one line and :data:`EXIT_INTERRUPTED`
    until :func:`run` takes over (and after it), if the process is one of the package's
    commands (``python -m gluon_asymmnet...``, an ``asymmnet-*`` console script, a root
    script): importing MXNet and GluonCV takes seconds, during which Python would lose a
    KeyboardInterrupt in a library's ``except`` and SIGTERM would end it without a word.

    The package's ``__init__`` calls it first thing; nothing happens for other programs.
    """
    prog = _command_prog(getattr(sys, 'orig_argv', sys.argv), sys.argv)
    if prog is None or threading.current_thread() is not threading.main_thread():
        return
    _STATE['prog'] = prog
    for signum in _SIGNALS:
        signal.signal(signum, _interrupted_outside_run)


def _interrupted_outside_run(signum, frame):
    """Loading or exiting, nothing half-written: one line and exit at once (``os._exit``,
    so that no library's ``except`` catches it, and no teardown can hang)."""
    what = ('interrupted while loading; nothing was read or written' if _STATE['phase'] ==
            'loading' else 'interrupted on its way out; what it wrote is complete')
    os.write(2, ('%s: %s\n' % (_STATE['prog'], what)).encode())
    os._exit(EXIT_INTERRUPTED)


def _is_png(path):
    with open(path, 'rb') as f:
        return f.read(8) == b'\x89PNG\r\n\x1a\n'


def _is_json_object(path, key):
    try:
        with open(path) as f:
            return key in json.load(f)
    except (ValueError, TypeError):   # not JSON, not an object
        return False


#: What a command's output file may replace: ``kind -> (what it is, test of a file)``.
OUTPUT_KINDS = {'png': ('a PNG image', _is_png),
                'eval-json': ('results of eval.py --json', lambda path: _is_json_object(path,
                                                                                     'top1'))}


def check_output(path, kind, force=False):
    """Refuse (one line, status 2) to replace a file that is not the command's own kind of
    output, unless ``force``: a plot's ``-o`` pointed at a run's ``metrics.jsonl``, its
    ``log.txt`` or a checkpoint replaces only a PNG.

    Parameters
    ----------
    path : str
    kind : str
        A key of :data:`OUTPUT_KINDS`.
    force : bool
        The command's ``--force``.

    Raises
    ------
    UsageError
    """
    what, looks_like = OUTPUT_KINDS[kind]
    if force or not os.path.isfile(path) or looks_like(path):
        return
    raise UsageError('%s holds a file that is not %s: not replaced (choose another output, '
                     'or add --force)' % (path, what))


def add_force_flag(parser):
    """``--force``: replace an output path that holds another kind of file."""
    parser.add_argument('--force', action='store_true',
                        help='replace the output even if it holds a file that is not '
                             "this command's kind of output")


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
DATA_RANGES = (('input_size', 16, MAX_INPUT_SIZE, True, True), ('crop_ratio', 0, 1, False, True),
               ('batch_size', 1, MAX_BATCH_SIZE, True, True),
               ('num_workers', 0, MAX_DATA_WORKERS, True, True),
               ('classes', 1, None, True, True), ('width_scale', 0, None, False, True),
               ('asymmrate', 0, None, True, True))


def add_data_flags(parser, digits_root):
    """The validation-data flags (``--dataset``, ``--rec-val``, ``--data-dir``,
    ``--input-size``...) of ``eval.py`` and the quantize command.

    ``--input-size`` and ``--crop-ratio`` default to None: the model's record
    (or the export's ``-info.json``) says what the model takes.
    """
    data = parser.add_argument_group('data')
    data.add_argument('--dataset', default='imagenet', choices=['imagenet', 'digits'],
                      help="'digits': the embedded digits' validation split; 'imagenet': the "
                           'files or folder given below')
    data.add_argument('--digits-root', default=digits_root,
                      help='cache folder of the digits data set (default: %(default)s)')
    data.add_argument('--rec-val', help='validation RecordIO (.rec)')
    data.add_argument('--rec-val-idx', help='its index (.idx)')
    data.add_argument('--data-dir', help='folder with train/ and val/ class folders')
    data.add_argument('--input-size', type=int, default=None,
                      help="input side (default: the export's or the model's)")
    data.add_argument('--crop-ratio', type=float, default=None,
                      help="centre-crop ratio (default: the export's or the model's)")
    data.add_argument('--batch-size', type=int, default=32, help='images per batch')
    data.add_argument('-j', '--num-data-workers', dest='num_workers', type=int, default=4,
                      help='data decoding threads')


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
            gpus, visible, ' (a CPU build of MXNet: see docs/training.md, "Install a CUDA build of MXNet")'
            if visible == 0 else ''))
    return [mx.gpu(i) for i in ids]
