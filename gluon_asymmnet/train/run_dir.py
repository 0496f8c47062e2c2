"""The run folder ``<save-dir>/<model>-<tag-name>``: log, arguments, metrics, export.

Files (written by the first worker only under a distributed kvstore; the
other workers log to their console and save nothing but, at the end, their
parameters as ``worker<rank>-final.params`` so that runs can be compared)::

    log.txt          the original AsymmNet/GluonCV log lines (--logging-file)
    run.json         the run's record (network, input, recipe, phases;
                     gluon_asymmnet.records.RunRecord; 0.1 wrote args.json)
    metrics.jsonl    one JSON object per epoch: epoch, train_loss, train_acc,
                     val_top1, val_top5, val_loss, lr, samples_per_sec, time
                     (gluon_asymmnet.run_metrics reads it)
    <model>-*.params/.states/.json   checkpoints (see ``checkpoint``)
    <model>-symbol.json, <model>-0000.params, <model>-info.json   the export of the best weights
    tensorboard/     mxboard scalars (--tensorboard)
"""
import json
import logging
import os
import sys


from ..errors import UsageError
from ..fileio import atomic_save
from ..records import LEGACY_RUN_RECORD, RUN_RECORD
from ..run_metrics import METRICS_FILE, read_metrics

__all__ = ['RunDir', 'METRICS_FILE', 'BATCH_LINE', 'DETAIL_LINE']

#: ``extra`` of per-batch log records; the console drops them under a progress bar.
BATCH_LINE = {'batch_line': True}
#: ``extra`` of the arguments and the printed network: the log file always has
#: them (as the original's logs do), the console only with ``--verbose``.
DETAIL_LINE = {'detail_line': True}


class _LogFile(logging.FileHandler):
    """The log file; a failed write (full disk) is skipped, the console still shows the line.

    Saving the next checkpoint then fails with a one-line message instead of
    logging's own traceback for every line.
    """

    def handleError(self, record):
        pass


class _Without(logging.Filter):
    """Drops records whose ``extra`` marks them with ``key``."""

    def __init__(self, key):
        super().__init__()
        self.key = key

    def filter(self, record):
        return not getattr(record, self.key, False)


class RunDir:
    """One training run's folder and logger.

    Parameters
    ----------
    path : str
        The folder (created when ``writable``).
    writable : bool
        False for the non-first workers of a distributed job: nothing is written.
    logging_file : str
        Log file name inside the folder.
    progress_bar : bool
        A tqdm bar shows the batches on the console, so batch lines go to the file only.
    verbose : bool
        The console shows the arguments and the network too (:data:`DETAIL_LINE`).
    """

    def __init__(self, path, writable=True, logging_file='log.txt', progress_bar=False,
                 verbose=False):
        self.path = path
        self.writable = writable
        self.logger = logging.getLogger('gluon_asymmnet.train')
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        for handler in list(self.logger.handlers):
            self.logger.removeHandler(handler)
            handler.close()
        console = logging.StreamHandler(sys.stderr)
        if progress_bar:
            console.addFilter(_Without('batch_line'))
        if not verbose:
            console.addFilter(_Without('detail_line'))
        self.logger.addHandler(console)
        if writable:
            try:
                os.makedirs(path, exist_ok=True)
                self.logger.addHandler(_LogFile(os.path.join(path, logging_file)))
            except OSError as error:
                raise OSError('cannot write %s: %s' % (os.path.join(path, logging_file),
                                                       error.strerror or error)) from None
        self._board = None

    def file(self, name):
        """Path of ``name`` inside the run folder."""
        return os.path.join(self.path, name)

    def has_run(self):
        """Whether the folder already holds (part of) a training run."""
        return any(os.path.exists(self.file(name))
                   for name in (METRICS_FILE, RUN_RECORD, LEGACY_RUN_RECORD))

    def read_metrics(self):
        """The per-epoch records written so far.

        A line cut short (the process died while appending it) is left out: its
        epoch has no checkpoint, so a resumed run trains and records it again.
        """
        if not os.path.exists(self.file(METRICS_FILE)):
            return []
        return read_metrics(self.file(METRICS_FILE))

    def keep_metrics_before(self, epoch):
        """Drop the records of ``epoch`` and later (a resumed run writes them again)."""
        if not self.writable:
            return
        kept = [record for record in self.read_metrics() if record['epoch'] < epoch]

        def write(tmp):
            with open(tmp, 'w') as out:
                out.writelines(json.dumps(record) + '\n' for record in kept)
        atomic_save(self.file(METRICS_FILE), write)

    def add_metrics(self, record):
        """Append one epoch's record to ``metrics.jsonl`` (and to TensorBoard)."""
        if not self.writable:
            return
        try:
            with open(self.file(METRICS_FILE), 'a') as out:
                out.write(json.dumps(record) + '\n')
                out.flush()
                os.fsync(out.fileno())
        except OSError as error:
            raise OSError('cannot write %s: %s' % (self.file(METRICS_FILE),
                                                   error.strerror or error)) from None
        if self._board is not None:
            for key, value in record.items():
                if key != 'epoch' and value is not None:
                    self._board.add_scalar(tag=key, value=value, global_step=record['epoch'])
            self._board.flush()

    def open_tensorboard(self):
        """Write the metrics as mxboard scalars to ``tensorboard/`` too."""
        if self.writable:
            try:
                from mxboard import SummaryWriter
            except (ImportError, TypeError) as error:
                raise UsageError('--tensorboard: mxboard cannot be loaded (%s); install it, and '
                                 'with protobuf >= 4 run with '
                                 'PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python'
                                 % str(error).splitlines()[0]) from None
            self._board = SummaryWriter(logdir=self.file('tensorboard'))

    def close(self):
        """Flush and close the log file and the TensorBoard writer."""
        if self._board is not None:
            self._board.close()
            self._board = None
        for handler in list(self.logger.handlers):
            handler.flush()
            if isinstance(handler, logging.FileHandler):
                self.logger.removeHandler(handler)
                handler.close()
