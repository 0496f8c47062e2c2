"""A run's per-epoch metrics: our ``metrics.jsonl``, or a log in the original format.

``metrics.jsonl`` holds one JSON object per epoch with keys ``epoch,
train_loss, train_acc, val_top1, val_top5, val_loss, lr, samples_per_sec, time``
(:data:`METRIC_RANGES`; ``val_loss`` since 0.2: files without it read as before,
their plots draw no validation loss).  A log in the original AsymmNet / GluonCV
format reads as well::

    Epoch[3] Batch [49]	Speed: 3943.145357 samples/sec	accuracy=0.182021	lr=0.562612
    [Epoch 3] training: accuracy=0.251987            (or loss=..., any key=value pairs)
    [Epoch 3] speed: 4006 samples/sec	time cost: 326.931348
    [Epoch 3] validation: top1=0.332825 top5=0.597941

GluonCV's own script logs errors, not accuracies (``training: err-top1=0.74``,
``validation: err-top1=0.67 err-top5=0.40``): they read as ``1 - error``. The
learning rate of an epoch is the last one its lines show. An epoch that appears
twice (a resumed run) keeps its last values.
"""
import json
import os
import re

from .errors import UsageError

__all__ = ['METRICS_FILE', 'METRIC_RANGES', 'read_metrics', 'read_run']

#: The per-epoch metrics file of a run folder.
METRICS_FILE = 'metrics.jsonl'
#: The fields of a ``metrics.jsonl`` record besides ``epoch``, each a number in
#: ``[lowest, highest]`` (None: unbounded) or null (not measured: no validation data,
#: top-5 of 5 classes or fewer). Other fields are kept as they are.
METRIC_RANGES = {'train_loss': (0, None), 'train_acc': (0, 1), 'val_top1': (0, 1),
                 'val_top5': (0, 1), 'val_loss': (0, None), 'lr': (0, None),
                 'samples_per_sec': (0, None), 'time': (0, None)}

_EPOCH_LINE = re.compile(r'^\[Epoch (\d+)\] (training|validation|speed):\s*(.*)$')
_BATCH_LINE = re.compile(r'^Epoch\[(\d+)\] Batch \[\d+\]')
_PAIR = re.compile(r'([A-Za-z_][\w-]*)\s*[=:]\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)')
# names in the log -> names in metrics.jsonl
_LOG_KEYS = {
    'training': {'loss': 'train_loss', 'accuracy': 'train_acc', 'acc': 'train_acc',
                 'lr': 'lr'},
    'validation': {'top1': 'val_top1', 'top5': 'val_top5', 'loss': 'val_loss'},
    'speed': {'time cost': 'time'},
}
# GluonCV's error rates -> the accuracies of metrics.jsonl
_ERROR_KEYS = {
    'training': {'err-top1': 'train_acc'},
    'validation': {'err-top1': 'val_top1', 'err-top5': 'val_top5'},
}


def read_metrics(path):
    """The records of a ``metrics.jsonl`` file, in order.

    A last line cut short (the process died while appending it) is left out:
    its epoch has no checkpoint, so a resumed run trains and records it again.

    Raises
    ------
    UsageError
        Any other line is not a JSON object with an ``epoch``, or one of its
        :data:`METRIC_RANGES` fields is neither null nor a number in its range.
    """
    with open(path) as stream:
        lines = stream.read().split('\n')
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            int(record['epoch'])
        except (ValueError, KeyError, TypeError):
            if number == len(lines):   # no newline after it: cut short
                break
            raise UsageError('%s: line %d is not a JSON object with an "epoch"'
                             % (path, number)) from None
        problem = _field_problem(record)
        if problem:
            raise UsageError('%s: line %d: %s' % (path, number, problem))
        records.append(record)
    return records


def _field_problem(record):
    """What is wrong with the :data:`METRIC_RANGES` fields of ``record`` (None: nothing)."""
    for key, (lowest, highest) in METRIC_RANGES.items():
        value = record.get(key)
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not (lowest <= value and (highest is None or value <= highest)):
            return '%s must be null or a number in [%s, %s], not %r' % (
                key, lowest, 'inf' if highest is None else highest, value)
    return None


def _epochs_of_metrics(path):
    epochs = {}
    for record in read_metrics(path):
        epochs.setdefault(int(record['epoch']), {}).update(
            (key, float(value)) for key, value in record.items()
            if key != 'epoch' and isinstance(value, (int, float)))
    return epochs


def _read_log(path):
    epochs = {}
    with open(path, errors='replace') as lines:
        for line in lines:
            line = line.strip()
            match = _EPOCH_LINE.match(line)
            if match:
                epoch, kind, rest = int(match.group(1)), match.group(2), match.group(3)
                values = epochs.setdefault(epoch, {})
                if kind == 'speed':
                    speed = re.match(r'([\d.]+) samples/sec', rest)
                    cost = re.search(r'time cost:\s*([\d.]+)', rest)
                    if speed:
                        values['samples_per_sec'] = float(speed.group(1))
                    if cost:
                        values['time'] = float(cost.group(1))
                    continue
                for key, value in _PAIR.findall(rest):
                    if key in _LOG_KEYS[kind]:
                        values[_LOG_KEYS[kind][key]] = float(value)
                    elif key in _ERROR_KEYS.get(kind, {}):
                        values[_ERROR_KEYS[kind][key]] = 1 - float(value)
                continue
            match = _BATCH_LINE.match(line)
            if match:
                lr = re.search(r'\blr=([-+\d.eE]+)', line)
                if lr:
                    epochs.setdefault(int(match.group(1)), {})['lr'] = float(lr.group(1))
    return epochs


def read_run(source):
    """Per-epoch metrics of a run.

    Parameters
    ----------
    source : str
        A run folder (its ``metrics.jsonl``), a ``metrics.jsonl`` file, or a
        training log in the original format.

    Returns
    -------
    dict
        ``{epoch: {'train_loss': ..., 'train_acc': ..., 'val_top1': ...,
        'val_top5': ..., 'lr': ..., ...}}`` with the keys each epoch has.

    Raises
    ------
    UsageError
        ``source`` does not exist, is unreadable, or holds no epoch metrics.
    """
    path = source
    if os.path.isdir(source):
        path = os.path.join(source, METRICS_FILE)
        if not os.path.isfile(path):
            raise UsageError('%s: run folder has no %s' % (source, METRICS_FILE))
    if not os.path.isfile(path):
        raise UsageError('%s: no such file or folder' % source)
    try:
        with open(path, errors='replace') as stream:
            first = next((line for line in stream if line.strip()), '')
        epochs = _epochs_of_metrics(path) if first.lstrip().startswith('{') else _read_log(path)
    except OSError as error:
        raise UsageError('%s: cannot read it (%s)' % (path, error.strerror)) from None
    epochs = {epoch: values for epoch, values in epochs.items() if values}
    if not epochs:
        raise UsageError('%s: no per-epoch metrics (neither JSON lines nor "[Epoch N] ..." '
                         'log lines)' % path)
    return epochs
